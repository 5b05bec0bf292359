"""The twin's compiled event loop against its Python loop, on the evaluation's measurement jobs.

    python bench/bench_twin_kernel.py [--scenarios mix_r1 wide_r2] [--repeats 1]
        [--plans-dir /tmp/hetero_infer_bench_plans]

Per scenario (config/scenarios.yaml, Xavier): the seven planned schedulers' plans are made once
(``evaluation._plan_job``, both goals, plan seed 0; cached as a pickle in ``--plans-dir``), then
one measurement job (``evaluation._measure_job``: every scheduler's goodput run and SLO99
bisection on replication 0's trace, as ``hetero-infer evaluate`` runs it) is timed under each
loop (``HETERO_INFER_TWIN_KERNEL=python`` / ``numba``), alternating which goes first, in CPU
seconds of this process (the machine is shared). Both must give the same results, to the last
bit; the bench stops if they do not. The kernel's one-off costs are timed apart, each in a fresh
process: compiling it (an empty numba cache) and loading it from the cache (what an evaluation
worker pays once). Prints JSON, then a table.
"""

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time

from hetero_infer.evaluation import runner as ev
from hetero_infer.evaluation.scenarios import find_scenario, load_scenarios
from hetero_infer.twin import simulator as twin_mod

PLANNED = ['interference_aware', 'no_interference', 'talk_exact', 'base', 'round_robin',
           'least_finish_time', 'fastest_only']

FIRST_USE = '''
import time
t0 = time.process_time()
from hetero_infer.models.zoo import load_model
from hetero_infer.platform.spec import Platform
from hetero_infer.twin.simulator import Twin, event_loop_kind
from hetero_infer.workload.requests import App, FixedDispatcher
plat = Platform.load('xavier')
apps = [App('cam', load_model('resnet50'), 100.0, 30.0)]
t1 = time.process_time()
assert event_loop_kind() == 'numba'
Twin(plat).serve(apps, FixedDispatcher(['gpu']), duration_s=0.1)
print(time.process_time() - t1)
'''


def _first_use_s(cache_dir: str) -> float:
    """CPU seconds of a fresh process's first twin run with the kernel (import, compile or
    load from ``cache_dir``, the noise check), beyond the imports the Python loop needs too."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, HETERO_INFER_TWIN_KERNEL='numba')
    out = subprocess.run([sys.executable, '-c', FIRST_USE], env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[-1])


def _plans(name: str, scenario, settings, plans_dir: str) -> dict:
    path = os.path.join(plans_dir, 'plans_%s.pkl' % name)
    if os.path.exists(path):
        with open(path, 'rb') as f:
            return pickle.load(f)
    refs = {n: ev._plan_job(scenario, 'xavier', n, 0, settings, None, True, False)['records']
            for n in PLANNED}
    os.makedirs(plans_dir, exist_ok=True)
    with open(path, 'wb') as f:
        pickle.dump(refs, f)
    return refs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--scenarios', nargs='+', default=['mix_r1', 'wide_r2'])
    ap.add_argument('--repeats', type=int, default=1)
    ap.add_argument('--plans-dir', default=os.path.join(tempfile.gettempdir(),
                                                        'hetero_infer_bench_plans'))
    args = ap.parse_args()
    settings = ev.EvalSettings()
    with tempfile.TemporaryDirectory() as cache:
        compile_s = _first_use_s(cache)
        cached_s = _first_use_s(cache)
    os.environ[twin_mod.KERNEL_ENV] = 'numba'
    if twin_mod.event_loop_kind() != 'numba':
        raise SystemExit('numba is not importable here: nothing to compare')
    rows = []
    for name in args.scenarios:
        scenario = find_scenario(load_scenarios(), name)
        refs = _plans(name, scenario, settings, args.plans_dir)
        row = {'scenario': name}
        runs = {}
        for rep in range(args.repeats):
            order = ('python', 'numba') if rep % 2 == 0 else ('numba', 'python')
            for kind in order:
                os.environ[twin_mod.KERNEL_ENV] = kind
                t0 = time.process_time()
                res = ev._measure_job(scenario, 'xavier', settings, 0, 0, refs, True, None)
                total = time.process_time() - t0
                parts = {'total': total,
                         'goodput': sum(t['goodput'] for t in res['time_s'].values()),
                         'slo99': sum(t['slo99'] for t in res['time_s'].values())}
                for part, value in parts.items():
                    key = '%s_s_%s' % (part, kind)
                    row[key] = min(row.get(key, value), value)
                if runs.setdefault(kind, res['runs']) != res['runs']:
                    raise SystemExit('%s: the %s loop is not deterministic' % (name, kind))
        if runs['python'] != runs['numba']:
            raise SystemExit('%s: the kernel and the Python loop disagree' % name)
        for part in ('total', 'goodput', 'slo99'):
            row['speedup_' + part] = round(row[part + '_s_python'] / row[part + '_s_numba'], 2)
        rows.append(row)
    total_py = sum(r['total_s_python'] for r in rows)
    total_nb = sum(r['total_s_numba'] for r in rows)
    result = {'benchmark': 'twin_kernel_measurement_job', 'platform': 'xavier',
              'schedulers': PLANNED, 'repeats': args.repeats,
              'kernel_first_use_s': {'compile': round(compile_s, 2),
                                     'from_cache': round(cached_s, 2)},
              'rows': [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
                       for r in rows],
              'speedup_measurement_jobs': round(total_py / total_nb, 2),
              'results_identical': True}
    print(json.dumps(result))
    print('%-10s %-8s %10s %10s %8s' % ('scenario', 'part', 'python s', 'numba s', 'speedup'))
    for r in rows:
        for part in ('goodput', 'slo99', 'total'):
            print('%-10s %-8s %10.2f %10.2f %7.2fx' % (
                r['scenario'], part, r[part + '_s_python'], r[part + '_s_numba'],
                r['speedup_' + part]))
    print('all measurement jobs: %.2f s -> %.2f s, %.2fx; kernel first use in a process: '
          '%.2f s compiling, %.2f s from the cache' % (total_py, total_nb, total_py / total_nb,
                                                      compile_s, cached_s))


if __name__ == '__main__':
    main()
