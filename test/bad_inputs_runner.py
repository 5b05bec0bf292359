"""Run ``hetero-infer`` command lines in this one process; print each one's outcome as JSON.

Used by test_bad_inputs.py: ``python bad_inputs_runner.py CASES.json`` where the file holds a
list of argument lists. For each, in order: the exit code (``main``'s return value or argparse's
``SystemExit``), stderr, the last lines of stdout, the process's peak resident memory so far
in KB (it only grows, so it bounds every case run up to then), and whether numba has been
loaded so far (by the twin's compiled event loop).

The peak is ``VmHWM`` of ``/proc/self/status`` (this process's own high-water mark): on Linux,
``getrusage(RUSAGE_SELF).ru_maxrss`` of a child started from a large parent (pytest) keeps the
parent's peak across fork and exec. Where there is no /proc, ``ru_maxrss`` is used.
"""

import contextlib
import io
import json
import resource
import sys


def peak_rss_kb() -> int:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_case(argv):
    from hetero_infer.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 2
    return {'argv': argv, 'rc': rc, 'stderr': err.getvalue(),
            'stdout': '\n'.join(out.getvalue().splitlines()[-5:]),
            'maxrss_kb': peak_rss_kb(), 'numba': 'numba' in sys.modules}


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    results = [run_case(argv) for argv in cases]
    sys.stdout.write(json.dumps(results) + '\n')


if __name__ == '__main__':
    main()
