"""The priority router: tracks the plan, places every request once, survives processor loss."""

import threading
from collections import Counter

import numpy as np
import pytest

from hetero_infer.core.policy import Policy
from hetero_infer.core.router import PriorityRouter
from hetero_infer.errors import ConfigError

PROCS = ('gpu', 'dla0', 'dla1')


class _App:
    def __init__(self, name):
        self.name = name
        self.model = None


class _View:
    def __init__(self, free):
        self.free = free
        self.now_ms = 0.0

    def queue_len(self, proc):
        return 0

    def expected_free_ms(self, proc):
        return self.free[proc]


def _router(alloc, **kw):
    names = ['a%d' % i for i in range(len(alloc))]
    r = PriorityRouter(Policy(names, PROCS, alloc), **kw)
    r.reset([_App(n) for n in names], None)
    return r


@pytest.mark.parametrize('decay,tol', [(0.9, 0.05), (0.98, 0.01), (0.999, 0.01)])
def test_shares_track_allocation(decay, tol):
    # a window of ~10 requests cannot resolve a 10% share finely; longer windows track closely
    alloc = [[0.6, 0.3, 0.1], [0.0, 0.5, 0.5], [0.25, 0.25, 0.5]]
    r = _router(alloc, decay=decay, tie_tolerance=0.0)
    rng = np.random.default_rng(0)
    counts = [Counter() for _ in alloc]
    view = _View({p: 0.0 for p in PROCS})
    for k in range(30000):
        app = int(rng.integers(0, 3))
        counts[app][r.dispatch(app, float(k), view)] += 1
    for i, row in enumerate(alloc):
        total = sum(counts[i].values())
        for j, p in enumerate(PROCS):
            assert abs(counts[i][p] / total - row[j]) < tol
            if row[j] == 0.0:
                assert counts[i][p] == 0


@pytest.mark.parametrize('tie_tolerance', [0.25, 0.5, 1.0])
def test_tie_band_keeps_every_share_within_the_band(tie_tolerance):
    # the view always favours the GPU: it takes every tie, but no processor's realised share
    # falls below A / (1 + tolerance), and a zero share stays zero
    alloc = [[0.2, 0.5, 0.3], [0.0, 0.6, 0.4]]
    r = _router(alloc, tie_tolerance=tie_tolerance)
    view = _View({'gpu': 0.0, 'dla0': 5.0, 'dla1': 5.0})
    counts = [Counter() for _ in alloc]
    for k in range(20000):
        counts[k % 2][r.dispatch(k % 2, float(k), view)] += 1
    for i, row in enumerate(alloc):
        total = sum(counts[i].values())
        for j, p in enumerate(PROCS):
            share = counts[i][p] / total
            assert share >= row[j] / (1 + tie_tolerance) - 0.02
            if row[j] == 0.0:
                assert counts[i][p] == 0
    assert counts[0]['gpu'] / 10000 > 0.2 + 0.02  # the favoured processor gained


def test_every_request_placed_exactly_once_on_an_allowed_processor():
    r = _router([[0.5, 0.5, 0.0]])
    placed = [r.dispatch(0, float(k), _View({p: 0.0 for p in PROCS})) for k in range(1000)]
    assert len(placed) == 1000
    assert set(placed) == {'gpu', 'dla0'}


def test_ties_go_to_earliest_expected_finish():
    r = _router([[0.5, 0.5, 0.0]], tie_tolerance=0.0)
    # first decision: both unused (infinite score) -> the one that is free first
    assert r.dispatch(0, 0.0, _View({'gpu': 10.0, 'dla0': 2.0, 'dla1': 0.0})) == 'dla0'
    r = _router([[0.5, 0.5, 0.0]], tie_tolerance=0.0)
    assert r.dispatch(0, 0.0, _View({'gpu': 1.0, 'dla0': 2.0, 'dla1': 0.0})) == 'gpu'


def test_removed_processor_drops_out_and_allocation_renormalises():
    r = _router([[0.5, 0.3, 0.2], [0.0, 1.0, 0.0]], tie_tolerance=0.0)
    r.remove_processor('dla0')
    assert r.active_processors == ['gpu', 'dla1']
    eff = r.effective_allocation(0)
    assert set(eff) == {'gpu', 'dla1'}
    assert abs(eff['gpu'] - 0.5 / 0.7) < 1e-12
    # application 1 lived on dla0 only: it spreads over what its model can still use
    assert set(r.effective_allocation(1)) == {'gpu', 'dla1'}
    view = _View({p: 0.0 for p in PROCS})
    placed = Counter(r.dispatch(0, float(k), view) for k in range(7000))
    assert placed['dla0'] == 0
    assert abs(placed['gpu'] / 7000 - 0.5 / 0.7) < 0.01
    r.restore_processor('dla0')
    assert 'dla0' in r.effective_allocation(0)
    with pytest.raises(ConfigError, match='unknown processor'):
        r.remove_processor('npu')


def test_no_processor_left_returns_none():
    mask = [[True, False, False]]
    r = PriorityRouter(Policy(['a0'], PROCS, [[1, 0, 0]], mask=mask))
    r.reset([_App('a0')], None)
    r.remove_processor('gpu')
    assert r.dispatch(0, 0.0, None) is None


def test_unknown_application_is_refused():
    r = PriorityRouter(Policy(['a0'], PROCS, [[1, 0, 0]]))
    with pytest.raises(ConfigError, match='no row'):
        r.reset([_App('other')], None)
    with pytest.raises(ConfigError, match='decay'):
        PriorityRouter(Policy(['a0'], PROCS, [[1, 0, 0]]), decay=1.0)


def test_concurrent_dispatch_from_threads_keeps_shares():
    r = _router([[0.5, 0.25, 0.25]], tie_tolerance=0.0)
    out = []
    lock = threading.Lock()

    def worker():
        local = [r.dispatch(0, 0.0, None) for _ in range(3000)]
        with lock:
            out.extend(local)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    c = Counter(out)
    assert len(out) == 12000
    assert abs(c['gpu'] / 12000 - 0.5) < 0.01
