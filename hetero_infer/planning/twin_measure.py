"""Measurements on the digital twin shared by the evaluation and the oracle scheduler.

The serving metrics of a dispatcher on the twin (:func:`measure_on_twin`), the largest load scale
whose SLO attainment stays at 99% (:func:`slo99_scale`, :func:`twin_slo99_throughput`), and the
oracle's selection among candidate plans on held-out traces (:func:`select_on_twin`). Here
rather than in :mod:`hetero_infer.evaluation.runner` so that the oracle (a scheduler the
evaluation runs) and the evaluation both import it, and neither imports the other.
"""

from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

from hetero_infer.errors import ConfigError
from hetero_infer.planning.metrics import SLO_TARGET, compute_metrics, per_app_metrics
from hetero_infer.planning.schedulers.interface import GoalSpec, Plan
from hetero_infer.workload.requests import floor_shortfall, has_floors, poisson_arrivals

#: the oracle's goodput-type selection drops candidates this far (relative) behind the best on
#: its first trace before the others
RACE_MARGIN = 0.2


def measure_on_twin(twin, apps: Sequence, make_dispatcher: Callable[[], object], *,
                    duration_s: float, seed: int, warmup_s: Optional[float] = None,
                    slo99: bool = False, **slo99_kwargs) -> Dict[str, float]:
    """Serve ``apps`` on the twin with a fresh dispatcher; return the metrics.

    Keys: goodput, throughput, fairness, slo_attainment_min (the least SLO attainment of any
    application), slo_attainment (the same, the goals' name), per-application attainment
    ``app_attainment``, ``weighted_goodput`` and the per-application mappings goals get
    (:data:`~hetero_infer.planning.metrics.PER_APP_METRICS`); ``slo99_throughput`` too when
    ``slo99`` is set (``slo99_kwargs`` go to :func:`twin_slo99_throughput`).
    """
    warmup_s = 0.125 * duration_s if warmup_s is None else warmup_s
    records = twin.serve(apps, make_dispatcher(), duration_s=duration_s, seed=seed)
    m = compute_metrics(records, apps, warmup_s=warmup_s, duration_s=duration_s)
    out = {'goodput': m.goodput, 'throughput': m.throughput, 'fairness': m.fairness,
           'slo_attainment_min': m.slo_attainment_min, 'slo_attainment': m.slo_attainment_min,
           'app_attainment': [a.slo_attainment for a in m.apps],
           'weighted_goodput': m.weighted_goodput}
    out.update(per_app_metrics(apps, out['app_attainment']))
    if slo99:
        out['slo99_throughput'] = twin_slo99_throughput(twin, apps, make_dispatcher, seed=seed,
                                                        **slo99_kwargs)
    return out


def probe_duration_s(apps: Sequence, scale: float, requests: int,
                     min_app_requests: int = 0, warmup_fraction: float = 0.1) -> float:
    """Simulated seconds for a probe at ``scale`` whose window (after ``warmup_fraction``)
    expects ``requests`` arrivals in all and ``min_app_requests`` of the rarest application."""
    rates = [a.rate_hz * scale for a in apps if a.rate_hz > 0]
    if not rates:
        raise ConfigError('probe: no application has a positive rate')
    window = max(requests / sum(rates), min_app_requests / min(rates))
    return window / (1.0 - warmup_fraction)


def slo99_scale(twin, apps: Sequence, make_dispatcher, *, seeds: Sequence[int],
                hi_scale: float = 1.2, iterations: int = 5, requests: int = 2000,
                min_app_requests: int = 300, stop_failed_probes: bool = True) -> dict:
    """The largest load scale on the grid ``k * hi_scale / 2**iterations`` (below
    ``hi_scale``) at which every application meets its SLO for 99% of its requests on every
    trace of ``seeds``; bisection, one probe per step and trace.

    With ``stop_failed_probes`` a probe ends as soon as one application has missed its SLO on
    more window requests than 99% attainment allows (:class:`SloWatch`): the verdict, and so
    the scale and throughput, are those of the whole probe, in less time.
    Returns ``scale``, ``throughput`` (mean over the traces at that scale, 0 when none passes),
    ``attainment`` (least over traces there), ``probes``.
    """
    step = hi_scale / (2 ** iterations)
    n_probes = [0]

    def probe(scale: float):
        dur = probe_duration_s(apps, scale, requests, min_app_requests)
        thr, att = [], []
        scaled = [a.scaled(scale) for a in apps]
        for s in seeds:
            n_probes[0] += 1
            arrivals = poisson_arrivals(scaled, dur, s)
            watch = SloWatch(scaled, arrivals, warmup_s=0.1 * dur, duration_s=dur) \
                if stop_failed_probes else None
            recs = twin.serve(scaled, make_dispatcher(), duration_s=dur, seed=s,
                              arrivals=arrivals, give_up=watch)
            m = compute_metrics(recs, scaled, warmup_s=0.1 * dur, duration_s=dur)
            thr.append(m.throughput)
            att.append(m.slo_attainment_min)
            if m.slo_attainment_min < SLO_TARGET:
                return False, 0.0, min(att)
        return True, sum(thr) / len(thr), min(att)

    lo, best_thr, best_att = 0.0, 0.0, 0.0
    hi = hi_scale
    while hi - lo > step * 1.01:
        mid = round(0.5 * (lo + hi) / step) * step
        if mid <= lo or mid >= hi:
            break
        ok, thr, att = probe(mid)
        if ok:
            lo, best_thr, best_att = mid, thr, att
        else:
            hi = mid
    return {'scale': lo, 'throughput': best_thr, 'attainment': best_att,
            'probes': n_probes[0]}


def twin_slo99_throughput(twin, apps: Sequence, make_dispatcher, *, seed: int,
                          hi_scale: float = 1.2, iterations: int = 5, requests: int = 2000,
                          min_app_requests: int = 300, stop_failed_probes: bool = True
                          ) -> float:
    """Throughput at SLO99 on the twin (definition of :mod:`hetero_infer.planning.metrics`).

    Bisection of the load scale over ``(0, hi_scale)``, ``iterations`` steps on the grid
    ``k * hi_scale / 2**iterations``; ``hi_scale`` itself is not probed (choose it above any
    load the SoC can serve at 99%). The probe at scale ``s`` serves the arrivals of trace
    ``seed`` at ``s`` for :func:`probe_duration_s` (``requests`` in its window, at least
    ``min_app_requests`` of the rarest application, so its p99 rests on >= 300 requests); two
    schedulers probing the same scale see the same arrivals. The result is the throughput
    measured at the largest passing scale (0 when none passes).
    """
    if sum(a.rate_hz for a in apps) <= 0:
        return 0.0
    return slo99_scale(twin, apps, make_dispatcher, seeds=[seed], hi_scale=hi_scale,
                       iterations=iterations, requests=requests,
                       min_app_requests=min_app_requests,
                       stop_failed_probes=stop_failed_probes)['throughput']


def select_on_twin(twin, apps: Sequence, goal: GoalSpec, cands: Sequence[Tuple[str, Plan]], *,
                   serve_s: float, select_seed: int, select_traces: int, slo99_traces: int,
                   twin_slo99: Optional[Mapping[str, Union[int, float]]] = None
                   ) -> Tuple[int, str]:
    """The oracle's choice among ``cands`` on held-out traces of ``twin``: ``(index, report)``.

    Goals without SLO99: the goal's value averaged over ``select_traces`` runs of ``serve_s``
    on the traces seeded from ``select_seed`` (candidates more than ``RACE_MARGIN`` behind the
    best on the first trace are not run on the others). ``slo99_throughput``: the evaluation's
    estimator, the mean over ``slo99_traces`` traces of each trace's throughput at SLO99 (one
    bisection per trace, :func:`slo99_scale`, with the ``twin_slo99`` keyword arguments),
    raced the same way. (The rule before, the largest scale
    passing on all traces at once, rewarded plans that were steady rather than high on
    average, and the oracle lost to plans it had seen.) Other goals that need SLO99: measured
    in full per trace. With floors (an application's ``min_attainment`` above 0) only the
    candidates with the least weighted shortfall below them, measured at the scenario's load on
    the goodput-type traces, are raced: one meeting every floor is never passed over for one
    that does not.
    """
    from hetero_infer.planning.goals import get_goal

    goal = get_goal(goal)
    kw = dict(twin_slo99 or {})
    measured: Dict[Tuple[int, int], Dict] = {}

    def nominal(plan, s):
        # one run at the scenario's load, shared by the floors and goodput-type goals
        key = (id(plan), s)
        if key not in measured:
            measured[key] = measure_on_twin(twin, apps, plan.make_dispatcher,
                                            duration_s=serve_s, seed=s)
        return measured[key]

    floor_note = ''
    pool = list(range(len(cands)))
    if has_floors(apps):
        # the floors first, judged at the scenario's load on the goodput-type traces: only
        # the candidates with the least weighted shortfall (0: every floor met) are raced
        fseeds = [select_seed + j for j in range(max(1, select_traces))]
        short = []
        for _, plan in cands:
            runs = [nominal(plan, s)['app_attainment'] for s in fseeds]
            short.append(floor_shortfall(apps, [sum(x) / len(x) for x in zip(*runs)]))
        least = min(short)
        pool = [i for i in pool if short[i] <= least]
        floor_note = '; floors: %d of %d candidates with the least shortfall %.4g' % (
            len(pool), len(cands), least)
        cands = [cands[i] for i in pool]
    if 'slo99_throughput' in goal.needs and goal.name == 'slo99_throughput':
        # the evaluation's own estimator (one bisection per trace, throughputs averaged), raced
        seeds = [select_seed + j for j in range(max(1, slo99_traces))]
        probes = [0]

        def per_trace(plan, s):
            r = slo99_scale(twin, apps, plan.make_dispatcher, seeds=[s], **kw)
            probes[0] += r['probes']
            return r['throughput']

        best, mean, alive = _race(cands, seeds, per_trace)
        return pool[best], 'slo99 throughput %.4g on %d trace(s), %d of %d candidates raced ' \
            'to the end, %d probes%s' % (mean, len(seeds), alive, len(cands), probes[0],
                                         floor_note)
    seeds = [select_seed + j for j in range(max(1, select_traces))]
    need = 'slo99_throughput' in goal.needs

    def value(plan, s):
        if not need:
            return goal(nominal(plan, s))
        return goal(measure_on_twin(twin, apps, plan.make_dispatcher,
                                    duration_s=serve_s, seed=s, slo99=need, **kw))

    best, mean, alive = _race(cands, seeds, value)
    return pool[best], 'value %.4g on %d trace(s), %d of %d candidates raced to the end%s' % (
        mean, len(seeds), alive, len(cands), floor_note)


def _race(cands: Sequence[Tuple[str, Plan]], seeds: Sequence[int], value
          ) -> Tuple[int, float, int]:
    """Every candidate on the first trace, then only those within ``RACE_MARGIN`` of the best
    there on the others (a candidate 20% behind on one trace does not win on average); the
    highest mean wins, ties to the earlier candidate. Returns ``(index, mean, raced)``."""
    first = [value(plan, seeds[0]) for _, plan in cands]
    top = max(first)
    alive = [i for i, v in enumerate(first)
             if v >= top - RACE_MARGIN * abs(top) or len(seeds) == 1]
    values = {i: [first[i]] + [value(cands[i][1], s) for s in seeds[1:]] for i in alive}
    means = {i: sum(v) / len(v) for i, v in values.items()}
    best = max(means, key=lambda i: (means[i], -i))
    return best, means[best], len(alive)


class SloWatch:
    """``give_up`` for :meth:`Twin.serve`: true once the run can no longer meet the SLO target.

    Counts, per application, the window requests (arrivals in ``[warmup_s, duration_s)``, as in
    :func:`compute_metrics`) that missed their SLO (finished late or dropped). When an
    application's attainment could reach at most ``(window - missed) / window < target``,
    every later outcome leaves :meth:`Metrics.meets_slo` false, so the run may stop.
    """

    def __init__(self, apps: Sequence, arrivals, *, warmup_s: float, duration_s: float,
                 target: float = SLO_TARGET):
        self.lo, self.hi = warmup_s * 1000.0, duration_s * 1000.0
        self.slo_ms = [a.slo_ms for a in apps]
        self.window = [0] * len(apps)
        for t, _seq, ai in arrivals:
            if self.lo <= t < self.hi:
                self.window[ai] += 1
        self.missed = [0] * len(apps)
        self.target = target

    def __call__(self, rec) -> bool:
        if not (self.lo <= rec.arrival_ms < self.hi):
            return False
        a = rec.app
        if rec.finish_ms is not None and rec.finish_ms - rec.arrival_ms <= self.slo_ms[a]:
            return False
        self.missed[a] += 1
        n = self.window[a]
        return (n - self.missed[a]) / n < self.target
