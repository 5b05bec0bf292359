"""Serving metrics, defined once for the simulators, the evaluation and the live node.

Definitions (README "Metrics"):

* window: requests that *arrive* in ``[warmup_s, duration_s)``; every one of them has exactly one
  outcome (finished or dropped), so nothing in the window is lost from the count.
* goodput: window requests that finished within their application's SLO, per second of window.
* weighted goodput: the same with each request counted at its application's ``weight``
  (equal to goodput when every weight is 1).
* throughput: window requests that finished (SLO or not), per second of window.
* SLO attainment of an application: its window requests that met the SLO / its window requests
  (drops count as misses).
* fairness: Jain's index over applications' normalised throughput (throughput / offered rate).
* throughput at SLO99: the largest offered load (all rates scaled together, ratios fixed) at
  which every application meets its SLO for at least 99% of its requests; bisection on the scale.
"""

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Sequence

import numpy as np

from hetero_infer.workload.requests import App, RequestRecord

SLO_TARGET = 0.99

#: The metrics of a run that are goals of their own name (the built-in goals, the serving
#: node's ``goal_weights.*``), in report order: name -> what it is, with its unit.
OBJECTIVES = {
    'goodput': 'goodput (req/s)',
    'slo99_throughput': 'throughput at SLO99 (req/s)',
    'throughput': 'throughput (req/s)',
    'fairness': 'fairness (Jain)',
}
#: Every metric of a run the evaluation reports (name -> what it is): the objectives and the
#: least per-application SLO attainment. :func:`compute_metrics` gives all but
#: ``slo99_throughput``, which :func:`slo99_throughput` bisects for (only when asked: it costs
#: several runs).
RUN_METRICS = dict(OBJECTIVES, slo_attainment_min='minimum per-application SLO attainment')
#: What :func:`compute_metrics` gives besides the reported :data:`RUN_METRICS`: goal inputs the
#: evaluation does not report yet (weighted goodput joins the report with the re-runs of the
#: robot-scheduling issue, so the committed summary keeps its schema until then).
GOAL_ONLY_METRICS = ('weighted_goodput',)
#: What the planner's simulator gives goals besides the objectives
#: (``hetero_infer.planning.plansim.SimResult.metrics``): the least SLO attainment under the
#: goals' name, latency statistics (when the run kept latencies) and the drop rate.
PLANNER_METRICS = ('slo_attainment', 'weighted_goodput', 'mean_latency_ms', 'p99_latency_ms',
                   'dropped_rate')
#: Per-application values goals receive besides (mappings application name -> value, in
#: application order): SLO attainment, weight and floor (``min_attainment``).
PER_APP_METRICS = ('attainment', 'weights', 'floors')


def percentile(values: Sequence[float], q: float) -> float:
    """The project's one percentile: numpy's default (linear interpolation between the closest
    ranks), ``q`` in 0..100; NaN for no values. Live statistics (the node's status), simulated
    runs and the evaluation all use it, so their p99s compare."""
    if len(values) == 0:
        return math.nan
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def jain_index(xs: Sequence[float]) -> float:
    """Jain's fairness index: 1 when all equal, 1/n when one takes everything."""
    xs = [x for x in xs if x == x]
    if not xs:
        return math.nan
    sq = sum(x * x for x in xs)
    if sq == 0:
        return 1.0
    return sum(xs) ** 2 / (len(xs) * sq)


@dataclass
class AppMetrics:
    name: str
    offered: int
    finished: int
    met_slo: int
    dropped: Dict[str, int]
    throughput: float
    goodput: float
    slo_attainment: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    per_processor: Dict[str, int]
    weight: float = 1.0
    min_attainment: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Metrics:
    goodput: float
    throughput: float
    fairness: float
    slo_attainment_min: float
    window_s: float
    apps: List[AppMetrics] = field(default_factory=list)
    weighted_goodput: float = 0.0

    def to_dict(self) -> dict:
        return {'goodput': self.goodput, 'weighted_goodput': self.weighted_goodput,
                'throughput': self.throughput,
                'fairness': self.fairness, 'slo_attainment_min': self.slo_attainment_min,
                'window_s': self.window_s, 'apps': [a.to_dict() for a in self.apps]}

    def meets_slo(self, target: float = SLO_TARGET) -> bool:
        return self.slo_attainment_min >= target


def compute_metrics(records: Sequence[RequestRecord], apps: Sequence[App], *,
                    warmup_s: float, duration_s: float) -> Metrics:
    """Metrics over the requests that arrived in ``[warmup_s, duration_s)``."""
    window_s = duration_s - warmup_s
    if window_s <= 0:
        raise ValueError('duration_s (%r) must exceed warmup_s (%r)' % (duration_s, warmup_s))
    lo, hi = warmup_s * 1000.0, duration_s * 1000.0
    lat: List[List[float]] = [[] for _ in apps]
    met = [0] * len(apps)
    offered = [0] * len(apps)
    dropped: List[Dict[str, int]] = [{} for _ in apps]
    per_proc: List[Dict[str, int]] = [{} for _ in apps]
    for r in records:
        if not (lo <= r.arrival_ms < hi):
            continue
        a = r.app
        offered[a] += 1
        if r.finish_ms is None:
            reason = r.dropped_reason or 'unfinished'
            dropped[a][reason] = dropped[a].get(reason, 0) + 1
            continue
        latency = r.finish_ms - r.arrival_ms
        lat[a].append(latency)
        per_proc[a][r.proc] = per_proc[a].get(r.proc, 0) + 1
        if latency <= apps[a].slo_ms:
            met[a] += 1
    app_metrics = []
    norm = []
    for i, app in enumerate(apps):
        thr = len(lat[i]) / window_s
        app_metrics.append(AppMetrics(
            name=app.name, offered=offered[i], finished=len(lat[i]), met_slo=met[i],
            dropped=dropped[i], throughput=thr, goodput=met[i] / window_s,
            slo_attainment=(met[i] / offered[i]) if offered[i] else 1.0,
            p50_ms=percentile(lat[i], 50), p95_ms=percentile(lat[i], 95),
            p99_ms=percentile(lat[i], 99), per_processor=per_proc[i],
            weight=app.weight, min_attainment=app.min_attainment))
        if app.rate_hz > 0:
            norm.append(thr / app.rate_hz)
    return Metrics(
        goodput=sum(a.goodput for a in app_metrics),
        throughput=sum(a.throughput for a in app_metrics),
        fairness=jain_index(norm),
        slo_attainment_min=min((a.slo_attainment for a in app_metrics), default=1.0),
        window_s=window_s, apps=app_metrics,
        weighted_goodput=sum(a.weight * a.goodput for a in app_metrics))


def per_app_metrics(apps: Sequence[App], attainment: Sequence[float]) -> Dict[str, dict]:
    """The :data:`PER_APP_METRICS` of a run: name -> attainment, weight, floor."""
    names = [a.name for a in apps]
    return {'attainment': dict(zip(names, attainment)),
            'weights': {a.name: a.weight for a in apps},
            'floors': {a.name: a.min_attainment for a in apps}}


def slo99_throughput(run_at_scale: Callable[[float], Metrics], *, hi_scale: float = 4.0,
                     lo_scale: float = 0.0, iterations: int = 8,
                     target: float = SLO_TARGET) -> float:
    """Throughput at the largest load scale whose run meets ``target`` SLO attainment.

    ``run_at_scale(s)`` serves the scenario with every application's rate multiplied by ``s``
    and returns its metrics. Bisection assumes attainment falls as load rises; returns the
    throughput measured at the best passing scale (0.0 when even the lowest load fails).
    """
    best = 0.0
    m = run_at_scale(hi_scale)
    if m.meets_slo(target):
        return m.throughput
    lo, hi = lo_scale, hi_scale
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if mid <= 0:
            break
        m = run_at_scale(mid)
        if m.meets_slo(target):
            lo = mid
            best = m.throughput
        else:
            hi = mid
    return best
