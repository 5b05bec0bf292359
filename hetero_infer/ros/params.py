"""The scheduler node's parameters: one ROS parameter per setting of the serving core.

The settings themselves (defaults, ranges, choices, validation) are specified once, in
:mod:`hetero_infer.serving.config`; this module declares them on a node with descriptors, so
rqt_reconfigure and ``ros2 param describe`` show a description (choices for enumerated strings),
a range for numbers (``FloatingPointRange(step=0.0)``: a non-zero float step makes rqt's slider
values get rejected) and ``read_only`` for what needs an engine rebuild or a new subscription.
The node's on-set callback validates with :func:`validate`.
"""

from typing import Any, Dict, Mapping, Optional, Sequence

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.exceptions import InvalidParameterTypeException

from hetero_infer.errors import ConfigError
from hetero_infer.serving.config import (  # noqa: F401  (the node's names for them)
    APP_PARAMS,
    NODE_PARAMS,
    AppConfig,
    ParamSpec,
    ServeConfig,
    app_param,
    apply_changes,
    build_config,
    list_entries,
    validate,
)


def _descriptor(spec: ParamSpec, name: str):
    d = ParameterDescriptor(name=name, description=spec.full_description(),
                            read_only=spec.read_only)
    default = spec.default
    if isinstance(default, bool):
        d.type = ParameterType.PARAMETER_BOOL
    elif isinstance(default, int):
        d.type = ParameterType.PARAMETER_INTEGER
        if spec.low is not None:
            d.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high),
                                            step=1)]
    elif isinstance(default, float):
        d.type = ParameterType.PARAMETER_DOUBLE
        if spec.low is not None:
            d.floating_point_range = [FloatingPointRange(
                from_value=float(spec.low), to_value=float(spec.high), step=0.0)]
    elif isinstance(default, list):
        d.type = ParameterType.PARAMETER_STRING_ARRAY
    else:
        d.type = ParameterType.PARAMETER_STRING
    return d


def declare_all(node, *, overrides: Optional[Mapping[str, Any]] = None) -> ServeConfig:
    """Declare every parameter on ``node`` and return the config read from them.

    ``overrides`` (name -> value) take precedence over the defaults (parameter files passed with
    ``--params-file`` take precedence over both, as ROS does).

    :raises ConfigError: a declared value is invalid (node and parameter named).
    """
    overrides = dict(overrides or {})
    values = {}

    def declare(spec, name):
        default = overrides.get(name, spec.default)
        try:
            p = node.declare_parameter(name, default, _descriptor(spec, name))
        except InvalidParameterTypeException as exc:
            raise ConfigError('node %s: parameter %s: %s' % (node.get_name(), name, exc)) \
                from None
        values[name] = p.value

    for spec in NODE_PARAMS:
        declare(spec, spec.name)
    for app in list_entries(values['applications']):
        for spec in APP_PARAMS:
            declare(spec, app_param(app, spec.name))
    return build_config(values, node_name=node.get_fully_qualified_name())


def node_parameters(node) -> Dict[str, Any]:
    """Every parameter of ``node`` as ``name -> value``."""
    return {name: p.value for name, p in node.get_parameters_by_prefix('').items()}


def file_parameters(path: str, *, node_name: str = 'scheduler', namespace: str = '',
                    ros_args: Sequence[str] = ()) -> Dict[str, Any]:
    """The parameters rcl gives node ``namespace/node_name`` from the parameter file ``path``
    (and ``-p`` overrides in ``ros_args``): sections, namespaces and wildcards as ROS reads them
    (``/**``, ``/ns/scheduler``, ``/*/scheduler``...). Reads them through a throw-away context,
    so what another command reads is what the node would be given.

    :raises ConfigError: the file is missing or rcl cannot parse it.
    """
    import rclpy
    from rclpy.context import Context

    from hetero_infer.ros.lifecycle import init
    check_params_file(path)
    ctx = Context()
    init(['hetero-infer', '--ros-args', '--params-file', path] + list(ros_args), context=ctx)
    try:
        node = rclpy.create_node(node_name, namespace=namespace or None, context=ctx,
                                 automatically_declare_parameters_from_overrides=True,
                                 start_parameter_services=False)
        try:
            return node_parameters(node)
        finally:
            node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)


def check_params_file(path: str) -> None:
    """:raises ConfigError: ``path`` is not a readable file (rcl's own message is less clear)."""
    import os
    if not os.path.isfile(path):
        raise ConfigError('parameter file %s does not exist' % path)
    try:
        with open(path):
            pass
    except OSError as exc:
        raise ConfigError('parameter file %s: %s' % (path, exc)) from None
