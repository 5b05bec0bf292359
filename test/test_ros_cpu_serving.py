"""Serving on real CPU cores: the node with the onnxruntime backend on the `cpu2` platform.

The node runs in its own process (`hetero-infer serve`) with two applications whose models are
the project's small ONNX files; this process publishes camera frames and checks that each gets a
real classification computed on cpu0 or cpu1. conftest.py keeps DDS on localhost.
"""

import json
import os
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

ONNX = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    'hetero_infer', 'data', 'onnx')
CONFIG = """
/**:
  ros__parameters:
    platform: cpu2
    backend: onnxruntime
    plan_samples: 12
    plan_duration_s: 1.0
    slo_scale: 50.0
    # this test is about classifying on CPU cores, not hangs: on a loaded 2-core machine one
    # inference took 101 ms, over the default 100 ms watchdog floor, and its result was dropped
    watchdog_min_ms: 5000.0
    applications: [classify]
    apps:
      classify:
        input_topic: cpu_test/image
        input_type: image
        model: {onnx}/mobilenet_v2_035.onnx
        model_file_path: {onnx}/mobilenet_v2_035.onnx
        processors: [cpu0, cpu1]
        rate_hz: 20.0
        top_k: 3
"""


def test_onnxruntime_node_classifies_frames_on_cpu_cores(tmp_path):
    cfg = tmp_path / 'serve.yaml'
    cfg.write_text(CONFIG.format(onnx=ONNX))
    proc, log = start_serve(cfg, str(tmp_path / 'node.log'))
    node, ex = driver_node('cpu_test_driver')
    results = []
    node.create_subscription(String, 'results/classify',
                             lambda m: results.append(json.loads(m.data)), QoSProfile(depth=100))
    pub = node.create_publisher(Image, 'cpu_test/image', 10)
    try:
        end = time.monotonic() + 60.0
        while pub.get_subscription_count() == 0 and time.monotonic() < end:
            ex.spin_once(timeout_sec=0.05)
        assert pub.get_subscription_count() > 0, 'node did not subscribe'
        rng = np.random.default_rng(0)
        probe = Image(**array_to_image_fields(np.zeros((120, 160, 3), np.uint8), 'rgb8'))
        probe.header.stamp.sec = 99  # not counted below
        probe_until_answered(pub, probe, ex.spin_once, lambda: bool(results))
        for i in range(8):
            msg = Image(**array_to_image_fields(
                rng.integers(0, 255, size=(120, 160, 3)).astype(np.uint8), 'rgb8'))
            msg.header.stamp.sec = 100 + i
            pub.publish(msg)
            # 20 Hz in real time (spin_once returns early on each result): a burst deeper than
            # the input's depth (5, sensor-data QoS) would lose the oldest frames by design.
            paced = time.monotonic() + 0.05
            while time.monotonic() < paced:
                ex.spin_once(timeout_sec=max(0.0, paced - time.monotonic()))
        end = time.monotonic() + 30.0
        while len([r for r in results if r['stamp']['sec'] >= 100]) < 8 \
                and time.monotonic() < end:
            ex.spin_once(timeout_sec=0.05)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        stop_serve(proc, log)
    assert all(r['outcome'] == 'result' for r in results)
    results = [r for r in results if r['stamp']['sec'] >= 100]
    assert len(results) == 8, open(str(tmp_path / 'node.log')).read()[-3000:]
    assert sorted(r['stamp']['sec'] for r in results) == list(range(100, 108))
    for r in results:
        assert r['outcome'] == 'result', r
        assert r['processor'] in ('cpu0', 'cpu1')
        assert r['execute_ms'] > 0.0
        scores = [t['score'] for t in r['top_k']]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True)
        assert 0.0 < sum(scores) <= 1.0 + 1e-5   # softmax probabilities from the real model
