"""hetero_infer.core must import with no ROS, TensorRT, pycuda or onnxruntime on the machine,
and only hetero_infer.ros may import rclpy: serving/, backends/ and commands/ import without ROS.

The check runs in a fresh interpreter whose import system refuses those packages, so a
module that imports one of them (even indirectly, or from a cached module) fails the test.
"""

import subprocess
import sys
import textwrap

import pytest

FORBIDDEN = ('rclpy', 'tensorrt', 'pycuda', 'onnxruntime')
#: What the layers above core must not import: rclpy and the ROS message packages.
ROS = ('rclpy', 'rcl_interfaces', 'std_msgs', 'sensor_msgs', 'diagnostic_msgs', 'vision_msgs',
       'audio_common_msgs', 'builtin_interfaces', 'ament_index_python', 'launch', 'launch_ros')

SCRIPT = textwrap.dedent('''
    import importlib
    import importlib.abc
    import pkgutil
    import sys

    FORBIDDEN = {forbidden!r}
    PACKAGE = {package!r}

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in FORBIDDEN:
                raise ImportError('forbidden import in %s: %s' % (PACKAGE, name))
            return None

    for name in list(sys.modules):
        if name.split('.')[0] in FORBIDDEN:
            del sys.modules[name]
    sys.meta_path.insert(0, Refuse())

    package = importlib.import_module(PACKAGE)
    names = [PACKAGE]
    for info in pkgutil.walk_packages(package.__path__, PACKAGE + '.'):
        importlib.import_module(info.name)
        names.append(info.name)
    leaked = sorted(m for m in sys.modules if m.split('.')[0] in FORBIDDEN)
    assert not leaked, leaked
    print('\\n'.join(names))
''')


def _script(package, forbidden):
    return SCRIPT.format(forbidden=forbidden, package=package)


def test_core_imports_without_ros_tensorrt_onnxruntime():
    proc = subprocess.run([sys.executable, '-c', _script('hetero_infer.core', FORBIDDEN)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    imported = proc.stdout.split()
    assert 'hetero_infer.core' in imported
    assert 'hetero_infer.core.model' in imported


def test_the_guard_really_refuses():
    # The same finder must make a forbidden import fail, or the test above proves nothing.
    probe = _script('hetero_infer.core', FORBIDDEN).replace(
        'package = importlib.import_module(PACKAGE)', 'import rclpy  # noqa')
    proc = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert 'forbidden import in hetero_infer.core: rclpy' in proc.stderr


@pytest.mark.parametrize('package,module', [
    ('hetero_infer.serving', 'hetero_infer.serving.service'),
    ('hetero_infer.backends', 'hetero_infer.backends.null'),
    ('hetero_infer.commands', 'hetero_infer.commands.serve'),
])
def test_only_ros_imports_rclpy(package, module):
    proc = subprocess.run([sys.executable, '-c', _script(package, ROS + ('tensorrt', 'pycuda'))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert module in proc.stdout.split()


def test_the_ros_guard_refuses_the_ros_layer():
    # hetero_infer.ros does import rclpy: the same check must fail there.
    proc = subprocess.run([sys.executable, '-c', _script('hetero_infer.ros', ROS)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert 'forbidden import in hetero_infer.ros: rclpy' in proc.stderr


def _import_graph():
    """Module -> modules of hetero_infer it imports anywhere in its file (lazy imports too)."""
    import ast
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    mods = {}
    for dirpath, _, files in os.walk(os.path.join(root, 'hetero_infer')):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(dirpath, name)
                mod = os.path.relpath(path, root)[:-3].replace(os.sep, '.')
                mods[mod[:-len('.__init__')] if mod.endswith('.__init__') else mod] = path
    graph = {}
    for mod, path in mods.items():
        deps = set()
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + ['%s.%s' % (node.module, a.name) for a in node.names]
            deps.update(n for n in names if n in mods and n != mod)
        graph[mod] = deps
    return graph


def _reaches(graph, start, goal):
    seen, todo = set(), [start]
    while todo:
        mod = todo.pop()
        if mod == goal:
            return True
        if mod not in seen:
            seen.add(mod)
            todo.extend(graph[mod])
    return False


def test_the_ros_layer_is_only_ros_wiring():
    # every module of hetero_infer.ros imports rclpy or a ROS message package at its top
    # (conversions, which reads messages by attribute, aside): the code that needs no ROS
    # lives in serving/
    import ast
    import os
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        'hetero_infer', 'ros')
    for name in sorted(os.listdir(root)):
        if not name.endswith('.py') or name in ('__init__.py', 'conversions.py'):
            continue
        with open(os.path.join(root, name)) as f:
            tree = ast.parse(f.read())
        top = set()
        for node in tree.body:
            if isinstance(node, ast.Import):
                top.update(a.name.split('.')[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                top.add(node.module.split('.')[0])
        assert top & set(ROS), 'hetero_infer/ros/%s imports no ROS at its top' % name


@pytest.mark.parametrize('a,b', [
    ('hetero_infer.core.schedulers.oracle', 'hetero_infer.core.evaluation'),
    ('hetero_infer.core.model', 'hetero_infer.core.onnx_import'),
])
def test_no_import_circle(a, b):
    graph = _import_graph()
    # the graph is real: one of the two imports the other...
    assert _reaches(graph, b, a) or _reaches(graph, a, b)
    # ...and never both ways, not even through a lazy import
    assert not (_reaches(graph, a, b) and _reaches(graph, b, a)), (a, b)
