"""The evaluation's twin work before and after the speed work: goodput runs, SLO99 bisections.

    python bench/bench_eval_twin.py [--scenarios mix_r1 resnets_r3 deep_r5]
        [--schedulers interference_aware least_finish_time] [--repeats 2] [--before REF]

Per scenario (config/scenarios.yaml) and scheduler, as ``hetero-infer evaluate`` measures them:
one goodput run (:func:`measure_on_twin`, 2.5 simulated s) and one SLO99 bisection
(:func:`twin_slo99_throughput`, 5 probes of about 2,000 requests each, the issue's figure).
Search-based schedulers plan once per goal, as the evaluation does; planning is not timed.
``--before REF`` (default: the commit before the speed work) loads that commit's twin and
evaluation functions and times them on the same plans, interleaved with today's; both must
give the same goodput and SLO99 throughput. ``slo99_s_all_probes`` is today's twin running
every probe to its end (``stop_failed_probes=False``): the engine's part of the gain alone.
Times are the best of ``--repeats`` in CPU seconds of this process (the machine is shared).
Prints JSON, then a table.
"""

import argparse
import dataclasses
import functools
import json
import sys
import time

from twin_before import BEFORE_REF, load_at

from hetero_infer.evaluation import runner as eval_now
from hetero_infer.evaluation.runner import EvalSettings
from hetero_infer.evaluation.scenarios import find_scenario, load_scenarios
from hetero_infer.planning.schedulers.driver import plan_scheduler
from hetero_infer.planning.schedulers.interface import PlanContext
from hetero_infer.planning.schedulers.searched import SearchOptions
from hetero_infer.platform.spec import Platform
from hetero_infer.twin import simulator as twin_now

REQUESTS = 2000


def _searching():
    from hetero_infer.planning.schedulers.registry import searching_schedulers
    return tuple(searching_schedulers())


#: planned once per goal: the schedulers that search (the registry's answer)
GOAL_DEPENDENT = _searching()


def _timed(fn):
    t0 = time.process_time()
    value = fn()
    return time.process_time() - t0, value


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--scenarios', nargs='+', default=['mix_r1', 'resnets_r3', 'deep_r5'])
    ap.add_argument('--schedulers', nargs='+',
                    default=['interference_aware', 'least_finish_time'])
    ap.add_argument('--repeats', type=int, default=2)
    ap.add_argument('--before', default=BEFORE_REF,
                    help="git commit whose twin and evaluation to time alongside ('' for none)")
    args = ap.parse_args()
    plat = Platform.load('xavier')
    st = EvalSettings()
    versions = {'now': (twin_now, eval_now)}
    if args.before:
        try:
            versions['before'] = (
                load_at(args.before, 'hetero_infer/twin/simulator.py', 'twin_before'),
                load_at(args.before, 'hetero_infer/evaluation/runner.py', 'evaluation_before'))
        except RuntimeError as exc:
            print('no before run: %s' % exc, file=sys.stderr)
    before = 'before' in versions
    rows = []
    for name in args.scenarios:
        apps = find_scenario(load_scenarios(), name).build(plat)
        for sched_name in args.schedulers:
            ctx = PlanContext(platform=plat, apps=apps, goal='goodput', seed=st.seed,
                              settings=st.sim,
                              options=(SearchOptions(max_refine_evals=st.max_refine_evals),))
            plan = plan_scheduler(sched_name, ctx)
            slo_plan = plan
            if sched_name in GOAL_DEPENDENT:
                slo_plan = plan_scheduler(sched_name,
                                          dataclasses.replace(ctx, goal='slo99_throughput'))
            row = {'scenario': name, 'scheduler': sched_name}
            for _rep in range(args.repeats):
                for label, (twin_mod, eval_mod) in versions.items():
                    twin = twin_mod.Twin(plat, seed=st.seed + 1000)
                    dt, m = _timed(functools.partial(
                        eval_mod.measure_on_twin, twin, apps, plan.make_dispatcher,
                        duration_s=st.duration_s, warmup_s=st.warmup_s, seed=st.seed))
                    dt_slo, slo = _timed(functools.partial(
                        eval_mod.twin_slo99_throughput, twin, apps, slo_plan.make_dispatcher,
                        seed=st.seed, hi_scale=st.slo99_hi_scale,
                        iterations=st.slo99_iterations, requests=REQUESTS))
                    for key, value in (('goodput_s_' + label, dt), ('slo99_s_' + label, dt_slo)):
                        row[key] = min(row.get(key, value), value)
                    row['goodput_' + label], row['slo99_' + label] = m['goodput'], slo
                dt_all, slo_all = _timed(functools.partial(
                    eval_now.twin_slo99_throughput, twin_now.Twin(plat, seed=st.seed + 1000),
                    apps, slo_plan.make_dispatcher, seed=st.seed, hi_scale=st.slo99_hi_scale,
                    iterations=st.slo99_iterations, requests=REQUESTS,
                    stop_failed_probes=False))
                row['slo99_s_all_probes'] = min(row.get('slo99_s_all_probes', dt_all), dt_all)
                if slo_all != row['slo99_now']:
                    raise SystemExit('%s/%s: SLO99 %r with probes stopped early, %r without'
                                     % (name, sched_name, row['slo99_now'], slo_all))
            if before:
                for metric in ('goodput', 'slo99'):
                    if abs(row[metric + '_now'] - row[metric + '_before']) > \
                            1e-9 * max(1.0, abs(row[metric + '_before'])):
                        raise SystemExit('%s/%s: %s %r now, %r at %s' % (
                            name, sched_name, metric, row[metric + '_now'],
                            row[metric + '_before'], args.before))
            rows.append(row)
    summary = {}
    for key in ('goodput_s_now', 'slo99_s_now', 'slo99_s_all_probes', 'goodput_s_before',
                'slo99_s_before'):
        if key in rows[0]:
            summary['mean_' + key] = round(sum(r[key] for r in rows) / len(rows), 3)
    if before:
        for metric in ('goodput', 'slo99'):
            summary['speedup_' + metric] = round(summary['mean_%s_s_before' % metric]
                                                 / summary['mean_%s_s_now' % metric], 2)
        pair_before = summary['mean_goodput_s_before'] + summary['mean_slo99_s_before']
        pair_now = summary['mean_goodput_s_now'] + summary['mean_slo99_s_now']
        summary['speedup_goodput_plus_slo99'] = round(pair_before / pair_now, 2)
    result = {'benchmark': 'evaluation_twin_seconds', 'platform': 'xavier',
              'before_ref': args.before if before else None, 'slo99_requests': REQUESTS,
              'duration_s': st.duration_s, 'rows': [
                  {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                  for r in rows], 'summary': summary}
    print(json.dumps(result))
    cols = [c for c in ('goodput_s_before', 'goodput_s_now', 'slo99_s_before', 'slo99_s_now',
                        'slo99_s_all_probes') if c in rows[0]]
    print('%-12s %-20s' % ('scenario', 'scheduler') + ''.join('%20s' % c for c in cols))
    for r in rows:
        print('%-12s %-20s' % (r['scenario'], r['scheduler'])
              + ''.join('%20.3f' % r[c] for c in cols))
    for k, v in summary.items():
        print('%-33s %s' % (k, v))


if __name__ == '__main__':
    main()
