"""Serving engine rules: one outcome per request, bounded queues, atomic policy swap."""

import threading
import time

import numpy as np

from hetero_infer.backends.base import InferenceResult
from hetero_infer.core.policy import Policy
from hetero_infer.ros.engine import DROP_REASONS, ServingEngine

PROCS = ('gpu', 'dla0', 'dla1')


class SleepExecutor:
    """Executor stand-in: sleeps ``ms`` and checks that its processor never runs two at once."""

    def __init__(self, proc, ms, busy, fail=False):
        self.proc, self.ms, self.busy, self.fail = proc, ms, busy, fail

    def run(self, inputs):
        with self.busy['lock']:
            assert not self.busy[self.proc], 'two inferences at once on ' + self.proc
            self.busy[self.proc] = True
        try:
            time.sleep(self.ms / 1e3)
            if self.fail:
                raise RuntimeError('device lost')
            return InferenceResult({'y': np.zeros(3)}, self.proc, 0.0, self.ms)
        finally:
            with self.busy['lock']:
                self.busy[self.proc] = False


def _engine(ms=2.0, queue_limit=3, admission=False, fail_proc=None, policy=None):
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
                        expected_ms=[{p: ms for p in PROCS} for _ in apps], slo_ms=[50.0, 50.0],
                        policy=policy, on_outcome=record, queue_limit=queue_limit,
                        admission_control=admission)
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
    assert len(outcomes) == 200 and all(o.ok for o in outcomes)
    after = [o for o in outcomes if o.request.policy_version == 2]
    assert len(after) == 100 and all(o.proc == 'dla1' for o in after)


def test_failing_processor_drops_with_reason_and_others_keep_serving():
    eng, outcomes = _engine(ms=0.2, queue_limit=1000, fail_proc='gpu')
    for i in range(60):
        eng.submit(eng.new_request(0, {'x': i}))
    _wait_all(eng, outcomes, 60)
    eng.close()
    assert len(outcomes) == 60
    failed = [o for o in outcomes if o.drop_reason == 'processor_failed']
    assert failed and all(o.proc == 'gpu' and 'device lost' in o.detail for o in failed)
    assert any(o.ok and o.proc == 'dla0' for o in outcomes)


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
