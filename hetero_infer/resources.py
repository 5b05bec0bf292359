"""One finder for the package's resources (``config/serve.yaml``, ``config/scenarios.yaml``,
``config/platforms/*.yaml``), wherever the package runs from:

1. a source tree (``hetero_infer/..``: the repository checkout, or a ``pip install -e``);
2. a pip install: setup.py's ``data_files`` land in ``<sys.prefix>/share/hetero_infer``;
3. a colcon install: the ament index's share directory of ``hetero_infer``.

No ROS is needed: the ament index is asked only when ``ament_index_python`` is importable.
"""

import os
import sys
from typing import List

from hetero_infer.errors import ConfigError

PACKAGE = 'hetero_infer'
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def resource_roots() -> List[str]:
    """Directories that may hold ``config/``, most specific first (source, pip, colcon)."""
    roots = [SOURCE_ROOT, os.path.join(sys.prefix, 'share', PACKAGE)]
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return roots
    try:
        roots.append(get_package_share_directory(PACKAGE))
    except (PackageNotFoundError, OSError, ValueError):  # no ROS environment, or not installed
        pass
    return roots


def resource_dirs(*parts: str) -> List[str]:
    """``<root>/<parts>`` for every root that has it (a directory)."""
    return [d for d in (os.path.join(r, *parts) for r in resource_roots()) if os.path.isdir(d)]


def find_resource(*parts: str) -> str:
    """The first ``<root>/<parts>`` file, e.g. ``find_resource('config', 'serve.yaml')``.

    :raises ConfigError: no root has it (the places looked in are listed).
    """
    candidates = [os.path.join(r, *parts) for r in resource_roots()]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise ConfigError('cannot find %s (looked in %s)' % ('/'.join(parts), ', '.join(candidates)))
