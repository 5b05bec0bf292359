"""``hetero-infer calibrate``: the twin beside the measured numbers of FACTS.md (table + JSON)."""

import json

from hetero_infer.commands import argtypes


def add_arguments(parser):
    parser.add_argument('--platform', default='xavier', help='platform name or YAML path')
    parser.add_argument('--power-mode', default=None, help='power mode (default: the file\'s)')
    parser.add_argument('--seed', type=argtypes.seed, default=0, help='noise seed (default 0)')
    parser.add_argument('--out', type=argtypes.output_file, default=None, metavar='FILE.json',
                        help='also write the checks as JSON to this file')


def _num(v, width=10) -> str:
    return '%*s' % (width, '-') if v is None else '%*.3f' % (width, v)


def run(args) -> int:
    from hetero_infer.evaluation.calibration import calibration_checks, summary
    from hetero_infer.platform.spec import Platform

    platform = Platform.load(args.platform, power_mode=args.power_mode)
    checks = calibration_checks(platform, seed=args.seed)
    width = max(len(c['check']) for c in checks)
    print('%-*s %10s %10s %10s %10s  %s' % (width, 'check', 'simulated', 'reference', 'low',
                                            'high', 'pass'))
    for c in checks:
        verdict = ('yes' if c['pass'] else 'NO') if c['gate'] else 'reported'
        print('%-*s %s %10s %s %s  %s' % (width, c['check'], _num(c['simulated']),
                                          '-' if c['reference'] is None else c['reference'],
                                          _num(c['low']), _num(c['high']), verdict))
    s = summary(checks)
    print('%d passed, %d failed, %d reported without a gate (platform %s, power mode %s)'
          % (s['passed'], s['failed'], s['reported'], platform.name, platform.power_mode))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(checks, f, indent=1)
            f.write('\n')
        print('wrote %s' % args.out)
    return 0 if s['failed'] == 0 else 1
