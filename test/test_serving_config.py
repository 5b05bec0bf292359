"""Settings of the serving core (the scheduler node's parameters): validation reasons, the
frozen config, live changes, and the parameter file reader used by ``hetero-infer serve``."""

import dataclasses

import pytest

from hetero_infer.errors import ConfigError
from hetero_infer.serving import config as params

BASE = {
    'applications': ['cam', 'mic'],
    'apps.cam.input_topic': 'cam/image', 'apps.cam.model': 'resnet18',
    'apps.mic.input_topic': 'mic', 'apps.mic.input_type': 'audio_f32',
    'apps.mic.model': 'quartznet15x5', 'apps.mic.processors': ['gpu', ''],
}


def test_build_config_reads_apps_and_defaults():
    cfg = params.build_config(BASE)
    assert cfg.app_names() == ['cam', 'mic']
    assert cfg.apps[0].result_topic == 'results/cam'
    assert cfg.apps[1].processors == ('gpu',)
    assert cfg.goal_spec() == 'goodput'
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.goal = 'fairness'


@pytest.mark.parametrize('name,value,needle', [
    ('goal', 'speed', "'speed' is not one of"),
    ('slo_scale', 0.5, 'outside [1, 100]'),
    ('slo_scale', float('nan'), 'finite'),
    ('queue_limit', 2.5, 'integer'),
    ('admission_control', 1, 'true or false'),
    ('apps.cam.input_type', 'video', 'not one of'),
    ('backend', 'cuda', 'emulated'),
    ('watchdog_factor', 1.5, 'outside [2, 1000]'),
    ('failure_threshold', 0, 'outside [1, 100]'),
    ('probe_period_s', 0.0, 'outside [0.05, 60]'),
])
def test_validate_gives_a_reason(name, value, needle):
    reason = params.validate(name, value)
    assert reason is not None and needle in reason and name in reason


def test_a_backend_registered_after_import_can_be_chosen():
    # the backend choices are the registry's at validation time, not a list frozen at import
    from hetero_infer.backends import register_backend, unregister_backend
    register_backend('late_null', 'hetero_infer.backends.null:NullBackend')
    try:
        assert params.validate('backend', 'late_null', live=False) is None
        assert params.build_config(dict(BASE, backend='late_null')).backend == 'late_null'
        assert 'late_null' in params.spec_for('backend').full_description()
    finally:
        unregister_backend('late_null')
    assert "'late_null' is not one of" in params.validate('backend', 'late_null', live=False)


def test_build_config_names_node_and_parameter():
    with pytest.raises(ConfigError, match='node /x: .*apps.cam.model is empty'):
        params.build_config(dict(BASE, **{'apps.cam.model': ''}), node_name='/x')
    with pytest.raises(ConfigError, match='applications is empty'):
        params.build_config(dict(BASE, applications=['']))
    with pytest.raises(ConfigError, match='every goal_weights'):
        params.build_config(dict(BASE, goal='weighted', **{'goal_weights.goodput': 0.0}))


def test_apply_changes_is_atomic_and_checked():
    cfg = params.build_config(BASE)
    new = params.apply_changes(cfg, {'goal': 'weighted', 'goal_weights.fairness': 0.5,
                                     'apps.cam.slo_ms': 40.0})
    assert new.goal_spec() == {'weighted': {'goodput': 1.0, 'fairness': 0.5}}
    assert new.apps[0].slo_ms == 40.0 and cfg.apps[0].slo_ms == 0.0
    with pytest.raises(ConfigError, match='unknown application'):
        params.apply_changes(cfg, {'apps.nope.slo_ms': 3.0})
    with pytest.raises(ConfigError):
        params.apply_changes(cfg, {'goal': 'weighted', 'goal_weights.goodput': 0.0})


def test_every_parameter_has_a_description_and_sane_range():
    for spec in params.NODE_PARAMS + params.APP_PARAMS:
        assert spec.description
        if spec.low is not None:
            assert spec.low <= spec.default <= spec.high, spec.name
            assert spec.high <= params.INT32_MAX
        if spec.all_choices():
            assert spec.default in spec.all_choices()
            assert all(c in spec.full_description() for c in spec.all_choices())


def test_fault_and_health_parameters():
    cfg = params.build_config(dict(BASE, faults=['dla1:error@10+10', ''], failure_threshold=5,
                                   probe_period_s=0.5))
    assert cfg.faults == ('dla1:error@10+10',)
    h = cfg.health_settings()
    assert (h.failure_threshold, h.probe_period_s, h.watchdog_factor) == (5, 0.5, 10.0)
    with pytest.raises(ConfigError) as err:
        params.build_config(dict(BASE, faults=['dla1:explode@3']), node_name='/n')
    assert 'node /n: parameter faults' in str(err.value) and "'explode'" in str(err.value)
    # the ranges the node declares are the ones the health rule accepts
    from hetero_infer.twin.faults import HealthSettings
    for name, (low, high) in HealthSettings.RANGES.items():
        spec = params.spec_for(name)
        assert (spec.low, spec.high) == (low, high), name
    new = params.apply_changes(cfg, {'recovery_successes': 2})
    assert new.health_settings().recovery_successes == 2


def test_serve_options_are_ros_arguments(tmp_path):
    import argparse

    from hetero_infer.commands import serve
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    cfg = tmp_path / 'serve.yaml'
    cfg.write_text('/**:\n  ros__parameters: {goal: goodput}\n')
    args = parser.parse_args(['--config', str(cfg), '--set', 'goal=fairness', '--set',
                              'apps.cam.processors=[gpu, dla0]', '--fault', 'dla1:error@10+10',
                              '--fault', 'dla0:hang@12', '--backend', 'null'])
    assert serve.ros_arguments(args) == [
        '--ros-args', '--log-level', 'info', '--params-file', str(cfg),
        '-p', 'goal:=fairness', '-p', 'apps.cam.processors:=[gpu, dla0]',
        '-p', 'faults:=["dla1:error@10+10", "dla0:hang@12"]', '-p', 'backend:=null']
    with pytest.raises(ConfigError, match="fault 'dla1:error@x'"):
        serve.ros_arguments(parser.parse_args(['--fault', 'dla1:error@x']))
    with pytest.raises(ConfigError, match="--set 'goal': expected NAME=VALUE"):
        serve.ros_arguments(parser.parse_args(['--set', 'goal']))
    with pytest.raises(ConfigError, match='no such file'):
        serve.ros_arguments(parser.parse_args(['--config', str(tmp_path / 'nope.yaml')]))
