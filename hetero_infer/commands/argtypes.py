"""Typed ``argparse`` values for the subcommands: every flag checked before any work starts.

Each helper is an argparse ``type=``: it turns the text into a value or raises
``argparse.ArgumentTypeError`` naming the rule, which argparse reports as a usage error (exit 2)
naming the flag and the value, e.g. ``argument --duration-s: must be a finite number > 0, got
'nan'``. Numbers are finite and in a declared range, so ``nan``, ``inf`` and negative durations
never reach a simulation.

Output paths (:func:`output_file`, :func:`output_dir`) are marked so that ``hetero-infer`` checks
them, creating missing directories, before the subcommand runs (:func:`check_outputs`): a run
never ends in a traceback because its result cannot be written.
"""

import argparse
import math
import os
from typing import Callable, Optional

from hetero_infer.errors import ConfigError


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError('not a number: %r' % text) from None


def _integer(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError('not an integer: %r' % text) from None


def _describe(lo, hi, lo_open: bool) -> str:
    if hi is None:
        return '%s %s' % ('>' if lo_open else '>=', lo)
    return 'in %s%s, %s]' % ('(' if lo_open else '[', lo, hi)


def float_in(lo: float, hi: Optional[float] = None, *, lo_open: bool = False
             ) -> Callable[[str], float]:
    """A finite number ``>= lo`` (``> lo`` with ``lo_open``) and ``<= hi``."""
    rule = 'must be a finite number ' + _describe(lo, hi, lo_open)

    def convert(text: str) -> float:
        x = _number(text)
        if not math.isfinite(x) or x < lo or (lo_open and x == lo) or \
                (hi is not None and x > hi):
            raise argparse.ArgumentTypeError('%s, got %r' % (rule, text))
        return x
    convert.__name__ = 'number'
    return convert


def int_in(lo: int, hi: Optional[int] = None) -> Callable[[str], int]:
    """An integer ``>= lo`` and ``<= hi``."""
    rule = 'must be an integer ' + _describe(lo, hi, False)

    def convert(text: str) -> int:
        n = _integer(text)
        if n < lo or (hi is not None and n > hi):
            raise argparse.ArgumentTypeError('%s, got %r' % (rule, text))
        return n
    convert.__name__ = 'integer'
    return convert


#: A positive finite number (rates, durations).
positive_float = float_in(0.0, lo_open=True)
#: A finite number >= 0 (warm-up, optional durations where 0 means "until stopped").
nonneg_float = float_in(0.0)
#: A finite number in (0, 1].
fraction = float_in(0.0, 1.0, lo_open=True)
#: A simulated duration: positive, at most an hour (the twin keeps every request's record).
sim_seconds = float_in(0.0, 3600.0, lo_open=True)
#: Worker processes: 1 to 64.
workers = int_in(1, 64)
#: A random seed (numpy refuses negative seeds).
seed = int_in(0, 2 ** 32 - 1)
#: A count that may be zero (pairs, samples to skip).
count = int_in(0, 10 ** 6)
#: A count of at least one.
positive_count = int_in(1, 10 ** 7)


class OutputPath(str):
    """An output path as given; ``is_dir`` tells a directory from a file."""

    is_dir = False
    flag = ''


class OutputDir(OutputPath):
    is_dir = True


def output_file(text: str) -> OutputPath:
    """An output file (``--out x.json``): checked, its directory created, before the run."""
    if not text:
        raise argparse.ArgumentTypeError('empty path')
    return OutputPath(text)


def output_dir(text: str) -> OutputDir:
    """An output directory (``--out DIR``): created and checked writable before the run."""
    if not text:
        raise argparse.ArgumentTypeError('empty path')
    return OutputDir(text)


def _make_dir(path: str, flag: str, given: str) -> None:
    what = '%s %s: ' % (flag, given) + ('' if path == given else 'directory %s ' % path)
    try:
        os.makedirs(path, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError('%sis not a directory (a file is in the way)' % what) from None
    except OSError as exc:
        raise ConfigError('%scannot be created: %s' % (what, exc.strerror or exc)) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError('%sis not writable' % what)


def check_output(path: OutputPath, flag: str) -> None:
    """Refuse an output path that cannot be written; create the directories it needs.

    :raises ConfigError: names the flag, the path and why.
    """
    if path.is_dir:
        _make_dir(path, flag, path)
        return
    if os.path.isdir(path):
        raise ConfigError('%s %s: is a directory, expected a file path' % (flag, path))
    parent = os.path.dirname(os.path.abspath(path))
    _make_dir(parent, flag, path)
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ConfigError('%s %s: file is not writable' % (flag, path))


def check_outputs(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """:func:`check_output` for every argument declared with ``output_file`` / ``output_dir``."""
    flags = {}
    for action in parser._actions:  # noqa: SLF001 - argparse has no public list
        if action.option_strings:
            flags[action.dest] = action.option_strings[-1]
    for dest, value in sorted(vars(args).items()):
        if isinstance(value, OutputPath):
            check_output(value, flags.get(dest, dest))


def app_value(lo: float, hi: float, lo_open: bool = False) -> Callable[[str], tuple]:
    """``APP=VALUE`` with VALUE a number in ``[lo, hi]`` (``(lo, hi]`` when ``lo_open``):
    the ``--floor`` and ``--weight`` flags. Returns ``(app, value)``."""
    number = float_in(lo, hi, lo_open=lo_open)

    def parse(text: str) -> tuple:
        name, sep, value = text.partition('=')
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError('give APP=VALUE, got %r' % text)
        try:
            return name.strip(), number(value)
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError('%s: %s' % (name.strip(), exc)) from None

    return parse


def add_criticality_arguments(parser) -> None:
    """``--floor APP=X`` and ``--weight APP=X`` (repeatable): per-application criticality over
    what the scenario file says."""
    from hetero_infer.workload.requests import MAX_WEIGHT
    parser.add_argument('--floor', action='append', default=[], metavar='APP=X',
                        type=app_value(0.0, 1.0),
                        help="an application's min_attainment: the share of its requests that "
                             'must meet the SLO, planned for first (repeatable)')
    parser.add_argument('--weight', action='append', default=[], metavar='APP=X',
                        type=app_value(0.0, MAX_WEIGHT, lo_open=True),
                        help="an application's weight in weighted_goodput and in shedding "
                             'under overload (repeatable; default 1)')


def apply_criticality(apps, args) -> list:
    """``apps`` with the ``--floor`` / ``--weight`` values of ``args`` applied.

    :raises ConfigError: a name that is no application of the scenario.
    """
    from hetero_infer.workload.requests import with_criticality
    return with_criticality(apps, weights=dict(getattr(args, 'weight', None) or []),
                            floors=dict(getattr(args, 'floor', None) or []))
