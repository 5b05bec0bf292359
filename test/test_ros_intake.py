"""The intake (input messages taken on the node's own thread) against real rclpy and DDS.

In-process: topic names resolve with the node's namespace and ``--ros-args -r`` remappings as
``create_subscription`` does, the graph lists the subscription under the node, every message
arrives once and in order, a failing handler is reported and the intake goes on, close ends
the thread. Out of process: the node serves the same frames with ``intake: thread`` and
``intake: executor`` and answers each one once. conftest.py keeps DDS on localhost.
"""

import json
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from node_process import driver_node, probe_until_answered, start_serve, stop_serve  # noqa: E402,E501
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from hetero_infer.ros import intake  # noqa: E402
from hetero_infer.ros.conversions import array_to_image_fields  # noqa: E402


def _until(cond, timeout_s=15.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx, args=['--ros-args', '-r', 'remapped:=elsewhere'])
    yield ctx
    rclpy.try_shutdown(context=ctx)


def test_intake_resolves_names_delivers_in_order_and_survives_handler_errors(context):
    assert intake.available() == (True, '')
    node = rclpy.create_node('taker', namespace='ns', context=context)
    other = rclpy.create_node('talker', namespace='ns', context=context)
    got, errors = [], []
    lock = threading.Lock()

    def handler(msg):
        if msg.data == 'boom':
            raise ValueError('bad payload')
        with lock:
            got.append(msg.data)

    taker = intake.Intake(node, on_error=errors.append)
    assert taker.add(String, 'chatter', QoSProfile(depth=100), handler) == '/ns/chatter'
    assert taker.add(String, 'remapped', QoSProfile(depth=100), handler) == '/ns/elsewhere'
    with pytest.raises(Exception) as info:
        taker.add(String, 'bad name!', QoSProfile(depth=10), handler)
    assert 'bad name!' in str(info.value)
    taker.start()
    with pytest.raises(RuntimeError):
        taker.add(String, 'late', QoSProfile(depth=10), handler)
    try:
        pub = other.create_publisher(String, 'chatter', 100)
        pub2 = other.create_publisher(String, 'elsewhere', 100)
        assert _until(lambda: pub.get_subscription_count() > 0
                      and pub2.get_subscription_count() > 0)
        subs = dict(node.get_subscriber_names_and_types_by_node('taker', '/ns'))
        assert subs['/ns/chatter'] == ['std_msgs/msg/String']
        for i in range(50):
            pub.publish(String(data='m%d' % i))
            if i == 10:
                pub.publish(String(data='boom'))
        pub2.publish(String(data='remapped-1'))
        assert _until(lambda: len(got) == 51)
        with lock:
            assert [g for g in got if g.startswith('m')] == ['m%d' % i for i in range(50)]
            assert 'remapped-1' in got
        assert len(errors) == 1 and 'bad payload' in errors[0] and '/ns/chatter' in errors[0]
        assert taker.taken == 52
    finally:
        taker.close()
        taker.close()  # idempotent
    assert not taker._thread.is_alive()
    assert _until(lambda: '/ns/chatter' not in dict(
        node.get_subscriber_names_and_types_by_node('taker', '/ns')))
    other.destroy_node()
    node.destroy_node()


CONFIG = """
/**:
  ros__parameters:
    platform: xavier
    backend: 'null'
    intake: {intake}
    admission_control: false
    queue_limit: 200
    slo_scale: 100.0
    plan_samples: 8
    plan_duration_s: 0.5
    applications: [cam]
    apps:
      cam: {{input_topic: intake_test/image, model: mobilenet_v2, rate_hz: 50.0}}
"""


@pytest.mark.parametrize('mode', ['thread', 'executor'])
def test_node_answers_every_frame_once_in_both_intake_modes(tmp_path, mode):
    cfg = tmp_path / 'serve.yaml'
    cfg.write_text(CONFIG.format(intake=mode))
    proc, log = start_serve(cfg, str(tmp_path / 'node.log'))
    node, ex = driver_node('intake_driver')
    results, status = [], []
    node.create_subscription(String, '/scheduler/status',
                             lambda m: status.append(json.loads(m.data)), 10)
    node.create_subscription(String, 'results/cam', lambda m: results.append(json.loads(m.data)),
                             QoSProfile(depth=1000))
    pub = node.create_publisher(Image, 'intake_test/image', 100)
    img = np.random.default_rng(1).integers(0, 255, (60, 80, 3)).astype(np.uint8)

    def spin_until(cond, timeout_s=60.0):
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and not cond() and proc.poll() is None:
            ex.spin_once(timeout_sec=0.02)
        return cond()

    try:
        assert spin_until(lambda: pub.get_subscription_count() > 0
                          and node.count_publishers('results/cam') > 0), 'node not ready'
        probe = Image(**array_to_image_fields(img, 'rgb8'))
        probe.header.stamp.sec = 1  # not counted below
        probe_until_answered(pub, probe, ex.spin_once, lambda: bool(results))
        assert spin_until(lambda: bool(status)), 'no status from the node'
        assert status[-1]['intake'] == mode  # the mode asked for, not a silent fallback
        for seq in range(40):
            msg = Image(**array_to_image_fields(img, 'rgb8'))
            msg.header.stamp.sec, msg.header.stamp.nanosec = 2000 + seq, 11
            msg.header.frame_id = 'cam_%s' % mode
            pub.publish(msg)
            time.sleep(0.01)  # 100 Hz: within what best-effort delivery keeps
        counted = lambda: [r for r in results if r['stamp']['sec'] >= 2000]  # noqa: E731
        assert spin_until(lambda: len(counted()) >= 40, 20.0), \
            open(tmp_path / 'node.log').read()
        spin_until(lambda: False, 0.5)  # nothing more may come
        stamps = sorted(r['stamp']['sec'] for r in counted())
        assert stamps == list(range(2000, 2040))
        assert all(r['outcome'] == 'result' and r['frame_id'] == 'cam_' + mode
                   and len(r['top_k']) == 5 for r in counted())
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        killed = stop_serve(proc, log)
    # SIGTERM is a request to stop: the node ends on its own, with status 0
    assert not killed and proc.returncode == 0, 'killed=%s, exit status %s' % (
        killed, proc.returncode)


AUDIO_CONFIG = """
/**:
  ros__parameters:
    platform: xavier
    backend: 'null'
    status_period_s: 0.2
    plan_samples: 8
    plan_duration_s: 0.5
    applications: [mic]
    apps:
      mic: {input_topic: intake_test/pcm, input_type: audio_f32, model: matchboxnet_kws,
            rate_hz: 5.0}
"""


def test_publisher_with_incompatible_qos_is_reported(tmp_path):
    """A best-effort publisher cannot reach the reliable audio input: the node says so."""
    from rclpy.qos import qos_profile_sensor_data
    from std_msgs.msg import Float32MultiArray
    cfg = tmp_path / 'serve.yaml'
    cfg.write_text(AUDIO_CONFIG)
    proc, log = start_serve(cfg, str(tmp_path / 'node.log'))
    node, ex = driver_node('qos_driver')
    status = []
    node.create_subscription(String, '/scheduler/status',
                             lambda m: status.append(json.loads(m.data)), 10)
    node.create_publisher(Float32MultiArray, 'intake_test/pcm', qos_profile_sensor_data)
    try:
        end = time.monotonic() + 60.0
        while time.monotonic() < end and proc.poll() is None and not (
                status and status[-1]['incompatible_publishers']
                and 'incompatible QoS' in open(tmp_path / 'node.log').read()):
            ex.spin_once(timeout_sec=0.05)
        assert status, 'no status from the node'
        assert status[-1]['intake'] == 'thread'
        assert status[-1]['incompatible_publishers'] == {'/intake_test/pcm': 1}
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        stop_serve(proc, log)
    text = open(tmp_path / 'node.log').read()
    assert text.count('incompatible QoS') == 1, text[-2000:]
    assert '/intake_test/pcm' in text and 'qos_driver' in text
