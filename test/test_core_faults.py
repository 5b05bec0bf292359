"""Processor faults: the fault syntax, the health rule, faults in the twin's serving simulation,
in scenario files and in the emulated backend."""

import math
import threading

import pytest

from hetero_infer.backends.emulated import EmulatedBackend
from hetero_infer.errors import BackendError, ConfigError
from hetero_infer.evaluation.scenarios import parse_scenarios
from hetero_infer.models.zoo import load_model
from hetero_infer.planning.policy import Policy
from hetero_infer.planning.router import PriorityRouter
from hetero_infer.platform.spec import Platform
from hetero_infer.twin.faults import (
    Fault,
    HealthSettings,
    HealthTracker,
    parse_fault,
    parse_faults,
)
from hetero_infer.twin.simulator import Twin
from hetero_infer.workload.requests import App


def test_fault_syntax():
    assert parse_fault('dla1:error@10+5') == Fault('dla1', 'error', 10.0, 5.0)
    f = parse_fault(' gpu:hang@2.5 ')
    assert f == Fault('gpu', 'hang', 2.5, math.inf) and str(f) == 'gpu:hang@2.5'
    assert f.active(2.5) and f.active(1e9) and not f.active(2.4)
    assert parse_faults(['', 'dla0:error@0+1']) == (Fault('dla0', 'error', 0.0, 1.0),)
    for bad, words in (('dla1:crash@1', ["'crash'", 'error, hang']),
                       ('dla1:error', ['PROC:KIND@SECONDS']),
                       ('dla1:error@soon', ["'soon'", 'seconds']),
                       ('dla1:error@-1', ['>= 0']),
                       ('dla1:error@1+0', ['duration must be > 0'])):
        with pytest.raises(ConfigError) as err:
            parse_fault(bad)
        assert repr(bad) in str(err.value) and all(w in str(err.value) for w in words), err.value


def test_health_rule_transitions_once_each_way():
    t = [0.0]
    h = HealthTracker(['gpu', 'dla0'], HealthSettings(failure_threshold=2, recovery_successes=2),
                      clock=lambda: t[0])
    assert not h.failure('gpu', 'boom')
    h.success('gpu')                      # a success restarts the count
    assert not h.failure('gpu', 'boom')
    t[0] = 3.0
    assert h.failure('gpu', 'boom') and not h.is_healthy('gpu')
    assert not h.failure('gpu', 'boom')   # already unhealthy: no second transition
    assert h.unhealthy() == {'gpu': '2 consecutive failures, last: boom'}
    assert not h.probe_result('gpu', True)
    assert not h.probe_result('gpu', False, 'still broken')  # the count starts over
    assert not h.probe_result('gpu', True)
    t[0] = 7.0
    assert h.probe_result('gpu', True) and h.is_healthy('gpu')
    assert h.hung('dla0', 'hang: 500 ms') and not h.hung('dla0', 'hang: 900 ms')
    assert [(e.t_s, e.proc, e.healthy) for e in h.events] == [
        (3.0, 'gpu', False), (7.0, 'gpu', True), (7.0, 'dla0', False)]
    with pytest.raises(ConfigError, match='watchdog_factor = 1.0 is outside'):
        HealthSettings(watchdog_factor=1.0)
    assert HealthSettings(watchdog_factor=10, watchdog_min_ms=50).watchdog_ms(2.0) == 50.0


@pytest.fixture(scope='module')
def xavier():
    return Platform.load('xavier')


def _apps(platform):
    apps = []
    for name, model, rate in (('cls', 'resnet18', 120.0), ('det', 'googlenet', 120.0)):
        m = load_model(model)
        fastest = min(platform.isolated_latency_ms(m, p) for p in platform.processor_ids)
        apps.append(App(name, m, rate, 5.0 * fastest))
    return apps


def _router(platform, apps):
    return PriorityRouter(Policy([a.name for a in apps], platform.processor_ids,
                                 [[0.4, 0.3, 0.3], [0.4, 0.3, 0.3]]))


def test_twin_error_fault_fails_over_and_processor_returns(xavier):
    apps = _apps(xavier)
    twin = Twin(xavier, seed=3)
    recs = twin.serve(apps, _router(xavier, apps), duration_s=8.0,
                      faults=['dla1:error@2+3'])
    fsim = twin.last_faults
    # every arrival has exactly one outcome
    assert all((r.finish_ms is None) != (r.dropped_reason is None) for r in recs)
    events = [(e.proc, e.healthy) for e in fsim.health.events]
    assert events == [('dla1', False), ('dla1', True)]
    down_ms, up_ms = (e.t_s * 1e3 for e in fsim.health.events)
    assert 2000.0 <= down_ms < 2100.0 and up_ms >= 5000.0
    on_dla1 = [r for r in recs if r.done and r.proc == 'dla1']
    assert not [r for r in on_dla1 if 2000.0 <= r.start_ms < 5000.0]   # nothing ran in the fault
    assert [r for r in on_dla1 if r.start_ms > up_ms]                   # used again after
    assert fsim.redispatched >= 3  # the failures before detection were re-dispatched
    drops = [r.dropped_reason for r in recs if not r.done]
    assert set(drops) <= {'processor_failed', 'queue_full', 'rejected'}
    assert len(drops) <= 0.01 * len(recs)


def test_twin_hang_abandons_the_inference_and_discards_it(xavier):
    apps = _apps(xavier)
    twin = Twin(xavier, seed=4)
    recs = twin.serve(apps, _router(xavier, apps), duration_s=8.0, faults=['dla0:hang@2+3'],
                      health=HealthSettings(probe_period_s=0.5))
    fsim = twin.last_faults
    assert all((r.finish_ms is None) != (r.dropped_reason is None) for r in recs)
    assert fsim.late_discarded == 1
    assert fsim.health.events[0].reason.startswith('hang: ')
    on_dla0 = [r for r in recs if r.done and r.proc == 'dla0']
    assert not [r for r in on_dla0 if 2000.0 <= r.start_ms < 5000.0]
    assert [r for r in on_dla0 if r.start_ms > 5000.0]


def test_twin_fault_after_the_run_changes_nothing(xavier):
    apps = _apps(xavier)
    plain = Twin(xavier, seed=5).serve(apps, _router(xavier, apps), duration_s=2.0)
    faulty = Twin(xavier, seed=5).serve(apps, _router(xavier, apps), duration_s=2.0,
                                        faults=['gpu:error@100'])
    assert [(r.proc, r.finish_ms, r.dropped_reason) for r in plain] == \
        [(r.proc, r.finish_ms, r.dropped_reason) for r in faulty]
    with pytest.raises(ConfigError, match="processor 'dla7'"):
        Twin(xavier).serve(apps, _router(xavier, apps), duration_s=1.0, faults=['dla7:hang@0'])


def test_scenario_faults_are_parsed_and_checked(xavier):
    doc = {'scenarios': [{'name': 's', 'faults': ['dla1:error@5+5'],
                          'applications': [{'model': 'resnet18', 'rate_hz': 10}]}]}
    (sc,) = parse_scenarios(doc)
    assert sc.faults == (Fault('dla1', 'error', 5.0, 5.0),)
    doc['scenarios'][0]['faults'] = ['dla1:melt@5']
    with pytest.raises(ConfigError, match=r"scenarios\[0\] \(s\): fault 'dla1:melt@5'"):
        parse_scenarios(doc)
    doc['scenarios'][0]['faults'] = ['npu:error@5']
    with pytest.raises(ConfigError, match="scenario s: fault npu:error@5 names processor 'npu'"):
        parse_scenarios(doc)[0].build(xavier)
    from hetero_infer.evaluation.runner import run_evaluation
    doc['scenarios'][0]['faults'] = ['dla0:hang@1']
    with pytest.raises(ConfigError, match='injects faults'):
        run_evaluation(parse_scenarios(doc), 'xavier', workers=1)


def test_emulated_backend_injected_faults():
    with EmulatedBackend(platform='xavier', time_scale=0.05, noise_pct=0.0) as be:
        ex = be.load('resnet18', 'dla1')
        gpu = be.load('resnet18', 'gpu')
        x = ex.random_inputs()
        ex.run(x)
        be.inject_faults(['dla1:error@0+1000', 'gpu:hang@0+0.5'])
        with pytest.raises(BackendError, match='dla1: injected fault \\(error\\)'):
            ex.run(x)
        gpu.run(x)  # blocks through the hang, then runs
        assert be._faults.now_s() >= 0.5
        with pytest.raises(ConfigError, match="processor 'tpu'"):
            be.inject_faults(['tpu:error@0'])
        be.inject_faults(['dla0:hang@0'])  # for ever: only closing the backend ends it
        stuck = be.load('resnet18', 'dla0')
        errors = []

        def run():
            try:
                stuck.run(x)
            except BackendError as exc:
                errors.append(exc)

        t = threading.Thread(target=run)
        t.start()
        t.join(0.2)
        assert t.is_alive()
    t.join(5.0)
    assert not t.is_alive() and errors and 'closed during an injected hang' in str(errors[0])
