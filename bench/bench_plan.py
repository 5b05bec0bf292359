"""Time of one plan (target: at most 10 s on 2 cores): 459 sampled policies + refinement.

Usage: ``python bench/bench_plan.py [--scenario NAME ...] [--goal goodput] [--workers 2]
[--predictor interference|isolated]``. Prints JSON and a table.
"""

import argparse
import json
import time


def main(argv=None) -> int:
    from hetero_infer.evaluation.scenarios import find_scenario, load_scenarios
    from hetero_infer.planning.schedulers.driver import plan_scheduler
    from hetero_infer.planning.schedulers.interface import PlanContext
    from hetero_infer.planning.schedulers.searched import SearchOptions
    from hetero_infer.platform.spec import Platform

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--scenario', action='append', default=None)
    ap.add_argument('--goal', default='goodput')
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--scheduler', default='interference_aware')
    args = ap.parse_args(argv)
    platform = Platform.load('xavier')
    scenarios = load_scenarios()
    names = args.scenario or ['mix_r1', 'light_r1', 'dense_r4']
    rows = []
    for name in names:
        apps = find_scenario(scenarios, name).build(platform)
        ctx = PlanContext(platform=platform, apps=apps, goal=args.goal,
                          options=(SearchOptions(workers=args.workers),))
        t0 = time.perf_counter()
        plan = plan_scheduler(args.scheduler, ctx)
        wall = time.perf_counter() - t0
        rows.append({'scenario': name, 'apps': len(apps), 'goal': args.goal,
                     'scheduler': args.scheduler, 'workers': args.workers,
                     'plan_time_s': round(wall, 3), 'n_samples': plan.search.n_samples,
                     'n_evaluated': plan.search.n_evaluated,
                     'predicted': round(plan.search.score, 3)})
    print(json.dumps({'bench': 'plan', 'target_s': 10.0, 'results': rows}, indent=1))
    print('%-12s %5s %-17s %8s %10s %10s' % ('scenario', 'apps', 'goal', 'samples', 'sims',
                                             'time_s'))
    for r in rows:
        print('%-12s %5d %-17s %8d %10d %10.2f' % (r['scenario'], r['apps'], r['goal'],
                                                  r['n_samples'], r['n_evaluated'],
                                                  r['plan_time_s']))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
