"""The serving core driven without ROS: decoded arrays in, one result document per request out,
live setting changes, status and summary, and a processor fault handled by the service (the
scheduler node only wraps this)."""

import threading
import time

import numpy as np
import pytest

from hetero_infer.errors import ConfigError
from hetero_infer.serving.config import build_config
from hetero_infer.serving.preprocess import InputError
from hetero_infer.serving.service import Service

BASE = {
    'backend': 'null', 'plan_samples': 4, 'plan_duration_s': 0.3, 'queue_limit': 50,
    'admission_control': False,
    'applications': ['cam', 'mic'],
    'apps.cam.input_topic': 'cam', 'apps.cam.model': 'resnet18', 'apps.cam.top_k': 3,
    'apps.mic.input_topic': 'mic', 'apps.mic.input_type': 'audio_f32',
    'apps.mic.model': 'quartznet15x5',
}


class Published:
    def __init__(self):
        self.lock = threading.Lock()
        self.docs = []

    def __call__(self, app, doc):
        with self.lock:
            self.docs.append((app.name, doc))

    def wait(self, n, timeout_s=20.0):
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            with self.lock:
                if len(self.docs) >= n:
                    return True
            time.sleep(0.01)
        return False


def _service(**changes):
    out = Published()
    svc = Service(build_config(dict(BASE, **changes)), publish=out, plan_in_process=True,
                  name='test')
    return svc, out


def test_every_request_gets_one_document_with_its_fields():
    svc, out = _service()
    svc.start()
    cam, mic = svc.apps
    try:
        frame = np.full((48, 64, 3), 128, np.uint8)
        for i in range(30):
            svc.submit(cam, cam.preprocessor(frame, 'bgr'), received_s=time.perf_counter(),
                       stamp=(i, 7), frame_id='f%d' % i)
        svc.submit(mic, mic.preprocessor(np.zeros(16000, np.float32)),
                   received_s=time.perf_counter())
        svc.bad_input(cam, InputError('bad_step', 'Image.step 3 is smaller than ...'),
                      received_s=time.perf_counter(), stamp=(99, 0))
        assert out.wait(32)
    finally:
        svc.close()
    docs = [d for _, d in out.docs]
    assert len(docs) == 32
    assert sorted(d['request_id'] for d in docs) == list(range(1, 33))
    by_stamp = {d['stamp']['sec']: d for name, d in out.docs if name == 'cam'}
    assert [by_stamp[i]['frame_id'] for i in range(30)] == ['f%d' % i for i in range(30)]
    results = [d for d in docs if d['outcome'] == 'result']
    assert {d['application'] for d in results} == {'cam', 'mic'}
    for d in results:
        assert d['schema'] == 'hetero_infer.result/1' and d['processor'] in ('gpu', 'dla0', 'dla1')
    cam_results = [d for d in results if d['application'] == 'cam']
    assert cam_results and all(len(d['top_k']) == 3 for d in cam_results)
    assert [d for d in results if d['application'] == 'mic'][0]['transcript'] == ''
    bad = by_stamp[99]
    assert (bad['outcome'], bad['drop_reason']) == ('dropped', 'bad_input')
    assert bad['detail'].startswith('bad_step: Image.step 3')
    summary = svc.summary()
    assert summary['applications']['cam']['received'] == 31
    assert summary['applications']['cam']['dropped'] == {'bad_input': 1}
    assert summary['applications']['mic']['results'] == 1


def test_live_changes_apply_at_once_or_not_at_all():
    svc, out = _service()
    svc.start()
    try:
        cam = svc.apps[0]
        default_slo = cam.slo_ms
        svc.apply({'apps.cam.slo_ms': 250.0, 'queue_limit': 7})
        assert cam.slo_ms == 250.0 and svc.engine.slo_ms[0] == 250.0
        assert svc.engine.queue_limit == 7
        assert svc.status()['applications']['cam']['slo_ms'] == 250.0
        with pytest.raises(ConfigError, match='every goal_weights'):
            svc.apply({'goal': 'weighted', 'goal_weights.goodput': 0.0, 'apps.cam.slo_ms': 1.0})
        assert cam.slo_ms == 250.0 and svc.config.goal == 'goodput'
        svc.apply({'apps.cam.slo_ms': 0.0})
        assert cam.slo_ms == default_slo
    finally:
        svc.close()


def test_an_unhealthy_processor_is_reported_and_planned_around():
    svc, out = _service(backend='emulated', faults=['dla0:error@0'], failure_threshold=1,
                        applications=['cam'], probe_period_s=60.0)
    svc.start()
    cam = svc.apps[0]
    frame = np.zeros((32, 32, 3), np.uint8)
    try:
        n = 0
        end = time.monotonic() + 20.0
        while time.monotonic() < end and 'dla0' not in svc.status()['unhealthy']:
            svc.submit(cam, cam.preprocessor(frame, 'rgb'), received_s=time.perf_counter())
            n += 1
            time.sleep(0.01)
        status = svc.status()
        assert 'dla0' in status['unhealthy'], status['processors']
        assert not status['processors']['dla0']['health']['healthy']
        # the re-plan without dla0 routes nothing there
        end = time.monotonic() + 30.0
        while time.monotonic() < end and not svc.last_plan.get('reason', '').startswith(
                'processor dla0 unhealthy'):
            time.sleep(0.05)
        assert svc.last_plan['reason'] == 'processor dla0 unhealthy'
        assert svc.engine.policy.to_dict()['allocation']['cam']['dla0'] == 0.0
        assert out.wait(n)
    finally:
        svc.close()
    docs = [d for _, d in out.docs]
    assert len(docs) == n
    assert not any(d['processor'] == 'dla0' and d['outcome'] == 'result' for d in docs)


def test_live_p99_is_the_simulations_p99():
    from types import SimpleNamespace

    from hetero_infer.planning.metrics import percentile
    from hetero_infer.serving.status import Stats
    rng = np.random.default_rng(5)
    lat = rng.lognormal(2.0, 0.6, 333).tolist()
    st = Stats(1)
    for x in lat:
        st.outcome(0, 'gpu', None, '', x, True)
    app = SimpleNamespace(index=0, name='a', slo_ms=50.0, model=SimpleNamespace(name='m'))
    window = st.window([app], 1.0)['applications']['a']
    # one definition: numpy's linear interpolation, which an index into the sorted list is not
    assert window['p99_ms'] == round(float(np.percentile(lat, 99)), 3)
    assert window['p99_ms'] == round(percentile(lat, 99), 3)
    assert window['p99_ms'] != round(sorted(lat)[int(0.99 * len(lat))], 3)
    assert st.totals([app], ['gpu'])['processors']['a@gpu']['p99_ms'] == percentile(lat, 99)


def test_a_goal_change_supersedes_the_plan_under_way():
    """The plan for the old goal, finishing after the change, is never installed, and the status
    never names a goal whose policy is not the one in force."""
    svc, out = _service()
    real_plan = svc.plan
    gate = threading.Event()
    started = threading.Event()
    planned_goals = []

    def slow_plan(cfg, rates, down=frozenset()):
        planned_goals.append(cfg.goal)
        if len(planned_goals) == 1:  # the start-up plan (goodput) is still searching...
            started.set()
            assert gate.wait(30.0)
        return real_plan(cfg, rates, down)
    svc.plan = slow_plan
    installed = []
    real_set = svc.engine.set_policy

    def set_policy(policy):
        installed.append(svc.config.goal)
        return real_set(policy)
    svc.engine.set_policy = set_policy
    svc.start()
    try:
        assert started.wait(30.0)
        status = svc.status()
        assert status['goal'] is None and status['goal_requested'] == 'goodput'
        assert status['planning']
        svc.apply({'goal': 'fairness'})  # ...when the user changes the goal
        status = svc.status()
        assert (status['goal'], status['goal_requested'], status['planning']) == (
            None, 'fairness', True)
        gate.set()
        end = time.monotonic() + 30.0
        while time.monotonic() < end and svc.status()['goal'] != 'fairness':
            assert svc.status()['goal'] in (None, 'fairness')
            time.sleep(0.01)
        status = svc.status()
        assert status['goal'] == 'fairness' and not status['planning']
        assert status['plans_superseded'] == 1
        assert planned_goals == ['goodput', 'fairness']
        assert installed == ['fairness']  # the goodput plan never went in
        assert svc.last_plan['reason'] == 'parameters goal'
        assert status['policy_version'] == 2
    finally:
        svc.close()


def test_a_stream_starting_mid_window_is_no_drift():
    """A camera switched on during a drift window fills only part of it: no re-plan for that
    window; a real change of rate in a full window still re-plans."""
    svc, out = _service(applications=['cam'])
    svc.start()
    cam = svc.apps[0]
    replans = []
    svc.request_replan = replans.append

    def window(n):
        for _ in range(n):
            svc.stats.received(cam.index)
    try:
        # the start-up plan runs in the background: a drift found while it runs re-plans
        # nothing (it is about to be replaced), so wait for it (slow on a loaded machine)
        end = time.monotonic() + 60.0
        while svc.status()['planning'] and time.monotonic() < end:
            time.sleep(0.01)
        assert not svc.status()['planning']
        svc.planned_rates = [10.0]
        svc.stats.take_drift_counts(time.perf_counter())  # start a window now
        window(30)  # the stream starts: 30 requests in a 'short' window, none in the previous
        svc.check_drift()
        assert replans == []
        svc.stats.drift_since = time.perf_counter() - 1.0  # a full 1 s window at 100 Hz
        window(100)
        svc.check_drift()
        assert len(replans) == 1 and replans[0].startswith('drift')
        assert svc.planned_rates[0] > 50.0
    finally:
        svc.close()


def test_a_failed_construction_leaves_the_switch_interval_as_it_was():
    """Ctrl-C during the warm-up (long with TensorRT) ends the construction; the process's
    thread switch interval, which a Service lowers while it serves, must not stay lowered."""
    import sys

    from hetero_infer.backends.null import NullBackend

    class Interrupted(NullBackend):
        def _load(self, request, worker):
            ex = super()._load(request, worker)

            def run(*args, **kwargs):
                raise KeyboardInterrupt
            ex.run = run
            return ex

    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    backend = Interrupted()
    try:
        with pytest.raises(KeyboardInterrupt):
            Service(build_config(BASE), publish=Published(), backend=backend,
                    plan_in_process=True, name='test')
        assert sys.getswitchinterval() == pytest.approx(0.005)
    finally:
        backend.close()
        sys.setswitchinterval(before)
