"""``hetero-infer serve --config FILE``: the scheduler node (and optionally the sources) in one
process, for machines without ``ros2 launch`` (the same parameter file works with both)."""

import os
import random

from hetero_infer.commands import argtypes


def add_arguments(parser):
    parser.add_argument('--config', default=None, metavar='FILE',
                        help='ROS 2 parameter file (default: the package\'s config/serve.yaml)')
    parser.add_argument('--backend', default=None,
                        help='override the backend parameter (emulated, onnxruntime, tensorrt, '
                        'null)')
    parser.add_argument('--platform', default=None, help='override the platform parameter')
    parser.add_argument('--namespace', default='', help='namespace of the nodes')
    parser.add_argument('--log-level', default='info',
                        choices=('debug', 'info', 'warn', 'error', 'fatal'))
    parser.add_argument('--sources', action='store_true',
                        help='also publish synthetic camera frames and audio chunks')
    parser.add_argument('--set', action='append', default=[], metavar='NAME=VALUE',
                        help='override one parameter (YAML value), e.g. --set goal=fairness')
    add_fault_argument(parser)
    parser.add_argument('--duration', type=argtypes.nonneg_float, default=0.0, metavar='S',
                        help='stop after S seconds (default: run until Ctrl-C)')
    parser.add_argument('--localhost', action='store_true',
                        help='keep DDS discovery on this machine with a random domain id '
                        '(as the tests and the demo do)')


def add_fault_argument(parser) -> None:
    parser.add_argument('--fault', action='append', default=[], metavar='PROC:KIND@S[+D]',
                        help='inject a fault into the emulated backend (repeatable): from S '
                        'seconds after serving starts, for D seconds (for ever without +D), '
                        'every inference on PROC raises (KIND error) or does not return (hang), '
                        'e.g. dla1:error@10+10')


def keep_dds_local() -> None:
    """Localhost discovery and a random domain (unless the caller set them)."""
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if not os.environ.get('ROS_DOMAIN_ID'):
        os.environ['ROS_DOMAIN_ID'] = str(random.SystemRandom().randint(1, 100))


def load_overrides(args) -> dict:
    from hetero_infer.core.yaml_file import parse_yaml
    from hetero_infer.errors import ConfigError
    from hetero_infer.ros.config_file import default_config_path, load_params_file
    path = args.config or default_config_path()
    values = load_params_file(path, 'scheduler')
    for item in args.set:
        name, sep, text = item.partition('=')
        if not sep or not name:
            raise ConfigError('--set %r: expected NAME=VALUE' % item)
        values[name.strip()] = parse_yaml(text, '--set %s' % item)
    if getattr(args, 'fault', None):
        from hetero_infer.core.faults import parse_faults
        parse_faults(args.fault)  # a malformed --fault fails here, naming itself
        values['faults'] = [f for f in values.get('faults') or [] if f] + list(args.fault)
    if args.backend:
        values['backend'] = args.backend
    if args.platform:
        values['platform'] = args.platform
    return values


def start_nodes(args, values, *, sources: bool):
    """Create the scheduler (and sources) nodes; rclpy must be initialised."""
    from hetero_infer.errors import ConfigError
    from hetero_infer.ros.lifecycle import PARAMETER_EXCEPTIONS
    from hetero_infer.ros.scheduler_node import SchedulerNode
    from hetero_infer.ros.sources_node import SourcesNode, streams_from_params
    try:
        nodes = [SchedulerNode(namespace=args.namespace, overrides=values)]
    except PARAMETER_EXCEPTIONS as exc:  # rclpy's check of a declared range
        raise ConfigError('parameters (file %s, --set): %s'
                          % (args.config or 'config/serve.yaml', ' '.join(str(exc).split()))
                          ) from None
    if sources:
        streams = streams_from_params(values)
        nodes.append(SourcesNode(streams, namespace=args.namespace))
    return nodes


def run(args) -> int:
    if args.localhost:
        keep_dds_local()
    values = load_overrides(args)
    from hetero_infer.ros.lifecycle import ros_session, spin_nodes
    with ros_session(['--ros-args', '--log-level', args.log_level]) as nodes:
        nodes.extend(start_nodes(args, values, sources=args.sources))
        spin_nodes(nodes, duration_s=args.duration or None)
    return 0
