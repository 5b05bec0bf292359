"""``hetero-infer plan``: search the best allocation policy for one scenario and goal.

Prints the policy, its predicted metrics (each application's SLO attainment, and which floor no
plan found can meet) and the search time, and saves it as JSON
(``--out``, default ``plans/<scenario>_<goal>.json``).
"""

import json
import os
import sys

from hetero_infer.commands import argtypes


def add_arguments(parser):
    parser.add_argument('--platform', default=None,
                        help='platform name or YAML path (default: the scenario\'s, else xavier)')
    parser.add_argument('--scenarios', default=None, metavar='FILE',
                        help='scenario YAML (default: config/scenarios.yaml)')
    parser.add_argument('--scenario', required=True, help='scenario name in that file')
    parser.add_argument('--goal', default='goodput',
                        help='goodput, slo99_throughput, throughput, fairness, a weighted sum '
                             '("0.7*goodput+0.3*fairness") or module:function')
    parser.add_argument('--scheduler', default='interference_aware',
                        help='a scheduler that searches: interference_aware (default), '
                             'talk_exact, no_interference, oracle, or one an installed package '
                             'registers (hetero_infer.schedulers entry point)')
    parser.add_argument('--top-fraction', type=argtypes.float_in(1e-3, 0.5), default=0.01,
                        help='sampling guarantee: best within this top fraction (default 0.01)')
    parser.add_argument('--confidence', type=argtypes.float_in(0.5, 0.9999), default=0.99,
                        help='... with this confidence (default 0.99: 459 samples)')
    parser.add_argument('--seed', type=argtypes.seed, default=0)
    parser.add_argument('--workers', type=argtypes.workers, default=None,
                        help='processes for the search (default: available cores)')
    parser.add_argument('--interference-model', default=None, metavar='FILE',
                        help='trained interference model (default: the committed one)')
    parser.add_argument('--force-interference-model', action='store_true',
                        help='use --interference-model even if trained on another platform')
    argtypes.add_criticality_arguments(parser)
    parser.add_argument('--out', type=argtypes.output_file, default=None, metavar='FILE.json',
                        help='where to save')


def run(args) -> int:
    from hetero_infer.evaluation.scenarios import choose_platform, find_scenario, load_scenarios
    from hetero_infer.planning.schedulers.driver import plan_scheduler
    from hetero_infer.planning.schedulers.interface import PlanContext
    from hetero_infer.planning.schedulers.interference_aware import InterferenceOptions
    from hetero_infer.planning.schedulers.searched import SearchOptions
    from hetero_infer.planning.search import default_workers
    from hetero_infer.platform.spec import Platform

    facts = _searching_scheduler(args.scheduler)
    scenario = find_scenario(load_scenarios(args.scenarios), args.scenario)
    name, warning = choose_platform(args.platform, [scenario])
    if warning:
        print('hetero-infer plan: warning: %s' % warning, file=sys.stderr)
    platform = Platform.load(name)
    apps = argtypes.apply_criticality(scenario.build(platform), args)
    interference_model = args.interference_model
    if facts.needs_interference_model:
        from hetero_infer.interference.predictors import load_latency_predictor
        load_latency_predictor(platform, interference_model,  # fail before the search
                                force=args.force_interference_model)
        if interference_model and args.force_interference_model:
            from hetero_infer.interference.slowdown_model import SlowdownPredictor
            interference_model = SlowdownPredictor.load(interference_model)
    search = SearchOptions(top_fraction=args.top_fraction, confidence=args.confidence,
                           workers=args.workers or default_workers())
    ctx = PlanContext(platform=platform, apps=apps, goal=args.goal, seed=args.seed,
                      options=(search, InterferenceOptions(model=interference_model)))
    plan = plan_scheduler(args.scheduler, ctx)
    res = plan.search
    print('scenario %s on %s, goal %s, scheduler %s' % (scenario.name, platform.name,
                                                       res.goal, args.scheduler))
    for a in apps:
        print('  %-20s %-18s %7.1f req/s  SLO %6.1f ms  weight %g  floor %g'
              % (a.name, a.model.name, a.rate_hz, a.slo_ms, a.weight, a.min_attainment))
    if plan.notes:
        print(plan.notes)
    if plan.policy is None:
        # the oracle may adopt a rule-based scheduler's plan (a dispatch rule, no allocation)
        print('the plan is %s\'s dispatch rule (no allocation matrix)' % plan.source)
    else:
        print('policy (share of each application\'s requests per processor):')
        procs = plan.policy.processor_ids
        print('  %-20s ' % '' + ' '.join('%6s' % p for p in procs))
        for name, row in zip(plan.policy.app_names, plan.policy.allocation):
            print('  %-20s ' % name + ' '.join('%6.2f' % v for v in row))
        print('router: ' + ', '.join('%s %s' % (k, plan.policy.router_option(k))
                                     for k in ('tie_tolerance', 'overflow', 'slo_dispatch')))
    if plan.source == args.scheduler:
        print('predicted: ' + ', '.join('%s %.4g' % (k, v)
                                        for k, v in sorted(res.metrics.items())
                                        if not isinstance(v, dict)))
    if plan.source == args.scheduler and 'attainment' in res.metrics:
        print('predicted attainment per application:')
        for a in apps:
            att = res.metrics['attainment'][a.name]
            verdict = ('  BELOW FLOOR %g (infeasible)' % a.min_attainment
                       if a.name in res.infeasible else '')
            print('  %-20s %6.1f%%%s' % (a.name, 100 * att, verdict))
    print('search: %d samples (top %.3g%% with %.3g%% confidence), %d simulations, %.2f s'
          % (res.n_samples, 100 * res.top_fraction, 100 * res.confidence, res.n_evaluated,
             plan.plan_time_s))
    out = args.out or os.path.join('plans', '%s_%s.json' % (scenario.name,
                                                           res.goal.replace(' ', '')))
    if os.path.dirname(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
    doc = plan.to_dict()
    doc.update({'platform': platform.name, 'scenario': scenario.name,
                'applications': [{'name': a.name, 'model': a.model.name, 'rate_hz': a.rate_hz,
                                  'slo_ms': a.slo_ms, 'weight': a.weight,
                                  'min_attainment': a.min_attainment} for a in apps]})
    with open(out, 'w') as f:
        json.dump(doc, f, indent=1)
        f.write('\n')
    print('saved %s' % out)
    return 0


def _searching_scheduler(name: str):
    """The registered scheduler ``name``; what it declares decides: it must search (and may
    need the interference model).

    :raises ConfigError: unknown name, or a scheduler that does not search (the message lists
        those that do).
    """
    from hetero_infer.errors import ConfigError
    from hetero_infer.planning.schedulers import registry
    scheduler = registry.get_scheduler(name)
    if not scheduler.searches:
        raise ConfigError('--scheduler %r does not search (use %s)'
                          % (name, ', '.join(registry.searching_schedulers())))
    return scheduler
