"""Serving engine rules: one outcome per request, bounded queues, atomic policy swap, and
processor faults: fail-over with nothing lost, hung workers abandoned, recovery after probes."""

import threading
import time

import numpy as np

from hetero_infer.backends.base import InferenceResult
from hetero_infer.planning.policy import Policy
from hetero_infer.serving.engine import DROP_REASONS, ServingEngine
from hetero_infer.twin.faults import HealthSettings

PROCS = ('gpu', 'dla0', 'dla1')


class SleepExecutor:
    """Executor stand-in: sleeps ``ms`` and checks that its processor never runs two at once."""

    def __init__(self, proc, ms, busy, fail=False):
        self.proc, self.ms, self.busy, self.fail = proc, ms, busy, fail
        self.hang = None   # a threading.Event: the inference blocks until it is set
        self.calls = 0

    def run(self, inputs):
        with self.busy['lock']:
            assert not self.busy[self.proc], 'two inferences at once on ' + self.proc
            self.busy[self.proc] = True
        try:
            self.calls += 1
            time.sleep(self.ms / 1e3)
            if self.hang is not None:
                self.hang.wait()
            if self.fail:
                raise RuntimeError('device lost')
            return InferenceResult({'y': np.zeros(3)}, self.proc, 0.0, self.ms)
        finally:
            with self.busy['lock']:
                self.busy[self.proc] = False


def _engine(ms=2.0, queue_limit=3, admission=False, fail_proc=None, policy=None,
            slo_ms=50.0, health=None, events=None):
    busy = {'lock': threading.Lock(), 'gpu': False, 'dla0': False, 'dla1': False}
    outcomes = []
    lock = threading.Lock()

    def record(o):
        with lock:
            outcomes.append(o)

    apps = ['a', 'b']
    execs = [{p: SleepExecutor(p, ms, busy, fail=(p == fail_proc)) for p in PROCS}
             for _ in apps]
    policy = policy or Policy(apps, PROCS, [[0.5, 0.25, 0.25], [0.0, 0.5, 0.5]])
    eng = ServingEngine(app_names=apps, executors=execs,
                        expected_ms=[{p: ms for p in PROCS} for _ in apps],
                        slo_ms=[slo_ms, slo_ms], policy=policy, on_outcome=record,
                        queue_limit=queue_limit, admission_control=admission, health=health,
                        on_health=None if events is None else
                        lambda p, ok, why: events.append((p, ok, why)))
    eng.test_execs = execs
    return eng, outcomes


def _wait_all(eng, outcomes, n, timeout_s=10.0):
    end = time.time() + timeout_s
    while len(outcomes) < n and time.time() < end:
        time.sleep(0.01)


def test_overload_every_request_one_outcome_and_queues_bounded():
    eng, outcomes = _engine(ms=3.0, queue_limit=2)
    n = 300
    max_depth = 0
    for i in range(n):
        eng.submit(eng.new_request(i % 2, {'x': i}))
        max_depth = max(max_depth, max(w.depth for w in eng.workers.values()))
    _wait_all(eng, outcomes, n)
    eng.close()
    ids = [o.request.request_id for o in outcomes]
    assert len(ids) == n and len(set(ids)) == n
    assert max_depth <= 2 + 1  # waiting + the one running
    dropped = [o for o in outcomes if not o.ok]
    assert dropped and all(o.drop_reason == 'queue_full' for o in dropped)
    assert eng.counts == {'submitted': n, 'results': n - len(dropped), 'dropped': len(dropped)}
    # application b may only use the DLAs
    assert all(o.proc in ('dla0', 'dla1') for o in outcomes if o.request.app_index == 1)


def test_policy_swap_loses_nothing_and_new_plan_is_followed():
    eng, outcomes = _engine(ms=0.5, queue_limit=1000)
    for i in range(100):
        eng.submit(eng.new_request(0, {'x': i}))
    version = eng.set_policy(Policy(['a', 'b'], PROCS, [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))
    assert version == 2
    for i in range(100):
        eng.submit(eng.new_request(0, {'x': i}))
    _wait_all(eng, outcomes, 200)
    eng.close()
    assert len(outcomes) == 200
    assert all(o.ok for o in outcomes), [(o.drop_reason, o.detail) for o in outcomes if not o.ok]
    after = [o for o in outcomes if o.request.policy_version == 2]
    assert len(after) == 100 and all(o.proc == 'dla1' for o in after)


def _one_outcome_each(outcomes, n):
    ids = [o.request.request_id for o in outcomes]
    assert len(ids) == n and len(set(ids)) == n, (len(ids), len(set(ids)), n)


def test_failing_processor_fails_over_and_nothing_is_lost():
    events = []
    eng, outcomes = _engine(ms=0.5, queue_limit=1000, fail_proc='gpu', slo_ms=5000.0,
                            events=events, health=HealthSettings(failure_threshold=3,
                                                                 probe_period_s=60.0))
    for i in range(60):
        eng.submit(eng.new_request(0, {'x': i}))
        time.sleep(0.001)
    _wait_all(eng, outcomes, 60)
    eng.close()
    _one_outcome_each(outcomes, 60)
    # every request that failed on gpu was re-dispatched once to a DLA and answered there
    assert all(o.ok and o.proc in ('dla0', 'dla1') for o in outcomes), \
        [(o.proc, o.drop_reason, o.detail) for o in outcomes if not o.ok]
    retried = [o for o in outcomes if o.request.failed_on == 'gpu']
    assert retried and all(o.info.get('failed_on') == 'gpu' for o in retried)
    assert eng.test_execs[0]['gpu'].calls == 3  # out of routing after 3 consecutive failures
    assert [(p, ok) for p, ok, _ in events] == [('gpu', False)]
    assert '3 consecutive failures' in events[0][2] and 'device lost' in events[0][2]
    assert not eng.health.is_healthy('gpu') and 'gpu' not in eng.router.active_processors


def test_failed_request_whose_slo_passed_is_dropped_with_its_reason():
    # the failing gpu takes 30 ms per inference: past the 20 ms SLO, the retry cannot help
    eng, outcomes = _engine(ms=30.0, queue_limit=1000, fail_proc='gpu', slo_ms=20.0,
                            policy=Policy(['a', 'b'], PROCS, [[1.0, 0.0, 0.0], [0, 0.5, 0.5]]))
    eng.submit(eng.new_request(0, {'x': 0}))
    _wait_all(eng, outcomes, 1)
    eng.close()
    _one_outcome_each(outcomes, 1)
    o = outcomes[0]
    assert o.drop_reason == 'processor_failed' and o.proc == 'gpu'
    assert 'device lost' in o.detail and 'SLO 20.0 ms already passed' in o.detail


def test_application_with_no_other_processor_gets_a_drop_with_the_reason():
    policy = Policy(['a', 'b'], PROCS, [[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]],
                    mask=[[True, False, False], [False, True, True]])
    eng, outcomes = _engine(ms=0.5, queue_limit=1000, fail_proc='gpu', policy=policy)
    for p in ('dla0', 'dla1'):  # application a may only use the gpu
        del eng.executors[0][p]
    for i in range(10):
        eng.submit(eng.new_request(0, {'x': i}))
    _wait_all(eng, outcomes, 10)
    eng.close()
    _one_outcome_each(outcomes, 10)
    assert all(o.drop_reason in ('processor_failed', 'no_processor') for o in outcomes)
    failed = [o for o in outcomes if o.drop_reason == 'processor_failed']
    assert failed and all('no other healthy processor for application a' in o.detail
                          for o in failed)


def test_hung_worker_is_abandoned_and_its_late_result_discarded():
    events = []
    eng, outcomes = _engine(ms=1.0, queue_limit=1000, slo_ms=5000.0, events=events,
                            health=HealthSettings(watchdog_factor=5.0, watchdog_min_ms=30.0,
                                                  probe_period_s=60.0))
    hang = threading.Event()
    eng.test_execs[0]['gpu'].hang = hang
    n = 40
    for i in range(n):
        eng.submit(eng.new_request(0, {'x': i}))
        time.sleep(0.002)
    _wait_all(eng, outcomes, n)
    hung_thread = [t for t in threading.enumerate() if t.name == 'hetero-infer-gpu']
    assert len(hung_thread) == 2  # the abandoned one (still inside run) and its replacement
    hang.set()  # the hung inference returns now: its output must be thrown away
    end = time.time() + 5.0
    while eng.late_discarded < 1 and time.time() < end:
        time.sleep(0.01)
    eng.close()
    _one_outcome_each(outcomes, n)
    assert eng.late_discarded == 1
    assert all(o.ok and o.proc in ('dla0', 'dla1') for o in outcomes), \
        [(o.proc, o.drop_reason, o.detail) for o in outcomes if not o.ok]
    assert [(p, ok) for p, ok, _ in events] == [('gpu', False)]
    assert events[0][2].startswith('hang: inference of a running')
    assert eng.counts == {'submitted': n, 'results': n, 'dropped': 0}


def test_unhealthy_processor_rejoins_after_probes_succeed():
    events = []
    eng, outcomes = _engine(ms=0.5, queue_limit=1000, fail_proc='gpu', slo_ms=5000.0,
                            events=events, health=HealthSettings(
                                failure_threshold=2, probe_period_s=0.05, recovery_successes=3))
    for i in range(20):
        eng.submit(eng.new_request(0, {'x': i}))
        time.sleep(0.001)
    _wait_all(eng, outcomes, 20)
    assert not eng.health.is_healthy('gpu')
    time.sleep(0.3)  # failing probes keep it out
    assert not eng.health.is_healthy('gpu') and len(events) == 1
    for execs in eng.test_execs:
        execs['gpu'].fail = False
    end = time.time() + 5.0
    while not eng.health.is_healthy('gpu') and time.time() < end:
        time.sleep(0.01)
    assert eng.health.is_healthy('gpu') and 'gpu' in eng.router.active_processors
    assert [(p, ok) for p, ok, _ in events] == [('gpu', False), ('gpu', True)]
    for i in range(40):
        eng.submit(eng.new_request(0, {'x': i}))
        time.sleep(0.001)
    _wait_all(eng, outcomes, 60)
    eng.close()
    _one_outcome_each(outcomes, 60)
    assert all(o.ok for o in outcomes)
    assert any(o.proc == 'gpu' for o in outcomes[20:])  # used again


def test_inputs_the_model_refuses_are_bad_input_not_a_processor_failure():
    from hetero_infer.errors import ModelError

    class Refusing:
        def run(self, inputs):
            raise ModelError('resnet18: input x has shape (3,), expected (1, 3, 224, 224)')

    eng, outcomes = _engine(ms=0.2, queue_limit=1000)
    eng.executors[0]['gpu'] = Refusing()
    eng.health.settings = HealthSettings(failure_threshold=1)
    policy = Policy(['a', 'b'], PROCS, [[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    eng.set_policy(policy)
    for i in range(5):
        eng.submit(eng.new_request(0, {'x': i}))
    _wait_all(eng, outcomes, 5)
    eng.close()
    _one_outcome_each(outcomes, 5)
    assert all(o.drop_reason == 'bad_input' and 'expected (1, 3, 224, 224)' in o.detail
               for o in outcomes)
    assert eng.health.is_healthy('gpu')


def test_admission_control_rejects_hopeless_requests():
    eng, outcomes = _engine(ms=20.0, queue_limit=100, admission=True)
    for i in range(30):
        eng.submit(eng.new_request(1, {'x': i}))
    _wait_all(eng, outcomes, 30)
    eng.close()
    assert len(outcomes) == 30
    reasons = {o.drop_reason for o in outcomes}
    assert 'rejected' in reasons and None in reasons
    assert reasons <= set(DROP_REASONS) | {None}


def test_close_drops_waiting_requests_as_shutdown():
    eng, outcomes = _engine(ms=20.0, queue_limit=100)
    for i in range(20):
        eng.submit(eng.new_request(0, {'x': i}))
    eng.close()
    eng.submit(eng.new_request(0, {'x': 'late'}))
    _wait_all(eng, outcomes, 21)
    assert len(outcomes) == 21
    assert sum(o.drop_reason == 'shutdown' for o in outcomes) >= 10


def _flood(router, n=40):
    policy = Policy(['a', 'b'], PROCS, [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], router=router)
    eng, outcomes = _engine(ms=20.0, queue_limit=2, policy=policy, slo_ms=1e4)
    for i in range(n):
        eng.submit(eng.new_request(0, {'x': i}))
    _wait_all(eng, outcomes, n)
    eng.close()
    assert len(outcomes) == n
    return eng, outcomes


def test_full_queue_overflows_to_idle_processors_outside_the_plan():
    off, _ = _flood({'overflow': False})
    on, outcomes = _flood({'overflow': True})
    assert off.proc_results['dla0'] == off.proc_results['dla1'] == 0
    # the plan gives the DLAs nothing; they were idle while the GPU's queue was full
    assert on.proc_results['dla0'] >= 1 and on.proc_results['dla1'] >= 1
    assert on.drops['queue_full'] < off.drops['queue_full']
    assert on.counts['results'] > off.counts['results']


def test_slo_unreachable_requests_are_dropped_at_once_and_counted_apart():
    mask = [[True, False, False], [True, True, True]]
    policy = Policy(['a', 'b'], PROCS, [[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]], mask=mask,
                    router={'slo_dispatch': 'drop'})
    eng, outcomes = _engine(ms=10.0, queue_limit=50, policy=policy, slo_ms=25.0)
    n = 20
    for i in range(n):
        eng.submit(eng.new_request(0, {'x': i}))
    _wait_all(eng, outcomes, n)
    eng.close()
    assert len(outcomes) == n
    unreachable = [o for o in outcomes if o.drop_reason == 'slo_unreachable']
    # expected finishes 10, 20 ms fit the 25 ms SLO; the third (30 ms) and later cannot
    assert len(unreachable) >= n - 3 and eng.drops['slo_unreachable'] == len(unreachable)
    assert all(o.proc is None and 'SLO of 25.0 ms' in o.detail for o in unreachable)
    assert eng.counts['results'] >= 2 and 'slo_unreachable' in DROP_REASONS
