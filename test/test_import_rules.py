"""The package's import rules.

* The subsystem packages (the model of the problem: io, models, platform, workload, twin,
  interference, planning, evaluation) import with no ROS, TensorRT, pycuda or onnxruntime on
  the machine, and only hetero_infer.ros may import rclpy: serving/, backends/ and commands/
  import without ROS. The check runs in a fresh interpreter whose import system refuses those
  packages, so a module that imports one of them (even indirectly, or from a cached module)
  fails the test.
* Imports point one way: a package imports only packages of its own layer or below
  (``LAYERS``), counted over every ``import`` in a file, lazy ones too.
* No import circle among the package's modules, lazy imports counted.
"""

import ast
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


#: The subsystems of the problem's model, bottom first (no ROS, TensorRT or onnxruntime).
SUBSYSTEMS = ('io', 'models', 'platform', 'workload', 'twin', 'interference', 'planning',
              'evaluation')

#: Layers, bottom first: a module may import modules of its own layer or of layers below.
LAYERS = (
    # the root package (its version) loads with any of its modules: it is the bottom
    ('hetero_infer', 'hetero_infer.errors', 'hetero_infer.registry', 'hetero_infer.resources',
     'hetero_infer.io'),
    ('hetero_infer.models',),
    ('hetero_infer.platform',),
    ('hetero_infer.workload',),
    ('hetero_infer.twin',),
    ('hetero_infer.interference',),
    ('hetero_infer.planning',),
    ('hetero_infer.evaluation',),
    ('hetero_infer.backends',),
    ('hetero_infer.serving',),
    ('hetero_infer.dds_profile', 'hetero_infer.ros'),
    ('hetero_infer.commands', 'hetero_infer.bringup'),
    ('hetero_infer.cli',),
)


@pytest.mark.parametrize('subsystem', SUBSYSTEMS)
def test_subsystems_import_without_ros_tensorrt_onnxruntime(subsystem):
    package = 'hetero_infer.' + subsystem
    proc = subprocess.run([sys.executable, '-c', _script(package, FORBIDDEN)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    imported = proc.stdout.split()
    assert package in imported and len(imported) > 1, imported


def test_the_guard_really_refuses():
    # The same finder must make a forbidden import fail, or the test above proves nothing.
    probe = _script('hetero_infer.twin', FORBIDDEN).replace(
        'package = importlib.import_module(PACKAGE)', 'import rclpy  # noqa')
    proc = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert 'forbidden import in hetero_infer.twin: rclpy' in proc.stderr


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


def _modules(root):
    """Module name -> file path of every module of hetero_infer under root."""
    mods = {}
    for dirpath, _, files in os.walk(os.path.join(root, 'hetero_infer')):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(dirpath, name)
                mod = os.path.relpath(path, root)[:-3].replace(os.sep, '.')
                mods[mod[:-len('.__init__')] if mod.endswith('.__init__') else mod] = path
    return mods


def _imports(source, mod, is_package, mods):
    """(imported module, line) of hetero_infer that the source imports anywhere, lazy ones too.

    ``from a.b import c`` imports ``a.b`` and, when ``a.b.c`` is a module, ``a.b.c``;
    relative imports are resolved against ``mod``.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = mod.split('.')
                if not is_package:
                    parts = parts[:-1]
                parts = parts[:len(parts) - (node.level - 1)]
                base = '.'.join(parts + ([base] if base else []))
            names = [base] + ['%s.%s' % (base, a.name) for a in node.names]
        found.extend((n, node.lineno) for n in names if n in mods and n != mod)
    return found


def _import_graph(root=ROOT):
    """Module -> {module of hetero_infer it imports: first line} (lazy imports too)."""
    mods = _modules(root)
    graph = {}
    for mod, path in mods.items():
        with open(path) as f:
            source = f.read()
        deps = {}
        for dep, line in _imports(source, mod, path.endswith('__init__.py'), mods):
            deps.setdefault(dep, line)
        graph[mod] = deps
    return graph


def _layer(mod):
    best = None
    for rank, group in enumerate(LAYERS):
        for prefix in group:
            # the root package counts only as itself, not as the prefix of every module
            if mod == prefix or (prefix != 'hetero_infer' and mod.startswith(prefix + '.')):
                if best is None or len(prefix) > best[1]:
                    best = (rank, len(prefix))
    assert best is not None, 'module %s is in no layer: add it to LAYERS' % mod
    return best[0]


def _upward_imports(graph):
    return sorted('%s (line %d) imports %s, a higher layer' % (mod, line, dep)
                  for mod, deps in graph.items() for dep, line in deps.items()
                  if _layer(dep) > _layer(mod))


def _circles(graph):
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return sorted(out)


def test_the_import_graph_is_real():
    graph = _import_graph()
    assert 'hetero_infer.twin.simulator' in graph['hetero_infer.evaluation.runner']
    # a lazy import inside a function counts
    assert 'hetero_infer.planning.search' in graph['hetero_infer.serving.planning']


def test_imports_point_down_the_layers():
    assert _upward_imports(_import_graph()) == []


def test_the_layer_rule_catches_an_upward_import(tmp_path):
    # a copy of the tree where the twin imports the planner, lazily: the rule must flag it
    shutil.copytree(os.path.join(ROOT, 'hetero_infer'), str(tmp_path / 'hetero_infer'),
                    ignore=shutil.ignore_patterns('__pycache__'))
    with open(str(tmp_path / 'hetero_infer' / 'twin' / 'faults.py'), 'a') as f:
        f.write('\n\ndef _late():\n    from hetero_infer.planning import search  # noqa\n')
    upward = _upward_imports(_import_graph(str(tmp_path)))
    assert upward and all(u.startswith('hetero_infer.twin.faults') for u in upward), upward
    assert any(u.endswith('imports hetero_infer.planning.search, a higher layer')
               for u in upward), upward


def test_no_import_circle():
    assert _circles(_import_graph()) == []


def test_the_circle_check_finds_a_lazy_circle():
    graph = {'a': {'b': 1}, 'b': {'c': 2}, 'c': {'a': 3}, 'd': {'a': 4}}
    assert _circles(graph) == [['a', 'b', 'c']]
    assert _circles({'a': {'b': 1}, 'b': {}}) == []


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
