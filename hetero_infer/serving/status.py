"""Statistics of the serving core and the documents made of them: the periodic status
(schema ``hetero_infer.status/1``, what the node publishes on ``~/status``) and the summary since
start (what ``hetero-infer serve`` and the benchmarks print)."""

import collections
import threading
import time
from typing import Any, Dict, List, Mapping, Sequence

from hetero_infer.planning.metrics import percentile

STATUS_SCHEMA = 'hetero_infer.status/1'

#: Latencies kept per (application, processor) for the summary's percentiles.
MAX_SAMPLES = 100000


def _p50_p99(lat: List[float]):
    """(median, 99th percentile) of latencies (:func:`hetero_infer.planning.metrics.percentile`,
    as the simulations compute them), or (None, None) when there are none."""
    if not lat:
        return None, None
    return percentile(lat, 50), percentile(lat, 99)


class Stats:
    """Counters of one status period and since start, per application and processor.

    Every count is taken under :attr:`lock` (requests arrive on the intake thread, outcomes on
    the workers').
    """

    def __init__(self, n_apps: int) -> None:
        self.lock = threading.Lock()
        self.n_apps = n_apps
        self.total_received = [0] * n_apps
        self.total_results = [0] * n_apps
        self.total_met = [0] * n_apps
        self.total_dropped = [collections.Counter() for _ in range(n_apps)]
        self.bad_inputs = collections.Counter()
        self.per_proc_results = collections.Counter()   # (app, proc) -> results
        self.per_proc_latency = collections.defaultdict(list)  # (app, proc) -> total ms
        self.reset_window()
        self.drift_received = [0] * n_apps
        self.drift_since = time.perf_counter()

    def reset_window(self) -> None:
        self.win_received = [0] * self.n_apps
        self.win_results = [0] * self.n_apps
        self.win_met = [0] * self.n_apps
        self.win_dropped = [0] * self.n_apps
        self.win_latency = [[] for _ in range(self.n_apps)]

    def received(self, app: int) -> None:
        with self.lock:
            self.total_received[app] += 1
            self.win_received[app] += 1
            self.drift_received[app] += 1

    def bad_input(self, reason: str) -> None:
        with self.lock:
            self.bad_inputs[reason] += 1

    def outcome(self, app: int, proc: Any, drop_reason: Any, detail: str, total_ms: float,
                met: bool) -> None:
        with self.lock:
            if drop_reason is None:
                self.total_results[app] += 1
                self.win_results[app] += 1
                self.win_latency[app].append(total_ms)
                self.per_proc_results[(app, proc)] += 1
                lat = self.per_proc_latency[(app, proc)]
                if len(lat) < MAX_SAMPLES:
                    lat.append(total_ms)
                if met:
                    self.total_met[app] += 1
                    self.win_met[app] += 1
            else:
                self.total_dropped[app][drop_reason] += 1
                self.win_dropped[app] += 1
                if drop_reason == 'bad_input' and proc is not None:
                    # found while preprocessing on the worker (the intake counts its own)
                    self.bad_inputs[detail.split(':', 1)[0]] += 1

    def take_drift_counts(self, now: float):
        """Requests per application since the last call, and the seconds they span."""
        with self.lock:
            counts = list(self.drift_received)
            self.drift_received = [0] * self.n_apps
            elapsed = now - self.drift_since
            self.drift_since = now
        return counts, elapsed

    def window(self, apps: Sequence[Any], period_s: float) -> Dict[str, Any]:
        """Per-application figures of the period just ended (``apps``: objects with ``index``,
        ``name`` and ``slo_ms``), and the bad inputs so far; starts a new period."""
        out = {}
        with self.lock:
            for app in apps:
                i = app.index
                done = self.win_results[i] + self.win_dropped[i]
                total_done = self.total_results[i] + sum(self.total_dropped[i].values())
                p50, p99 = _p50_p99(self.win_latency[i])
                out[app.name] = {
                    'rate_hz': round(self.win_received[i] / period_s, 3),
                    'results': self.total_results[i],
                    'dropped': dict(self.total_dropped[i]),
                    'slo_ms': round(app.slo_ms, 3),
                    'slo_attainment': (round(self.win_met[i] / done, 4) if done else None),
                    'slo_attainment_total': (round(self.total_met[i] / total_done, 4)
                                             if total_done else None),
                    'p50_ms': round(p50, 3) if p50 is not None else None,
                    'p99_ms': round(p99, 3) if p99 is not None else None,
                }
            bad = dict(self.bad_inputs)
            self.reset_window()
        return {'applications': out, 'bad_inputs': bad}

    def totals(self, apps: Sequence[Any], procs: Sequence[str]) -> Dict[str, Any]:
        """Totals since start per application and per ``application@processor``."""
        out: Dict[str, Any] = {'applications': {}, 'processors': {}}
        nan = float('nan')
        with self.lock:
            for app in apps:
                i = app.index
                dropped = sum(self.total_dropped[i].values())
                done = self.total_results[i] + dropped
                out['applications'][app.name] = {
                    'model': app.model.name, 'received': self.total_received[i],
                    'results': self.total_results[i], 'dropped': dict(self.total_dropped[i]),
                    'slo_ms': app.slo_ms,
                    'slo_attainment': self.total_met[i] / done if done else nan}
                for p in procs:
                    p50, p99 = _p50_p99(self.per_proc_latency.get((i, p), []))
                    out['processors']['%s@%s' % (app.name, p)] = {
                        'results': self.per_proc_results.get((i, p), 0),
                        'p50_ms': nan if p50 is None else p50,
                        'p99_ms': nan if p99 is None else p99}
        return out


def floors_unmet(apps: Sequence[Any], attainment: Mapping[str, float]) -> List[Dict[str, Any]]:
    """The floors a plan's predicted attainment leaves unmet, as the search counts them
    (``apps``: objects with ``name`` and ``min_attainment``; ``attainment`` by name).

    :return: ``[{'application', 'min_attainment', 'predicted_attainment'}]`` in ``apps`` order.
    """
    return [{'application': a.name, 'min_attainment': a.min_attainment,
             'predicted_attainment': round(float(attainment[a.name]), 4)}
            for a in apps
            if a.name in attainment and attainment[a.name] < a.min_attainment]


def add_criticality(applications: Dict[str, Dict[str, Any]], apps: Sequence[Any],
                    attainment: Mapping[str, float]) -> None:
    """Put each application's ``weight``, ``min_attainment`` and the plan's
    ``predicted_attainment`` (None before a plan predicted one) into a status document's
    ``applications`` (``apps``: objects with ``name``, ``weight``, ``min_attainment``)."""
    for a in apps:
        doc = applications.get(a.name)
        if doc is not None:
            pred = attainment.get(a.name)
            doc.update({'weight': a.weight, 'min_attainment': a.min_attainment,
                        'predicted_attainment': None if pred is None else round(pred, 4)})
