"""One module per ``hetero-infer`` subcommand: ``add_arguments(parser)`` and ``run(args)``.

Command modules must import heavy or optional libraries (rclpy, tensorrt, onnxruntime,
matplotlib) inside ``run`` so that ``hetero-infer --help`` always works.
"""
