"""Digital-twin speed: layer events per second serving three applications on Xavier (one core).

    python bench/bench_twin.py [--duration-s 20]

Target (issue 2): >= 200,000 layer events per second on one core. Prints JSON, then a table.
"""

import argparse
import json
import time

from hetero_infer.core.model import load_model
from hetero_infer.core.platform import Platform
from hetero_infer.core.twin import Twin
from hetero_infer.core.workload import App, FixedDispatcher


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--duration-s', type=float, default=20.0)
    ap.add_argument('--repeats', type=int, default=3)
    args = ap.parse_args()
    plat = Platform.load('xavier')
    apps = [App('cam', load_model('resnet50'), 200.0, 30.0),
            App('det', load_model('googlenet'), 150.0, 30.0),
            App('asr', load_model('quartznet15x5'), 40.0, 60.0)]
    rates = []
    events = 0
    for r in range(args.repeats):
        twin = Twin(plat, seed=r)
        t0 = time.perf_counter()
        recs = twin.serve(apps, FixedDispatcher(['gpu', 'dla0', 'dla1']),
                          duration_s=args.duration_s)
        dt = time.perf_counter() - t0
        events = twin.last_events
        rates.append(events / dt)
    result = {'benchmark': 'twin_layer_events_per_s', 'platform': 'xavier',
              'simulated_s': args.duration_s, 'requests': len(recs), 'layer_events': events,
              'events_per_s_best': round(max(rates)), 'events_per_s_median':
              round(sorted(rates)[len(rates) // 2]), 'target_events_per_s': 200000,
              'meets_target': max(rates) >= 200000}
    print(json.dumps(result))
    print('%-28s %12s' % ('metric', 'value'))
    for k in ('requests', 'layer_events', 'events_per_s_best', 'events_per_s_median',
              'target_events_per_s', 'meets_target'):
        print('%-28s %12s' % (k, result[k]))


if __name__ == '__main__':
    main()
