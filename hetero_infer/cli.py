"""``hetero-infer``: the offline tools (calibrate, profile, train, plan, evaluate) and serving.

Each subcommand lives in its own module under ``hetero_infer.commands`` with two functions,
``add_arguments(parser)`` and ``run(args) -> int``; modules are imported only when their
subcommand runs, so ``--help`` works without ROS, TensorRT or onnxruntime installed.
"""

import argparse
import importlib
import sys
from typing import List, Optional

from hetero_infer import __version__
from hetero_infer.errors import HeteroInferError

#: name -> (module under hetero_infer.commands, one-line help)
SUBCOMMANDS = (
    ('calibrate', 'calibrate', 'compare the digital twin with the measured numbers in FACTS.md'),
    ('simulate', 'simulate', 'serve a scenario on the digital twin and print its metrics'),
    ('profile', 'profile', 'profile random layers alone and co-running (interference dataset)'),
    ('train', 'train', 'train the interference model and compare regressors'),
    ('plan', 'plan', 'search the best allocation policy for a scenario and goal'),
    ('evaluate', 'evaluate', 'run every scheduler on every scenario on the digital twin'),
    ('build-engines', 'build_engines', 'build (and cache) TensorRT engines for GPU / DLA cores'),
    ('serve', 'serve', 'run the ROS 2 scheduler node (and demo sources) in one process'),
    ('sources', 'sources', 'publish synthetic or recorded camera frames and audio chunks'),
    ('demo', 'demo', 'serve + synthetic sources on the emulated Xavier, then a summary'),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='hetero-infer',
        description='Interference-aware DNN serving on heterogeneous edge processors.')
    parser.add_argument('--version', action='version', version='%(prog)s ' + __version__)
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name, module, help_text in SUBCOMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        try:
            mod = importlib.import_module('hetero_infer.commands.' + module)
        except ImportError as exc:
            p.set_defaults(_import_error=exc)
            continue
        mod.add_arguments(p)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, 'command', None):
        parser.print_help()
        return 2
    if getattr(args, '_import_error', None) is not None:
        print('hetero-infer %s: unavailable: %s' % (args.command, args._import_error),
              file=sys.stderr)
        return 2
    mod = importlib.import_module('hetero_infer.commands.' + args._module)
    try:
        return int(mod.run(args) or 0)
    except HeteroInferError as exc:
        print('hetero-infer %s: error: %s' % (args.command, exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
