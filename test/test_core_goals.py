"""Goals: one registry refusing duplicates, built-ins, user entry points, weighted sums."""

import sys
import types

import pytest

from hetero_infer.errors import ConfigError
from hetero_infer.planning.goals import Goal, get_goal, known_goals, register_goal
from hetero_infer.planning.metrics import Metrics

METRICS = {'goodput': 120.0, 'throughput': 150.0, 'fairness': 0.8, 'slo99_throughput': 90.0}


def test_builtins_read_their_metric_from_dicts_and_objects():
    assert set(known_goals()) >= {'goodput', 'slo99_throughput', 'throughput', 'fairness'}
    for name in ('goodput', 'slo99_throughput', 'throughput', 'fairness'):
        assert get_goal(name)(METRICS) == METRICS[name]
    m = Metrics(goodput=3.0, throughput=4.0, fairness=0.5, slo_attainment_min=1.0, window_s=1.0)
    assert get_goal('goodput')(m) == 3.0
    assert get_goal('slo99_throughput').needs == frozenset({'slo99_throughput'})


def test_unknown_goal_is_refused_listing_known_ones():
    with pytest.raises(ConfigError) as exc:
        get_goal('latency')
    for name in ('goodput', 'slo99_throughput', 'throughput', 'fairness'):
        assert name in str(exc.value)


def test_duplicate_registration_is_refused():
    with pytest.raises(ConfigError, match='already registered'):
        register_goal(Goal('goodput', lambda m: 0.0))


def test_weighted_sum_from_text_and_mapping():
    g = get_goal('0.5*goodput + 100*fairness')
    assert g(METRICS) == pytest.approx(0.5 * 120 + 80)
    h = get_goal({'weighted': {'goodput': 1.0, 'slo99_throughput': 2.0}})
    assert h(METRICS) == pytest.approx(300.0)
    assert 'slo99_throughput' in h.needs
    with pytest.raises(ConfigError, match='unknown metric'):
        get_goal('0.5*goodput + 2*speed')
    with pytest.raises(ConfigError, match='cannot parse'):
        get_goal('goodput + 0.5*')


def test_user_entry_point_receives_the_metrics():
    mod = types.ModuleType('my_goals_for_test')
    seen = []

    def mine(metrics):
        seen.append(metrics)
        return metrics['goodput'] - metrics['throughput']

    mine.needs = ('goodput', 'throughput')
    mod.mine = mine
    sys.modules['my_goals_for_test'] = mod
    try:
        g = get_goal('my_goals_for_test:mine')
        assert g(METRICS) == -30.0
        assert seen == [METRICS]
        assert g.needs == frozenset({'goodput', 'throughput'})
        with pytest.raises(ConfigError, match='no callable'):
            get_goal('my_goals_for_test:missing')
        with pytest.raises(ConfigError, match='cannot import'):
            get_goal('no_such_module_xyz:f')
    finally:
        del sys.modules['my_goals_for_test']
