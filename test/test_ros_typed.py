"""Typed messages all the way: with result_type vision_msgs every request still gets exactly
one message (typed classifier results on results/<app>, drops and transcripts as the JSON
document on results/<app>_json); sources publish in the input's own type and never abort on a
topic that already has another type. The typed tests skip where vision_msgs / audio_common_msgs
are absent (they have no wheels); the rest runs everywhere rclpy does."""

import json
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Float32MultiArray, String  # noqa: E402

from hetero_infer.ros.conversions import array_to_image_fields  # noqa: E402
from hetero_infer.ros.sources_node import SourcesNode, StreamSpec  # noqa: E402

BASE = {'backend': 'null', 'plan_samples': 3, 'plan_duration_s': 0.2, 'status_period_s': 0.2,
        'applications': ['cam', 'speech'],
        'apps.cam.input_topic': 'cam', 'apps.cam.model': 'resnet18', 'apps.cam.top_k': 3,
        'apps.speech.input_topic': 'mic', 'apps.speech.input_type': 'audio_f32',
        'apps.speech.model': 'quartznet15x5'}


@pytest.fixture
def context():
    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def _spin_until(ex, cond, timeout_s=20.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and not cond():
        ex.spin_once(timeout_sec=0.02)
    return cond()


def test_sources_skip_a_stream_whose_topic_has_another_type_and_go_on(context):
    squatter = rclpy.create_node('squatter', context=context)
    squatter.create_publisher(String, 'mic', 10)  # same process: rcl refuses a second type
    streams = [StreamSpec(name='speech', topic='mic', kind='audio_i16', rate_hz=10.0),
               StreamSpec(name='cam', topic='cam', kind='image', rate_hz=20.0, width=32,
                          height=24)]
    node = SourcesNode(streams, context=context)
    # a reader on cam, or the stream would wait SourcesNode.MATCH_WAIT_S for one
    squatter.create_subscription(Image, 'cam', lambda m: None, qos_profile_sensor_data)
    try:
        assert list(node.skipped) == ['speech'] and 'mic' in node.skipped['speech']
        ex = SingleThreadedExecutor(context=context)
        ex.add_node(node)
        assert _spin_until(ex, lambda: node.published['cam'] >= 3, 10.0)
        assert node.published['speech'] == 0
    finally:
        node.destroy_node()
        squatter.destroy_node()


def test_audio_data_sources_publish_the_inputs_own_type(context):
    msgs = pytest.importorskip('audio_common_msgs.msg')
    streams = [StreamSpec(name='a', topic='pcm', kind='audio_data', rate_hz=20.0),
               StreamSpec(name='b', topic='pcm_stamped', kind='audio_data_stamped',
                          rate_hz=20.0)]
    node = SourcesNode(streams, context=context)
    try:
        assert not node.skipped
        types = dict(node.get_publisher_names_and_types_by_node('sources', '/'))
        assert types['/pcm'] == ['audio_common_msgs/msg/AudioData']
        assert types['/pcm_stamped'] == ['audio_common_msgs/msg/AudioDataStamped']
        assert msgs.AudioData  # the package the types come from
    finally:
        node.destroy_node()


def test_typed_mode_one_message_per_request(context):
    vision = pytest.importorskip('vision_msgs.msg')
    from hetero_infer.ros.scheduler_node import SchedulerNode
    node = SchedulerNode(context=context, plan_in_process=True,
                         overrides=dict(BASE, result_type='vision_msgs'))
    driver = rclpy.create_node('driver', context=context)
    typed, docs = [], []
    try:
        q = QoSProfile(depth=100)
        driver.create_subscription(vision.Classification, 'results/cam', typed.append, q)
        driver.create_subscription(String, 'results/cam_json',
                                   lambda m: docs.append(json.loads(m.data)), q)
        driver.create_subscription(String, 'results/speech_json',
                                   lambda m: docs.append(json.loads(m.data)), q)
        types = dict(node.get_publisher_names_and_types_by_node('scheduler', '/'))
        assert '/results/speech' not in types  # nothing advertised that stays silent
        assert types['/results/cam'] == ['vision_msgs/msg/Classification']
        cam = driver.create_publisher(Image, 'cam', qos_profile_sensor_data)
        mic = driver.create_publisher(Float32MultiArray, 'mic', 10)
        ex = SingleThreadedExecutor(context=context)
        ex.add_node(node)
        ex.add_node(driver)
        assert _spin_until(ex, lambda: cam.get_subscription_count() and
                           mic.get_subscription_count())
        img = np.zeros((24, 32, 3), np.uint8)
        good = Image(**array_to_image_fields(img, 'rgb8'))
        good.header.stamp.sec = 7
        bad = Image(**array_to_image_fields(img, 'rgb8'))
        bad.encoding = 'yuv422'
        bad.header.stamp.sec = 8
        for _ in range(50):  # best effort: until both are answered
            cam.publish(good)
            cam.publish(bad)
            if _spin_until(ex, lambda: typed and docs, 0.2):
                break
        mic.publish(Float32MultiArray(data=[0.0] * 1600))
        assert _spin_until(ex, lambda: any(d['application'] == 'speech' for d in docs))
        speech = [d for d in docs if d['application'] == 'speech']
        assert speech[0]['outcome'] == 'result' and 'transcript' in speech[0]
        assert all(m.header.stamp.sec == 7 and len(m.results) == 3 for m in typed)
        # one message per request: every cam request the node received is answered once,
        # typed (a result) or as JSON (a drop, with its reason)
        received = lambda: node.summary()['applications']['cam']['received']  # noqa: E731
        assert _spin_until(ex, lambda: len(typed) + sum(
            d['application'] == 'cam' for d in docs) == received(), 10.0)
        _spin_until(ex, lambda: False, 0.5)  # nothing more comes
        cam_docs = [d for d in docs if d['application'] == 'cam']
        assert len(typed) + len(cam_docs) == received()
        assert cam_docs and all(d['outcome'] == 'dropped' for d in cam_docs)
        assert all(d['drop_reason'] == 'bad_input' for d in cam_docs if d['stamp']['sec'] == 8)
        assert any(d['stamp']['sec'] == 8 for d in cam_docs)
    finally:
        driver.destroy_node()
        node.destroy_node()


def test_audio_data_stamped_header_copied_to_the_result(context):
    msgs = pytest.importorskip('audio_common_msgs.msg')
    from hetero_infer.ros.scheduler_node import SchedulerNode
    node = SchedulerNode(context=context, plan_in_process=True, overrides=dict(
        BASE, **{'apps.speech.input_type': 'audio_data_stamped'}))
    driver = rclpy.create_node('driver', context=context)
    docs = []
    try:
        driver.create_subscription(String, 'results/speech',
                                   lambda m: docs.append(json.loads(m.data)), 10)
        mic = driver.create_publisher(msgs.AudioDataStamped, 'mic', 10)
        ex = SingleThreadedExecutor(context=context)
        ex.add_node(node)
        ex.add_node(driver)
        assert _spin_until(ex, lambda: mic.get_subscription_count() > 0)
        msg = msgs.AudioDataStamped()
        msg.header.stamp.sec, msg.header.stamp.nanosec = 42, 9
        msg.header.frame_id = 'mic0'
        msg.audio.data = np.zeros(1600, '<i2').tobytes()
        mic.publish(msg)
        assert _spin_until(ex, lambda: docs)
        d = docs[0]
        assert d['outcome'] == 'result' and d['frame_id'] == 'mic0'
        assert d['stamp'] == {'sec': 42, 'nanosec': 9}
    finally:
        driver.destroy_node()
        node.destroy_node()


def test_a_source_starts_when_its_topic_has_a_reader_so_no_frame_is_lost_to_discovery(context):
    """Frames published before discovery matched the reader vanish without a counter on either
    side; a stream therefore starts once its topic has a subscriber, and every frame it counts
    as published reaches the reader that was there."""
    streams = [StreamSpec(name='cam', topic='cam', kind='image', rate_hz=50.0, width=32,
                          height=24)]
    node = SourcesNode(streams, context=context)
    reader = rclpy.create_node('reader', context=context)
    ex = SingleThreadedExecutor(context=context)
    ex.add_node(node)
    ex.add_node(reader)
    try:
        end = time.monotonic() + 0.6
        while time.monotonic() < end:
            ex.spin_once(timeout_sec=0.02)
        assert node.published['cam'] == 0  # nobody listens yet (and 0.6 s < MATCH_WAIT_S)
        got = []
        reader.create_subscription(Image, 'cam', got.append, QoSProfile(
            depth=100, reliability=qos_profile_sensor_data.reliability))
        assert _spin_until(ex, lambda: len(got) >= 20, 10.0)
        sent = node.published['cam']
        _spin_until(ex, lambda: len(got) >= sent, 2.0)
        assert len(got) >= sent, (len(got), sent)
    finally:
        node.destroy_node()
        reader.destroy_node()


def test_typed_mode_detector_publishes_detection2darray_and_drops_as_json(context):
    """A detector in typed mode: results as vision_msgs/Detection2DArray on results/<app>
    (header copied, boxes in the image's pixels), drops as the JSON document on the sibling."""
    vision = pytest.importorskip('vision_msgs.msg')
    from hetero_infer.ros.scheduler_node import SchedulerNode
    node = SchedulerNode(context=context, plan_in_process=True, overrides={
        'backend': 'emulated', 'plan_samples': 3, 'plan_duration_s': 0.2, 'slo_scale': 50.0,
        'result_type': 'vision_msgs', 'applications': ['det'],
        'apps.det.input_topic': 'det', 'apps.det.model': 'ssdlite320_mobilenet_v3_large',
        'apps.det.model_file_path': 'tiny_ssd.onnx', 'apps.det.max_detections': 20})
    driver = rclpy.create_node('driver', context=context)
    typed, docs = [], []
    try:
        q = QoSProfile(depth=100)
        driver.create_subscription(vision.Detection2DArray, 'results/det', typed.append, q)
        driver.create_subscription(String, 'results/det_json',
                                   lambda m: docs.append(json.loads(m.data)), q)
        types = dict(node.get_publisher_names_and_types_by_node('scheduler', '/'))
        assert types['/results/det'] == ['vision_msgs/msg/Detection2DArray']
        cam = driver.create_publisher(Image, 'det', qos_profile_sensor_data)
        ex = SingleThreadedExecutor(context=context)
        ex.add_node(node)
        ex.add_node(driver)
        assert _spin_until(ex, lambda: cam.get_subscription_count())
        w, h = 64, 48
        img = np.random.default_rng(0).integers(0, 255, size=(h, w, 3)).astype(np.uint8)
        good = Image(**array_to_image_fields(img, 'rgb8'))
        good.header.stamp.sec = 7
        good.header.frame_id = 'front'
        bad = Image(**array_to_image_fields(img, 'rgb8'))
        bad.encoding = 'yuv422'
        for _ in range(50):  # best effort: until both are answered
            cam.publish(good)
            cam.publish(bad)
            if _spin_until(ex, lambda: typed and docs, 0.2):
                break
        assert typed and docs
        assert all(d['outcome'] == 'dropped' and d['drop_reason'] == 'bad_input' for d in docs)
        boxes = 0
        for m in typed:
            assert m.header.stamp.sec == 7 and m.header.frame_id == 'front'
            assert len(m.detections) <= 20
            for det in m.detections:
                c, sx, sy = det.bbox.center.position, det.bbox.size_x, det.bbox.size_y
                assert sx > 0 and sy > 0
                assert -0.01 <= c.x - sx / 2 and c.x + sx / 2 <= w + 0.01
                assert -0.01 <= c.y - sy / 2 and c.y + sy / 2 <= h + 0.01
                assert 1 <= int(det.results[0].hypothesis.class_id) <= 20
                boxes += 1
        assert boxes > 0
    finally:
        driver.destroy_node()
        node.destroy_node()
