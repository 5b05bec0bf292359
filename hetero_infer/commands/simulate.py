"""``hetero-infer simulate``: plan one scenario with a scheduler and serve it on the digital twin.

The default is the embedded demo: the simulated Xavier with a camera classifier, a second camera
model and a keyword-spotting audio stream (``--scenario demo`` in ``config/scenarios.yaml`` if
present, else the built-in three applications below).
"""

import json
import sys
from hetero_infer.commands import argtypes

DEMO_APPS = (  # name, model, rate_hz, slo_scale
    ('camera_classifier', 'resnet50', 90.0, 5.0),
    ('camera_detector', 'googlenet', 120.0, 5.0),
    ('audio_keywords', 'matchboxnet_kws', 50.0, 5.0),
)


def add_arguments(parser):
    parser.add_argument('--platform', default=None,
                        help='platform name or YAML path (default: the scenario\'s, else xavier)')
    parser.add_argument('--scenarios', default=None, help='scenario YAML (default: the bundled)')
    parser.add_argument('--scenario', default=None,
                        help='scenario name (default: the built-in camera + audio demo)')
    parser.add_argument('--scheduler', default='interference_aware',
                        help='scheduler name (see hetero-infer evaluate --help)')
    parser.add_argument('--goal', default='goodput', help='goal the scheduler plans for')
    parser.add_argument('--duration-s', type=argtypes.sim_seconds, default=20.0,
                        help='simulated seconds')
    parser.add_argument('--warmup-s', type=argtypes.nonneg_float, default=2.0,
                        help='excluded from metrics')
    parser.add_argument('--seed', type=argtypes.seed, default=0)
    parser.add_argument('--out', type=argtypes.output_file, default=None, metavar='FILE.json',
                        help='write metrics JSON')


def _demo_apps(platform):
    from hetero_infer.core.model import load_model
    from hetero_infer.core.workload import App
    apps = []
    for name, model_name, rate, scale in DEMO_APPS:
        model = load_model(model_name)
        fastest = min(platform.isolated_latency_ms(model, p) for p in platform.processor_ids)
        apps.append(App(name, model, rate, scale * fastest))
    return apps


def run(args) -> int:
    from hetero_infer.core.metrics import compute_metrics
    from hetero_infer.core.platform import Platform
    from hetero_infer.core.scenarios import choose_platform, find_scenario, load_scenarios
    from hetero_infer.core.schedulers.interface import PlanContext
    from hetero_infer.core.schedulers.registry import get_scheduler
    from hetero_infer.core.twin import Twin
    from hetero_infer.errors import ConfigError

    scenario = (find_scenario(load_scenarios(args.scenarios), args.scenario) if args.scenario
                else None)
    name, warning = choose_platform(args.platform, [scenario] if scenario else [])
    if warning:
        print('hetero-infer simulate: warning: %s' % warning, file=sys.stderr)
    platform = Platform.load(name)
    apps = scenario.build(platform) if scenario else _demo_apps(platform)
    if args.duration_s <= args.warmup_s:
        raise ConfigError('--duration-s (%r) must exceed --warmup-s (%r)'
                          % (args.duration_s, args.warmup_s))
    plan = get_scheduler(args.scheduler).plan(
        PlanContext(platform=platform, apps=apps, goal=args.goal, seed=args.seed))
    print('platform %s (%s), scheduler %s, planned in %.2f s'
          % (platform.name, platform.power_mode, plan.scheduler, plan.plan_time_s))
    if plan.policy is not None:
        print('policy (share of each application\'s requests per processor):')
        procs = plan.policy.processor_ids
        print('  %-20s %s' % ('application', ' '.join('%6s' % p for p in procs)))
        for name, row in zip(plan.policy.app_names, plan.policy.allocation):
            print('  %-20s %s' % (name, ' '.join('%6.2f' % x for x in row)))
    records = Twin(platform, seed=args.seed).serve(apps, plan.make_dispatcher(),
                                                   duration_s=args.duration_s)
    m = compute_metrics(records, apps, warmup_s=args.warmup_s, duration_s=args.duration_s)
    print('%-20s %8s %8s %8s %7s %8s %8s  %s' % ('application', 'rate_hz', 'slo_ms', 'goodput',
                                              'slo_%', 'p50_ms', 'p99_ms', 'per processor'))
    for app, am in zip(apps, m.apps):
        print('%-20s %8.1f %8.2f %8.1f %7.1f %8.2f %8.2f  %s'
              % (app.name, app.rate_hz, app.slo_ms, am.goodput, 100 * am.slo_attainment,
                 am.p50_ms, am.p99_ms, am.per_processor))
    print('total: goodput %.1f req/s, throughput %.1f req/s, fairness %.3f'
          % (m.goodput, m.throughput, m.fairness))
    if args.out:
        doc = {'platform': platform.name, 'scheduler': plan.scheduler, 'goal': str(args.goal),
               'duration_s': args.duration_s, 'warmup_s': args.warmup_s, 'seed': args.seed,
               'metrics': m.to_dict(), 'plan': plan.to_dict()}
        with open(args.out, 'w') as f:
            json.dump(doc, f, indent=1)
            f.write('\n')
        print('wrote %s' % args.out)
    return 0
