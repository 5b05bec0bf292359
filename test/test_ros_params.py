"""Parameter files go through rcl: a namespaced node key applies only to that namespace, ``/**``
to every node, ``-p`` overrides win; the shipped serve.yaml is a valid configuration."""

import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.context import Context  # noqa: E402

from hetero_infer.errors import ConfigError  # noqa: E402
from hetero_infer.resources import find_resource  # noqa: E402
from hetero_infer.ros.lifecycle import init  # noqa: E402
from hetero_infer.ros.params import file_parameters  # noqa: E402
from hetero_infer.serving.config import build_config  # noqa: E402

APPS = ("applications: [cam], apps: {cam: {input_topic: cam, model: resnet18}}, "
        "backend: 'null', plan_samples: 2, plan_duration_s: 0.2")


@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / 'params.yaml'
    path.write_text('/**:\n  ros__parameters: {goal: goodput, queue_limit: 2, %s}\n'
                    '/ns/scheduler:\n  ros__parameters: {goal: fairness}\n'
                    '/other/sources:\n  ros__parameters: {queue_limit: 9}\n' % APPS)
    return str(path)


def test_a_namespaced_node_key_applies_only_to_that_namespace(params_file):
    plain = file_parameters(params_file, node_name='scheduler')
    assert (plain['goal'], plain['queue_limit']) == ('goodput', 2)
    in_ns = file_parameters(params_file, node_name='scheduler', namespace='/ns')
    assert (in_ns['goal'], in_ns['queue_limit']) == ('fairness', 2)
    elsewhere = file_parameters(params_file, node_name='scheduler', namespace='/other')
    assert (elsewhere['goal'], elsewhere['queue_limit']) == ('goodput', 2)
    # -p name:=value is a /** rule (rcl): it beats the file's /** section, not a node's own
    over = ['-p', 'goal:=throughput']
    assert file_parameters(params_file, ros_args=over)['goal'] == 'throughput'
    assert file_parameters(params_file, namespace='/ns', ros_args=over)['goal'] == 'fairness'


def test_the_scheduler_node_reads_its_own_section(params_file):
    from hetero_infer.ros.scheduler_node import SchedulerNode
    ctx = Context()
    init(['test', '--ros-args', '--params-file', params_file], context=ctx)
    nodes = []
    try:
        for ns in ('', 'ns'):
            nodes.append(SchedulerNode(namespace=ns, context=ctx, plan_in_process=True))
        plain, in_ns = nodes
        assert plain.config.goal == 'goodput' and in_ns.config.goal == 'fairness'
        assert plain.config.queue_limit == in_ns.config.queue_limit == 2
        assert [a.name for a in in_ns.apps] == ['cam']
    finally:
        for n in nodes:
            n.destroy_node()
        rclpy.try_shutdown(context=ctx)


def test_shipped_serve_yaml_is_a_valid_config():
    cfg = build_config(file_parameters(find_resource('config', 'serve.yaml')))
    assert [a.name for a in cfg.apps] == ['detect', 'classify', 'speech']
    assert cfg.backend == 'emulated'


def test_broken_files_and_overrides_are_named(tmp_path):
    with pytest.raises(ConfigError, match='does not exist'):
        file_parameters(str(tmp_path / 'missing.yaml'))
    bad = tmp_path / 'bad.yaml'
    bad.write_text('/**:\n  ros__parameters: {goal: [unclosed\n')
    with pytest.raises(ConfigError, match='bad.yaml'):
        file_parameters(str(bad))
    with pytest.raises(ConfigError, match='goal:=\\[oops'):
        init(['test', '--ros-args', '-p', 'goal:=[oops'], context=Context())


def test_sources_without_a_parameter_file_say_which_file_to_pass():
    from hetero_infer.errors import ConfigError
    from hetero_infer.ros.sources_node import streams_from_params
    with pytest.raises(ConfigError, match='--params-file config/serve.yaml'):
        streams_from_params({})
