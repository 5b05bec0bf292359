"""Digital-twin speed: layer events per second serving three applications on Xavier (one core).

    python bench/bench_twin.py [--duration-s 20] [--repeats 3] [--before REF | --before '']

Target (issue 2): >= 200,000 layer events per second on one core. With ``--before REF`` (default:
the commit before the twin's speed work) the twin of that commit serves the same runs,
interleaved with the current one, and the speed-up is their ratio; both must produce the same
number of layer events. Times are CPU seconds of this process (the machine is shared: wall time
would count other people's work too). Prints JSON, then a table.
"""

import argparse
import json
import sys
import time

from twin_before import BEFORE_REF, load_at

from hetero_infer.models.zoo import load_model
from hetero_infer.platform.spec import Platform
from hetero_infer.twin import simulator as twin_now
from hetero_infer.workload.requests import App, FixedDispatcher


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--duration-s', type=float, default=20.0)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--before', default=BEFORE_REF,
                    help="git commit whose twin to time alongside ('' for none)")
    args = ap.parse_args()
    plat = Platform.load('xavier')
    apps = [App('cam', load_model('resnet50'), 200.0, 30.0),
            App('det', load_model('googlenet'), 150.0, 30.0),
            App('asr', load_model('quartznet15x5'), 40.0, 60.0)]
    versions = {'now': twin_now}
    if args.before:
        try:
            versions['before'] = load_at(args.before, 'hetero_infer/twin/simulator.py',
                                         'twin_before')
        except RuntimeError as exc:
            print('no before run: %s' % exc, file=sys.stderr)
    rates = {k: [] for k in versions}
    events = {}
    for r in range(args.repeats):
        for label, module in versions.items():
            twin = module.Twin(plat, seed=r)
            t0 = time.process_time()
            recs = twin.serve(apps, FixedDispatcher(['gpu', 'dla0', 'dla1']),
                              duration_s=args.duration_s)
            dt = time.process_time() - t0
            events[label] = twin.last_events
            rates[label].append(twin.last_events / dt)
    if 'before' in events and events['before'] != events['now']:
        raise SystemExit('the twin at %s and now disagree: %d vs %d layer events'
                         % (args.before, events['before'], events['now']))
    now = rates['now']
    result = {'benchmark': 'twin_layer_events_per_s', 'platform': 'xavier',
              'simulated_s': args.duration_s, 'requests': len(recs),
              'layer_events': events['now'], 'events_per_s_best': round(max(now)),
              'events_per_s_median': round(sorted(now)[len(now) // 2]),
              'target_events_per_s': 200000, 'meets_target': max(now) >= 200000}
    if 'before' in rates:
        result['before_ref'] = args.before
        result['before_events_per_s_best'] = round(max(rates['before']))
        result['speedup_best'] = round(max(now) / max(rates['before']), 2)
    print(json.dumps(result))
    print('%-28s %12s' % ('metric', 'value'))
    for k, v in result.items():
        if k not in ('benchmark', 'platform'):
            print('%-28s %12s' % (k, v))


if __name__ == '__main__':
    main()
