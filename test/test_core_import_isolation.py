"""hetero_infer.core must import with no ROS, TensorRT, pycuda or onnxruntime on the machine.

The check runs in a fresh interpreter whose import system refuses those packages, so a
module that imports one of them (even indirectly, or from a cached module) fails the test.
"""

import subprocess
import sys
import textwrap

FORBIDDEN = ('rclpy', 'tensorrt', 'pycuda', 'onnxruntime')

SCRIPT = textwrap.dedent('''
    import importlib
    import importlib.abc
    import pkgutil
    import sys

    FORBIDDEN = {forbidden!r}

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in FORBIDDEN:
                raise ImportError('forbidden import in hetero_infer.core: ' + name)
            return None

    for name in list(sys.modules):
        if name.split('.')[0] in FORBIDDEN:
            del sys.modules[name]
    sys.meta_path.insert(0, Refuse())

    import hetero_infer.core as core
    names = ['hetero_infer.core']
    for info in pkgutil.walk_packages(core.__path__, 'hetero_infer.core.'):
        importlib.import_module(info.name)
        names.append(info.name)
    leaked = sorted(m for m in sys.modules if m.split('.')[0] in FORBIDDEN)
    assert not leaked, leaked
    print('\\n'.join(names))
''').format(forbidden=FORBIDDEN)


def test_core_imports_without_ros_tensorrt_onnxruntime():
    proc = subprocess.run([sys.executable, '-c', SCRIPT], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    imported = proc.stdout.split()
    assert 'hetero_infer.core' in imported
    assert 'hetero_infer.core.model' in imported


def test_the_guard_really_refuses():
    # The same finder must make a forbidden import fail, or the test above proves nothing.
    probe = SCRIPT.replace('import hetero_infer.core as core', 'import rclpy  # noqa')
    proc = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert 'forbidden import in hetero_infer.core: rclpy' in proc.stderr
