"""Per-application criticality: weights and floors (min_attainment) in the App, the scenario
format, the CLI flags, the search, the router's shedding and the serving config."""

import dataclasses
import json
import time

import numpy as np
import pytest

from hetero_infer.errors import ConfigError
from hetero_infer.interference.predictors import IsolatedPredictor
from hetero_infer.models.zoo import load_model
from hetero_infer.planning.goals import Goal, get_goal
from hetero_infer.planning.policy import Policy
from hetero_infer.planning.router import SHED, PriorityRouter
from hetero_infer.planning.search import SimSettings, build_problem, plan_simulator, search
from hetero_infer.platform.spec import Platform
from hetero_infer.workload.requests import App, with_criticality

FAST = SimSettings(duration_s=1.5, warmup_s=0.2)


@pytest.fixture(scope='module')
def platform():
    return Platform.load('xavier')


@pytest.fixture(scope='module')
def overloaded(platform):
    """Three applications well beyond the SoC's capacity: goodput alone starves vgg16."""
    out = []
    for name, rate in (('resnet50', 300.0), ('googlenet', 400.0), ('vgg16', 80.0)):
        m = load_model(name)
        out.append(App(name, m, rate, 5 * platform.isolated_latency_ms(m, 'gpu')))
    return out


def _floors(apps, **floors):
    return [dataclasses.replace(a, min_attainment=floors.get(a.name, 0.0)) for a in apps]


@pytest.mark.parametrize('kw,match', [
    ({'weight': 0.0}, r'application det: weight must be a number in \(0, 100\], got 0.0'),
    ({'weight': -1}, r'weight .* got -1'),
    ({'weight': 'high'}, r"weight .* got 'high'"),
    ({'weight': True}, r'weight .* got True'),
    ({'weight': 101.0}, r'got 101.0'),
    ({'min_attainment': 1.5}, r'application det: min_attainment must be a number in \[0, 1\], '
                              r'got 1.5'),
    ({'min_attainment': -0.1}, r'min_attainment .* got -0.1'),
])
def test_bad_weight_or_floor_is_refused_naming_the_application_and_value(kw, match):
    m = load_model('googlenet')
    with pytest.raises(ConfigError, match=match):
        App('det', m, 10.0, 20.0, **kw)


def test_defaults_and_scaled_keep_the_criticality():
    a = App('det', load_model('googlenet'), 10.0, 20.0)
    assert (a.weight, a.min_attainment) == (1.0, 0.0)
    b = App('det', load_model('googlenet'), 10.0, 20.0, weight=2, min_attainment=0.9).scaled(2)
    assert (b.rate_hz, b.weight, b.min_attainment) == (20.0, 2, 0.9)


def test_scenario_file_keys_reach_the_applications(platform):
    from hetero_infer.evaluation.scenarios import parse_scenarios
    from hetero_infer.evaluation.scenarios import with_criticality as scen_crit
    doc = {'format': 'hetero_infer.scenarios/1', 'scenarios': [{
        'name': 's', 'applications': [
            {'name': 'det', 'model': 'googlenet', 'rate_hz': 30, 'weight': 2,
             'min_attainment': 0.9},
            {'name': 'cls', 'model': 'resnet50', 'rate_hz': 30}]}]}
    apps = parse_scenarios(doc)[0].build(platform)
    assert [(a.name, a.weight, a.min_attainment) for a in apps] == [
        ('det', 2.0, 0.9), ('cls', 1.0, 0.0)]
    # the flags of evaluate override by name, and refuse a name no scenario has
    apps = scen_crit(parse_scenarios(doc), weights={'cls': 3}, floors={'det': 0.5}
                     )[0].build(platform)
    assert [(a.weight, a.min_attainment) for a in apps] == [(2.0, 0.5), (3.0, 0.0)]
    with pytest.raises(ConfigError, match=r'--floor: unknown application\(s\) nope'):
        scen_crit(parse_scenarios(doc), floors={'nope': 0.5})
    for key, value in (('weight', 0), ('min_attainment', 1.2)):
        bad = json.loads(json.dumps(doc))
        bad['scenarios'][0]['applications'][0][key] = value
        with pytest.raises(ConfigError, match=r'applications\[0\]\.%s' % key):
            parse_scenarios(bad)


def test_with_criticality_refuses_unknown_names(overloaded):
    with pytest.raises(ConfigError, match=r'--weight: unknown application\(s\) ghost '
                                          r'\(applications: resnet50, googlenet, vgg16\)'):
        with_criticality(overloaded, weights={'ghost': 2.0})
    out = with_criticality(overloaded, weights={'vgg16': 4.0}, floors={'googlenet': 0.5})
    assert [(a.weight, a.min_attainment) for a in out] == [(1.0, 0.0), (1.0, 0.5), (4.0, 0.0)]


def test_weighted_goodput_and_per_application_metrics_reach_goals(platform, overloaded):
    apps = with_criticality(overloaded, weights={'vgg16': 3.0})
    problem = build_problem(platform, apps, IsolatedPredictor(platform), 'goodput', FAST)
    alloc = Policy([a.name for a in apps], platform.processor_ids,
                   np.full((3, len(platform.processor_ids)), 1.0 / len(platform.processor_ids))
                   ).allocation
    seen = {}

    def goal(metrics):
        seen.update(metrics)
        return metrics['attainment']['vgg16'] * metrics['weights']['vgg16']

    res = plan_simulator(problem).run(PriorityRouter(Policy(
        [a.name for a in apps], platform.processor_ids, alloc)))
    m = res.metrics()
    assert m['weighted_goodput'] == pytest.approx(
        m['goodput'] + 2.0 * res.met[2] / res.window_s)
    assert get_goal('weighted_goodput')(m) == m['weighted_goodput']
    user = Goal('vgg16_first', goal)
    assert user(m) == pytest.approx(3.0 * res.attainment[2])
    # a user goal gets the same mappings inside the search
    seen.clear()
    out = search(build_problem(platform, apps, IsolatedPredictor(platform), user, FAST),
                 n_samples=3, seed=0, workers=1, refine=False)
    assert out.score == pytest.approx(3.0 * out.metrics['attainment']['vgg16'])
    assert seen['floors'] == {'resnet50': 0.0, 'googlenet': 0.0, 'vgg16': 0.0}
    assert list(seen['attainment']) == ['resnet50', 'googlenet', 'vgg16']


def test_a_floor_changes_the_plan_the_search_chooses(platform, overloaded):
    pred = IsolatedPredictor(platform)
    free = search(build_problem(platform, overloaded, pred, 'goodput', FAST),
                  n_samples=20, seed=0, workers=1, max_refine_evals=20)
    assert free.metrics['attainment']['vgg16'] < 0.6   # goodput alone starves it
    floored = search(build_problem(platform, _floors(overloaded, vgg16=0.6), pred, 'goodput',
                                   FAST), n_samples=20, seed=0, workers=1, max_refine_evals=20)
    assert floored.metrics['attainment']['vgg16'] >= 0.6
    assert floored.infeasible == {} and floored.shortfall == 0.0 and floored.floor_note() == ''
    assert not np.array_equal(free.policy.allocation, floored.policy.allocation)


def test_infeasible_floors_choose_the_least_shortfall_and_say_which(platform, overloaded):
    pred = IsolatedPredictor(platform)
    apps = _floors(overloaded, vgg16=1.0, googlenet=1.0)
    res = search(build_problem(platform, apps, pred, 'goodput', FAST),
                 n_samples=20, seed=0, workers=1, max_refine_evals=20)
    assert res.infeasible and res.shortfall > 0
    assert set(res.infeasible) <= {'vgg16', 'googlenet'}
    name, (floor, att) = next(iter(res.infeasible.items()))
    assert floor == 1.0 and att == res.metrics['attainment'][name] < 1.0
    assert 'no plan found meets every floor' in res.floor_note() and name in res.floor_note()
    assert res.to_dict()['infeasible_floors'][name]['floor'] == 1.0


def test_plan_command_floor_flag_changes_the_plan_and_reports_the_infeasible_floor(
        tmp_path, capsys):
    from hetero_infer.cli import main
    base = ['plan', '--scenario', 'mix_r1', '--scheduler', 'no_interference', '--top-fraction',
            '0.2', '--confidence', '0.9', '--workers', '1']
    out = tmp_path / 'p.json'

    def plan(*flags):
        assert main(base + list(flags) + ['--out', str(out)]) == 0
        return capsys.readouterr().out, json.loads(out.read_text())

    text, free = plan()
    assert 'predicted attainment per application' in text and 'BELOW FLOOR' not in text
    assert free['search']['predicted_metrics']['attainment']['resnet50'] < 0.99
    text, floored = plan('--floor', 'resnet50=0.99', '--weight', 'googlenet=2')
    assert floored['search']['predicted_metrics']['attainment']['resnet50'] >= 0.99
    assert floored['policy'] != free['policy'] and floored['search']['infeasible_floors'] == {}
    assert 'BELOW FLOOR' not in text
    assert [(a['weight'], a['min_attainment']) for a in floored['applications']] == [
        (1.0, 0.99), (2.0, 0.0), (1.0, 0.0)]
    text, short = plan('--floor', 'vgg16=1', '--floor', 'resnet50=1')
    assert 'BELOW FLOOR 1 (infeasible)' in text
    assert 'no plan found meets every floor' in short['notes']
    assert set(short['search']['infeasible_floors']) <= {'vgg16', 'resnet50'}
    assert short['search']['infeasible_floors']
    assert main(base + ['--floor', 'ghost=0.5', '--out', str(out)]) == 1
    assert '--floor: unknown application(s) ghost' in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(base + ['--weight', 'vgg16=0'])
    assert exc.value.code == 2
    assert 'vgg16: must be a finite number in (0.0, 100.0]' in capsys.readouterr().err


# ---------------------------------------------------------------- shedding by weight

class _View:
    def __init__(self, free):
        self.free = free
        self.now_ms = 0.0

    def queue_len(self, proc):
        return 1

    def expected_free_ms(self, proc):
        return self.free[proc]

    def queue_full(self, proc):
        return False


def _router(weights=None):
    names = ['hi', 'lo']
    r = PriorityRouter(Policy(names, ('gpu', 'dla0'), [[1.0, 0.0], [1.0, 0.0]]))
    r.reset(names, None)
    r.set_service_ms([{'gpu': 2.0, 'dla0': 4.0}, {'gpu': 2.0, 'dla0': 4.0}])
    r.set_slos([20.0, 20.0])
    if weights is not None:
        r.set_weights(weights)
    return r


def test_router_sheds_the_lower_weight_under_overload_only():
    r = _router([4.0, 1.0])
    light = _View({'gpu': 2.0, 'dla0': 0.0})   # lo 4 ms <= its 20 ms SLO, hi behind it 6 ms
    assert r.route(1, 0.0, light) == ('gpu', '')
    # lo would meet its SLO (12 ms) and so would hi queued behind it (14 ms): never shed
    # (the first rule, shed above 20 x 1/4 = 5 ms, dropped it)
    assert r.route(1, 0.0, _View({'gpu': 10.0, 'dla0': 0.0})) == ('gpu', '')
    # lo would meet its SLO (19 ms) but hi, planned on the GPU, would miss behind it (21 ms)
    tight = _View({'gpu': 17.0, 'dla0': 0.0})
    assert r.route(1, 0.0, tight) == (None, SHED)
    assert r.route(1, 0.0, _View({'gpu': 30.0, 'dla0': 0.0})) == (None, SHED)  # a miss anyway
    assert r.route(0, 0.0, tight) == ('gpu', '')   # the highest weight never is
    late = _View({'gpu': 100.0, 'dla0': 0.0})
    assert r.route(0, 0.0, late) == ('gpu', '')
    # equal weights (given or not): never shed, the decisions of a router without weights
    for eq in (None, [2.0, 2.0]):
        assert _router(eq).route(1, 0.0, late) == ('gpu', '')
    with pytest.raises(ConfigError, match='weights must be numbers > 0, got 0'):
        r.set_weights([1.0, 0])


def test_router_sheds_the_lowest_weight_first():
    names = ['hi', 'mid', 'lo']
    r = PriorityRouter(Policy(names, ('gpu', 'dla0'), [[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]))
    r.reset(names, None)
    r.set_service_ms([{'gpu': 2.0, 'dla0': 4.0}] * 3)
    r.set_slos([20.0, 20.0, 20.0])
    r.set_weights([3.0, 2.0, 1.0])   # thresholds: mid 20 x (1 + 2/3 - 1/3), lo 20 ms
    view = _View({'gpu': 22.0, 'dla0': 0.0})   # 24 ms on the GPU, where hi has no share
    assert r.route(2, 0.0, view) == (None, SHED)
    assert r.route(1, 0.0, view) == ('gpu', '')
    assert r.route(1, 0.0, _View({'gpu': 25.0, 'dla0': 0.0})) == (None, SHED)  # 27 > 26.7
    # mid on the GPU: lo is shed where mid would miss behind it (19 + 2 > 20)
    assert r.route(2, 0.0, _View({'gpu': 17.0, 'dla0': 0.0})) == (None, SHED)
    assert r.route(2, 0.0, _View({'gpu': 10.0, 'dla0': 0.0})) == ('gpu', '')


def test_shedding_by_weight_raises_the_heavier_applications_attainment(platform, overloaded):
    def attainment(apps):
        problem = build_problem(platform, apps, IsolatedPredictor(platform), 'goodput', FAST)
        alloc = np.zeros((3, len(platform.processor_ids)))
        alloc[:, platform.processor_ids.index('gpu')] = 1.0
        res = plan_simulator(problem).run(PriorityRouter(Policy(
            [a.name for a in apps], platform.processor_ids, alloc, mask=problem.mask)))
        return res.attainment

    # every application on the GPU at about 1.5 x what it serves: queues run away
    apps = [dataclasses.replace(a, rate_hz=r) for a, r in zip(overloaded, (150.0, 200.0, 40.0))]
    even = attainment(apps)
    assert attainment(with_criticality(apps, weights={a.name: 3.0 for a in apps})
                      ) == even   # equal weights: exactly as without
    heavy = attainment(with_criticality(apps, weights={'googlenet': 4.0}))
    assert even[1] < 0.5 and heavy[1] > 0.9   # googlenet's requests no longer queue behind


# ---------------------------------------------------------------- serving parameters

def test_serving_weight_and_floor_parameters_replan_and_reach_the_router():
    from hetero_infer.serving.config import build_config
    from hetero_infer.serving.service import Service
    params = {
        'backend': 'null', 'plan_samples': 4, 'plan_duration_s': 0.3,
        'applications': ['cam', 'mic'], 'apps.cam.weight': 2.0,
        'apps.cam.input_topic': 'cam', 'apps.cam.model': 'resnet18',
        'apps.mic.input_topic': 'mic', 'apps.mic.input_type': 'audio_f32',
        'apps.mic.model': 'quartznet15x5'}
    svc = Service(build_config(params), publish=lambda app, doc: None, plan_in_process=True,
                  name='test')
    assert [(a.weight, a.min_attainment) for a in svc.config.apps] == [(2.0, 0.0), (1.0, 0.0)]
    assert svc.engine.router._shed == [float('inf'), 1.0]   # weights differ: mic may be shed
    planned = []
    real_plan = svc.plan

    def plan(cfg, rates, down=frozenset()):
        planned.append([(a.weight, a.min_attainment) for a in cfg.apps])
        return real_plan(cfg, rates, down)
    svc.plan = plan
    svc.start()
    try:
        end = time.monotonic() + 30.0
        while time.monotonic() < end and not planned:
            time.sleep(0.01)
        svc.apply({'apps.mic.min_attainment': 0.9, 'apps.mic.weight': 2.0})
        while time.monotonic() < end and (svc.last_plan or {}).get('reason') != \
                'parameters apps.mic.min_attainment, apps.mic.weight':
            time.sleep(0.01)
        assert planned[-1] == [(2.0, 0.0), (2.0, 0.9)]
        assert svc.engine.router._shed is None          # equal again: no shedding
        with pytest.raises(ConfigError, match='weight'):
            svc.apply({'apps.mic.weight': 0.0})
        with pytest.raises(ConfigError, match='min_attainment'):
            svc.apply({'apps.mic.min_attainment': 1.5})
        assert svc.config.apps[1].weight == 2.0
    finally:
        svc.close()


def test_serve_yaml_declares_weight_and_floor_with_ranges():
    from hetero_infer.serving.config import APP_PARAMS
    specs = {s.name: s for s in APP_PARAMS}
    assert (specs['weight'].default, specs['weight'].low, specs['weight'].high) == (
        1.0, 0.01, 100.0)
    assert (specs['min_attainment'].low, specs['min_attainment'].high) == (0.0, 1.0)
    from hetero_infer.io.yaml_file import read_yaml
    apps = read_yaml('config/serve.yaml', 'serve')['/**']['ros__parameters']['apps']
    assert all(a['weight'] == 1.0 and a['min_attainment'] == 0.0 for a in apps.values())
    assert not specs['weight'].read_only and not specs['min_attainment'].read_only


def test_the_oracles_selection_applies_the_floors(platform):
    from hetero_infer.planning.schedulers.interface import Plan
    from hetero_infer.planning.twin_measure import select_on_twin
    from hetero_infer.twin.simulator import Twin
    from hetero_infer.workload.requests import FixedDispatcher
    apps = []
    for name, rate in (('resnet50', 60.0), ('googlenet', 100.0), ('vgg16', 30.0)):
        m = load_model(name)
        apps.append(App(name, m, rate, 5 * platform.isolated_latency_ms(m, 'gpu')))
    # x keeps resnet50 on the GPU and starves vgg16 on a DLA; y serves more in all but
    # leaves resnet50 at about 92%
    cands = [('x', Plan('x', lambda: FixedDispatcher(['gpu', 'gpu', 'dla0']), source='x')),
             ('y', Plan('y', lambda: FixedDispatcher(['dla0', 'dla1', 'gpu']), source='y'))]
    kw = dict(serve_s=1.0, select_seed=5, select_traces=2, slo99_traces=1)
    twin = Twin(platform, seed=0)
    assert select_on_twin(twin, apps, 'goodput', cands, **kw)[0] == 1
    best, report = select_on_twin(twin, _floors(apps, resnet50=0.95), 'goodput', cands, **kw)
    assert best == 0 and 'floors: 1 of 2 candidates with the least shortfall 0' in report


def test_status_shows_weights_floors_and_the_plans_attainment_and_an_unmet_floor():
    from hetero_infer.serving.config import build_config
    from hetero_infer.serving.service import Service
    params = {
        'backend': 'null', 'plan_samples': 4, 'plan_duration_s': 0.3,
        'applications': ['cam', 'mic'], 'apps.cam.weight': 2.0,
        'apps.cam.input_topic': 'cam', 'apps.cam.model': 'resnet18',
        'apps.mic.input_topic': 'mic', 'apps.mic.input_type': 'audio_f32',
        'apps.mic.model': 'quartznet15x5', 'apps.mic.rate_hz': 5000.0,
        'apps.mic.slo_ms': 5.0}
    svc = Service(build_config(params), publish=lambda app, doc: None, plan_in_process=True,
                  name='test')
    svc.start()
    try:
        end = time.monotonic() + 60.0
        while time.monotonic() < end and not svc.last_plan:
            time.sleep(0.01)
        doc = svc.status()
        apps = doc['applications']
        assert (apps['cam']['weight'], apps['cam']['min_attainment']) == (2.0, 0.0)
        assert (apps['mic']['weight'], apps['mic']['min_attainment']) == (1.0, 0.0)
        mic_pred = apps['mic']['predicted_attainment']
        assert mic_pred == svc.last_plan['attainment']['mic'] and mic_pred < 0.9
        assert doc['floors_unmet'] == []
        # a floor the load cannot give: set live, it re-plans, the status names it
        svc.apply({'apps.mic.min_attainment': 0.95})
        while time.monotonic() < end and (svc.last_plan or {}).get('reason') != \
                'parameters apps.mic.min_attainment':
            time.sleep(0.01)
        doc = svc.status()
        mic = doc['applications']['mic']
        assert mic['min_attainment'] == 0.95 and mic['predicted_attainment'] < 0.95
        assert doc['floors_unmet'] == [{'application': 'mic', 'min_attainment': 0.95,
                                        'predicted_attainment': mic['predicted_attainment']}]
        assert 'mic predicted' in doc['last_plan']['floor_note']
        # a floor it meets: nothing unmet any more
        svc.apply({'apps.mic.min_attainment': 0.0, 'apps.mic.rate_hz': 1.0})
        while time.monotonic() < end and (svc.last_plan or {}).get('reason', '').find(
                'apps.mic.min_attainment, apps.mic.rate_hz') < 0:
            time.sleep(0.01)
        doc = svc.status()
        assert doc['applications']['mic']['min_attainment'] == 0.0
        assert doc['floors_unmet'] == [] and doc['last_plan']['floor_note'] == ''
    finally:
        svc.close()
