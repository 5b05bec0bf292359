"""Object detection end to end: a node in its own process (real rclpy, emulated Xavier) serves
the demo's ``detect`` application (twin timing of the zoo's SSDlite, boxes from the package's
tiny SSD run by onnxruntime, decoded and NMS'd on the host); this process publishes 640x480
camera frames and checks that every frame's result carries detections whose boxes lie inside
the frame, in its pixels. conftest.py keeps DDS on localhost.
"""

import json
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('onnxruntime')

from node_process import driver_node, probe_until_answered, start_serve, stop_serve  # noqa: E402,E501
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from hetero_infer.ros.conversions import array_to_image_fields  # noqa: E402

CONFIG = """
/**:
  ros__parameters:
    platform: xavier
    backend: emulated
    plan_samples: 12
    plan_duration_s: 1.0
    slo_scale: 50.0
    applications: [detect]
    apps:
      detect:
        input_topic: detect_test/image
        input_type: image
        model: ssdlite320_mobilenet_v3_large
        model_file_path: tiny_ssd.onnx
        rate_hz: 10.0
        score_threshold: 0.3
        nms_iou: 0.5
        max_detections: 20
"""
W, H = 640, 480


def test_detect_results_carry_boxes_inside_a_640x480_frame(tmp_path):
    cfg = tmp_path / 'serve.yaml'
    cfg.write_text(CONFIG)
    proc, log = start_serve(cfg, str(tmp_path / 'node.log'))
    node, ex = driver_node('detect_test_driver')
    results = []
    node.create_subscription(String, 'results/detect',
                             lambda m: results.append(json.loads(m.data)), QoSProfile(depth=100))
    pub = node.create_publisher(Image, 'detect_test/image', 10)
    rng = np.random.default_rng(0)
    try:
        end = time.monotonic() + 60.0
        while pub.get_subscription_count() == 0 and time.monotonic() < end:
            ex.spin_once(timeout_sec=0.05)
        assert pub.get_subscription_count() > 0, 'node did not subscribe'
        probe = Image(**array_to_image_fields(np.zeros((H, W, 3), np.uint8), 'rgb8'))
        probe.header.stamp.sec = 99
        probe_until_answered(pub, probe, ex.spin_once, lambda: bool(results))
        # camera frames go best effort (sensor-data QoS): a frame lost on a loaded machine is
        # published again until its result comes back
        for i in range(5):
            msg = Image(**array_to_image_fields(
                rng.integers(0, 255, size=(H, W, 3)).astype(np.uint8), 'rgb8'))
            msg.header.stamp.sec = 100 + i
            msg.header.frame_id = 'front_camera'
            probe_until_answered(pub, msg, ex.spin_once,
                                 lambda i=i: any(r['stamp']['sec'] == 100 + i for r in results))
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        stop_serve(proc, log)
    frames = [r for r in results if r['stamp']['sec'] >= 100]
    assert {r['stamp']['sec'] for r in frames} == set(range(100, 105)), \
        open(str(tmp_path / 'node.log')).read()[-3000:]
    total = 0
    for r in frames:
        assert r['outcome'] == 'result', r
        assert r['frame_id'] == 'front_camera' and r['model'] == 'ssdlite320_mobilenet_v3_large'
        assert 'top_k' not in r
        dets = r['detections']
        assert len(dets) <= 20
        scores = [d['score'] for d in dets]
        assert scores == sorted(scores, reverse=True) and all(s >= 0.3 for s in scores)
        for d in dets:
            cx, cy, w, h = d['bbox']
            assert w > 0 and h > 0
            assert -0.01 <= cx - w / 2 and cx + w / 2 <= W + 0.01, d
            assert -0.01 <= cy - h / 2 and cy + h / 2 <= H + 0.01, d
            assert 1 <= d['class_id'] <= 20   # the tiny SSD's VOC classes (0 = background)
        total += len(dets)
    assert total > 0   # random frames through the tiny SSD do give boxes (its scores spread)
