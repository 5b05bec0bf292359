"""``hetero-infer sources``: publish camera frames and audio chunks for the scheduler to serve.

By default one stream per application of the scheduler's parameter file (same topics, types and
rates); ``--image TOPIC`` / ``--audio TOPIC`` give streams explicitly instead.
"""

from hetero_infer.commands import argtypes


def add_arguments(parser):
    parser.add_argument('--config', default=None, metavar='FILE',
                        help='scheduler parameter file whose applications to feed (default: '
                        'the package\'s config/serve.yaml)')
    parser.add_argument('--image', action='append', default=[], metavar='TOPIC',
                        help='publish sensor_msgs/Image on TOPIC (repeatable)')
    parser.add_argument('--compressed', action='append', default=[], metavar='TOPIC',
                        help='publish sensor_msgs/CompressedImage (JPEG) on TOPIC')
    parser.add_argument('--audio', action='append', default=[], metavar='TOPIC',
                        help='publish std_msgs/Float32MultiArray PCM chunks on TOPIC')
    parser.add_argument('--rate', type=argtypes.float_in(0.0, 1000.0, lo_open=True),
                        default=None, metavar='HZ',
                        help='rate of every stream (default: the config\'s rate_hz, or 30 Hz '
                        'for images and 10 Hz for audio)')
    parser.add_argument('--width', type=argtypes.int_in(1, 8192), default=640)
    parser.add_argument('--height', type=argtypes.int_in(1, 8192), default=480)
    parser.add_argument('--video', default='', metavar='PATH',
                        help='video file or image folder (OpenCV) instead of the moving pattern')
    parser.add_argument('--wav', default='', metavar='FILE',
                        help='16-bit PCM WAV file instead of the generated chirp')
    parser.add_argument('--sample-rate', type=argtypes.int_in(1000, 192000), default=16000,
                        metavar='HZ')
    parser.add_argument('--namespace', default='')
    parser.add_argument('--duration', type=argtypes.nonneg_float, default=0.0, metavar='S',
                        help='stop after S seconds (default: until Ctrl-C)')
    parser.add_argument('--localhost', action='store_true',
                        help='keep DDS discovery on this machine with a random domain id')
    from hetero_infer.commands.serve import add_dds_profile_argument
    add_dds_profile_argument(parser)


def build_streams(args):
    from hetero_infer.errors import ConfigError
    from hetero_infer.ros.sources_node import StreamSpec, streams_from_params
    explicit = ([('image', t) for t in args.image] + [('compressed_image', t)
                                                       for t in args.compressed]
                + [('audio_f32', t) for t in args.audio])
    if args.width <= 0 or args.height <= 0:
        raise ConfigError('--width/--height must be positive, got %dx%d'
                          % (args.width, args.height))
    if args.rate is not None and args.rate <= 0:
        raise ConfigError('--rate must be positive, got %r' % args.rate)
    if explicit:
        out = []
        for i, (kind, topic) in enumerate(explicit):
            rate = args.rate or (10.0 if kind.startswith('audio') else 30.0)
            out.append(StreamSpec(
                name='stream%d' % i, topic=topic, kind=kind, rate_hz=rate, width=args.width,
                height=args.height, video=args.video if kind.endswith('image') else '',
                wav=args.wav if kind.startswith('audio') else '',
                sample_rate_hz=args.sample_rate, chunk_s=1.0 / rate, frame_id=topic))
        return out
    from hetero_infer.resources import find_resource
    from hetero_infer.ros.params import file_parameters
    # what rcl gives the scheduler node from that file (sections, namespaces as ROS reads them)
    values = file_parameters(args.config or find_resource('config', 'serve.yaml'),
                             node_name='scheduler', namespace=args.namespace)
    streams = streams_from_params(values, width=args.width, height=args.height,
                                  video=args.video, wav=args.wav)
    if args.rate:
        import dataclasses
        streams = [dataclasses.replace(s, rate_hz=args.rate, chunk_s=1.0 / args.rate)
                   for s in streams]
    return streams


def run(args) -> int:
    if args.localhost:
        from hetero_infer.commands.serve import keep_dds_local
        keep_dds_local()
    from hetero_infer import dds_profile
    dds_profile.apply(choice=args.dds_profile)
    streams = build_streams(args)
    from hetero_infer.ros.lifecycle import ros_session, spin_nodes
    from hetero_infer.ros.sources_node import SourcesNode
    with ros_session() as nodes:
        node = SourcesNode(streams, namespace=args.namespace)
        nodes.append(node)
        spin_nodes(nodes, duration_s=args.duration or None)
        print('published: %s' % ', '.join('%s=%d' % kv for kv in sorted(node.published.items())))
    return 0
