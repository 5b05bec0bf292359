"""Scenarios file and the evaluation pipeline (tiny budgets: invariants, schema, outputs)."""

import json
import os

import pytest
import yaml

from hetero_infer.core.evaluation import (METRICS, EvalSettings, average_improvements,
                                          run_evaluation, write_outputs)
from hetero_infer.core.platform import Platform
from hetero_infer.core.scenarios import (default_scenarios_path, fluid_capacity_hz,
                                         load_scenarios, parse_scenarios)
from hetero_infer.core.search import SimSettings
from hetero_infer.errors import ConfigError

ZOO14 = {'alexnet', 'vgg16', 'vgg19', 'resnet18', 'resnet34', 'resnet50', 'resnet101',
         'resnet152', 'densenet121', 'googlenet', 'inception_v3', 'mobilenet_v2',
         'squeezenet1_1', 'shufflenet_v2_x1_0'}


@pytest.fixture(scope='module')
def platform():
    return Platform.load('xavier')


def test_committed_scenarios_are_8_sets_by_5_ratios_of_the_14_models(platform):
    scenarios = load_scenarios(default_scenarios_path())
    assert len(scenarios) == 40
    sets = {s.name.rsplit('_r', 1)[0] for s in scenarios}
    assert len(sets) == 8
    models = {a.model for s in scenarios for a in s.applications}
    assert models == ZOO14
    apps = scenarios[0].build(platform)
    assert all(a.rate_hz > 0 and a.slo_ms > 0 for a in apps)


def test_load_is_a_fraction_of_the_fluid_capacity(platform):
    doc = {'scenarios': [{'name': 's', 'load': 0.5, 'applications': [
        {'model': 'resnet50', 'ratio': 1}, {'model': 'googlenet', 'ratio': 3}]}]}
    (s,) = parse_scenarios(doc)
    apps = s.build(platform)
    from hetero_infer.core.model import load_model
    cap = fluid_capacity_hz(platform, [load_model('resnet50'), load_model('googlenet')],
                            [1, 3], [platform.processor_ids] * 2)
    assert sum(a.rate_hz for a in apps) == pytest.approx(0.5 * cap)
    assert apps[1].rate_hz == pytest.approx(3 * apps[0].rate_hz)
    # at full load every processor is busy: isolated utilisation of the best split is 100%
    gpu_only = 1000.0 / platform.isolated_latency_ms(load_model('resnet50'), 'gpu')
    assert cap > gpu_only * 0.5


@pytest.mark.parametrize('bad,match', [
    ({'scenarios': []}, 'must not be empty'),
    ({'scenarios': [{'name': 'x', 'applications': [{'model': 'resnet50'}]}]}, 'rate_hz or ratio'),
    ({'scenarios': [{'name': 'x', 'applications': [
        {'model': 'resnet50', 'ratio': 1}, {'model': 'vgg16', 'rate_hz': 3}]}]}, 'mix of'),
    ({'scenarios': [{'name': 'x', 'applications': [
        {'model': 'resnet50', 'rate_hz': 1, 'slo_ms': 3, 'slo_scale': 2}]}]}, 'not both'),
    ({'scenarios': [{'name': 'x', 'applications': [
        {'model': 'resnet50', 'rate_hz': 1, 'speed': 3}]}]}, "unknown key 'speed'"),
    ({'scenarios': [{'name': 'x', 'applications': [{'model': 'resnet50', 'rate_hz': -1}]}]},
     'rate_hz = -1 is out of range'),
    ({'format': 'other/2', 'scenarios': [{'name': 'x'}]}, 'format'),
])
def test_invalid_scenarios_are_refused(bad, match):
    with pytest.raises(ConfigError, match=match):
        parse_scenarios(bad)


def test_unknown_model_and_processor_are_refused_at_build(platform):
    (s,) = parse_scenarios({'scenarios': [{'name': 'x', 'applications': [
        {'model': 'resnet9000', 'rate_hz': 1}]}]})
    with pytest.raises(ConfigError, match='resnet9000'):
        s.build(platform)
    (s,) = parse_scenarios({'scenarios': [{'name': 'x', 'applications': [
        {'model': 'resnet50', 'rate_hz': 1, 'processors': ['npu']}]}]})
    with pytest.raises(ConfigError, match='npu'):
        s.build(platform)


def test_average_improvement_skips_zero_baselines():
    scen = [{'results': {'interference_aware': {'goodput': 12.0}, 'base': {'goodput': 10.0}}},
            {'results': {'interference_aware': {'goodput': 5.0}, 'base': {'goodput': 0.0}}},
            {'results': {'interference_aware': {'goodput': 9.0}, 'base': {'goodput': 10.0}}}]
    assert average_improvements(scen) == {'goodput': {'base': pytest.approx(5.0)}}


class FakeInterference:
    """Stand-in for the trained model: 30% slower per busy co-runner."""

    def __init__(self):
        self.platform = Platform.load('xavier')

    def predict_model_latency_ms(self, model, proc, corunners):
        return self.platform.isolated_latency_ms(model, proc) * (1 + 0.3 * len(corunners))


def test_small_evaluation_writes_the_issue_schema(tmp_path):
    path = tmp_path / 'mine.yaml'
    path.write_text(yaml.safe_dump({'platform': 'xavier', 'scenarios': [
        {'name': 'tiny', 'load': 0.6, 'applications': [
            {'model': 'resnet18', 'ratio': 2}, {'model': 'googlenet', 'ratio': 1}]}]}))
    scenarios = load_scenarios(str(path))
    settings = EvalSettings(duration_s=0.6, warmup_s=0.1, slo99_iterations=2,
                            slo99_requests=150, top_fraction=0.2, confidence=0.9,
                            max_refine_evals=6, sim=SimSettings(duration_s=0.5, warmup_s=0.1,
                                                                slo99_requests=150,
                                                                slo99_iterations=3))
    scheds = ['interference_aware', 'no_interference', 'base', 'round_robin',
              'least_finish_time', 'fastest_only']
    result = run_evaluation(scenarios, 'xavier', schedulers=scheds, settings=settings,
                            workers=1, interference_model=FakeInterference())
    summary = result['summary']
    assert set(summary) == {'scenarios', 'average_improvement_pct'}
    (entry,) = summary['scenarios']
    assert entry['name'] == 'tiny'
    assert set(entry['results']) == set(scheds)
    for r in entry['results'].values():
        assert set(r) == set(METRICS)
        assert r['throughput'] >= r['goodput'] >= 0
        assert 0 < r['fairness'] <= 1.0 + 1e-9
    imp = summary['average_improvement_pct']
    assert set(imp['goodput']) <= set(scheds) - {'interference_aware'}
    paths = write_outputs(result, str(tmp_path / 'out'))
    names = {os.path.basename(p) for p in paths}
    assert {'summary.json', 'summary.md', 'details.json', 'goodput_per_scenario.png',
            'average_improvement.png'} <= names
    with open(tmp_path / 'out' / 'summary.json') as f:
        assert json.load(f) == json.loads(json.dumps(summary))


def test_slo_probes_stopped_early_give_the_bisections_result(platform):
    from hetero_infer.core.evaluation import SloWatch, twin_slo99_throughput
    from hetero_infer.core.metrics import compute_metrics
    from hetero_infer.core.schedulers import PlanContext, get_scheduler
    from hetero_infer.core.twin import Twin
    from hetero_infer.core.workload import poisson_arrivals
    apps = load_scenarios(default_scenarios_path())[0].build(platform)
    for name in ('round_robin', 'fastest_only'):
        make = get_scheduler(name).plan(PlanContext(platform=platform, apps=apps)).make_dispatcher
        twin = Twin(platform, seed=5)
        fast = twin_slo99_throughput(twin, apps, make, seed=2, requests=300)
        assert fast == twin_slo99_throughput(twin, apps, make, seed=2, requests=300,
                                             stop_failed_probes=False)
        # On a whole run, the watch gives up exactly when the run misses SLO99.
        verdicts = set()
        for scale in (0.1, 0.6, 0.9):
            scaled = [a.scaled(scale) for a in apps]
            arrivals = poisson_arrivals(scaled, 0.6, 2)
            recs = twin.serve(scaled, make(), duration_s=0.6, seed=2, arrivals=arrivals)
            watch = SloWatch(scaled, arrivals, warmup_s=0.06, duration_s=0.6)
            gave_up = [watch(r) for r in recs]
            meets = compute_metrics(recs, scaled, warmup_s=0.06, duration_s=0.6).meets_slo()
            assert any(gave_up) == (not meets)
            verdicts.add(meets)
        assert verdicts == {True, False}
