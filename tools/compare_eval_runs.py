"""Compare the per-replication results (`*_runs`) of two evaluation summaries, bit for bit.

    python tools/compare_eval_runs.py docs/eval/summary.json /tmp/eval_subset/summary.json

Every scenario and scheduler present in the second summary must be in the first with exactly
the same per-replication values of every metric. Prints one line per difference and a JSON
verdict; exits 1 on any difference, 0 when the second reproduces the first bit for bit.
"""

import argparse
import json
import sys


def runs(path):
    with open(path) as f:
        doc = json.load(f)
    out = {}
    for scenario in doc['scenarios']:
        for scheduler, metrics in scenario['results'].items():
            for key, value in metrics.items():
                if key.endswith('_runs'):
                    out[(scenario['name'], scheduler, key)] = value
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('reference', 
                        help='summary.json to reproduce (docs/eval/summary.json)')
    parser.add_argument('candidate', help='summary.json of the new run')
    args = parser.parse_args(argv)
    ref, new = runs(args.reference), runs(args.candidate)
    if not new:
        print('no *_runs in %s' % args.candidate)
        return 1
    diffs = []
    for key in sorted(new):
        if key not in ref:
            diffs.append('%s/%s/%s: missing from the reference' % key)
        elif ref[key] != new[key]:
            diffs.append('%s/%s/%s: %r != %r' % (key + (ref[key], new[key])))
    for line in diffs:
        print(line)
    print(json.dumps({'compared': len(new), 'different': len(diffs),
                      'identical': not diffs}))
    return 1 if diffs else 0


if __name__ == '__main__':
    sys.exit(main())
