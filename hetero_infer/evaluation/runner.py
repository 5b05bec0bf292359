"""The evaluation: every scheduler on every scenario, measured on the digital twin, replicated.

Sources of randomness, kept apart (docs/scheduling.md, "Seeds"):

* **trace seed** (``seed + r`` for replication ``r``): the arrivals and the twin's per-layer
  noise of every measurement. Within a scenario every scheduler is measured on the same traces
  (common random numbers), so differences between schedulers are paired.
* **plan seed** (``plan_seed + k`` for ``k < plan_seeds``): the search's sampling, the
  planner simulator's own arrival trace and the oracle's co-run measurements. A plan is made
  once per (scenario, scheduler, goal, plan seed) and reused by every replication.
* the oracle's **selection traces** (``ORACLE_SELECT_SEED + ORACLE_SEED_STRIDE * k + j``
  for plan seed ``k`` and trace ``j``, apart from every measurement seed): the twin runs on
  which the oracle picks its plan.
* the **confirmation traces** (seeds from ``CONFIRM_SEED``, apart from both): where
  interference_aware beats the oracle with a paired interval excluding zero, both plans are
  measured again on ``confirm_traces`` fresh traces, to tell a real miss of the oracle from a
  chance separation (with 40 scenarios, a 95% interval separates about 2 true ties by chance).

Pipeline (jobs run on :mod:`hetero_infer.evaluation.jobs`: this process, a process pool or a Dask
cluster): plan jobs per (scenario, searched scheduler, plan seed), each planning both goals;
then the oracle per (scenario, plan seed), given the other plans; then one measurement job per
(scenario, plan seed, replication) that serves every scheduler's plan on that trace: goodput,
throughput, fairness, minimum per-application SLO attainment over ``duration_s`` (``warmup_s``
excluded), and throughput at SLO99 by bisection (:func:`twin_slo99_throughput`). Jobs are
submitted as soon as their inputs exist, so the workers stay busy across the phases.
"""

import math
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Dict, List, Optional, Sequence, Tuple

from hetero_infer.errors import ConfigError
from hetero_infer.evaluation import statistics as eval_stats
from hetero_infer.evaluation.report import (  # noqa: F401  (write_outputs: this module's API)
    GOALS,
    METRICS,
    PROPOSED,
    write_outputs,
)
from hetero_infer.planning.schedulers.driver import plan_scheduler
from hetero_infer.planning.schedulers.interface import ORACLE_SELECT_SEED, Plan, PlanContext
from hetero_infer.planning.schedulers.interference_aware import InterferenceOptions
from hetero_infer.planning.schedulers.oracle import OracleOptions
from hetero_infer.planning.schedulers.registry import (
    evaluated_schedulers,
    get_scheduler,
    searching_schedulers,
)
from hetero_infer.planning.schedulers.searched import SearchOptions, router_factory
from hetero_infer.planning.search import SimSettings
from hetero_infer.planning.twin_measure import (  # noqa: F401  (part of this module's API)
    RACE_MARGIN,
    SloWatch,
    measure_on_twin,
    probe_duration_s,
    select_on_twin,
    slo99_scale,
    twin_slo99_throughput,
)

#: Seeds apart between two plan seeds' oracle selection traces: those of plan seed ``k`` are
#: ``ORACLE_SELECT_SEED + ORACLE_SEED_STRIDE * k + j`` (``ORACLE_SELECT_SEED``, the first of
#: them, is PlanContext's default; measurement trace seeds must stay below it), ``j`` under
#: ``oracle_select_traces`` / ``oracle_slo99_traces``, so each is at most the stride.
ORACLE_SEED_STRIDE = 100
#: first seed of the confirmation traces (see the module docstring)
CONFIRM_SEED = 2000000


@dataclass
class EvalSettings:
    """Budget knobs of the evaluation.

    :param replications: measurement traces per scenario (trace seeds ``seed .. seed+N-1``).
    :param plan_seeds: plans per scheduler and goal (plan seeds ``plan_seed .. +K-1``); the
        main tables use the first, the others feed the plan-variance study.
    :param slo99_requests: requests each SLO99 probe serves in its window (in total), and
        ``slo99_min_app_requests`` the least any one application gets there (the probe is
        lengthened until the rarest application reaches it).
    :param load_sweep: offered loads (fractions of the interference-free capacity) at which
        ``sweep_scenarios`` are also planned and measured (goodput, attainment, fairness).
    :param rank_scenarios: scenarios whose interference-aware search keeps its best
        ``rank_top`` candidates, each measured on the replication traces (rank correlation).
    """

    duration_s: float = 2.5
    warmup_s: float = 0.3
    replications: int = 5
    seed: int = 1
    plan_seeds: int = 1
    plan_seed: int = 0
    slo99: bool = True
    slo99_plan: bool = True
    slo99_hi_scale: float = 1.2
    slo99_iterations: int = 5
    slo99_requests: int = 2000
    slo99_min_app_requests: int = 300
    sim: SimSettings = field(default_factory=SimSettings)
    top_fraction: float = 0.01
    confidence: float = 0.99
    oracle_top_fraction: float = 0.01
    oracle_rerank: int = 3
    oracle_serve_s: float = 2.5
    oracle_select_traces: int = 20
    oracle_slo99_traces: int = 10
    confirm_traces: int = 10
    max_refine_evals: int = 100
    load_sweep: Tuple[float, ...] = ()
    sweep_scenarios: Tuple[str, ...] = ()
    rank_scenarios: Tuple[str, ...] = ()
    rank_top: int = 8

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> None:
        """:raises ConfigError: a setting out of range (named with its value)."""
        if self.replications < 1:
            raise ConfigError('replications must be >= 1, got %r' % self.replications)
        if self.plan_seeds < 1:
            raise ConfigError('plan_seeds must be >= 1, got %r' % self.plan_seeds)
        if not 0 <= self.seed or self.seed + self.replications > ORACLE_SELECT_SEED:
            raise ConfigError('trace seeds %d..%d must lie in [0, %d) (the oracle selects on '
                              'seeds from %d)' % (self.seed, self.seed + self.replications - 1,
                                                  ORACLE_SELECT_SEED, ORACLE_SELECT_SEED))
        if self.plan_seed < 0:
            raise ConfigError('plan_seed must be >= 0, got %r' % self.plan_seed)
        if ORACLE_SELECT_SEED + ORACLE_SEED_STRIDE * (self.plan_seed + self.plan_seeds) \
                > CONFIRM_SEED:
            raise ConfigError('plan seeds up to %d would run the oracle\'s selection into the '
                              'confirmation seeds (from %d)'
                              % (self.plan_seed + self.plan_seeds - 1, CONFIRM_SEED))
        for name in ('oracle_select_traces', 'oracle_slo99_traces'):
            v = getattr(self, name)
            if not 1 <= v <= ORACLE_SEED_STRIDE:
                raise ConfigError('%s must be in [1, %d] (the selection seeds of one plan '
                                  'seed), got %r' % (name, ORACLE_SEED_STRIDE, v))
        if self.confirm_traces < 0 or self.confirm_traces == 1:
            raise ConfigError('confirm_traces must be 0 (off) or >= 2 (a paired interval), '
                              'got %r' % self.confirm_traces)
        if self.duration_s <= self.warmup_s:
            raise ConfigError('duration_s (%r) must exceed warmup_s (%r)'
                              % (self.duration_s, self.warmup_s))
        for load in self.load_sweep:
            if not 0 < load <= 2:
                raise ConfigError('load sweep value %r must be in (0, 2]' % (load,))

    def trace_seeds(self) -> List[int]:
        return [self.seed + r for r in range(self.replications)]

    def plan_seed_list(self) -> List[int]:
        return [self.plan_seed + k for k in range(self.plan_seeds)]


# -- jobs ----------------------------------------------------------------------------------

_PLATFORMS: Dict[str, object] = {}


def _platform(name: str):
    p = _PLATFORMS.get(name)
    if p is None:
        from hetero_infer.platform.spec import Platform
        p = _PLATFORMS[name] = Platform.load(name)
    return p


def _context(platform, apps, settings: EvalSettings, plan_seed: int, goal: str,
             interference_model, keep_top: int = 4) -> PlanContext:
    options = (
        SearchOptions(top_fraction=settings.top_fraction, confidence=settings.confidence,
                      workers=1, max_refine_evals=settings.max_refine_evals, keep_top=keep_top),
        OracleOptions(top_fraction=settings.oracle_top_fraction, rerank=settings.oracle_rerank,
                      serve_s=settings.oracle_serve_s,
                      select_traces=settings.oracle_select_traces,
                      slo99_traces=settings.oracle_slo99_traces,
                      select_seed=ORACLE_SELECT_SEED + ORACLE_SEED_STRIDE * plan_seed,
                      twin_slo99=_slo99_kwargs(settings)),
        InterferenceOptions(model=interference_model))
    return PlanContext(platform=platform, apps=apps, goal=goal, seed=plan_seed,
                       settings=replace(settings.sim, seed=plan_seed), options=options)


def _slo99_kwargs(settings: EvalSettings) -> dict:
    return {'hi_scale': settings.slo99_hi_scale, 'iterations': settings.slo99_iterations,
            'requests': settings.slo99_requests,
            'min_app_requests': settings.slo99_min_app_requests}


def _record(plan: Plan, keep_candidates: bool = False) -> dict:
    """What a measurement job needs of a plan (picklable), and what the report shows."""
    rec = {'scheduler': plan.scheduler, 'source': plan.source or plan.scheduler,
           'policy': plan.policy, 'plan': plan.to_dict(), 'plan_time_s': plan.plan_time_s,
           'predicted': dict(plan.search.metrics) if plan.search is not None else None}
    if keep_candidates and plan.search is not None:
        rec['candidates'] = list(zip(plan.search.candidates, plan.search.candidate_scores))
    return rec


def _dispatcher_factory(rec: dict, ctx: PlanContext):
    """Rebuild a plan's dispatcher factory from its record: the policy's router, or (for a
    plan without a policy, always a rule-based scheduler's) that scheduler's plan again."""
    if rec['policy'] is not None:
        return router_factory(rec['policy'], ctx.settings)
    return plan_scheduler(rec['source'], ctx).make_dispatcher


def _cpu() -> float:
    """CPU seconds of this thread (job timings: independent of how busy the machine is)."""
    return time.thread_time()


def _plan_key(rec: dict) -> tuple:
    """Identity of the dispatcher a record makes: its allocation, or its rule's name."""
    pol = rec['policy']
    if pol is None:
        return ('rule', rec['source'])
    return ('policy', pol.allocation.shape, pol.allocation.tobytes(),
            tuple(sorted(pol.router.items())))


def _plan_job(scenario, platform_name: str, name: str, plan_seed: int, settings: EvalSettings,
              interference_model, slo99: bool, rank: bool) -> dict:
    """Plan ``name`` for both goals (one plan for rule-based schedulers)."""
    platform = _platform(platform_name)
    apps = scenario.build(platform)
    keep = settings.rank_top if rank else 4
    ctx = _context(platform, apps, settings, plan_seed, 'goodput', interference_model, keep)
    t0 = _cpu()
    plan = plan_scheduler(name, ctx)
    recs = {'goodput': _record(plan, rank)}
    times = {'goodput': _cpu() - t0}
    if slo99:
        if settings.slo99_plan and get_scheduler(name).searches:  # its plan depends on the goal
            t0 = _cpu()
            recs['slo99_throughput'] = _record(
                plan_scheduler(name, replace(ctx, goal='slo99_throughput')))
            times['slo99_throughput'] = _cpu() - t0
        else:
            recs['slo99_throughput'] = recs['goodput']
    return {'scenario': scenario.name, 'scheduler': name, 'plan_seed': plan_seed,
            'records': recs, 'time_s': times}


def _oracle_job(scenario, platform_name: str, plan_seed: int, settings: EvalSettings,
                refs: Dict[str, Dict[str, dict]], slo99: bool, interference_model=None) -> dict:
    """Plan the oracle with every other scheduler's plans (``refs[name][goal]``) as candidates
    (the driver plans those of schedulers left out of the evaluation)."""
    platform = _platform(platform_name)
    apps = scenario.build(platform)
    recs, times = {}, {}
    # one context for both goals: they share the oracle's measured co-runs
    first = _context(platform, apps, settings, plan_seed, GOALS[0], interference_model)
    for goal in (GOALS if slo99 else GOALS[:1]):
        ctx = replace(first, goal=goal)
        ctx = replace(ctx, seed_plans={
            name: Plan(name, _dispatcher_factory(r[goal], ctx), policy=r[goal]['policy'],
                       source=r[goal]['source'])
            for name, r in refs.items()})
        t0 = _cpu()
        recs[goal] = _record(plan_scheduler('oracle', ctx))
        times[goal] = _cpu() - t0
    return {'scenario': scenario.name, 'scheduler': 'oracle', 'plan_seed': plan_seed,
            'records': recs, 'time_s': times}


_RUN_KEYS = ('goodput', 'throughput', 'fairness', 'slo_attainment_min', 'app_attainment')


def _measure_job(scenario, platform_name: str, settings: EvalSettings, plan_seed: int,
                 replication: int, records: Dict[str, Dict[str, dict]], slo99: bool,
                 candidates) -> dict:
    """Serve every scheduler's plans on replication ``replication``'s trace."""
    from hetero_infer.twin.simulator import Twin

    platform = _platform(platform_name)
    apps = scenario.build(platform)
    seed = settings.trace_seeds()[replication]
    twin = Twin(platform, seed=seed)
    ctx = _context(platform, apps, settings, plan_seed, 'goodput', None)
    runs, times = {}, {}
    # the same plan on the same trace gives the same run: measure each distinct plan once
    # (the oracle often adopts another scheduler's plan; two searches may agree)
    done_goodput: Dict[tuple, dict] = {}
    done_slo99: Dict[tuple, float] = {}
    for name, recs in records.items():
        t0 = _cpu()
        key = _plan_key(recs['goodput'])
        run = done_goodput.get(key)
        if run is None:
            m = measure_on_twin(twin, apps, _dispatcher_factory(recs['goodput'], ctx),
                                duration_s=settings.duration_s, warmup_s=settings.warmup_s,
                                seed=seed)
            run = done_goodput[key] = {k: m[k] for k in _RUN_KEYS}
        run = dict(run)
        t1 = _cpu()
        if slo99:
            key = _plan_key(recs['slo99_throughput'])
            if key not in done_slo99:
                done_slo99[key] = twin_slo99_throughput(
                    twin, apps, _dispatcher_factory(recs['slo99_throughput'], ctx), seed=seed,
                    **_slo99_kwargs(settings))
            run['slo99_throughput'] = done_slo99[key]
        times[name] = {'goodput': t1 - t0, 'slo99': _cpu() - t1}
        runs[name] = run
    rank = None
    if candidates:
        t0 = _cpu()
        rank = [measure_on_twin(twin, apps, router_factory(pol, ctx.settings),
                                duration_s=settings.duration_s, warmup_s=settings.warmup_s,
                                seed=seed)['goodput'] for pol, _ in candidates]
        times['_rank_candidates'] = {'goodput': _cpu() - t0, 'slo99': 0.0}
    return {'scenario': scenario.name, 'plan_seed': plan_seed, 'replication': replication,
            'runs': runs, 'rank': rank, 'time_s': times}


# -- the pipeline --------------------------------------------------------------------------

def sweep_name(name: str, load: float) -> str:
    return '%s@%.2f' % (name, load)


@dataclass
class _Unit:
    """One scenario to plan and measure (a main scenario or a load-sweep variant)."""

    scenario: object
    slo99: bool
    plan_seeds: List[int]
    main: bool


def _units(scenarios: Sequence, settings: EvalSettings) -> List[_Unit]:
    units = [_Unit(s, settings.slo99, settings.plan_seed_list(), True) for s in scenarios]
    if settings.load_sweep:
        names = list(settings.sweep_scenarios) or [s.name for s in scenarios]
        by_name = {s.name: s for s in scenarios}
        for n in names:
            if n not in by_name:
                raise ConfigError('load sweep scenario %r is not among the evaluated ones (%s)'
                                  % (n, ', '.join(by_name)))
            s = by_name[n]
            if s.applications[0].ratio is None:
                raise ConfigError('load sweep scenario %r gives rates, not ratios: its load '
                                  'cannot be changed' % n)
            for load in settings.load_sweep:
                units.append(_Unit(replace(s, name=sweep_name(n, load), load=float(load)),
                                   False, settings.plan_seed_list()[:1], False))
    return units


def run_evaluation(scenarios: Sequence, platform_name: str, *,
                   schedulers: Optional[Sequence[str]] = None,
                   settings: Optional[EvalSettings] = None, workers: int = 2,
                   interference_model=None, progress=None, cluster=None) -> dict:
    """Plan and measure ``scenarios``; returns ``{'summary': ..., 'details': ...}``.

    :param schedulers: names, in the order of the output (default: the evaluated ones,
        :func:`~hetero_infer.planning.schedulers.evaluated_schedulers`).
    :param workers: local processes (ignored with ``cluster``).
    :param cluster: a Dask scheduler address, ``local[:N]`` or a ``distributed.Client``
        (:mod:`hetero_infer.evaluation.jobs`); ``None``: the local process pool.
    :param interference_model: passed to the interference-aware scheduler (default: the
        committed model of the platform; a path or an object, see ``predictors``).
    :param progress: called with each finished measurement job's result.
    """
    from hetero_infer.evaluation.jobs import make_jobs

    settings = settings or EvalSettings()
    settings.check()
    schedulers = evaluated_schedulers() if schedulers is None else list(schedulers)
    for n in schedulers:
        get_scheduler(n)
    for n in settings.rank_scenarios:
        if n not in {s.name for s in scenarios}:
            raise ConfigError('rank scenario %r is not among the evaluated ones' % n)
    for sc in scenarios:
        if getattr(sc, 'faults', ()):
            raise ConfigError('scenario %s injects faults (%s): the evaluation compares '
                              'schedulers on healthy processors; serve it with hetero-infer '
                              'simulate' % (sc.name, ', '.join(str(f) for f in sc.faults)))
    units = _units(scenarios, settings)
    by_unit = {u.scenario.name: u for u in units}
    planned = [n for n in schedulers if n != 'oracle']
    searched = [n for n in planned if get_scheduler(n).searches]
    t0 = time.perf_counter()
    jobs = make_jobs(workers, cluster)
    pending: Dict[object, tuple] = {}
    plans: Dict[Tuple[str, int], Dict[str, Dict[str, dict]]] = {}
    plan_times: List[dict] = []
    measured: List[dict] = []

    def rank_of(u: _Unit) -> bool:
        return u.main and u.scenario.name in settings.rank_scenarios and PROPOSED in planned

    def submit_measurements(u: _Unit, k: int) -> None:
        recs = plans[(u.scenario.name, k)]
        cands = None
        if rank_of(u) and k == u.plan_seeds[0]:
            cands = recs[PROPOSED]['goodput'].get('candidates')
        ordered = {n: recs[n] for n in schedulers}
        for r in range(settings.replications):
            f = jobs.submit(_measure_job, u.scenario, platform_name, settings, k, r, ordered,
                            u.slo99, cands)
            pending[f] = ('measure', u.scenario.name, k)

    def plans_ready(u: _Unit, k: int) -> None:
        recs = plans[(u.scenario.name, k)]
        if not all(n in recs for n in planned):
            return
        if 'oracle' in schedulers and 'oracle' not in recs:
            refs = {n: recs[n] for n in planned}
            f = jobs.submit(_oracle_job, u.scenario, platform_name, k, settings, refs, u.slo99,
                            interference_model)
            pending[f] = ('oracle', u.scenario.name, k)
            return
        submit_measurements(u, k)

    def take_plan(res: dict) -> None:
        key = (res['scenario'], res['plan_seed'])
        plans.setdefault(key, {})[res['scheduler']] = res['records']
        plan_times.append({'scheduler': res['scheduler'], 'time_s': res['time_s']})

    try:
        # searched plans as jobs (heaviest first); rule-based ones here (they take microseconds)
        for u in units:
            for k in u.plan_seeds:
                plans[(u.scenario.name, k)] = {}
                for n in searched:
                    f = jobs.submit(_plan_job, u.scenario, platform_name, n, k, settings,
                                    interference_model, u.slo99, rank_of(u) and n == PROPOSED)
                    pending[f] = ('plan', u.scenario.name, k)
        for u in units:
            for k in u.plan_seeds:
                for n in planned:
                    if n not in searched:
                        take_plan(_plan_job(u.scenario, platform_name, n, k, settings,
                                            interference_model, u.slo99, False))
                plans_ready(u, k)
        while pending:
            for f in jobs.wait_any(list(pending)):
                kind, name, k = pending.pop(f)
                res = f.result()
                if kind in ('plan', 'oracle'):
                    take_plan(res)
                    plans_ready(by_unit[name], k)
                else:
                    measured.append(res)
                    if progress is not None:
                        progress(res)
        confirmed = _confirm_oracle(jobs, units, schedulers, settings, plans, measured,
                                    platform_name)
    finally:
        jobs.close()
    wall = time.perf_counter() - t0
    return _assemble(scenarios, units, schedulers, settings, plans, plan_times, measured,
                     platform_name, wall, jobs, confirmed)


def _confirm_job(scenario, platform_name: str, settings: EvalSettings, plan_seed: int,
                 metric: str, records: Dict[str, dict], seed: int) -> dict:
    """Serve the plans of ``records`` (scheduler -> the record for ``metric``) on trace
    ``seed``, as a measurement job would: ``{'values': {scheduler: value}, ...}``."""
    from hetero_infer.twin.simulator import Twin

    platform = _platform(platform_name)
    apps = scenario.build(platform)
    twin = Twin(platform, seed=seed)
    ctx = _context(platform, apps, settings, plan_seed, metric, None)
    values, t0 = {}, _cpu()
    for name, rec in records.items():
        make = _dispatcher_factory(rec, ctx)
        if metric == 'slo99_throughput':
            values[name] = twin_slo99_throughput(twin, apps, make, seed=seed,
                                                 **_slo99_kwargs(settings))
        else:
            values[name] = measure_on_twin(twin, apps, make, duration_s=settings.duration_s,
                                           warmup_s=settings.warmup_s, seed=seed)[metric]
    return {'scenario': scenario.name, 'metric': metric, 'seed': seed, 'values': values,
            'time_s': _cpu() - t0}


def _oracle_misses(entries: List[dict]) -> List[Tuple[str, str]]:
    """``(scenario, metric)`` where interference_aware beats the oracle with a paired 95%
    interval that excludes zero."""
    out = []
    for e in entries:
        a, o = e['results'].get(PROPOSED), e['results'].get('oracle')
        if a is None or o is None:
            continue
        for metric in GOALS:
            key = metric + '_runs'
            if key in a and key in o and eval_stats.paired_scenario(
                    a[key], o[key])['outcome'] == 'win':
                out.append((e['name'], metric))
    return out


def _confirm_oracle(jobs, units, schedulers, settings, plans, measured, platform_name
                    ) -> Dict[str, Dict[str, dict]]:
    """Measure interference_aware's and the oracle's plans again on fresh traces wherever
    the first beat the second with an interval excluding zero (:data:`CONFIRM_SEED`).

    Returns ``{metric: {scenario: {'values': {scheduler: [per trace]}, 'seeds': [...]}}}``.
    """
    if settings.confirm_traces < 2 or PROPOSED not in schedulers or 'oracle' not in schedulers:
        return {}
    k0 = settings.plan_seed_list()[0]
    mains = [u for u in units if u.main]
    entries = [{'name': u.scenario.name,
                'results': _results(_runs_of(measured, u.scenario.name, k0,
                                             settings.replications), [PROPOSED, 'oracle'])}
               for u in mains]
    by_name = {u.scenario.name: u for u in mains}
    seeds = [CONFIRM_SEED + j for j in range(settings.confirm_traces)]
    pending = {}
    for name, metric in _oracle_misses(entries):
        recs = {n: plans[(name, k0)][n][metric] for n in (PROPOSED, 'oracle')}
        for s in seeds:
            f = jobs.submit(_confirm_job, by_name[name].scenario, platform_name, settings, k0,
                            metric, recs, s)
            pending[f] = (name, metric)
    out: Dict[str, Dict[str, dict]] = {}
    while pending:
        for f in jobs.wait_any(list(pending)):
            name, metric = pending.pop(f)
            res = f.result()
            row = out.setdefault(metric, {}).setdefault(
                name, {'seeds': seeds, 'values': {PROPOSED: [None] * len(seeds),
                                                  'oracle': [None] * len(seeds)},
                       'time_s': 0.0})
            for n, v in res['values'].items():
                row['values'][n][seeds.index(res['seed'])] = float(v)
            row['time_s'] += res['time_s']
    return out


# -- results -------------------------------------------------------------------------------

def _runs_of(measured: List[dict], name: str, k: int, n: int) -> List[dict]:
    out: List[Optional[dict]] = [None] * n
    for m in measured:
        if m['scenario'] == name and m['plan_seed'] == k:
            out[m['replication']] = m
    if any(x is None for x in out):
        raise RuntimeError('scenario %s, plan seed %d: a measurement job is missing' % (name, k))
    return out  # type: ignore[return-value]


def _results(runs: List[dict], schedulers: Sequence[str]) -> Dict[str, dict]:
    """Per scheduler: each metric's replication mean and ``<metric>_runs`` in trace order."""
    out = {}
    for n in schedulers:
        r = {}
        for metric in METRICS:
            vals = [float(m['runs'][n][metric]) for m in runs if metric in m['runs'][n]]
            if len(vals) == len(runs):
                r[metric] = eval_stats.mean(vals)
                r[metric + '_runs'] = vals
        out[n] = r
    return out


def _assemble(scenarios, units, schedulers, settings, plans, plan_times, measured,
              platform_name, wall, jobs, confirmed=None) -> dict:
    n = settings.replications
    k0 = settings.plan_seed_list()[0]
    entries, stats_rows, fidelity = [], [], []
    searching = searching_schedulers()  # registry order: the fidelity rows' order
    for s in scenarios:
        runs = _runs_of(measured, s.name, k0, n)
        results = _results(runs, schedulers)
        entries.append({'name': s.name, 'results': results})
        ci = {}
        for sched, r in results.items():
            ci[sched] = {}
            for metric in METRICS:
                if metric + '_runs' in r:
                    m, lo, hi = eval_stats.mean_ci95(r[metric + '_runs'])
                    ci[sched][metric] = {'mean': m, 'ci95': None if lo is None else [lo, hi]}
        recs = plans[(s.name, k0)]
        plan_info = {sched: {g: dict(rec['plan'], predicted=rec['predicted'])
                             for g, rec in recs[sched].items()} for sched in schedulers}
        stats_rows.append({'name': s.name, 'stats': ci, 'plans': plan_info,
                           'app_attainment': {
                               sched: [eval_stats.mean(x) for x in zip(
                                   *[m['runs'][sched]['app_attainment'] for m in runs])]
                               for sched in schedulers}})
        for sched in searching:
            if sched not in recs:
                continue
            rec = recs[sched]['goodput']
            if rec['predicted'] is None or rec['source'] != sched:
                continue
            pred, meas = rec['predicted'].get('goodput'), results[sched]['goodput']
            fidelity.append({'scenario': s.name, 'scheduler': sched,
                             'predicted_goodput': pred, 'measured_goodput': meas,
                             'error_pct': (100.0 * (pred / meas - 1.0)
                                           if pred is not None and meas > 0 else None)})
    paired, paired_extra, per_scenario_pairs = _paired(entries, schedulers)
    summary = {'replications': n, 'scenarios': entries,
               'average_improvement_pct': {
                   metric: {b: v['talk_mean_pct'] for b, v in row.items()
                            if v['talk_mean_pct'] is not None}
                   for metric, row in paired.items()},
               'paired': paired}
    summary['average_improvement_pct'] = {m: r for m, r in
                                          summary['average_improvement_pct'].items() if r}
    details = {
        'platform': platform_name, 'settings': settings.to_dict(),
        'seeds': {'trace_seeds': settings.trace_seeds(), 'plan_seeds': settings.plan_seed_list(),
                  'oracle_select_seeds_from': ORACLE_SELECT_SEED + ORACLE_SEED_STRIDE * k0,
                  'confirm_seeds_from': CONFIRM_SEED},
        'wall_time_s': round(wall, 1), 'engine': jobs.name, 'workers': jobs.workers,
        'paired_counts': paired_extra, 'paired_per_scenario': per_scenario_pairs,
        'oracle_check': _oracle_check(per_scenario_pairs, confirmed or {}),
        'scenario_stats': stats_rows,
        'plan_fidelity': _fidelity_summary(fidelity),
        'rank_correlation': _rank(settings, plans, measured, k0),
        'plan_variance': _plan_variance(scenarios, schedulers, settings, measured),
        'load_sweep': _load_sweep(units, schedulers, settings, measured, k0),
        'time_profile': _time_profile(plan_times, measured, sum(
            row['time_s'] for rows in (confirmed or {}).values() for row in rows.values())),
    }
    return {'summary': summary, 'details': details}


def _paired(entries: List[dict], schedulers: Sequence[str]):
    paired: Dict[str, Dict[str, dict]] = {}
    extra: Dict[str, Dict[str, dict]] = {}
    per: Dict[str, Dict[str, List[dict]]] = {}
    if PROPOSED not in schedulers:
        return paired, extra, per
    for metric in METRICS:
        for b in schedulers:
            if b == PROPOSED:
                continue
            rows = []
            for e in entries:
                a, c = e['results'][PROPOSED], e['results'][b]
                if metric + '_runs' not in a or metric + '_runs' not in c:
                    continue
                p = eval_stats.paired_scenario(a[metric + '_runs'], c[metric + '_runs'])
                p['scenario'] = e['name']
                rows.append(p)
            if not rows:
                continue
            agg = eval_stats.paired_summary(rows)
            paired.setdefault(metric, {})[b] = agg['summary']
            extra.setdefault(metric, {})[b] = agg['extra']
            per.setdefault(metric, {})[b] = rows
    return paired, extra, per


def _oracle_check(per: Dict[str, Dict[str, List[dict]]],
                  confirmed: Dict[str, Dict[str, dict]]) -> Dict[str, dict]:
    """Scenarios where interference_aware's mean beats the oracle's; of those, how many with a
    paired interval that excludes zero; and of those, what the confirmation traces say
    (``confirmed``: :func:`_confirm_oracle`): a miss that is real shows again on fresh
    traces (their paired interval excludes zero the same way), a chance separation does not."""
    out = {}
    for metric in ('goodput', 'slo99_throughput'):
        rows = per.get(metric, {}).get('oracle')
        if not rows:
            continue
        beaten = [p for p in rows if p['diff'] > 0]
        names = [p['scenario'] for p in beaten if p['outcome'] == 'win']
        checks = []
        # the scenarios measured again (those of ``names``, by :func:`_oracle_misses`)
        for name in [p['scenario'] for p in rows]:
            c = confirmed.get(metric, {}).get(name)
            if c is None:
                continue
            p = eval_stats.paired_scenario(c['values'][PROPOSED], c['values']['oracle'])
            checks.append({'scenario': name, 'traces': len(c['seeds']),
                           'seeds_from': c['seeds'][0], 'mean': p['mean'],
                           'oracle_mean': p['baseline_mean'], 'diff': p['diff'],
                           'diff_ci95': p['diff_ci95'],
                           'reproduced': p['outcome'] == 'win',
                           'values': c['values'], 'time_s': round(c['time_s'], 3)})
        out[metric] = {'scenarios': len(rows), 'beaten': len(beaten),
                       'beaten_ci_excludes_zero': len(names), 'beaten_names': names,
                       'confirmation': checks,
                       'reproduced_on_fresh_traces': [c['scenario'] for c in checks
                                                      if c['reproduced']]}
    return out


def _fidelity_summary(rows: List[dict]) -> dict:
    by: Dict[str, List[dict]] = {}
    for r in rows:
        by.setdefault(r['scheduler'], []).append(r)
    agg = {}
    for sched, rs in by.items():
        errs = [100.0 * (r['predicted_goodput'] / r['measured_goodput'] - 1.0)
                for r in rs if r['measured_goodput'] > 0]
        agg[sched] = {
            'scenarios': len(rs),
            'median_error_pct': statistics.median(errs) if errs else None,
            'median_abs_error_pct': statistics.median([abs(e) for e in errs]) if errs else None,
            'spearman_over_scenarios': eval_stats.spearman(
                [r['predicted_goodput'] for r in rs], [r['measured_goodput'] for r in rs])}
    return {'per_scenario': rows, 'summary': agg}


def _rank(settings, plans, measured, k0) -> List[dict]:
    out = []
    for name in settings.rank_scenarios:
        rec = plans.get((name, k0), {}).get(PROPOSED, {}).get('goodput')
        if not rec or not rec.get('candidates'):
            continue
        rows = [m['rank'] for m in measured
                if m['scenario'] == name and m['plan_seed'] == k0 and m['rank']]
        meas = [eval_stats.mean(x) for x in zip(*rows)]
        pred = [score for _, score in rec['candidates']]
        out.append({'scenario': name, 'predicted_goodput': pred, 'measured_goodput': meas,
                    'spearman': eval_stats.spearman(pred, meas),
                    'chosen_rank_measured': 1 + sorted(meas, reverse=True).index(meas[0])
                    if meas else None})
    return out


def _plan_variance(scenarios, schedulers, settings, measured) -> List[dict]:
    if settings.plan_seeds < 2 or settings.replications < 2:
        return []
    out = []
    for s in scenarios:
        row = {'scenario': s.name}
        for sched in schedulers:
            for metric in ('goodput', 'slo99_throughput'):
                vals = []
                for k in settings.plan_seed_list():
                    runs = _runs_of(measured, s.name, k, settings.replications)
                    if metric not in runs[0]['runs'][sched]:
                        break
                    vals.append([m['runs'][sched][metric] for m in runs])
                if len(vals) == settings.plan_seeds:
                    split = eval_stats.variance_split(vals)
                    split['values'] = vals  # [plan seed][replication]
                    row.setdefault(sched, {})[metric] = split
        out.append(row)
    return out


def _load_sweep(units, schedulers, settings, measured, k0) -> List[dict]:
    out = []
    for u in units:
        if u.main:
            continue
        runs = _runs_of(measured, u.scenario.name, k0, settings.replications)
        res = {}
        for sched in schedulers:
            res[sched] = {}
            for metric in ('goodput', 'slo_attainment_min', 'fairness', 'throughput'):
                m, lo, hi = eval_stats.mean_ci95([x['runs'][sched][metric] for x in runs])
                res[sched][metric] = {'mean': m, 'ci95': None if lo is None else [lo, hi]}
        base, _, load = u.scenario.name.rpartition('@')
        out.append({'scenario': base, 'load': float(load), 'results': res})
    return out


def _time_profile(plan_times: List[dict], measured: List[dict], confirm_s: float = 0.0
                  ) -> dict:
    """Where the time went: CPU seconds of the jobs summed by phase and scheduler (divide the
    total by the workers for the wall time of a machine kept busy); ``confirm_s``: the
    oracle check's measurements on fresh traces."""
    plan: Dict[str, float] = {}
    for p in plan_times:
        plan[p['scheduler']] = plan.get(p['scheduler'], 0.0) + sum(p['time_s'].values())
    good: Dict[str, float] = {}
    slo: Dict[str, float] = {}
    for m in measured:
        for sched, t in m['time_s'].items():
            good[sched] = good.get(sched, 0.0) + t['goodput']
            slo[sched] = slo.get(sched, 0.0) + t['slo99']
    r3 = {k: round(v, 2) for k, v in plan.items()}
    total = sum(plan.values()) + sum(good.values()) + sum(slo.values()) + confirm_s
    return {'plan_s': r3, 'measure_goodput_s': {k: round(v, 2) for k, v in good.items()},
            'measure_slo99_s': {k: round(v, 2) for k, v in slo.items()},
            'confirm_s': round(confirm_s, 2), 'total_job_s': round(total, 1)}


def average_improvements(scenarios: List[dict], proposed: str = PROPOSED) -> Dict[str, dict]:
    """The talk's statistic from per-scenario means: per metric and baseline, the mean over
    scenarios of ``100 * (proposed / baseline - 1)``, scenarios with a zero baseline skipped."""
    out: Dict[str, Dict[str, float]] = {}
    for metric in METRICS:
        per: Dict[str, float] = {}
        bases = []
        for s in scenarios:
            for b in s['results']:
                if b != proposed and b not in bases:
                    bases.append(b)
        for b in bases:
            vals = []
            for s in scenarios:
                r = s['results']
                if proposed not in r or b not in r or metric not in r[b]:
                    continue
                base = r[b][metric]
                if base > 0 and math.isfinite(base):
                    vals.append(100.0 * (r[proposed][metric] / base - 1.0))
            if vals:
                per[b] = round(sum(vals) / len(vals), 3)
        if per:
            out[metric] = per
    return out
