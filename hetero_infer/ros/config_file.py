"""Read a ROS 2 parameter file (``ros__parameters``) into flat ``name -> value`` overrides.

``hetero-infer serve --config FILE`` uses it where ``ros2 launch`` (which passes the same file
with ``--params-file``) is not installed. Node sections are matched as ROS does: ``/**`` applies
to every node, then the node's own name (with or without its namespace) overrides it.
"""

from typing import Any, Dict

from hetero_infer.errors import ConfigError


def _flatten(prefix: str, value: Any, out: Dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten('%s.%s' % (prefix, k) if prefix else str(k), v, out)
    else:
        out[prefix] = value


def load_params_file(path: str, node_name: str = 'scheduler') -> Dict[str, Any]:
    """Parameters for ``node_name`` in the ROS 2 parameter file ``path``.

    :raises ConfigError: unreadable file, not a mapping, or no ``ros__parameters`` section that
        applies to the node.
    """
    from hetero_infer.core.yaml_file import read_yaml
    doc = read_yaml(path, 'parameter')
    if not isinstance(doc, dict):
        raise ConfigError('parameter file %s: expected a mapping of node names, got %s'
                          % (path, type(doc).__name__))
    base = node_name.rsplit('/', 1)[-1]
    sections = []
    for key in ('/**', '**'):
        if key in doc:
            sections.append((key, doc[key]))
    for key, value in doc.items():
        if key not in ('/**', '**') and str(key).lstrip('/').rsplit('/', 1)[-1] == base:
            sections.append((key, value))
    if not sections:
        raise ConfigError('parameter file %s has no section for node %r (sections: %s)'
                          % (path, node_name, ', '.join(map(str, doc))))
    out: Dict[str, Any] = {}
    for key, section in sections:
        if not isinstance(section, dict) or 'ros__parameters' not in section:
            raise ConfigError('parameter file %s: section %r has no ros__parameters'
                              % (path, key))
        _flatten('', section['ros__parameters'] or {}, out)
    return out


def default_config_path(name: str = 'serve.yaml') -> str:
    """``config/<name>`` of the installed package (colcon share/ or the source tree).

    :raises ConfigError: neither location has the file.
    """
    import os
    candidates = []
    try:
        from ament_index_python.packages import (PackageNotFoundError,
                                                 get_package_share_directory)
        try:
            candidates.append(os.path.join(get_package_share_directory('hetero_infer'),
                                           'config', name))
        except (PackageNotFoundError, OSError):  # not installed, or no ROS environment
            pass
    except ImportError:
        pass
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    candidates.append(os.path.join(here, 'config', name))
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise ConfigError('cannot find config/%s (looked in %s); pass --config FILE'
                      % (name, ', '.join(candidates)))
