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
