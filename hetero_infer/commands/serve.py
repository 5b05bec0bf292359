"""``hetero-infer serve --config FILE``: the scheduler node (and optionally the sources) in one
process, for machines without ``ros2 launch`` (the same parameter file works with both: rcl reads
it, see :func:`ros_arguments`)."""

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
                        help='override one parameter (YAML value), e.g. --set goal=fairness; '
                        'the same as --ros-args -p NAME:=VALUE')
    add_fault_argument(parser)
    parser.add_argument('--duration', type=argtypes.nonneg_float, default=0.0, metavar='S',
                        help='stop after S seconds (default: run until Ctrl-C)')
    parser.add_argument('--localhost', action='store_true',
                        help='keep DDS discovery on this machine with a random domain id '
                        '(as the tests and the demo do)')
    add_dds_profile_argument(parser)


def add_dds_profile_argument(parser) -> None:
    parser.add_argument('--dds-profile', default='', metavar='FILE|none',
                        help='Fast DDS XML profile (default: the package\'s '
                        'config/fastdds_camera.xml, sized for camera frames, unless '
                        'FASTRTPS_DEFAULT_PROFILES_FILE or FASTDDS_DEFAULT_PROFILES_FILE is set; '
                        'none: Fast DDS\'s defaults)')


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


def ros_arguments(args) -> list:
    """The ``--ros-args`` these options stand for: rcl reads the parameter file and each
    override as ``ros2 run ... --ros-args --params-file F -p name:=value`` would (sections,
    namespaces and wildcards as ROS defines them; values in YAML).

    ``--set NAME=VALUE`` is ``-p NAME:=VALUE``; ``--backend``, ``--platform`` and ``--fault``
    set those parameters (``--fault`` replaces the file's ``faults``).

    :raises ConfigError: no such parameter file, a malformed ``--set`` or ``--fault``.
    """
    import json

    from hetero_infer.errors import ConfigError
    from hetero_infer.resources import find_resource
    path = args.config or find_resource('config', 'serve.yaml')
    if not os.path.isfile(path):
        raise ConfigError('--config %s: no such file' % path)
    ros = ['--ros-args', '--log-level', args.log_level, '--params-file', path]
    for item in args.set:
        name, sep, text = item.partition('=')
        if not sep or not name.strip():
            raise ConfigError('--set %r: expected NAME=VALUE' % item)
        ros += ['-p', '%s:=%s' % (name.strip(), text)]
    if getattr(args, 'fault', None):
        from hetero_infer.twin.faults import parse_faults
        parse_faults(args.fault)  # a malformed --fault fails here, naming itself
        ros += ['-p', 'faults:=%s' % json.dumps(list(args.fault))]
    if args.backend:
        ros += ['-p', 'backend:=%s' % args.backend]
    if args.platform:
        ros += ['-p', 'platform:=%s' % args.platform]
    return ros


def start_nodes(args, *, sources: bool):
    """Create the scheduler (and sources) nodes; rclpy must be initialised with
    :func:`ros_arguments`."""
    from hetero_infer.errors import ConfigError
    from hetero_infer.ros.lifecycle import PARAMETER_EXCEPTIONS
    from hetero_infer.ros.params import node_parameters
    from hetero_infer.ros.scheduler_node import SchedulerNode
    from hetero_infer.ros.sources_node import SourcesNode, streams_from_params
    try:
        nodes = [SchedulerNode(namespace=args.namespace)]
    except PARAMETER_EXCEPTIONS as exc:  # rclpy's check of a declared range
        raise ConfigError('parameters (file %s, --set): %s'
                          % (args.config or 'config/serve.yaml', ' '.join(str(exc).split()))
                          ) from None
    if sources:
        streams = streams_from_params(node_parameters(nodes[0]))
        nodes.append(SourcesNode(streams, namespace=args.namespace))
    return nodes


def run(args) -> int:
    if args.localhost:
        keep_dds_local()
    from hetero_infer import dds_profile
    dds_profile.apply(choice=args.dds_profile)
    ros_args = ros_arguments(args)
    from hetero_infer.ros.lifecycle import ros_session, spin_nodes
    with ros_session(['hetero-infer'] + ros_args) as nodes:
        nodes.extend(start_nodes(args, sources=args.sources))
        spin_nodes(nodes, duration_s=args.duration or None)
    return 0
