"""The scheduler node end to end, in its own process, driven from this one over localhost DDS.

One node process serves four applications on the emulated Xavier (real rclpy, real DDS):
``cam`` (rgb8 images, resnet18 on any processor), ``jpeg`` (CompressedImage), ``speech``
(Float32MultiArray PCM, QuartzNet) and ``heavy`` (vgg19 on dla0 only, for overload). This
process publishes inputs, subscribes to results and ``~/status``, and uses the parameter
services as ``ros2 param`` and rqt_reconfigure do. conftest.py keeps discovery on localhost with
a random domain id.
"""

import json
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from node_process import probe_until_answered, start_serve, stop_serve  # noqa: E402
from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.msg import ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import (  # noqa: E402
    DescribeParameters,
    GetParameters,
    ListParameters,
    SetParameters,  # noqa: E402
)
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Float32MultiArray, String  # noqa: E402

from hetero_infer.ros.conversions import array_to_image_fields  # noqa: E402

NODE = '/scheduler'
CONFIG = """
/**:
  ros__parameters:
    platform: xavier
    backend: emulated
    goal: goodput
    slo_scale: 20.0
    queue_limit: 3
    plan_samples: 12
    plan_duration_s: 1.0
    replan_period_s: 30.0
    status_period_s: 0.5
    applications: [cam, jpeg, speech, heavy]
    apps:
      cam: {input_topic: cam/image, input_type: image, model: resnet18, rate_hz: 20.0, top_k: 3}
      jpeg: {input_topic: cam/compressed, input_type: compressed_image, model: mobilenet_v2,
             rate_hz: 5.0}
      speech: {input_topic: mic/pcm, input_type: audio_f32, model: quartznet15x5, rate_hz: 2.0}
      heavy: {input_topic: heavy/image, input_type: image, model: vgg19, processors: [dla0],
              rate_hz: 10.0}
"""


def _wait(executor, cond, timeout_s=10.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        executor.spin_once(timeout_sec=0.02)
    return cond()


class Harness:
    """This process's side: publishers, result collectors, parameter service clients."""

    def __init__(self, proc):
        self.proc = proc
        rclpy.init()
        self.node = rclpy.create_node('test_driver')
        self.ex = SingleThreadedExecutor()
        self.ex.add_node(self.node)
        self.results = {app: [] for app in ('cam', 'jpeg', 'speech', 'heavy')}
        self.all_results = {app: [] for app in self.results}  # never cleared
        self.status = []
        q = QoSProfile(depth=1000)
        for app in self.results:
            self.node.create_subscription(String, 'results/' + app,
                                          lambda m, app=app: self._on_result(app, m), q)
        self.node.create_subscription(String, NODE + '/status',
                                      lambda m: self.status.append(json.loads(m.data)), 10)
        self.pub_cam = self.node.create_publisher(Image, 'cam/image', 100)
        self.pub_jpeg = self.node.create_publisher(CompressedImage, 'cam/compressed', 100)
        self.pub_mic = self.node.create_publisher(Float32MultiArray, 'mic/pcm', 100)
        self.pub_heavy = self.node.create_publisher(Image, 'heavy/image', 1000)
        self.clients = {
            'list': self.node.create_client(ListParameters, NODE + '/list_parameters'),
            'describe': self.node.create_client(DescribeParameters,
                                                NODE + '/describe_parameters'),
            'get': self.node.create_client(GetParameters, NODE + '/get_parameters'),
            'set': self.node.create_client(SetParameters, NODE + '/set_parameters'),
        }

    def _on_result(self, app, msg):
        doc = json.loads(msg.data)
        self.results[app].append(doc)
        self.all_results[app].append(doc)

    def wait_ready(self, timeout_s=60.0):
        pubs = [self.pub_cam, self.pub_jpeg, self.pub_mic, self.pub_heavy]
        ok = _wait(self.ex, lambda: (all(p.get_subscription_count() > 0 for p in pubs)
                                     and len(self.status) > 0
                                     and all(c.service_is_ready() for c in self.clients.values())
                                     ) or self.proc.poll() is not None, timeout_s)
        assert self.proc.poll() is None, 'node process exited: %s' % self.proc.returncode
        assert ok, 'node not ready'
        # Probe each input (stamp 1) until the node answers it, then start clean.
        import cv2
        jpg = CompressedImage(format='jpeg', data=cv2.imencode(
            '.jpg', np.zeros((8, 8, 3), np.uint8))[1].tobytes())
        probes = {'cam': (self.pub_cam, self.image(0)), 'jpeg': (self.pub_jpeg, jpg),
                  'speech': (self.pub_mic, Float32MultiArray(data=[0.0] * 1600)),
                  'heavy': (self.pub_heavy, self.image(0))}
        for app, (pub, msg) in probes.items():
            if hasattr(msg, 'header'):
                msg.header.stamp.sec = 1
            probe_until_answered(pub, msg, self.ex.spin_once,
                                 lambda app=app: bool(self.results[app]), timeout_s)
        _wait(self.ex, lambda: False, 0.5)
        for got in self.results.values():
            del got[:]

    def call(self, kind, request, timeout_s=10.0):
        fut = self.clients[kind].call_async(request)
        assert _wait(self.ex, fut.done, timeout_s), kind + ' service timed out'
        return fut.result()

    def set_param(self, name, value):
        if isinstance(value, bool):
            v = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
        elif isinstance(value, int):
            v = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
        elif isinstance(value, float):
            v = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
        else:
            v = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
        res = self.call('set', SetParameters.Request(parameters=[ParameterMsg(name=name,
                                                                              value=v)]))
        return res.results[0]

    def get_param(self, name):
        res = self.call('get', GetParameters.Request(names=[name]))
        v = res.values[0]
        return {ParameterType.PARAMETER_DOUBLE: v.double_value,
                ParameterType.PARAMETER_INTEGER: v.integer_value,
                ParameterType.PARAMETER_BOOL: v.bool_value,
                ParameterType.PARAMETER_STRING: v.string_value}.get(v.type)

    def image(self, seq, *, h=48, w=64, encoding='rgb8', frame_id='cam0', **override):
        rng = np.random.default_rng(seq)
        msg = Image(**array_to_image_fields(
            rng.integers(0, 255, size=(h, w, 3)).astype(np.uint8), encoding))
        msg.header.stamp.sec = 1000 + seq
        msg.header.stamp.nanosec = 7
        msg.header.frame_id = frame_id
        for k, v in override.items():
            setattr(msg, k.replace('override_', ''), v)
        return msg

    def latest_status(self):
        return self.status[-1] if self.status else None

    def close(self):
        self.node.destroy_node()
        rclpy.try_shutdown()


@pytest.fixture(scope='module')
def harness(tmp_path_factory):
    cfg = tmp_path_factory.mktemp('node') / 'serve.yaml'
    cfg.write_text(CONFIG)
    proc, log = start_serve(cfg, str(cfg) + '.log', '--log-level', 'info')
    h = Harness(proc)
    try:
        h.wait_ready()
        yield h
    finally:
        h.close()
        killed = stop_serve(proc, log)
        print(open(str(cfg) + '.log').read()[-3000:])
        # SIGTERM is a request to stop: the node ends on its own, with status 0
        assert not killed and proc.returncode == 0, 'killed=%s, exit status %s' % (
            killed, proc.returncode)


def test_frames_in_results_out_with_fields(harness):
    h = harness
    import cv2
    for i in range(10):
        h.pub_cam.publish(h.image(i))
        time.sleep(0.02)
    ok, jpg = cv2.imencode('.jpg', np.full((40, 50, 3), 128, np.uint8))
    jmsg = CompressedImage(format='jpeg', data=jpg.tobytes())
    jmsg.header.frame_id = 'front'
    h.pub_jpeg.publish(jmsg)
    chunk = (0.1 * np.sin(np.arange(8000) / 10.0)).astype(np.float32)
    h.pub_mic.publish(Float32MultiArray(data=chunk))
    assert _wait(h.ex, lambda: len(h.results['cam']) >= 10 and h.results['jpeg']
                 and h.results['speech'], 20.0)
    stamps = set()
    for doc in h.results['cam']:
        assert doc['schema'] == 'hetero_infer.result/1'
        assert doc['outcome'] == 'result' and doc['drop_reason'] is None, doc.get('detail')
        assert doc['application'] == 'cam' and doc['model'] == 'resnet18'
        assert doc['frame_id'] == 'cam0' and doc['stamp']['nanosec'] == 7
        stamps.add(doc['stamp']['sec'])
        assert doc['processor'] in ('gpu', 'dla0', 'dla1')
        assert doc['execute_ms'] > 0.0 and doc['queue_ms'] >= 0.0
        assert doc['total_ms'] >= doc['execute_ms']
        assert doc['slo_ms'] > 0 and isinstance(doc['slo_met'], bool)
        assert len(doc['top_k']) == 3 and all('label' in t and 'score' in t
                                               for t in doc['top_k'])
    assert stamps == set(range(1000, 1010))
    assert h.results['jpeg'][0]['frame_id'] == 'front'
    assert h.results['jpeg'][0]['outcome'] == 'result'
    speech = h.results['speech'][0]
    # the emulated backend returns zero logits: greedy CTC reads blank-free spaces -> ''
    assert speech['outcome'] == 'result' and speech['transcript'] == ''


def test_parameters_listed_described_set_and_rejected(harness):
    h = harness
    names = h.call('list', ListParameters.Request()).result.names
    for n in ('goal', 'slo_scale', 'queue_limit', 'admission_control', 'replan_period_s',
              'goal_weights.fairness', 'apps.cam.slo_ms', 'backend'):
        assert n in names
    desc = {d.name: d for d in h.call('describe', DescribeParameters.Request(
        names=['goal', 'slo_scale', 'backend', 'queue_limit', 'apps.cam.model'])).descriptors}
    assert 'fairness' in desc['goal'].description and not desc['goal'].read_only
    rng = desc['slo_scale'].floating_point_range[0]
    assert (rng.from_value, rng.to_value, rng.step) == (1.0, 100.0, 0.0)
    assert desc['queue_limit'].integer_range[0].to_value == 1000
    assert desc['backend'].read_only and desc['apps.cam.model'].read_only

    res = h.set_param('goal', 'bogus')
    assert not res.successful and 'bogus' in res.reason and 'goodput' in res.reason
    res = h.set_param('slo_scale', 1000.0)
    assert not res.successful
    assert h.get_param('slo_scale') == 20.0
    res = h.set_param('backend', 'tensorrt')
    assert not res.successful and 'read-only' in res.reason
    res = h.set_param('goal', 'weighted')  # every weight but goodput is 0: fine
    assert res.successful
    res = h.set_param('goal_weights.goodput', 0.0)
    assert not res.successful and 'goal_weights' in res.reason
    assert h.get_param('goal_weights.goodput') == 1.0
    res = h.set_param('apps.cam.slo_ms', 250.0)
    assert res.successful and h.get_param('apps.cam.slo_ms') == 250.0
    assert _wait(h.ex, lambda: h.latest_status()['applications']['cam']['slo_ms'] == 250.0, 5.0)
    assert h.set_param('goal', 'goodput').successful


def test_goal_change_replans_without_loss(harness):
    h = harness
    assert _wait(h.ex, lambda: not h.latest_status()['planning'], 30.0)
    before = h.latest_status()['policy_version']
    for app in h.results:
        h.results[app].clear()
    sent = 0
    changed = False
    while sent < 60:  # 20 Hz for 3 s, the goal changes after 0.5 s
        h.pub_cam.publish(h.image(sent))
        sent += 1
        if sent == 10:
            assert h.set_param('goal', 'fairness').successful
            changed = True
        _wait(h.ex, lambda: False, 0.05)
    assert changed
    assert _wait(h.ex, lambda: h.latest_status()['policy_version'] > before, 30.0)
    # keep serving after the swap
    for i in range(10):
        h.pub_cam.publish(h.image(1000 + i))
        _wait(h.ex, lambda: False, 0.05)
    assert _wait(h.ex, lambda: len(h.results['cam']) >= sent + 10, 10.0), \
        (len(h.results['cam']), sent + 10)
    docs = h.results['cam']
    ids = [d['request_id'] for d in docs]
    assert len(ids) == len(set(ids)) == sent + 10
    assert all(d['outcome'] == 'result' for d in docs), [d for d in docs
                                                          if d['outcome'] != 'result']
    assert max(d['policy_version'] for d in docs) > before
    assert h.latest_status()['goal'] == 'fairness'


def test_bad_inputs_are_counted_and_node_keeps_serving(harness):
    h = harness
    for app in h.results:
        h.results[app].clear()
    bad = [
        h.image(1, frame_id='bad-encoding', override_encoding='yuv422'),
        h.image(2, frame_id='bad-step', step=10),
        h.image(3, frame_id='truncated', data=bytes(100)),
        h.image(4, frame_id='empty', data=b''),
    ]
    for m in bad:
        h.pub_cam.publish(m)
        h.ex.spin_once(timeout_sec=0.02)
    nan = np.zeros(4000, np.float32)
    nan[10] = np.nan
    h.pub_mic.publish(Float32MultiArray(data=nan))
    h.pub_mic.publish(Float32MultiArray())
    h.pub_cam.publish(h.image(5, frame_id='good'))
    assert _wait(h.ex, lambda: len(h.results['cam']) >= 5 and len(h.results['speech']) >= 2,
                 10.0)
    by_frame = {d['frame_id']: d for d in h.results['cam']}
    for frame, reason in (('bad-encoding', 'bad_encoding'), ('bad-step', 'bad_step'),
                          ('truncated', 'bad_size'), ('empty', 'empty')):
        d = by_frame[frame]
        assert d['outcome'] == 'dropped' and d['drop_reason'] == 'bad_input'
        assert d['detail'].startswith(reason), d['detail']
    assert by_frame['good']['outcome'] == 'result'
    assert {d['drop_reason'] for d in h.results['speech']} == {'bad_input'}
    assert _wait(h.ex, lambda: h.latest_status()['bad_inputs'].get('bad_audio', 0) >= 1, 5.0)
    st = h.latest_status()['bad_inputs']
    for reason in ('bad_encoding', 'bad_step', 'bad_size', 'empty', 'bad_audio'):
        assert st.get(reason, 0) >= 1, st
    assert h.proc.poll() is None


def test_drift_from_planned_mix_triggers_replan(harness):
    h = harness
    assert _wait(h.ex, lambda: not h.latest_status()['planning'], 30.0)
    before = h.latest_status()['policy_version']
    # Planned: cam 20 Hz, jpeg 5, speech 2, heavy 10. Observed: cam only, at up to 40 Hz
    # (about 24 Hz on a loaded machine: a 1 s window still holds the 20 requests a drift check
    # needs, a 0.5 s one did not).
    assert h.set_param('replan_period_s', 1.0).successful
    try:
        def drifted():
            st = h.latest_status()
            return (st['policy_version'] > before
                    and st['last_plan'].get('reason', '').startswith('drift'))
        # the re-plan itself is a search: seconds on a quiet machine, tens of them under load
        end = time.monotonic() + 60.0
        i = 0
        while time.monotonic() < end and not drifted():
            h.pub_cam.publish(h.image(i))
            i += 1
            _wait(h.ex, lambda: False, 0.025)
        assert drifted(), h.latest_status()['last_plan']
        rates = h.latest_status()['last_plan']['rates_hz']
        # planned for what was observed (cam only), not the configured 20, 5, 2, 10 Hz
        assert rates[0] > 1.0 and rates[1] < 1.0 and rates[3] < 1.0, rates
    finally:
        assert h.set_param('replan_period_s', 30.0).successful


def test_overload_keeps_queues_bounded_and_accounts_every_request(harness):
    h = harness
    for app in h.results:
        h.results[app].clear()
    # vgg19 on dla0 only takes ~27 ms: ~37 requests/s; send ~5x that for 1.5 s.
    n = 0
    max_queue = 0
    t_end = time.monotonic() + 1.5
    while time.monotonic() < t_end:
        h.pub_heavy.publish(h.image(n, frame_id='heavy'))
        n += 1
        time.sleep(0.005)
        if n % 20 == 0:
            h.ex.spin_once(timeout_sec=0.0)
            st = h.latest_status()
            max_queue = max(max_queue, st['processors']['dla0']['queue'])

    def settled():
        st = h.latest_status()
        c = st['counts']
        return (c['submitted'] == c['results'] + c['dropped']
                and st['processors']['dla0']['queue'] == 0)
    assert _wait(h.ex, settled, 15.0)
    time.sleep(0.5)
    _wait(h.ex, lambda: False, 0.5)
    docs = h.results['heavy']
    ids = [d['request_id'] for d in docs]
    assert len(ids) == len(set(ids))
    # DDS may drop best-effort samples before the node sees them; every one it saw has an
    # outcome, and there are as many outcomes as the node counted for this application.
    assert 0 < len(docs) <= n
    reasons = {d['drop_reason'] for d in docs if d['outcome'] == 'dropped'}
    assert 'queue_full' in reasons
    assert reasons <= {'queue_full', 'rejected'}
    results = [d for d in docs if d['outcome'] == 'result']
    assert results and all(d['processor'] == 'dla0' for d in results)
    assert max_queue <= 3 + 1
    # one FIFO queue per processor: dla0's results come out in the order the requests came in
    served = [d['request_id'] for d in results]
    assert served == sorted(served)
    # The node's totals since start (the harness's probe included) match what was published.
    status = h.latest_status()['applications']['heavy']
    ever = h.all_results['heavy']
    assert status['results'] == sum(d['outcome'] == 'result' for d in ever)
    assert sum(status['dropped'].values()) == sum(d['outcome'] == 'dropped' for d in ever)
