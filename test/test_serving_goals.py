"""User goals installed as ``hetero_infer.goals`` entry points: listed among the goal parameter's
choices, chosen live, planned for; ``module:function`` goals only at start-up."""

import sys
import textwrap
import time

import pytest

from hetero_infer.errors import ConfigError
from hetero_infer.serving import config

GOAL = 'latency_first'


@pytest.fixture
def installed_goal(tmp_path, monkeypatch):
    """A distribution installed into a directory on sys.path, with one goal entry point."""
    (tmp_path / 'hi_test_goals.py').write_text(textwrap.dedent('''
        from hetero_infer.planning.goals import metric_value

        CALLS = []


        def latency_first(metrics):
            """Goodput, but the planner calls it (counted in CALLS)."""
            CALLS.append(1)
            return metric_value(metrics, 'goodput')
    '''))
    info = tmp_path / 'hi_test_goals-0.1.dist-info'
    info.mkdir()
    (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: hi-test-goals\nVersion: 0.1\n')
    (info / 'entry_points.txt').write_text(
        '[hetero_infer.goals]\n%s = hi_test_goals:latency_first\n' % GOAL)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield GOAL
    from hetero_infer.planning.goals import GOALS
    if GOAL in GOALS.names():
        GOALS.unregister(GOAL)
    sys.modules.pop('hi_test_goals', None)


def test_entry_point_goal_is_a_choice_and_code_goals_wait_for_start_up(installed_goal):
    assert installed_goal in config.goal_choices()
    assert installed_goal in config.spec_for('goal').full_description()
    assert config.validate('goal', installed_goal) is None
    reason = config.validate('goal', 'hi_test_goals:latency_first')
    assert 'only at start-up' in reason and installed_goal in reason
    assert config.validate('goal', 'hi_test_goals:latency_first', live=False) is None
    assert 'no_such_module' in config.validate('goal', 'no_such_module:f', live=False)
    assert "'speed' is not one of" in config.validate('goal', 'speed')


def test_service_plans_for_an_entry_point_goal_set_live(installed_goal):
    from hetero_infer.serving.service import Service
    values = {'backend': 'null', 'plan_samples': 3, 'plan_duration_s': 0.2,
              'applications': ['cam'], 'apps.cam.input_topic': 'cam',
              'apps.cam.model': 'resnet18'}
    svc = Service(config.build_config(values), publish=lambda app, doc: None,
                  plan_in_process=True)
    svc.start()
    try:
        svc.apply({'goal': installed_goal})
        end = time.monotonic() + 30.0
        while time.monotonic() < end and svc.last_plan.get('goal') != installed_goal:
            time.sleep(0.05)
        assert svc.last_plan['goal'] == installed_goal
        assert svc.last_plan['reason'] == 'parameters goal'
        import hi_test_goals
        assert hi_test_goals.CALLS  # the planner scored policies with the user's function
        with pytest.raises(ConfigError, match='only at start-up'):
            svc.apply({'goal': 'hi_test_goals:latency_first'})
        assert svc.config.goal == installed_goal
    finally:
        svc.close()


def test_node_accepts_the_entry_point_goal_live(installed_goal):
    rclpy = pytest.importorskip('rclpy')
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from hetero_infer.ros.scheduler_node import SchedulerNode
    ctx = Context()
    rclpy.init(context=ctx)
    node = None
    try:
        node = SchedulerNode(context=ctx, plan_in_process=True, overrides={
            'backend': 'null', 'plan_samples': 3, 'plan_duration_s': 0.2,
            'applications': ['cam'], 'apps.cam.input_topic': 'cam',
            'apps.cam.model': 'resnet18'})
        desc = node.describe_parameter('goal').description
        assert installed_goal in desc
        ok = node.set_parameters([Parameter('goal', value=installed_goal)])[0]
        assert ok.successful, ok.reason
        assert node.config.goal == installed_goal
        refused = node.set_parameters([Parameter('goal', value='hi_test_goals:latency_first')])[0]
        assert not refused.successful and 'only at start-up' in refused.reason
        assert node.get_parameter('goal').value == installed_goal
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.shutdown(context=ctx)
