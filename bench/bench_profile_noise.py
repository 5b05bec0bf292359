"""Where the noise of CPU interference profiling comes from, and what each protocol step buys.

Profiles random layers on onnxruntime ``cpu0`` (target) while ``cpu1`` loops random layers, under
several measurement protocols, alternating the protocols in rounds within one run so load from
other processes on this shared machine hits all of them alike. Every round re-measures half of
each protocol's samples; the agreement of the two measurements is the test-retest accuracy
(``100 x (1 - MAPE)`` of the re-measured slowdown against the first, the ceiling of a model's
accuracy; :func:`hetero_infer.interference.profiling.retest_quality`).

Protocols (each adds one step to the one before):

- ``legacy``: issue 17's starting point: mean of the repeats, every run handed from the main
  thread to the processor's worker, co-runners looped by Python threads through the same
  hand-off, isolated and co-run measured one after the other;
- ``pinned``: every run on the processors' own pinned worker threads (no hand-off), mean;
- ``interleaved``: + isolated and co-run runs interleaved in 4 blocks (A B B A);
- ``median``: + median of the repeats instead of the mean;
- ``trimmed``: + 20%-trimmed mean instead (robust to preempted runs, still averages phases);
- ``min_layer``: + target layers shorter than ``--min-layer-ms`` redrawn (the default protocol
  of ``hetero-infer profile`` on real backends);
- ``cv_gate``: + a sample whose repeats scatter by more than ``--max-cv`` (coefficient of
  variation) is measured again, twice at most, the steadiest try kept;
- ``on_cpu``: + each run's time the target thread spent off its core (wall minus thread CPU
  time: preempted by another process) subtracted, and a co-run block measured again when a
  co-runner was on its core less than 90% of the block (the default protocol of
  ``hetero-infer profile --backend onnxruntime``);
- ``legacy_min_layer``: the legacy protocol with only the minimum layer time added, to tell that
  step's share from the rest.

The 1-minute load average is recorded with every measurement; the pairs of ``on_cpu`` are
also split at the median load to show how much of the remaining noise follows the load.
Prints a table and writes JSON (``--json FILE``).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hetero_infer.backends import create_backend  # noqa: E402
from hetero_infer.backends.profiling_targets import ExecutorProfilingTarget  # noqa: E402
from hetero_infer.interference.profiling import profile_random  # noqa: E402

CONFIG = 'cpu0|cpu1'


def _variants(min_layer_ms, max_cv):
    return [('legacy', 'legacy', 'mean', 1, 0.0, None),
            ('pinned', 'robust', 'mean', 1, 0.0, None),
            ('interleaved', 'robust', 'mean', 4, 0.0, None),
            ('median', 'robust', 'median', 4, 0.0, None),
            ('trimmed', 'robust', 'trimmed', 4, 0.0, None),
            ('min_layer', 'robust', 'trimmed', 4, min_layer_ms, None),
            ('cv_gate', 'robust', 'trimmed', 4, min_layer_ms, max_cv),
            ('on_cpu', 'robust+cpu', 'trimmed', 4, min_layer_ms, max_cv),
            ('legacy_min_layer', 'legacy', 'mean', 1, min_layer_ms, None)]


def _acc(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(100.0 * (1.0 - np.mean(np.abs(b - a) / np.abs(a)))) if a.size else float('nan')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--samples', type=int, default=16, help='samples per protocol and round')
    ap.add_argument('--repeats', type=int, default=10)
    ap.add_argument('--min-layer-ms', type=float, default=0.1)
    ap.add_argument('--max-macs', type=float, default=2e7)
    ap.add_argument('--max-cv', type=float, default=0.25)
    ap.add_argument('--variants', default='', help='comma-separated subset of the protocols')
    ap.add_argument('--json', default='')
    args = ap.parse_args(argv)
    limits = {'max_macs': int(args.max_macs), 'max_tensor_bytes': 2 * 2 ** 20}
    variants = _variants(args.min_layer_ms, args.max_cv)
    if args.variants:
        keep = args.variants.split(',')
        variants = [v for v in variants if v[0] in keep]
    pairs = {v[0]: [] for v in variants}
    seconds = {v[0]: 0.0 for v in variants}
    chunks = []
    t_start = time.time()
    with create_backend('onnxruntime', num_processors=2) as backend:
        targets = {}
        for name, proto, _, _, _, _ in variants:
            targets[name] = ExecutorProfilingTarget(
                backend, platform_name='cpu2', protocol=proto.split('+')[0],
                on_cpu=proto.endswith('+cpu'), min_duty=0.9 if proto.endswith('+cpu') else 0.0)
        for r in range(args.rounds):
            for name, _, agg, blocks, min_ms, max_cv in variants:
                t0 = time.time()
                ds = profile_random(targets[name], [CONFIG], args.samples, seed=1000 + r,
                                    repeats=args.repeats, layer_limits=limits, aggregate=agg,
                                    blocks=blocks, min_layer_ms=min_ms, max_cv=max_cv,
                                    retest_fraction=0.5)
                dt = time.time() - t0
                seconds[name] += dt
                for rt in ds.meta.get('retest', []):
                    o = ds.observations[rt['row']]
                    pairs[name].append({'slowdown': o.slowdown,
                                        'slowdown2': rt['corun_ms'] / rt['iso_ms'],
                                        'iso_ms': o.iso_ms, 'iso_ms2': rt['iso_ms'],
                                        'corun_ms': o.corun_ms, 'corun_ms2': rt['corun_ms'],
                                        'load1': o.load1, 'load1_2': rt['load1'],
                                        'iso_cv': o.iso_cv, 'corun_cv': o.corun_cv})
                chunks.append({'round': r, 'protocol': name, 'seconds': round(dt, 2),
                               'load_average_1min': ds.meta['load_average_1min'],
                               'test_retest': ds.meta['quality']['test_retest'].get(CONFIG)})
                print('round %d %-12s %5.1f s  load %.2f  test-retest %.1f'
                      % (r, name, dt, ds.meta['load_average_1min']['end'] or -1,
                         chunks[-1]['test_retest'] or float('nan')), flush=True)
        affinity = targets[variants[0][0]].affinity
        redone = {n: t.redone_blocks for n, t in targets.items()}
        for t in targets.values():
            t.close()
    rows = {}
    for name, ps in pairs.items():
        cvs = [p['corun_cv'] for p in ps if p['corun_cv'] is not None]
        rows[name] = {
            'pairs': len(ps), 'seconds': round(seconds[name], 1),
            'test_retest': round(_acc([p['slowdown'] for p in ps],
                                      [p['slowdown2'] for p in ps]), 2),
            'test_retest_iso': round(_acc([p['iso_ms'] for p in ps],
                                          [p['iso_ms2'] for p in ps]), 2),
            'test_retest_corun': round(_acc([p['corun_ms'] for p in ps],
                                            [p['corun_ms2'] for p in ps]), 2),
            'median_slowdown': round(float(np.median([p['slowdown'] for p in ps])), 3),
            'median_corun_cv': round(float(np.median(cvs)), 3) if cvs else None,
            'median_iso_ms': round(float(np.median([p['iso_ms'] for p in ps])), 4)}
    best = 'on_cpu' if 'on_cpu' in pairs else variants[-1][0]
    last = pairs[best]
    loads = [max(p['load1'] or 0.0, p['load1_2'] or 0.0) for p in last]
    by_load = {}
    if loads:
        cut = float(np.median(loads))
        for label, sel in (('low', [p for p, ld in zip(last, loads) if ld <= cut]),
                           ('high', [p for p, ld in zip(last, loads) if ld > cut])):
            by_load[label] = {'pairs': len(sel),
                              'load1_range': [round(min([max(p['load1'] or 0, p['load1_2'] or 0)
                                                         for p in sel] or [0]), 2),
                                              round(max([max(p['load1'] or 0, p['load1_2'] or 0)
                                                         for p in sel] or [0]), 2)],
                              'test_retest': round(_acc([p['slowdown'] for p in sel],
                                                        [p['slowdown2'] for p in sel]), 2)}
    result = {'command': 'python bench/bench_profile_noise.py ' + ' '.join(sys.argv[1:]),
              'seconds': round(time.time() - t_start, 1), 'config': CONFIG,
              'affinity': affinity, 'cpu_count': os.cpu_count(), 'redone_corun_blocks': redone,
              'protocols': rows, 'by_load_protocol': best, 'by_load': by_load, 'chunks': chunks,
              'pairs': pairs}
    print()
    print('| protocol | pairs | test-retest slowdown | isolated | co-run | median CV co-run '
          '| median iso ms | s |')
    print('|---|---|---|---|---|---|---|---|')
    for name, r in rows.items():
        print('| %s | %d | %.1f | %.1f | %.1f | %s | %.3f | %.0f |'
              % (name, r['pairs'], r['test_retest'], r['test_retest_iso'],
                 r['test_retest_corun'], r['median_corun_cv'], r['median_iso_ms'],
                 r['seconds']))
    for label, v in by_load.items():
        print('%s: load %s, %d pairs, test-retest %.1f' % (label, v['load1_range'], v['pairs'],
                                                           v['test_retest']))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
            f.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
