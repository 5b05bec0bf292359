"""`colcon build` of the package gives the layout `ros2 run` and `ros2 launch` expect.

A pip install puts console scripts in bin/, where ros2 launch does not look; colcon must put
them in lib/hetero_infer (setup.cfg) and install the launch and config files into share/.
"""

import configparser
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _colcon():
    exe = shutil.which('colcon')
    if exe is None:
        candidate = os.path.join(os.path.dirname(sys.executable), 'colcon')
        exe = candidate if os.path.exists(candidate) else None
    return exe


def _console_scripts():
    import ast
    with open(os.path.join(REPO, 'setup.py')) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == 'console_scripts':
                    return [ast.literal_eval(e).split('=')[0].strip() for e in value.elts]
    raise AssertionError('setup.py declares no console_scripts')


def test_setup_cfg_puts_scripts_in_lib():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, 'setup.cfg'))
    assert cfg.get('develop', 'script_dir') == '$base/lib/hetero_infer'
    assert cfg.get('install', 'install_scripts') == '$base/lib/hetero_infer'


@pytest.mark.skipif(_colcon() is None, reason='colcon is not installed')
def test_colcon_build_install_layout(tmp_path):
    env = dict(os.environ)
    # colcon must not write build/, install/, log/ into the work tree.
    env['COLCON_LOG_PATH'] = str(tmp_path / 'log')
    env.setdefault('COLCON_HOME', str(tmp_path / 'colcon_home'))
    # colcon runs setup.py with the interpreter it was installed with (this venv).
    env['PATH'] = os.path.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    proc = subprocess.run(
        [_colcon(), 'build', '--paths', REPO,
         '--build-base', str(tmp_path / 'build'), '--install-base', str(tmp_path / 'install'),
         '--event-handlers', 'console_direct-'],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    prefix = tmp_path / 'install' / 'hetero_infer'
    for script in _console_scripts():
        path = prefix / 'lib' / 'hetero_infer' / script
        assert path.is_file(), 'missing executable ' + str(path)
        assert os.access(str(path), os.X_OK)
    share = prefix / 'share'
    assert (share / 'hetero_infer' / 'launch' / 'serve.launch.py').is_file()
    assert (share / 'hetero_infer' / 'config' / 'serve.yaml').is_file()
    assert (share / 'hetero_infer' / 'config' / 'fastdds_camera.xml').is_file()
    assert (share / 'hetero_infer' / 'package.xml').is_file()
    assert (share / 'ament_index' / 'resource_index' / 'packages' / 'hetero_infer').is_file()
    # The package itself must be importable from the install space, with its data.
    site = list(prefix.glob('lib/python3*/site-packages/hetero_infer/__init__.py'))
    assert site, 'hetero_infer not installed into site-packages'
    pkg = site[0].parent
    for sub in ('io', 'models', 'platform', 'workload', 'twin', 'interference', 'planning',
                'evaluation', 'backends', 'serving', 'ros', 'commands'):
        assert (pkg / sub / '__init__.py').is_file(), 'package hetero_infer.%s not installed' % sub


#: import name -> rosdep key in package.xml (the key, or a name a package.xml comment gives
#: for an import without a key).
IMPORT_KEYS = {
    'numpy': 'python3-numpy', 'scipy': 'python3-scipy', 'sklearn': 'python3-sklearn',
    'cv2': 'python3-opencv', 'yaml': 'python3-yaml', 'jsonschema': 'python3-jsonschema',
    'tqdm': 'python3-tqdm', 'matplotlib': 'python3-matplotlib', 'onnx': 'onnx',
    'onnxruntime': 'python3-onnxruntime-pip', 'distributed': 'dask.distributed',
    'tensorrt': 'TensorRT', 'pycuda': 'pycuda', 'setuptools': 'python3-setuptools',
}


def test_package_xml_declares_every_import():
    import ast
    import re
    stdlib = set(getattr(sys, 'stdlib_module_names', ())) or None
    if stdlib is None:
        pytest.skip('needs Python >= 3.10 (sys.stdlib_module_names)')
    with open(os.path.join(REPO, 'package.xml')) as f:
        xml = f.read()
    declared = set(re.findall(r'<exec_depend>([^<]+)</exec_depend>', xml))
    comments = ' '.join(re.findall(r'<!--(.*?)-->', xml, re.S))
    imported = set()
    for root in ('hetero_infer', 'launch'):
        for dirpath, _, files in os.walk(os.path.join(REPO, root)):
            for name in files:
                if not name.endswith('.py'):
                    continue
                with open(os.path.join(dirpath, name)) as f:
                    tree = ast.parse(f.read())
                for node in ast.walk(tree):
                    if isinstance(node, ast.Import):
                        imported.update(a.name.split('.')[0] for a in node.names)
                    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                        imported.add(node.module.split('.')[0])
    missing = []
    for name in sorted(imported - stdlib - {'hetero_infer'}):
        key = IMPORT_KEYS.get(name, name)
        if key not in declared and key not in comments:
            missing.append('%s (key %s)' % (name, key))
    assert not missing, 'package.xml does not declare: %s' % ', '.join(missing)
