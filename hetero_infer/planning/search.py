"""Goal-independent policy search: sampled simulation, then local refinement.

1. **Sampling.** ``n`` allocation matrices are drawn at random (each row uniform on its simplex,
   on a 0.05 grid so that "not on this processor" has a real probability). With ``n`` samples the
   best one lies in the top fraction ``p`` of the policy space with probability
   ``1 - (1 - p)^n`` (Radojkovic et al.), so ``n = ceil(log(1 - c) / log(1 - p))``: 459 for the
   top 1% with 99% confidence.
2. **Scoring.** Each policy is served by the planner's simulator (:mod:`plansim`) with the same
   :class:`~hetero_infer.planning.router.PriorityRouter` live serving uses, latencies from a
   pluggable predictor, and the same arrival trace for every policy; the goal turns the
   simulated metrics into one number.
3. **Refinement.** Hill climbing from the best sample: move ``step`` of one application's share
   between two processors, take the best improving move, halve the step when none improves.

Work is spread over processes (``concurrent.futures.ProcessPoolExecutor``); the split of the work
into chunks does not depend on the number of processes, so a seed gives the same policy on one
core or many. Without a usable process pool the search runs serially.

For the goal ``slo99_throughput`` each chunk keeps its best load scale so far and tries a new
policy at that load first: a policy that already misses the SLO there cannot be better (attainment
falls as load rises), so it costs one simulation instead of a whole bisection. That holds on
one trace with one router only: the finalists, scored per trace and router option set, are
always bisected in full.
"""

import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from hetero_infer.errors import ConfigError
from hetero_infer.interference.predictors import LatencyTable, Predictor
from hetero_infer.planning.goals import get_goal
from hetero_infer.planning.goals.base import Goal
from hetero_infer.planning.metrics import SLO_TARGET
from hetero_infer.planning.plansim import DEFAULT_MAX_QUEUE, PlanSimulator
from hetero_infer.planning.policy import (
    Policy,
    check_router_options,
    neighbours,
    random_policy,
    samples_for_guarantee,
)
from hetero_infer.planning.router import PriorityRouter
from hetero_infer.workload.requests import floor_shortfall, has_floors

#: Chunks the sampled policies are split into (fixed, so results do not depend on core count).
N_CHUNKS = 4


@dataclass
class SimSettings:
    """How the planner simulates one policy (defaults sized for a plan in a few seconds)."""

    duration_s: float = 2.0
    warmup_s: float = 0.2
    seed: int = 0
    max_queue: int = DEFAULT_MAX_QUEUE
    progressive: bool = False
    router_decay: float = 0.98
    router_tie_tolerance: float = 0.5
    slo99_hi_scale: float = 1.5
    slo99_iterations: int = 6
    slo99_requests: int = 600
    #: arrival traces (common to every finalist) the search's finalists are scored on
    plan_traces: int = 3


@dataclass
class SearchResult:
    """What a search found and how long it took."""

    policy: Policy
    score: float
    metrics: Dict[str, float]
    goal: str
    predictor: str
    search_time_s: float
    n_samples: int
    n_evaluated: int
    top_fraction: float
    confidence: float
    history: List[Tuple[str, float]] = field(default_factory=list)
    #: the best policy first, then the best distinct sampled ones (for re-ranking elsewhere)
    candidates: List[Policy] = field(default_factory=list)
    #: the goal value the search predicted for each of ``candidates``
    candidate_scores: List[float] = field(default_factory=list)
    #: weighted shortfall of the plan below the applications' floors (0: every floor met)
    shortfall: float = 0.0
    #: the applications whose floor the plan is predicted to miss: name -> (floor, attainment)
    infeasible: Dict[str, Tuple[float, float]] = field(default_factory=dict)

    @property
    def floors_met(self) -> bool:
        return not self.infeasible

    def to_dict(self) -> dict:
        return {
            'goal': self.goal, 'predictor': self.predictor, 'score': self.score,
            'predicted_metrics': dict(self.metrics), 'policy': self.policy.to_dict(),
            'search_time_s': round(self.search_time_s, 3), 'n_samples': self.n_samples,
            'n_evaluated': self.n_evaluated, 'top_fraction': self.top_fraction,
            'confidence': self.confidence,
            'shortfall': self.shortfall,
            'infeasible_floors': {n: {'floor': f, 'predicted_attainment': a}
                                  for n, (f, a) in self.infeasible.items()},
        }

    def floor_note(self) -> str:
        """What to tell the user when no plan found meets every floor ('' otherwise)."""
        if not self.infeasible:
            return ''
        return ('no plan found meets every floor; chose the smallest weighted shortfall %.4g: %s'
                % (self.shortfall, ', '.join('%s predicted %.3f < floor %.3g' % (n, a, f)
                                             for n, (f, a) in self.infeasible.items())))


class _NamePlatform:
    """What the router's ``reset`` reads from a platform, answered from the isolated table."""

    def __init__(self, processor_ids, iso_by_model: Dict[str, List[float]]) -> None:
        self.processor_ids = tuple(processor_ids)
        self._iso = iso_by_model

    def can_run(self, model, proc) -> bool:
        return self._iso[model.name][self.processor_ids.index(proc)] != math.inf

    def isolated_latency_ms(self, model, proc) -> float:
        return self._iso[model.name][self.processor_ids.index(proc)]


class PlanProblem:
    """Everything a worker needs to score policies: picklable, predictor already tabulated."""

    def __init__(self, apps, processor_ids, mask, isolated_ms, table_entries,
                 settings: SimSettings, goal_spec) -> None:
        self.apps = list(apps)
        self.processor_ids = tuple(processor_ids)
        self.mask = np.asarray(mask, dtype=bool)
        self.isolated_ms = [list(r) for r in isolated_ms]
        self.table_entries = table_entries
        self.settings = settings
        self.goal_spec = goal_spec

    @property
    def app_names(self) -> List[str]:
        return [a.name for a in self.apps]


def plan_simulator(problem: PlanProblem, seed: Optional[int] = None) -> PlanSimulator:
    """The planner's simulator of ``problem`` (arrival trace ``seed``, default the settings'):
    its dispatchers are reset with the isolated-latency table as their platform, the table the
    live engine gives its router too."""
    s = problem.settings
    table = LatencyTable.from_snapshot(problem.table_entries, [a.model for a in problem.apps],
                                       problem.processor_ids)
    sim = PlanSimulator(problem.apps, problem.processor_ids, table, problem.isolated_ms,
                        duration_s=s.duration_s, warmup_s=s.warmup_s,
                        seed=s.seed if seed is None else seed, max_queue=s.max_queue,
                        progressive=s.progressive)
    sim.platform = _NamePlatform(problem.processor_ids,
                                 {a.model.name: row for a, row in
                                  zip(problem.apps, problem.isolated_ms)})
    return sim


class _Scorer:
    """Scores allocations of one problem (lives once per worker process)."""

    def __init__(self, problem: PlanProblem) -> None:
        self.problem = problem
        s = problem.settings
        self._sims: Dict[int, PlanSimulator] = {}
        self.sim = self.simulator(s.seed)
        self.router_options = {'tie_tolerance': s.router_tie_tolerance}
        self.goal: Goal = get_goal(problem.goal_spec)
        # a pruned policy has no per-application attainment to rank floors by: prune without
        # floors only
        self.pure_slo99 = self.goal.name == 'slo99_throughput' and not has_floors(problem.apps)
        self.keep = bool(self.goal.needs & {'mean_latency_ms', 'p99_latency_ms'})
        self.base_rate = sum(a.rate_hz for a in problem.apps)

    def simulator(self, seed: int) -> PlanSimulator:
        """The simulator of arrival trace ``seed`` (made once per process)."""
        sim = self._sims.get(seed)
        if sim is None:
            sim = self._sims[seed] = plan_simulator(self.problem, seed)
        return sim

    def _router(self, alloc: np.ndarray, router: Optional[dict] = None) -> PriorityRouter:
        p = self.problem
        s = p.settings
        return PriorityRouter(Policy(p.app_names, p.processor_ids, alloc, mask=p.mask,
                                     router=self.router_options if router is None else router),
                              decay=s.router_decay)

    def _slo99(self, alloc, floor_scale: float, router: Optional[dict],
               sim: PlanSimulator) -> Tuple[float, bool]:
        """(best passing scale, pruned?) by bisection above ``floor_scale``."""
        s = self.problem.settings
        base = self.base_rate
        if base <= 0:
            return 0.0, False

        def passes(scale: float) -> bool:
            dur = max(s.slo99_requests / (base * scale), 0.05)
            r = sim.run(self._router(alloc, router), scale=scale, duration_s=dur)
            return r.slo_attainment_min >= SLO_TARGET

        hi = s.slo99_hi_scale
        if floor_scale > 0:
            if not passes(floor_scale):
                return 0.0, True
            lo = floor_scale
        else:
            lo = 0.0
        if passes(hi):
            return hi, False
        step = hi / (2 ** s.slo99_iterations)
        while hi - lo > step * 1.01:
            # probe on the fixed grid k * step so every policy's answer is comparable
            mid = round(0.5 * (lo + hi) / step) * step
            if mid <= lo or mid >= hi:
                break
            if passes(mid):
                lo = mid
            else:
                hi = mid
        return lo, False

    def score(self, alloc: np.ndarray, floor_score: float = -math.inf,
              router: Optional[dict] = None, seed: Optional[int] = None
              ) -> Tuple[float, Dict[str, float], bool]:
        """(goal value, predicted metrics, pruned?) of one allocation, routed with the router
        options ``router`` (default: the settings' band) on arrival trace ``seed`` (default:
        the settings' seed)."""
        sim = self.sim if seed is None else self.simulator(seed)
        metrics: Dict[str, float] = {}
        pruned = False
        if 'slo99_throughput' in self.goal.needs:
            floor_scale = 0.0
            if self.pure_slo99 and floor_score > 0 and self.base_rate > 0:
                floor_scale = floor_score / self.base_rate
            scale, pruned = self._slo99(alloc, floor_scale, router, sim)
            metrics['slo99_throughput'] = scale * self.base_rate
            if pruned:  # worse than the best so far: skip the full-load run
                return self.goal(metrics), metrics, True
        metrics.update(sim.run(self._router(alloc, router), keep_latencies=self.keep).metrics())
        value = self.goal(metrics)
        return value, metrics, pruned

    def score_chunk(self, items: Sequence, floor_score: float
                    ) -> List[Tuple[float, Dict[str, float], bool]]:
        """Score ``items``: allocations, or ``(allocation, router options, trace seed)``.

        For pure SLO99, an allocation (one trace, one router) below the best so far (of this
        chunk, or ``floor_score``) is pruned: its value there is 0, not its own. Items with
        their own router and trace are never pruned: the best so far may come from another
        trace or router, so a prune would put a 0 into their mean over traces (a finalist
        pruned on one trace lost a third of its score, and the search chose a plan its own
        model rated far below the least_finish_time-equivalent one).
        """
        out = []
        best = floor_score
        for item in items:
            if isinstance(item, tuple):
                alloc, router, seed = item
                floor = -math.inf
            else:
                alloc, router, seed = item, None, None
                floor = best if self.pure_slo99 else -math.inf
            value, metrics, pruned = self.score(alloc, floor, router, seed)
            out.append((value, metrics, pruned))
            if not pruned and value > best:
                best = value
        return out


_WORKER: Optional[_Scorer] = None


def _init_worker(problem: PlanProblem) -> None:
    global _WORKER
    _WORKER = _Scorer(problem)


def _work(args):
    allocs, floor_score = args
    return _WORKER.score_chunk(allocs, floor_score)


def _shortfall(apps: Sequence, metrics: Dict) -> float:
    """Weighted shortfall below the floors of one scored policy (0 without floors)."""
    att = metrics.get('attainment')
    if att is None:
        return 0.0 if not has_floors(apps) else math.inf
    return floor_shortfall(apps, [att[a.name] for a in apps])


def _mean_metrics(mets: Sequence[Dict]) -> Dict:
    """Per-key mean of metrics over traces (per application for the mappings)."""
    keys = set(mets[0]).intersection(*mets[1:])
    out = {}
    for m in keys:
        if isinstance(mets[0][m], dict):
            out[m] = {k: float(np.mean([x[m][k] for x in mets])) for k in mets[0][m]}
        else:
            out[m] = float(np.mean([x[m] for x in mets]))
    return out


def default_workers() -> int:
    """Cores this process may use (``os.sched_getaffinity`` where available)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class _Runner:
    """Scores chunks in a process pool, or in this process when there is no pool."""

    def __init__(self, problem: PlanProblem, workers: int) -> None:
        self.problem = problem
        self.pool = None
        self.local: Optional[_Scorer] = None
        if workers > 1:
            try:
                import multiprocessing
                ctx = multiprocessing.get_context('fork') \
                    if 'fork' in multiprocessing.get_all_start_methods() else None
                self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                                initializer=_init_worker, initargs=(problem,))
            except (OSError, ValueError, ImportError, NotImplementedError):
                self.pool = None

    def _scorer(self) -> _Scorer:
        if self.local is None:
            self.local = _Scorer(self.problem)
        return self.local

    def run(self, chunks: List[List[np.ndarray]], floor_score: float):
        if self.pool is not None:
            try:
                return list(self.pool.map(_work, [(c, floor_score) for c in chunks]))
            except Exception:  # noqa: BLE001 - a broken pool (e.g. no /dev/shm): fall back to serial
                self.pool.shutdown(wait=False)
                self.pool = None
        scorer = self._scorer()
        return [scorer.score_chunk(c, floor_score) for c in chunks]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None


def _chunks(items: List, n_chunks: int) -> List[List]:
    n_chunks = max(1, min(n_chunks, len(items)))
    size = int(math.ceil(len(items) / n_chunks))
    return [items[i:i + size] for i in range(0, len(items), size)]


def build_problem(platform, apps: Sequence, predictor: Predictor, goal,
                  settings: Optional[SimSettings] = None) -> PlanProblem:
    """Tabulate ``predictor`` for every co-run the applications can produce; check the goal."""
    settings = settings or SimSettings()
    goal_obj = get_goal(goal)
    procs = tuple(platform.processor_ids)
    mask = np.zeros((len(apps), len(procs)), dtype=bool)
    iso = []
    for i, app in enumerate(apps):
        allowed = set(app.processors or procs)
        unknown = allowed - set(procs)
        if unknown:
            raise ConfigError('application %s: unknown processors %s (platform %s has %s)'
                              % (app.name, sorted(unknown), platform.name, list(procs)))
        row = []
        for j, p in enumerate(procs):
            ok = p in allowed and platform.can_run(app.model, p)
            mask[i, j] = ok
            row.append(platform.isolated_latency_ms(app.model, p) if ok else math.inf)
        if not mask[i].any():
            raise ConfigError('application %s: model %s can run on none of %s'
                              % (app.name, app.model.name, sorted(allowed)))
        iso.append(row)
    table = LatencyTable(predictor, [a.model for a in apps], procs)
    table.prefill([list(np.flatnonzero(mask[i])) for i in range(len(apps))])
    goal_spec = goal if not isinstance(goal, Goal) else goal_obj
    return PlanProblem(apps, procs, mask, iso, table.snapshot(), settings, goal_spec)


#: Distance between the arrival-trace seeds a plan's finalists are scored on (trace k of plan
#: seed s is s + k * TRACE_SEED_STRIDE), so plan seeds 0, 1, 2, ... never share a trace.
TRACE_SEED_STRIDE = 100003


def trace_seeds(settings: SimSettings) -> List[int]:
    """The planner traces every finalist is scored on (common random numbers)."""
    return [settings.seed + k * TRACE_SEED_STRIDE for k in range(max(1, settings.plan_traces))]


def search(problem: PlanProblem, *, n_samples: Optional[int] = None,
           top_fraction: float = 0.01, confidence: float = 0.99, seed: int = 0,
           refine: bool = True, max_refine_evals: int = 120, workers: Optional[int] = None,
           predictor_name: str = '', keep_top: int = 4, progress=None,
           seed_allocations: Sequence = (), router_choices: Optional[Sequence[dict]] = None
           ) -> SearchResult:
    """Sample, score and refine policies for ``problem``; return the best.

    1. ``n`` random allocations plus ``seed_allocations`` (other planners' plans: a plan the
       search's own model scores higher can never be passed over) are scored on the settings'
       trace with the settings' band; hill climbing refines the best of them.
    2. Finalists (the refined best, the next ``keep_top - 1`` distinct samples, every seed)
       are scored with every router option set of ``router_choices`` (default: the settings'
       band alone) on ``settings.plan_traces`` arrival traces, the same traces for all (common
       random numbers); the (allocation, router options) pair with the best mean goal value
       over the traces is the plan, its router options recorded in the policy.

    :param n_samples: number of random policies; default from ``top_fraction``/``confidence``.
    :param workers: processes to use (default: the cores available; 1 = serial).
    :param keep_top: how many of the best policies to return in ``candidates``.
    :param progress: optional callable ``progress(done, total)`` after each batch.
    """
    t0 = time.perf_counter()
    n = n_samples if n_samples is not None else samples_for_guarantee(top_fraction, confidence)
    if n < 1:
        raise ConfigError('n_samples must be >= 1, got %r' % (n,))
    rng = np.random.default_rng(seed)
    names = problem.app_names
    procs = problem.processor_ids
    settings = problem.settings
    base_router = {'tie_tolerance': settings.router_tie_tolerance}
    choices = [dict(c) for c in router_choices] if router_choices else [base_router]
    for c in choices:
        check_router_options(c, 'router choice')
    seeded = []
    for alloc in seed_allocations:
        arr = np.asarray(getattr(alloc, 'allocation', alloc), dtype=float)
        # validated like any policy: shape, rows summing to 1, nothing where the mask forbids
        seeded.append(Policy(names, procs, arr, mask=problem.mask).allocation)
    allocs = [random_policy(rng, names, procs, problem.mask).allocation for _ in range(n)]
    allocs += seeded
    total = len(allocs)
    workers = default_workers() if workers is None else max(1, int(workers))
    runner = _Runner(problem, workers)
    goal_name = get_goal(problem.goal_spec).name
    history: List[Tuple[str, float]] = []
    try:
        results = [r for chunk in runner.run(_chunks(allocs, N_CHUNKS), -math.inf)
                   for r in chunk]
        evaluated = len(results)
        if progress is not None:
            progress(evaluated, total)
        # floors first: a policy short of a floor ranks below every one that meets them all
        # (every shortfall is 0 without floors: then by the goal alone)
        short = [_shortfall(problem.apps, r[1]) for r in results]
        order = sorted(range(total), key=lambda i: (short[i], -results[i][0], i))
        best_i = order[0]
        best_alloc = allocs[best_i]
        best_value = results[best_i][0]
        best_short = short[best_i]
        history.append(('sample' if best_i < n else 'seed %d' % (best_i - n), best_value))
        step = 0.2
        while refine and step >= 0.05 - 1e-9 and evaluated < total + max_refine_evals:
            pol = Policy(names, procs, best_alloc, mask=problem.mask)
            cands = [q.allocation for q in neighbours(pol, step)]
            cands = cands[:max(0, total + max_refine_evals - evaluated)]
            if not cands:
                break
            res = [r for chunk in runner.run(_chunks(cands, N_CHUNKS), best_value)
                   for r in chunk]
            evaluated += len(res)
            rs = [_shortfall(problem.apps, r[1]) if not r[2] else math.inf for r in res]
            k = max(range(len(res)), key=lambda i: (-rs[i],
                                                    res[i][0] if not res[i][2] else -math.inf,
                                                    -i))
            if not res[k][2] and (rs[k] < best_short or (
                    rs[k] == best_short and res[k][0] > best_value * (1 + 1e-9) + 1e-12)):
                best_alloc = cands[k]
                best_value = res[k][0]
                best_short = rs[k]
                history.append(('refine %.2f' % step, best_value))
            else:
                step /= 2.0
            if progress is not None:
                progress(evaluated, total)
        finalists = [best_alloc]
        for i in order:
            if len(finalists) >= max(1, keep_top) and i < n:
                continue
            if (results[i][2] and i < n) or any(np.array_equal(allocs[i], c) for c in finalists):
                continue
            finalists.append(allocs[i])
        seeds = trace_seeds(settings)
        items = [(f, c, s) for f in finalists for c in choices for s in seeds]
        res = [r for chunk in runner.run(_chunks(items, N_CHUNKS), -math.inf) for r in chunk]
        evaluated += len(res)
    finally:
        runner.close()
    per = len(seeds)
    scored = []  # (mean value, finalist index, choice index, mean metrics, shortfall)
    for k in range(0, len(items), per):
        vals = [r[0] for r in res[k:k + per]]
        mean = _mean_metrics([r[1] for r in res[k:k + per]])
        f, c = divmod(k // per, len(choices))
        scored.append((float(np.mean(vals)), f, c, mean, _shortfall(problem.apps, mean)))
    # floors first (by the mean attainment over the traces), then the goal
    scored.sort(key=lambda x: (x[4], -x[0], x[1], x[2]))
    value, f, c, metrics, shortfall = scored[0]
    att = metrics.get('attainment', {})
    infeasible = {a.name: (a.min_attainment, att[a.name]) for a in problem.apps
                  if a.name in att and att[a.name] < a.min_attainment}
    history.append(('finalists x %d router options x %d traces' % (len(choices), per), value))
    candidates, cand_scores, seen = [], [], set()
    for v, fi, ci, _, _ in scored:
        if fi in seen:
            continue
        seen.add(fi)
        candidates.append(Policy(names, procs, finalists[fi], mask=problem.mask,
                                 router=choices[ci]))
        cand_scores.append(v)
        if len(candidates) >= max(1, keep_top):
            break
    return SearchResult(
        policy=candidates[0], score=float(value), metrics=metrics, goal=goal_name,
        predictor=predictor_name, search_time_s=time.perf_counter() - t0, n_samples=n,
        n_evaluated=evaluated, top_fraction=top_fraction, confidence=confidence,
        history=history, candidates=candidates, candidate_scores=cand_scores,
        shortfall=float(shortfall), infeasible=infeasible)


def plan(platform, apps: Sequence, goal, predictor: Predictor, *,
         settings: Optional[SimSettings] = None, **kwargs) -> SearchResult:
    """Build the problem for ``apps`` on ``platform`` and search it (see :func:`search`)."""
    t0 = time.perf_counter()
    problem = build_problem(platform, apps, predictor, goal, settings)
    result = search(problem, predictor_name=getattr(predictor, 'name', ''), **kwargs)
    result.search_time_s = time.perf_counter() - t0
    return result
