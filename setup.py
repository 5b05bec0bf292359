"""ament_python package: `colcon build` on a ROS 2 install, or `pip install .[ros]` anywhere.

colcon installs console scripts into lib/hetero_infer (setup.cfg) where `ros2 run` and
`ros2 launch` look; pip puts them in bin/. The ROS 2 client libraries come from the distro on
a ROS install and from the PyPI `ros-jazzy-*` wheels through the `ros` extra elsewhere, so they
are never unconditional requirements.
"""

import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'hetero_infer'


def _files(pattern):
    return sorted(p for p in glob.glob(pattern) if os.path.isfile(p))


setup(
    name=PACKAGE,
    version='0.1.0',
    description='Interference-aware DNN serving on heterogeneous edge processors (ROS 2)',
    long_description=open('README.md').read() if os.path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.8',
    packages=find_packages(exclude=['test', 'test.*', 'bench', 'tools']),
    package_data={PACKAGE: ['data/zoo/*.json', 'data/onnx/*', 'data/interference/*.json',
                           'data/*.json']},
    include_package_data=False,
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', _files('launch/*.launch.py')),
        ('share/' + PACKAGE + '/config', _files('config/*.yaml') + _files('config/*.xml')),
        ('share/' + PACKAGE + '/config/platforms', _files('config/platforms/*.yaml')),
    ],
    install_requires=[
        'numpy',
        'scikit-learn',
        'scipy',
        'pyyaml',
        'jsonschema',
        'tqdm',
        'opencv-python-headless',
        'onnx',
        'onnxruntime',
        'matplotlib',
        'numba',
        'setuptools',
    ],
    extras_require={
        # ROS 2 Jazzy from PyPI (CPython >= 3.10, x86_64); not wanted on a ROS install.
        'ros': [
            'ros-jazzy-rclpy[fastrtps]',
            'ros-jazzy-std-msgs',
            'ros-jazzy-sensor-msgs',
            'ros-jazzy-diagnostic-msgs',
            'ros-jazzy-rcl-interfaces',
            'ros-jazzy-builtin-interfaces',
        ],
        # `hetero-infer evaluate --cluster`: Dask distributed (pip picks a release that
        # supports the running Python, down to 3.8).
        'cluster': ['distributed>=2021.3'],
        'dev': [
            'pytest',
            'ruff',
            'hypothesis',
            # the independent reference of the speech features (test_serving_processing.py)
            'librosa',
            'vermin',
            'colcon-core',
            'colcon-ros',
            'colcon-python-setup-py',
            'colcon-library-path',
            'colcon-package-information',
        ],
    },
    tests_require=['pytest'],
    zip_safe=True,
    maintainer='hetero_infer maintainers',
    maintainer_email='hetero-infer@example.com',
    entry_points={
        'console_scripts': [
            'hetero-infer = hetero_infer.cli:main',
            'scheduler_node = hetero_infer.ros.scheduler_node:main',
            'sources_node = hetero_infer.ros.sources_node:main',
        ],
    },
)
