"""Criticality through rclpy: ``apps.<name>.min_attainment`` set on the running node re-plans,
``~/status`` shows the new floor and, when the plan cannot meet it, ``/diagnostics`` WARNs
naming the application, the floor and the predicted attainment."""

import time

import pytest

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from hetero_infer.ros.lifecycle import init  # noqa: E402

PARAMS = ("applications: [cam, mic], backend: 'null', plan_samples: 4, plan_duration_s: 0.3, "
          "apps: {cam: {input_topic: cam, model: resnet18, weight: 2.0}, "
          "mic: {input_topic: mic, input_type: audio_f32, model: quartznet15x5, "
          "rate_hz: 5000.0, slo_ms: 5.0}}")


class _Capture:
    def __init__(self):
        self.sent = []

    def publish(self, msg):
        self.sent.append(msg)


def _wait(cond, timeout_s=60.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and not cond():
        time.sleep(0.01)
    assert cond()


def test_a_floor_set_live_replans_and_an_unmet_one_is_a_diagnostics_warn(tmp_path):
    from hetero_infer.ros.scheduler_node import SchedulerNode
    path = tmp_path / 'params.yaml'
    path.write_text('/**:\n  ros__parameters: {%s}\n' % PARAMS)
    ctx = Context()
    init(['test', '--ros-args', '--params-file', str(path)], context=ctx)
    node = SchedulerNode(context=ctx, plan_in_process=True)
    try:
        svc = node.service
        _wait(lambda: bool(svc.last_plan))
        node.diag_pub = _Capture()
        node._publish_status()
        floors = [s for s in node.diag_pub.sent[-1].status if s.name == 'hetero_infer: floors']
        assert [(s.level, s.message) for s in floors] == [
            (DiagnosticStatus.OK, 'the plan meets every floor')]
        result = node.set_parameters([Parameter('apps.mic.min_attainment',
                                                Parameter.Type.DOUBLE, 0.95)])
        assert result[0].successful
        _wait(lambda: svc.last_plan.get('reason') == 'parameters apps.mic.min_attainment')
        node._publish_status()
        doc = node._latest_status
        mic = doc['applications']['mic']
        assert (mic['weight'], mic['min_attainment']) == (1.0, 0.95)
        assert doc['applications']['cam']['weight'] == 2.0
        pred = mic['predicted_attainment']
        assert pred < 0.95
        floors = [s for s in node.diag_pub.sent[-1].status if s.name == 'hetero_infer: floors']
        assert len(floors) == 1 and floors[0].level == DiagnosticStatus.WARN
        assert floors[0].message == ('floor not met by the plan: mic predicted attainment '
                                     '%.3f < min_attainment 0.95' % pred)
        values = {kv.key: kv.value for kv in floors[0].values}
        assert values == {'mic.min_attainment': '0.95', 'mic.predicted_attainment': str(pred)}
        mic_diag = [s for s in node.diag_pub.sent[-1].status if s.name == 'hetero_infer: mic']
        assert {kv.key: kv.value for kv in mic_diag[0].values}['min_attainment'] == '0.95'
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
