"""The node serves with a bring-up's result (issue 25, item 2): ``bringup_dir: DIR`` gives the
fitted platform (DIR/platform.yaml) and the trained interference model (DIR/model/xavier.json).

One emulated Xavier bring-up (~20 s) is made per module and shared: the serving Service (no ROS)
must plan with the bring-up's model (the plan it installs is the bring-up model's, not the
committed model's) and serve on the fitted platform; the node process serves with it through
rclpy; an incomplete bring-up directory is refused with its value named.
"""

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from hetero_infer.errors import ConfigError
from hetero_infer.platform.spec import Platform
from hetero_infer.serving import planning
from hetero_infer.serving.config import build_config
from hetero_infer.serving.service import Service

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ('resnet18', 'googlenet', 'squeezenet1_1')
BRINGUP = ['bringup', '--backend', 'emulated', '--platform', 'xavier', '--models',
           ','.join(MODELS), '--repeats', '6', '--corun-repeats', '4', '--profile-samples', '300',
           '--candidates', 'knn,median', '--search-iter', '0', '--cv', '2', '--serve-s', '2',
           '--warmup-s', '0.5', '--plan-samples', '8', '--plan-refine', '8']
#: rates at which the bring-up's model and the committed one plan differently (checked below)
RATE_HZ, SLO_MS = 400.0, 10.0


@pytest.fixture(scope='module')
def bringup_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('bringup') / 'xavier')
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    done = subprocess.run([sys.executable, '-c', 'import sys; from hetero_infer.cli import main; '
                           'sys.exit(main())'] + BRINGUP + ['--out', out], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    return out


def _values(bringup, **changes):
    values = {'backend': 'emulated', 'bringup_dir': bringup, 'plan_samples': 8,
              'plan_duration_s': 0.5, 'admission_control': False,
              'applications': list(MODELS)}
    for m in MODELS:
        values.update({'apps.%s.input_topic' % m: m, 'apps.%s.model' % m: m,
                       'apps.%s.rate_hz' % m: RATE_HZ, 'apps.%s.slo_ms' % m: SLO_MS})
    values.update(changes)
    return values


def _answer(job):
    """What the service installs for ``job`` (planned in this process, through JSON)."""
    return planning.PlanAnswer.from_json(planning.run_plan(job).to_json())


def test_the_service_plans_and_serves_with_the_bringup_result(bringup_dir):
    cfg = build_config(_values(bringup_dir))
    model_file = os.path.join(bringup_dir, 'model', 'xavier.json')
    assert cfg.platform == os.path.join(bringup_dir, 'platform.yaml')
    assert cfg.interference_model == model_file
    docs = []
    svc = Service(cfg, publish=lambda app, doc: docs.append(doc), plan_in_process=True,
                  name='test')
    svc.start()
    try:
        end = time.monotonic() + 60.0
        while not svc.last_plan and time.monotonic() < end:
            time.sleep(0.05)
        plan = dict(svc.last_plan)
        installed = svc.engine.policy.to_dict()
        frame = np.zeros((32, 32, 3), np.uint8)
        for _ in range(10):
            for app in svc.apps:
                svc.submit(app, app.preprocessor(frame, 'rgb'), received_s=time.perf_counter())
            time.sleep(0.02)
        end = time.monotonic() + 20.0
        while len(docs) < 30 and time.monotonic() < end:
            time.sleep(0.05)
        job = svc._plan_job(cfg, [RATE_HZ] * len(MODELS))
    finally:
        svc.close()
    # the fitted platform, not the base xavier file, gives the latencies
    fitted, base = Platform.load(cfg.platform), Platform.load('xavier')
    resnet = svc.apps[0]
    assert resnet.iso_ms['gpu'] == fitted.isolated_latency_ms(resnet.model, 'gpu')
    assert resnet.iso_ms['gpu'] != base.isolated_latency_ms(resnet.model, 'gpu')
    # the plan in force is the bring-up model's plan, which is not the committed model's
    assert plan['scheduler'] == 'interference_aware' and plan['predictor'] == 'interference'
    assert plan['interference_model'] == model_file
    assert job.interference_model == model_file
    mine = _answer(job)
    assert installed == mine.policy.to_dict() and plan['score'] == mine.score
    # the committed model predicts another goodput for the same job: the score tells them apart
    committed = _answer(planning.PlanJob(**dict(job.__dict__, interference_model='')))
    assert committed.score != mine.score, 'the check cannot tell the two models apart'
    # and every request was served on the emulated processors
    assert len(docs) == 30 and {d['outcome'] for d in docs} == {'result'}
    assert {d['processor'] for d in docs} <= {'gpu', 'dla0', 'dla1'}


def test_an_incomplete_or_foreign_bringup_is_refused_naming_the_value(bringup_dir, tmp_path):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(ConfigError, match=r"parameter bringup_dir='%s' is not a directory"
                       % missing):
        build_config(_values(missing))
    half = str(tmp_path / 'half')
    os.makedirs(half)
    with pytest.raises(ConfigError, match=r"bringup_dir='%s' has no platform.yaml: its fit "
                       r"step has not finished" % half):
        build_config(_values(half))
    shutil.copy(os.path.join(bringup_dir, 'platform.yaml'), half)
    os.makedirs(os.path.join(half, '.model.partial'))  # killed during train
    with pytest.raises(ConfigError, match=r'has no trained interference model \(model/'
                       r'<platform>.json; no model/ directory\): its train step'):
        build_config(_values(half))
    # a model trained on another platform: refused at start-up, not planned with
    orin = os.path.join(ROOT, 'hetero_infer', 'data', 'interference', 'orin.json')
    cfg = build_config(_values(bringup_dir, interference_model=orin))
    assert cfg.interference_model == orin  # an explicit model wins over the bring-up's
    with pytest.raises(ConfigError, match=r"parameter interference_model='%s' \(bringup_dir="
                       r".*trained on platform 'orin', not 'xavier'" % orin):
        Service(cfg, publish=lambda app, doc: None, plan_in_process=True, name='test')
    with pytest.raises(ConfigError, match=r"interference_model='/no/model.json': no such file"):
        build_config(_values(bringup_dir, interference_model='/no/model.json'))
    # bringup_dir is read-only: a live change is refused and the service keeps its own
    from hetero_infer.serving.config import apply_changes
    with pytest.raises(ConfigError, match='bringup_dir is read-only'):
        apply_changes(build_config(_values(bringup_dir)), {'bringup_dir': half})


def test_the_node_serves_with_a_bringup_dir(bringup_dir, tmp_path):
    """The node process (``hetero-infer serve --config FILE``, the parameter file ``ros2 launch
    hetero_infer serve.launch.py config:=FILE`` gives the same node) with ``bringup_dir``."""
    pytest.importorskip('rclpy')
    import rclpy
    from node_process import driver_node, probe_until_answered, start_serve, stop_serve
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from hetero_infer.ros.conversions import array_to_image_fields
    cfg = tmp_path / 'serve.yaml'
    cfg.write_text("""
/**:
  ros__parameters:
    bringup_dir: %s
    backend: emulated
    plan_samples: 8
    plan_duration_s: 0.5
    status_period_s: 0.5
    watchdog_min_ms: 5000.0
    applications: [classify]
    apps:
      classify:
        input_topic: bringup_test/image
        model: resnet18
        rate_hz: 20.0
        slo_ms: 200.0
""" % bringup_dir)
    proc, log = start_serve(cfg, str(tmp_path / 'node.log'))
    node, ex = driver_node('bringup_test_driver')
    results, status = [], []
    node.create_subscription(String, 'results/classify',
                             lambda m: results.append(json.loads(m.data)), QoSProfile(depth=100))
    node.create_subscription(String, '/scheduler/status',
                             lambda m: status.append(json.loads(m.data)), 10)
    pub = node.create_publisher(Image, 'bringup_test/image', 10)
    try:
        end = time.monotonic() + 60.0
        while pub.get_subscription_count() == 0 and time.monotonic() < end:
            assert proc.poll() is None, open(str(tmp_path / 'node.log')).read()[-3000:]
            ex.spin_once(timeout_sec=0.05)
        frame = Image(**array_to_image_fields(np.zeros((64, 64, 3), np.uint8), 'rgb8'))
        probe_until_answered(pub, frame, ex.spin_once, lambda: len(results) >= 1)
        end = time.monotonic() + 60.0
        while not (status and status[-1]['last_plan']) and time.monotonic() < end:
            ex.spin_once(timeout_sec=0.05)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        stop_serve(proc, log)
    text = open(str(tmp_path / 'node.log')).read()
    assert results and results[0]['outcome'] == 'result', text[-3000:]
    assert results[0]['processor'] in ('gpu', 'dla0', 'dla1')
    plan = status[-1]['last_plan']
    assert plan['scheduler'] == 'interference_aware', plan
    assert plan['interference_model'] == os.path.join(bringup_dir, 'model', 'xavier.json')
    assert 'platform file %s' % os.path.join(bringup_dir, 'platform.yaml') in text
