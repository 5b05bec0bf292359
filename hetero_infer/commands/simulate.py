"""``hetero-infer simulate``: plan one scenario with a scheduler and serve it on the digital twin.

The default is the embedded demo: the simulated Xavier with a camera classifier, a second camera
model and a keyword-spotting audio stream (``--scenario demo`` in ``config/scenarios.yaml`` if
present, else the built-in three applications below).

With faults (``--fault dla1:error@6+6``, repeatable, or the scenario's ``faults:`` list) the twin
serves them as the node would (detection, fail-over, recovery: :mod:`hetero_infer.twin.fault_sim`)
and the command adds goodput before, during and after the faults, and when each processor left and
rejoined routing.
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
    argtypes.add_criticality_arguments(parser)
    parser.add_argument('--out', type=argtypes.output_file, default=None, metavar='FILE.json',
                        help='write metrics JSON')
    parser.add_argument('--fault', action='append', default=[], metavar='PROC:KIND@S[+D]',
                        help='inject a processor fault (repeatable): from S simulated seconds, '
                        'for D seconds (for ever without +D), every inference on PROC raises '
                        '(KIND error) or does not return (hang), e.g. dla1:error@6+6')


def _demo_apps(platform):
    from hetero_infer.models.zoo import load_model
    from hetero_infer.workload.requests import App
    apps = []
    for name, model_name, rate, scale in DEMO_APPS:
        model = load_model(model_name)
        fastest = min(platform.isolated_latency_ms(model, p) for p in platform.processor_ids)
        apps.append(App(name, model, rate, scale * fastest))
    return apps


def run(args) -> int:
    from hetero_infer.errors import ConfigError
    from hetero_infer.evaluation.scenarios import choose_platform, find_scenario, load_scenarios
    from hetero_infer.planning.metrics import compute_metrics
    from hetero_infer.planning.schedulers.driver import plan_scheduler
    from hetero_infer.planning.schedulers.interface import PlanContext
    from hetero_infer.platform.spec import Platform
    from hetero_infer.twin.faults import parse_faults
    from hetero_infer.twin.simulator import Twin

    scenario = (find_scenario(load_scenarios(args.scenarios), args.scenario) if args.scenario
                else None)
    name, warning = choose_platform(args.platform, [scenario] if scenario else [])
    if warning:
        print('hetero-infer simulate: warning: %s' % warning, file=sys.stderr)
    platform = Platform.load(name)
    faults = parse_faults(args.fault)
    apps = argtypes.apply_criticality(
        scenario.build(platform) if scenario else _demo_apps(platform), args)
    if scenario:
        faults = tuple(scenario.faults) + faults
    if args.duration_s <= args.warmup_s:
        raise ConfigError('--duration-s (%r) must exceed --warmup-s (%r)'
                          % (args.duration_s, args.warmup_s))
    plan = plan_scheduler(args.scheduler, PlanContext(platform=platform, apps=apps,
                                                      goal=args.goal, seed=args.seed))
    print('platform %s (%s), scheduler %s, planned in %.2f s'
          % (platform.name, platform.power_mode, plan.scheduler, plan.plan_time_s))
    if plan.policy is not None:
        print('policy (share of each application\'s requests per processor):')
        procs = plan.policy.processor_ids
        print('  %-20s %s' % ('application', ' '.join('%6s' % p for p in procs)))
        for name, row in zip(plan.policy.app_names, plan.policy.allocation):
            print('  %-20s %s' % (name, ' '.join('%6.2f' % x for x in row)))
    twin = Twin(platform, seed=args.seed)
    dispatcher = plan.make_dispatcher()
    if faults and plan.policy is not None and hasattr(dispatcher, 'set_policy'):
        dispatcher = Replanning(dispatcher, plan, args.scheduler, platform, apps, args.goal,
                                args.seed)
    records = twin.serve(apps, dispatcher, duration_s=args.duration_s, faults=faults)
    m = compute_metrics(records, apps, warmup_s=args.warmup_s, duration_s=args.duration_s)
    print('%-20s %8s %8s %8s %7s %8s %8s  %s' % ('application', 'rate_hz', 'slo_ms', 'goodput',
                                              'slo_%', 'p50_ms', 'p99_ms', 'per processor'))
    for app, am in zip(apps, m.apps):
        print('%-20s %8.1f %8.2f %8.1f %7.1f %8.2f %8.2f  %s'
              % (app.name, app.rate_hz, app.slo_ms, am.goodput, 100 * am.slo_attainment,
                 am.p50_ms, am.p99_ms, am.per_processor))
    print('total: goodput %.1f req/s, throughput %.1f req/s, fairness %.3f'
          % (m.goodput, m.throughput, m.fairness))
    phases = []
    if faults:
        # the same arrivals and plan without the faults, for comparison
        healthy = Twin(platform, seed=args.seed).serve(apps, plan.make_dispatcher(),
                                                        duration_s=args.duration_s)
        phases = fault_phases(records, apps, faults, twin.last_faults, args.warmup_s,
                              args.duration_s, dispatcher, healthy)
        print(phases_table(phases, twin.last_faults))
    if args.out:
        doc = {'platform': platform.name, 'scheduler': plan.scheduler, 'goal': str(args.goal),
               'duration_s': args.duration_s, 'warmup_s': args.warmup_s, 'seed': args.seed,
               'metrics': m.to_dict(), 'plan': plan.to_dict(),
               'faults': [str(f) for f in faults], 'phases': phases}
        with open(args.out, 'w') as f:
            json.dump(doc, f, indent=1)
            f.write('\n')
        print('wrote %s' % args.out)
    return 0


def fault_phases(records, apps, faults, fsim, warmup_s: float, duration_s: float,
                 dispatcher=None, healthy=None):
    """Goodput, throughput and drops before, during and after the faults (from the first fault's
    start to the last one's end, within [warmup_s, duration_s)), the goodput of the same window
    in ``healthy`` (the run without faults) and the health transitions."""
    from hetero_infer.planning.metrics import compute_metrics
    start = max(warmup_s, min(f.at_s for f in faults))
    end = min(duration_s, max(f.end_s for f in faults))
    out = []
    for name, lo, hi in (('before', warmup_s, start), ('during', start, end),
                         ('after', end, duration_s)):
        if hi - lo < 1e-9:
            continue
        m = compute_metrics(records, apps, warmup_s=lo, duration_s=hi)
        drops = {}
        for am in m.apps:
            for k, v in am.dropped.items():
                drops[k] = drops.get(k, 0) + v
        base = (compute_metrics(healthy, apps, warmup_s=lo, duration_s=hi).goodput
                if healthy is not None else float('nan'))
        out.append({'phase': name, 'from_s': round(lo, 3), 'to_s': round(hi, 3),
                    'goodput': round(m.goodput, 2), 'goodput_no_fault': round(base, 2),
                    'throughput': round(m.throughput, 2),
                    'offered': sum(am.offered for am in m.apps), 'drops': drops,
                    'per_processor': _per_processor(m)})
    out.append({'replans': list(getattr(dispatcher, 'replans', [])),
                'health_events': [{'t_s': round(e.t_s, 3), 'processor': e.proc,
                                   'healthy': e.healthy, 'reason': e.reason}
                                  for e in fsim.health.events],
                'redispatched': fsim.redispatched, 'late_discarded': fsim.late_discarded})
    return out


def _per_processor(m):
    total = {}
    for am in m.apps:
        for p, n in am.per_processor.items():
            total[p] = total.get(p, 0) + n
    return total


def phases_table(phases, fsim) -> str:
    lines = ['', 'faults: %s' % ', '.join(str(f) for f in fsim.schedule.faults),
             '%-7s %15s %9s %9s %9s %8s  %-26s %s'
             % ('phase', 'window s', 'goodput', 'no fault', 'thruput', 'offered',
                'results per processor', 'drops'),
             '-' * 106]
    for ph in phases[:-1]:
        lines.append('%-7s %7.1f-%-7.1f %9.1f %9.1f %9.1f %8d  %-26s %s'
                     % (ph['phase'], ph['from_s'], ph['to_s'], ph['goodput'],
                        ph['goodput_no_fault'], ph['throughput'], ph['offered'],
                        ' '.join('%s=%d' % kv for kv in sorted(ph['per_processor'].items())),
                        ','.join('%s=%d' % kv for kv in sorted(ph['drops'].items())) or '-'))
    for e in phases[-1]['health_events']:
        lines.append('%7.2f s  %s %s (%s)' % (e['t_s'], e['processor'],
                                              'healthy' if e['healthy'] else 'unhealthy',
                                              e['reason']))
    for r in phases[-1]['replans']:
        lines.append('re-planned for processors %s (planning took %.2f s of wall time, none of '
                     'simulated time)' % (', '.join(r['processors']), r['plan_time_s']))
    lines.append('re-dispatched after a failure: %d; late results discarded: %d'
                 % (phases[-1]['redispatched'], phases[-1]['late_discarded']))
    return '\n'.join(lines)


class Replanning:
    """The planned dispatcher, re-planned without the processors that are unhealthy, as the node
    does (:class:`~hetero_infer.twin.fault_sim.FaultSim` calls ``remove_processor`` /
    ``restore_processor``). A plan per set of healthy processors, made once; the switch is
    instant in simulated time (the node's re-plan takes about a second). ``scheduler`` is the
    name of the scheduler that re-plans."""

    def __init__(self, router, plan, scheduler: str, platform, apps, goal, seed: int) -> None:
        self.router = router
        self.scheduler, self.platform, self.apps = scheduler, platform, apps
        self.goal, self.seed = goal, seed
        self._plans = {frozenset(): plan.policy}
        self._down = set()
        self.replans = []

    def reset(self, apps, platform=None):
        return self.router.reset(apps, platform)

    def dispatch(self, app_index, now_ms, view=None):
        return self.router.dispatch(app_index, now_ms, view)

    def completed(self, app_index, proc_id, latency_ms):
        return self.router.completed(app_index, proc_id, latency_ms)

    def remove_processor(self, proc):
        self._down.add(proc)
        self.router.remove_processor(proc)
        self.router.set_policy(self._plan_for(frozenset(self._down)))

    def restore_processor(self, proc):
        self._down.discard(proc)
        self.router.restore_processor(proc)
        self.router.set_policy(self._plan_for(frozenset(self._down)))

    def _plan_for(self, down):
        policy = self._plans.get(down)
        if policy is not None:
            return policy
        from hetero_infer.planning.schedulers.driver import plan_scheduler
        from hetero_infer.planning.schedulers.interface import PlanContext
        from hetero_infer.workload.requests import App
        plat = self.platform
        apps = []
        for a in self.apps:
            procs = [p for p in (a.processors or plat.processor_ids)
                     if p not in down and plat.can_run(a.model, p)]
            apps.append(App(a.name, a.model, a.rate_hz, a.slo_ms,
                            tuple(procs) if procs else a.processors, a.weight,
                            a.min_attainment))
        plan = plan_scheduler(self.scheduler, PlanContext(platform=plat, apps=apps,
                                                          goal=self.goal, seed=self.seed))
        self.replans.append({'processors': [p for p in plat.processor_ids if p not in down],
                             'plan_time_s': round(plan.plan_time_s, 3)})
        self._plans[down] = plan.policy
        return plan.policy
