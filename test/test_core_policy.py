"""Policies: validation on construction, renormalisation, sampling guarantee, JSON round trip."""

import numpy as np
import pytest

from hetero_infer.errors import ConfigError
from hetero_infer.planning.policy import (
    Policy,
    neighbours,
    quantise_row,
    random_policy,
    samples_for_guarantee,
    uniform_policy,
)

APPS = ('cam', 'mic')
PROCS = ('gpu', 'dla0', 'dla1')


def test_rows_sum_to_one_and_are_checked():
    p = Policy(APPS, PROCS, [[0.5, 0.25, 0.25], [1.0, 0.0, 0.0]])
    assert np.allclose(p.allocation.sum(axis=1), 1.0)
    with pytest.raises(ConfigError, match='sum to 0.9'):
        Policy(APPS, PROCS, [[0.5, 0.2, 0.2], [1.0, 0.0, 0.0]])
    with pytest.raises(ConfigError, match='negative'):
        Policy(APPS, PROCS, [[1.5, -0.5, 0.0], [1.0, 0.0, 0.0]])
    with pytest.raises(ConfigError, match='shape'):
        Policy(APPS, PROCS, [[1.0, 0.0], [1.0, 0.0]])


def test_share_where_model_cannot_run_is_refused():
    mask = [[True, True, True], [True, False, False]]
    with pytest.raises(ConfigError, match="'mic'.*dla0"):
        Policy(APPS, PROCS, [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]], mask=mask)
    with pytest.raises(ConfigError, match='none of'):
        Policy(APPS, PROCS, [[1, 0, 0], [1, 0, 0]], mask=[[True] * 3, [False] * 3])


def test_without_renormalises_and_spreads_orphans():
    mask = [[True, True, True], [True, True, True]]
    p = Policy(APPS, PROCS, [[0.5, 0.3, 0.2], [0.0, 1.0, 0.0]], mask=mask)
    q = p.without('dla0')
    assert q.processor_ids == ('gpu', 'dla1')
    assert np.allclose(q.allocation[0], [0.5 / 0.7, 0.2 / 0.7])
    assert np.allclose(q.allocation[1], [0.5, 0.5])  # its whole share was on dla0
    with pytest.raises(ConfigError, match='unknown processor'):
        p.without('npu')
    only = Policy(APPS, PROCS, [[1, 0, 0], [1, 0, 0]], mask=[[True, False, False]] * 2)
    with pytest.raises(ConfigError, match='no processor'):
        only.without('gpu')


def test_samples_for_guarantee():
    assert samples_for_guarantee(0.01, 0.99) == 459
    assert samples_for_guarantee(0.05, 0.95) == 59
    with pytest.raises(ConfigError):
        samples_for_guarantee(0.0, 0.99)
    with pytest.raises(ConfigError):
        samples_for_guarantee(0.01, 1.0)


def test_random_policies_respect_mask_grid_and_seed():
    mask = np.array([[True, True, True], [True, False, True]])
    a = [random_policy(np.random.default_rng(3), APPS, PROCS, mask) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(0)
    zeros = 0
    for _ in range(200):
        p = random_policy(rng, APPS, PROCS, mask)
        assert np.allclose(p.allocation.sum(axis=1), 1.0)
        assert p.allocation[1, 1] == 0.0
        assert np.allclose(np.round(p.allocation * 20), p.allocation * 20)
        zeros += int((p.allocation[0] == 0).any())
    assert zeros > 10  # the grid gives "unused processor" a real probability


def test_quantise_and_neighbours_keep_rows_valid():
    row = quantise_row(np.array([0.333, 0.333, 0.334]), 0.05)
    assert abs(row.sum() - 1.0) < 1e-12
    p = uniform_policy(APPS, PROCS, [[True] * 3, [True, True, False]])
    ns = neighbours(p, 0.2)
    assert ns and all(np.allclose(q.allocation.sum(axis=1), 1.0) for q in ns)
    assert all(q.allocation[1, 2] == 0.0 for q in ns)


def test_json_round_trip():
    p = Policy(APPS, PROCS, [[0.5, 0.25, 0.25], [0.2, 0.8, 0.0]])
    q = Policy.from_dict(p.to_dict())
    assert q == p
    with pytest.raises(ConfigError, match='allocation'):
        Policy.from_dict({'processors': ['gpu']})
