"""The priority router: tracks the plan, places every request once, survives processor loss."""

import threading
from collections import Counter

import numpy as np
import pytest

from hetero_infer.errors import ConfigError
from hetero_infer.planning.policy import Policy
from hetero_infer.planning.router import PriorityRouter

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


class _QueueView:
    """Queue lengths and expected free times by hand, with a queue limit."""

    def __init__(self, qlen, free=None, limit=2):
        self.qlen = dict(qlen)
        self.free = free or {p: 0.0 for p in PROCS}
        self.queue_limit = limit
        self.now_ms = 0.0

    def queue_len(self, proc):
        return self.qlen[proc]

    def expected_free_ms(self, proc):
        return self.free[proc]

    def queue_full(self, proc):  # the running one plus ``limit`` waiting
        return self.qlen[proc] > self.queue_limit


def _timed_router(alloc, service, mask=None, slos=None, **router):
    names = ['a%d' % i for i in range(len(alloc))]
    r = PriorityRouter(Policy(names, PROCS, alloc, mask=mask, router=router))
    r.reset([_App(n) for n in names], None)
    r.set_service_ms(service)
    if slos is not None:
        r.set_slos(slos)
    return r


def test_full_queue_overflows_to_the_fastest_idle_allowed_processor():
    service = [{'gpu': 2.0, 'dla0': 5.0, 'dla1': 4.0}]
    r = _timed_router([[1.0, 0.0, 0.0]], service)
    # gpu full (running + 2 waiting), both DLAs idle: the faster DLA, outside the plan
    assert r.dispatch(0, 0.0, _QueueView({'gpu': 3, 'dla0': 0, 'dla1': 0})) == 'dla1'
    # overflow does not count as the plan's share: the next free gpu slot is still taken
    assert r.consumed_shares(0) == {'gpu': 0.0, 'dla0': 0.0, 'dla1': 0.0}
    assert r.dispatch(0, 0.0, _QueueView({'gpu': 2, 'dla0': 0, 'dla1': 0})) == 'gpu'
    # no idle processor: the full one is returned (the host drops it as queue_full)
    assert r.dispatch(0, 0.0, _QueueView({'gpu': 3, 'dla0': 1, 'dla1': 1})) == 'gpu'


def test_overflow_never_goes_where_the_application_may_not_or_cannot_run():
    mask = [[True, True, False]]
    service = [{'gpu': 2.0, 'dla0': 5.0}]      # dla1: the model has no engine there either
    r = _timed_router([[1.0, 0.0, 0.0]], service, mask=mask)
    assert r.dispatch(0, 0.0, _QueueView({'gpu': 3, 'dla0': 0, 'dla1': 0})) == 'dla0'
    r2 = _timed_router([[1.0, 0.0, 0.0]], [{'gpu': 2.0, 'dla0': 5.0}])
    assert r2.dispatch(0, 0.0, _QueueView({'gpu': 3, 'dla0': 1, 'dla1': 0})) == 'gpu'
    off = _timed_router([[1.0, 0.0, 0.0]], [{'gpu': 2.0, 'dla0': 5.0, 'dla1': 4.0}],
                        overflow=False)
    assert off.dispatch(0, 0.0, _QueueView({'gpu': 3, 'dla0': 0, 'dla1': 0})) == 'gpu'


def test_slo_unreachable_drops_only_when_no_processor_can_make_it():
    service = [{'gpu': 2.0, 'dla0': 5.0, 'dla1': 5.0}]
    r = _timed_router([[0.5, 0.5, 0.0]], service, slos=[10.0], slo_dispatch='drop')
    busy = {'gpu': 9.0, 'dla0': 6.0, 'dla1': 0.0}
    # dla1 (share 0 but allowed) could finish at 5 ms <= 10: reachable, routed by the plan
    proc, why = r.route(0, 0.0, _QueueView({p: 1 for p in PROCS}, busy))
    assert why == '' and proc in ('gpu', 'dla0')
    late = {'gpu': 9.0, 'dla0': 6.0, 'dla1': 6.0}
    assert r.route(0, 0.0, _QueueView({p: 1 for p in PROCS}, late)) == (None, 'slo_unreachable')
    assert r.dispatch(0, 0.0, _QueueView({p: 1 for p in PROCS}, late)) is None
    off = _timed_router([[0.5, 0.5, 0.0]], service, slos=[10.0])
    assert off.route(0, 0.0, _QueueView({p: 1 for p in PROCS}, late))[0] in ('gpu', 'dla0')


def test_bad_service_times_and_router_options_are_refused_by_name():
    r = _router([[0.5, 0.5, 0.0]])
    with pytest.raises(ConfigError, match='dla0.*-1'):
        r.set_service_ms([{'gpu': 1.0, 'dla0': -1}])
    with pytest.raises(ConfigError, match='2 service-time rows for 1'):
        r.set_service_ms([{}, {}])
    with pytest.raises(ConfigError, match='slo_dispatch.*maybe'):
        Policy(['a'], PROCS, [[1.0, 0.0, 0.0]], router={'slo_dispatch': 'maybe'})
    with pytest.raises(ConfigError, match="unknown router option 'band'"):
        Policy(['a'], PROCS, [[1.0, 0.0, 0.0]], router={'band': 0.5})


def test_router_options_round_trip_and_old_policy_files_load_with_defaults():
    pol = Policy(['a'], PROCS, [[0.5, 0.5, 0.0]],
                 router={'tie_tolerance': 0.25, 'slo_dispatch': 'drop'})
    back = Policy.from_dict(pol.to_dict())
    assert back == pol and back.router_option('tie_tolerance') == 0.25
    assert PriorityRouter(back).options() == {'tie_tolerance': 0.25, 'overflow': True,
                                              'slo_dispatch': 'drop', 'share_tracking': True}
    old = {'format': 'hetero_infer.policy/1', 'processors': list(PROCS),
           'allocation': {'a': {'gpu': 0.5, 'dla0': 0.5}}}
    assert PriorityRouter(Policy.from_dict(old)).options() == {
        'tie_tolerance': 0.5, 'overflow': True, 'slo_dispatch': 'off', 'share_tracking': True}
    # a third of a share survives the file's rounding (rows must still sum to 1)
    third = Policy(['a'], PROCS, [[1 / 3, 1 / 3, 1 / 3]])
    assert np.allclose(Policy.from_dict(third.to_dict()).allocation, 1 / 3)


def test_without_share_tracking_the_router_is_least_finish_time_over_the_plan():
    """share_tracking false with an even plan over every allowed processor decides exactly as
    least_finish_time (the searched schedulers can always choose that rule)."""
    from hetero_infer.planning.schedulers.least_finish_time import LeastFinishTimeDispatcher

    class View:
        def __init__(self):
            self.free = {p: 0.0 for p in PROCS}

        def expected_free_ms(self, p):
            return self.free[p]

        def queue_len(self, p):
            return 0

    iso = [[2.0, 5.0, 6.0], [1.0, 1.5, 9.0]]
    mask = [[True, True, True], [True, True, False]]
    even = Policy(['a', 'b'], PROCS, [[1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0]],
                  router={'share_tracking': False, 'overflow': False})
    router = PriorityRouter(even)
    router.reset(['a', 'b'])
    router.set_service_ms([dict(zip(PROCS, row)) for row in iso])
    lft = LeastFinishTimeDispatcher(PROCS, iso, mask)
    view = View()
    rng = np.random.default_rng(3)
    picks = set()
    for k in range(300):
        app = int(rng.integers(2))
        now = float(k)
        for p in PROCS:
            view.free[p] = max(view.free[p], now)
        got, want = router.dispatch(app, now, view), lft.dispatch(app, now, view)
        assert got == want, (k, app, got, want)
        picks.add(got)
        view.free[got] += iso[app][PROCS.index(got)]
    assert picks == set(PROCS)
    # and with share tracking on, the same plan does not follow least finish time
    tracked = PriorityRouter(Policy(['a', 'b'], PROCS, even.allocation,
                                    router={'overflow': False}))
    tracked.reset(['a', 'b'])
    tracked.set_service_ms([dict(zip(PROCS, row)) for row in iso])
    view = View()
    differs = 0
    for k in range(300):
        app = int(rng.integers(2))
        for p in PROCS:
            view.free[p] = max(view.free[p], float(k))
        got = tracked.dispatch(app, float(k), view)
        differs += got != lft.dispatch(app, float(k), view)
        view.free[got] += iso[app][PROCS.index(got)]
    assert differs > 0
