"""Plan-live parity: the serving engine's router decides as the planner's simulator's router.

One request sequence (the simulator's own arrivals) goes through the planner's simulator and
through a live :class:`ServingEngine` with zero-time executors and a clock that reads the
arrival time (each request's outcome is awaited before the next is sent, so no real queue
fills up: the engine's view of the queues is the expected free times alone). With isolated
latencies as the predictor both hosts' views hold the same
expected free times, so any difference in the decisions is a difference in the routers (their
service times, SLOs, options, weights: shedding by weight is compared decision by decision,
with its drop reason).
"""

import threading

import numpy as np
import pytest

from hetero_infer.backends.base import InferenceResult
from hetero_infer.interference.predictors import IsolatedPredictor
from hetero_infer.models.zoo import load_model
from hetero_infer.planning.policy import Policy
from hetero_infer.planning.router import SHED, SLO_UNREACHABLE, PriorityRouter
from hetero_infer.planning.search import SimSettings, build_problem, plan_simulator
from hetero_infer.platform.spec import Platform
from hetero_infer.serving.engine import ServingEngine
from hetero_infer.workload.requests import App, with_criticality


class _Instant:
    def __init__(self, proc):
        self.proc = proc

    def run(self, inputs):
        return InferenceResult({'y': np.zeros(1)}, self.proc, 0.0, 0.0)


class _Recorder:
    """Wraps the simulator's router and records (time, app, decision, drop reason)."""

    def __init__(self, inner):
        self.inner = inner
        self.log = []

    def reset(self, apps, platform):
        self.inner.reset(apps, platform)

    def dispatch(self, app_index, now_ms, view):
        proc, why = self.inner.route(app_index, now_ms, view)
        self.log.append((now_ms, app_index, proc, why))
        return proc

    def completed(self, *args):
        self.inner.completed(*args)


def _problem(weights=None):
    plat = Platform.load('xavier')
    apps = []
    for name, rate, slo in (('resnet50', 110.0, 4.0), ('googlenet', 160.0, 3.0),
                            ('vgg16', 25.0, 6.0)):
        m = load_model(name)
        apps.append(App(name, m, rate, slo * plat.isolated_latency_ms(m, 'gpu')))
    if weights:
        apps = with_criticality(apps, weights=weights)
    return build_problem(plat, apps, IsolatedPredictor(plat), 'goodput',
                         SimSettings(duration_s=1.5, warmup_s=0.1, seed=3))


@pytest.fixture(scope='module')
def problem():
    return _problem()


def _policy(problem, **router):
    names = problem.app_names
    alloc = np.where(problem.mask, 1.0, 0.0)
    alloc = alloc / alloc.sum(axis=1, keepdims=True)
    return Policy(names, problem.processor_ids, alloc, mask=problem.mask, router=router)


def _engine(problem, policy):
    procs = problem.processor_ids
    executors = [{p: _Instant(p) for j, p in enumerate(procs) if problem.mask[i, j]}
                 for i in range(len(problem.apps))]
    expected = [{p: problem.isolated_ms[i][j] for j, p in enumerate(procs)
                 if problem.mask[i, j]} for i in range(len(problem.apps))]
    done = threading.Semaphore(0)
    eng = ServingEngine(app_names=problem.app_names, executors=executors, expected_ms=expected,
                        slo_ms=[a.slo_ms for a in problem.apps], policy=policy,
                        on_outcome=lambda o: done.release(),
                        queue_limit=problem.settings.max_queue, admission_control=False)
    return eng, done


def _live_decisions(eng, done, log):
    clock = [0.0]
    eng.now_ms = lambda: clock[0]
    out = []
    for t, a, _, _ in log:
        clock[0] = t
        req = eng.new_request(a, {'x': 0})
        before = dict(eng.drops)
        eng.submit(req)
        # one at a time: the queues' real depth (threads) must not decide a full queue
        assert done.acquire(timeout=10.0)
        why = [r for r, n in eng.drops.items() if n != before.get(r, 0)]
        out.append((None, why[0]) if why else (req.proc, ''))
    eng.close()
    return out


@pytest.mark.parametrize('router', [{}, {'tie_tolerance': 0.0}, {'tie_tolerance': 1.0},
                                    {'slo_dispatch': 'drop'}])
def test_live_engine_routes_like_the_planners_simulator(problem, router):
    policy = _policy(problem, **router)
    sim = plan_simulator(problem)
    rec = _Recorder(PriorityRouter(policy))
    sim.run(rec, scale=1.3)
    assert len(rec.log) > 300
    eng, done = _engine(problem, policy)
    live = _live_decisions(eng, done, rec.log)
    planned = [(p, why) for _, _, p, why in rec.log]
    assert live == planned
    # the sequence exercised the latency tie-break: several processors per application
    for a in range(len(problem.apps)):
        assert len({p for (_, i, p, _) in rec.log if i == a and p}) >= 2
    if router.get('slo_dispatch') == 'drop':
        assert eng.drops['slo_unreachable'] == planned.count((None, SLO_UNREACHABLE)) > 0


@pytest.mark.parametrize('router', [{}, {'slo_dispatch': 'drop'}])
def test_live_engine_sheds_by_weight_like_the_planners_simulator(router):
    weighted = _problem({'googlenet': 3.0, 'vgg16': 2.0})
    policy = _policy(weighted, **router)
    rec = _Recorder(PriorityRouter(policy))
    plan_simulator(weighted).run(rec, scale=1.6)
    planned = [(p, why) for _, _, p, why in rec.log]
    shed = [i for _, i, _, why in rec.log if why == SHED]
    # overload sheds both lower weights, the highest never
    assert {0, 1, 2} - set(shed) == {1} and len(shed) > 20
    eng, done = _engine(weighted, policy)
    eng.set_weights([a.weight for a in weighted.apps])
    assert _live_decisions(eng, done, rec.log) == planned
    assert eng.drops[SHED] == len(shed)


def test_service_times_survive_replans_and_processor_changes(problem):
    policy = _policy(problem)
    eng, _ = _engine(problem, policy)
    planned = PriorityRouter(policy)
    planned.reset(problem.apps, plan_simulator(problem).platform)
    want = [planned.service_ms(i) for i in range(len(problem.apps))]
    assert all(v > 0 for row in want for v in row.values())
    assert [eng.router.service_ms(i) for i in range(len(problem.apps))] == want
    eng.set_policy(_policy(problem, tie_tolerance=0.0))
    assert [eng.router.service_ms(i) for i in range(len(problem.apps))] == want
    assert eng.router.options()['tie_tolerance'] == 0.0
    eng.router.remove_processor('dla0')
    eng.router.restore_processor('dla0')
    assert [eng.router.service_ms(i) for i in range(len(problem.apps))] == want
    eng.close()
