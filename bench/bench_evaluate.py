"""Time of a subset evaluation and where it goes, extrapolated to the full 40-scenario run.

Usage: ``python bench/bench_evaluate.py [--only mix_r1,wide_r2] [--replications 5]
[--workers 2] [--no-slo99]``. Runs every scheduler on the scenarios given, then prints JSON
(wall time, CPU seconds of this process and its workers, the evaluation's time profile by
phase and scheduler, and the CPU seconds per scenario) and a table. The full run's time on W
free cores is about ``40 * cpu_per_scenario / W`` (jobs are small and pipelined); the CPU
figure does not depend on how busy the machine was, the wall time does.
"""

import argparse
import json
import resource
import time


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv=None) -> int:
    from hetero_infer.evaluation.runner import EvalSettings, run_evaluation
    from hetero_infer.evaluation.scenarios import find_scenario, load_scenarios

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--only', default='mix_r1,wide_r2')
    ap.add_argument('--replications', type=int, default=5)
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--no-slo99', action='store_true')
    args = ap.parse_args(argv)
    all_scenarios = load_scenarios()
    scenarios = [find_scenario(all_scenarios, n.strip()) for n in args.only.split(',')]
    settings = EvalSettings(replications=args.replications, slo99=not args.no_slo99)
    c0, t0 = _cpu_s(), time.perf_counter()
    res = run_evaluation(scenarios, 'xavier', settings=settings, workers=args.workers)
    wall = time.perf_counter() - t0
    cpu = _cpu_s() - c0
    prof = res['details']['time_profile']
    per = cpu / len(scenarios)
    out = {'bench': 'evaluate', 'scenarios': [s.name for s in scenarios],
           'replications': args.replications, 'workers': args.workers,
           'slo99': not args.no_slo99, 'wall_s': round(wall, 1), 'cpu_s': round(cpu, 1),
           'cpu_per_scenario_s': round(per, 1),
           'full_run_estimate_min_on_2_free_cores': round(len(all_scenarios) * per / 2 / 60, 1),
           'time_profile': prof}
    print(json.dumps(out, indent=1))
    print('%-20s %10s %12s %12s' % ('scheduler', 'plan_s', 'goodput_s', 'slo99_s'))
    for k in sorted(set(prof['plan_s']) | set(prof['measure_goodput_s'])):
        print('%-20s %10.1f %12.1f %12.1f' % (k, prof['plan_s'].get(k, 0.0),
                                               prof['measure_goodput_s'].get(k, 0.0),
                                               prof['measure_slo99_s'].get(k, 0.0)))
    print('wall %.0f s, CPU %.0f s (%.0f s per scenario); the full %d-scenario run: about '
          '%.0f min on 2 free cores' % (wall, cpu, per, len(all_scenarios),
                                        out['full_run_estimate_min_on_2_free_cores']))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
