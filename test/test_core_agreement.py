"""Values several modules use are defined once: the others agree with the definition and with
what the code computes (a copy that drifts would make the planner, the twin, the serving node
and the evaluation disagree silently)."""

import inspect

import pytest

from hetero_infer.planning.metrics import (
    GOAL_ONLY_METRICS,
    OBJECTIVES,
    PLANNER_METRICS,
    RUN_METRICS,
    compute_metrics,
)
from hetero_infer.workload.requests import DEFAULT_MAX_QUEUE, App, RequestRecord


def _default(fn, name):
    return inspect.signature(fn).parameters[name].default


def test_the_simulators_share_one_default_queue_limit():
    from hetero_infer.planning.plansim import PlanSimulator
    from hetero_infer.planning.search import SimSettings
    from hetero_infer.twin.simulator import Twin
    assert _default(Twin.serve, 'max_queue') == DEFAULT_MAX_QUEUE
    assert _default(PlanSimulator.__init__, 'max_queue') == DEFAULT_MAX_QUEUE
    assert SimSettings().max_queue == DEFAULT_MAX_QUEUE


def _records():
    from hetero_infer.models.zoo import load_model
    model = load_model('resnet18')
    apps = [App('a', model, 10.0, 5.0), App('b', model, 10.0, 5.0)]
    recs = [RequestRecord(0, 1000.0, 'gpu', 1000.0, 1004.0),
            RequestRecord(0, 1100.0, 'gpu', 1100.0, 1110.0),
            RequestRecord(1, 1200.0, dropped_reason='queue_full')]
    return apps, recs


def test_run_metrics_are_what_compute_metrics_and_the_twin_measurement_return():
    apps, recs = _records()
    got = compute_metrics(recs, apps, warmup_s=0.5, duration_s=2.0).to_dict()
    scalars = {k for k, v in got.items() if isinstance(v, float)} - {'window_s'}
    assert scalars | {'slo99_throughput'} == set(RUN_METRICS) | set(GOAL_ONLY_METRICS)
    assert set(OBJECTIVES) <= set(RUN_METRICS)

    from hetero_infer.planning.twin_measure import measure_on_twin
    from hetero_infer.platform.spec import Platform
    from hetero_infer.twin.simulator import Twin
    from hetero_infer.workload.requests import FixedDispatcher
    twin = Twin(Platform.load('xavier'), seed=3)
    measured = measure_on_twin(twin, apps, lambda: FixedDispatcher(['gpu', 'dla0']),
                               duration_s=0.4, seed=3, slo99=True, iterations=1, requests=40,
                               min_app_requests=5)
    assert set(RUN_METRICS) <= set(measured)


def test_goal_metric_names_are_what_the_planner_simulator_returns():
    from hetero_infer.planning.goals import METRIC_NAMES, get_goal
    from hetero_infer.planning.plansim import SimResult
    res = SimResult(2, 1.0, [10.0, 10.0])
    res.offered, res.finished, res.met, res.dropped = [3, 2], [3, 1], [2, 1], [0, 1]
    res.latencies = [[1.0, 2.0, 9.0], [3.0]]
    metrics = dict(res.metrics(), slo99_throughput=1.5)  # the search adds it when a goal needs it
    assert set(METRIC_NAMES) == set(metrics)
    assert set(PLANNER_METRICS) | set(OBJECTIVES) == set(METRIC_NAMES)
    for name in OBJECTIVES:  # each objective is the built-in goal of its name
        assert get_goal(name)(metrics) == pytest.approx(metrics[name])


def test_serving_goal_weights_and_evaluation_metrics_derive_from_the_definition():
    from hetero_infer.evaluation import report, runner
    from hetero_infer.planning.goals import METRIC_NAMES
    from hetero_infer.serving.config import GOAL_METRICS, NODE_PARAMS
    assert GOAL_METRICS == tuple(OBJECTIVES) and set(GOAL_METRICS) <= set(METRIC_NAMES)
    weights = [s.name[len('goal_weights.'):] for s in NODE_PARAMS
               if s.name.startswith('goal_weights.')]
    assert tuple(weights) == GOAL_METRICS  # one declared parameter per weight
    assert runner.METRICS == report.METRICS == tuple(RUN_METRICS)
    assert set(report.LABELS) == set(runner.METRICS)
    assert set(runner.GOALS) <= set(OBJECTIVES)


def test_no_import_circle_in_the_evaluation():
    from test_import_rules import _circles, _import_graph
    left = [sorted(c) for c in _circles(_import_graph())
            if any(m.startswith('hetero_infer.evaluation') for m in c)]
    assert left == []
