"""Priority-router decision time (target: median under 20 microseconds).

Times ``PriorityRouter.dispatch`` one decision at a time (perf_counter_ns around each call) for
3 processors and 4 applications with a view whose tie-break is exercised (and, in the last
variant, the overflow rule on every decision and the SLO check), then prints JSON and a
table. Usage: ``python bench/bench_router.py [--decisions N]``.
"""

import argparse
import json
import statistics
import time

import numpy as np

from hetero_infer.planning.policy import Policy
from hetero_infer.planning.router import PriorityRouter


class _App:
    def __init__(self, name):
        self.name = name
        self.model = None


class _View:
    """Every queue full except dla1's, so the overflow rule runs on every decision."""

    now_ms = 0.0

    def queue_len(self, proc):
        return 0 if proc == 'dla1' else 5

    def expected_free_ms(self, proc):
        return 1.0

    def queue_full(self, proc):
        return proc != 'dla1'


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--decisions', type=int, default=200000)
    args = ap.parse_args(argv)
    procs = ('gpu', 'dla0', 'dla1')
    alloc = [[0.5, 0.25, 0.25], [0.2, 0.4, 0.4], [1.0, 0.0, 0.0], [0.3, 0.3, 0.4]]
    names = ['app%d' % i for i in range(len(alloc))]
    results = {}
    variants = (('exact_ties', {'tie_tolerance': 0.0, 'overflow': False}),
                ('default_band_0.5', {'tie_tolerance': 0.5, 'overflow': False}),
                ('band+overflow+slo', {'tie_tolerance': 0.5, 'overflow': True,
                                       'slo_dispatch': 'drop'}))
    for label, options in variants:
        router = PriorityRouter(Policy(names, procs, alloc, router=options))
        router.reset([_App(n) for n in names], None)
        router.set_service_ms([{'gpu': 2.0, 'dla0': 4.0, 'dla1': 4.5}] * len(alloc))
        router.set_slos([1e9] * len(alloc))
        apps = np.random.default_rng(0).integers(0, len(alloc), args.decisions).tolist()
        view = _View()
        samples = []
        clock = time.perf_counter_ns
        for k, a in enumerate(apps):
            t0 = clock()
            router.dispatch(a, float(k), view)
            samples.append(clock() - t0)
        samples.sort()
        results[label] = {
            'decisions': len(samples),
            'median_us': statistics.median(samples) / 1000.0,
            'p99_us': samples[int(0.99 * len(samples))] / 1000.0,
            'mean_us': sum(samples) / len(samples) / 1000.0,
        }
    out = {'bench': 'router', 'target_median_us': 20.0, 'results': results}
    print(json.dumps(out, indent=1))
    print('%-20s %10s %10s %10s' % ('router', 'median_us', 'p99_us', 'mean_us'))
    for label, r in results.items():
        print('%-20s %10.2f %10.2f %10.2f' % (label, r['median_us'], r['p99_us'], r['mean_us']))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
