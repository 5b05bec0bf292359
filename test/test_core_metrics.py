"""Metric definitions on hand-made traces."""

import pytest

from hetero_infer.models.zoo import load_model
from hetero_infer.planning.metrics import (
    Metrics,
    compute_metrics,
    jain_index,
    percentile,
    slo99_throughput,
)
from hetero_infer.workload.requests import App, RequestRecord, poisson_arrivals


def _app(name, rate, slo):
    return App(name, load_model('alexnet'), rate, slo)


def test_goodput_throughput_attainment_and_window():
    apps = [_app('a', 10.0, 5.0), _app('b', 10.0, 5.0)]
    recs = [
        RequestRecord(0, 500.0, 'gpu', 500.0, 503.0),     # in warm-up: ignored
        RequestRecord(0, 1000.0, 'gpu', 1000.0, 1004.0),  # meets SLO
        RequestRecord(0, 1100.0, 'gpu', 1100.0, 1110.0),  # late
        RequestRecord(1, 1200.0, dropped_reason='queue_full'),
        RequestRecord(1, 1300.0, 'dla0', 1300.0, 1301.0),
    ]
    m = compute_metrics(recs, apps, warmup_s=1.0, duration_s=3.0)
    assert m.window_s == 2.0
    assert m.throughput == pytest.approx(3 / 2.0)
    assert m.goodput == pytest.approx(2 / 2.0)
    assert m.apps[0].slo_attainment == pytest.approx(0.5)
    assert m.apps[1].dropped == {'queue_full': 1}
    assert m.apps[1].per_processor == {'dla0': 1}
    assert m.slo_attainment_min == pytest.approx(0.5)


def test_jain_and_percentile():
    assert jain_index([1, 1, 1]) == pytest.approx(1.0)
    assert jain_index([1, 0, 0]) == pytest.approx(1 / 3)
    assert percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)


def test_slo99_bisection_finds_the_knee():
    def run(scale):  # attainment collapses above scale 1.5
        ok = 1.0 if scale <= 1.5 else 0.5
        return Metrics(goodput=0, throughput=100 * scale, fairness=1, slo_attainment_min=ok,
                       window_s=1)
    thr = slo99_throughput(run, hi_scale=4.0, iterations=10)
    assert 140 <= thr <= 150


def test_poisson_arrivals_rate_and_independence():
    apps = [_app('a', 200.0, 5.0), _app('b', 50.0, 5.0)]
    arr = poisson_arrivals(apps, 10.0, seed=1)
    counts = [sum(1 for _, _, i in arr if i == k) for k in range(2)]
    assert 1800 < counts[0] < 2200 and 400 < counts[1] < 600
    alone = poisson_arrivals(apps[:1], 10.0, seed=1)
    assert [t for t, _, i in arr if i == 0] == [t for t, _, _ in alone]
