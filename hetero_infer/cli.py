"""``hetero-infer``: the offline tools (calibrate, profile, train, plan, evaluate) and serving.

Each subcommand lives in its own module under ``hetero_infer.commands`` with two functions,
``add_arguments(parser)`` and ``run(args) -> int``; modules are imported only when their
subcommand runs, so ``--help`` works without ROS, TensorRT or onnxruntime installed.

One error path for every subcommand:

- a usage error (unknown flag, a flag's value out of range: see
  :mod:`hetero_infer.commands.argtypes`) is one line naming the flag and the value, exit code 2;
- bad input (the project's own :class:`~hetero_infer.errors.HeteroInferError`: a file, key or
  value named in the message) is one line, exit code 1; output paths are checked before the run;
- anything else is a bug, not the input's fault: one line saying so, exit code 70
  (``EX_SOFTWARE``), and the traceback with ``--debug``.
"""

import argparse
import importlib
import sys
from typing import List, Optional

from hetero_infer import __version__
from hetero_infer.errors import HeteroInferError

#: Exit codes: bad input, usage error, internal error (a bug; ``EX_SOFTWARE`` of sysexits.h).
EXIT_BAD_INPUT, EXIT_USAGE, EXIT_INTERNAL = 1, 2, 70


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (flag, value, where to look) and exit code 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, '%s: error: %s (see %s --help)\n'
                  % (self.prog, ' '.join(message.split()), self.prog))

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
    ('bringup', 'bringup', 'bring up a board: fitted twin, interference model, plan, served run'),
)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog='hetero-infer',
        description='Interference-aware DNN serving on heterogeneous edge processors.')
    parser.add_argument('--version', action='version', version='%(prog)s ' + __version__)
    parser.add_argument('--debug', action='store_true',
                        help='show the traceback of an internal error')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name, module, help_text in SUBCOMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument('--debug', action='store_true', default=argparse.SUPPRESS,
                       help='show the traceback of an internal error')
        p.set_defaults(_module=module, _parser=p)
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
        return EXIT_USAGE
    if getattr(args, '_import_error', None) is not None:
        print('hetero-infer %s: unavailable: %s' % (args.command, args._import_error),
              file=sys.stderr)
        return 2
    from hetero_infer.commands.argtypes import check_outputs
    mod = importlib.import_module('hetero_infer.commands.' + args._module)
    try:
        check_outputs(args, args._parser)
        return int(mod.run(args) or 0)
    except HeteroInferError as exc:
        print('hetero-infer %s: error: %s' % (args.command, ' '.join(str(exc).split())),
              file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # the environment (disk full, permissions), not a bug
        print('hetero-infer %s: error: %s%s' % (
            args.command, exc.strerror or exc,
            ': %s' % exc.filename if getattr(exc, 'filename', None) else ''), file=sys.stderr)
        if args.debug:
            raise
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - reported as what it is: a bug
        if args.debug:
            raise
        print('hetero-infer %s: internal error (a bug in hetero-infer, not in your input): '
              '%s: %s; run again with --debug for the traceback and please report it'
              % (args.command, type(exc).__name__, ' '.join(str(exc).split())[:300]),
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == '__main__':
    sys.exit(main())
