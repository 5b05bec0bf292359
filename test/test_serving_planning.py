"""The planner process's hand-off: a typed job in, a typed answer out, one JSON line each, both
ways round-tripped, and a malformed document refused with the offending field named."""

import json
import subprocess
import sys

import numpy as np
import pytest

from hetero_infer.errors import ConfigError
from hetero_infer.planning.policy import Policy
from hetero_infer.serving.planning import PlanAnswer, PlanApp, PlanJob, Planner, run_plan

JOB = PlanJob(platform='xavier', power_mode='',
              apps=(PlanApp('cam', 'resnet18', 30.0, 40.0, ('gpu', 'dla0')),
                    PlanApp('mic', 'quartznet15x5', 12.5, 80.0, ('gpu',))),
              goal={'weighted': {'goodput': 0.7, 'fairness': 30.0}}, n_samples=4,
              duration_s=0.3, seed=3, max_queue=8)


def _answer():
    mask = [[True, True, False], [True, False, False]]
    policy = Policy(['cam', 'mic'], ['gpu', 'dla0', 'dla1'],
                    [[0.25, 0.75, 0.0], [1.0, 0.0, 0.0]], mask=np.array(mask),
                    router={'tie_tolerance': 0.5})
    return PlanAnswer(policy=policy, scheduler='interference_aware', goal='goodput',
                      predictor='interference', score=41.5, search_time_s=1.25,
                      metrics={'goodput': 41.5, 'fairness': 0.9}, predictor_note='')


def test_a_job_and_an_answer_survive_the_json_line():
    line = JOB.to_json()
    assert '\n' not in line
    assert PlanJob.from_json(line) == JOB
    assert PlanJob.from_json(PlanJob(**dict(vars(JOB), goal='fairness')).to_json()).goal \
        == 'fairness'
    answer = _answer()
    back = PlanAnswer.from_json(answer.to_json())
    assert back == answer
    assert back.policy.mask.tolist() == answer.policy.mask.tolist()
    assert back.policy.router_option('tie_tolerance') == 0.5


@pytest.mark.parametrize('change,match', [
    (lambda d: d.pop('seed'), 'plan job: field "seed" is missing'),
    (lambda d: d.update(n_samples='200'), 'plan job: field "n_samples" must be an integer, '
                                          "got '200'"),
    (lambda d: d.update(duration_s=True), 'field "duration_s" must be a number, got True'),
    (lambda d: d.update(goal=7), 'field "goal" must be a goal name or .* got 7'),
    (lambda d: d['apps'][1].pop('slo_ms'), r'plan job: apps\[1\]: field "slo_ms" is missing'),
    (lambda d: d['apps'][0].update(processors=[0]), r'apps\[0\]: field "processors" must list'),
    (lambda d: d.update(apps={'cam': 1}), 'field "apps" must be a list'),
])
def test_a_malformed_job_is_refused_naming_the_field(change, match):
    doc = json.loads(JOB.to_json())
    change(doc)
    with pytest.raises(ConfigError, match=match):
        PlanJob.from_json(json.dumps(doc))


@pytest.mark.parametrize('change,match', [
    (lambda d: d.pop('score'), 'plan answer: field "score" is missing'),
    (lambda d: d.update(policy=[1, 2]), 'field "policy" must be an object'),
    (lambda d: d['policy'].update(allocation={'cam': 1.0}), 'field "policy": allocation rows'),
    (lambda d: d['metrics'].update(goodput='high'), 'field "metrics" must map names to '
                                                    "numbers, got 'goodput': 'high'"),
])
def test_a_malformed_answer_is_refused_naming_the_field(change, match):
    doc = json.loads(_answer().to_json())
    change(doc)
    with pytest.raises(ConfigError, match=match):
        PlanAnswer.from_json(json.dumps(doc))
    with pytest.raises(ConfigError, match='plan answer: not JSON'):
        PlanAnswer.from_json('{"policy": ')


def test_the_worker_process_answers_a_typed_job_and_names_a_bad_field():
    # the real process boundary: a good job planned in the worker gives what planning here
    # gives (after the same JSON line), a bad one an error line naming the field
    planner = Planner()
    try:
        got = planner.plan(JOB)
        bad = PlanJob(**dict(vars(JOB), platform='no_such_soc'))
        with pytest.raises(ConfigError, match='planning failed: .*no_such_soc'):
            planner.plan(bad)
    finally:
        planner.close()
    here = PlanAnswer.from_json(run_plan(JOB).to_json())
    assert got.policy == here.policy and got.score == here.score
    assert got.scheduler == here.scheduler and got.metrics == here.metrics
    doc = json.loads(JOB.to_json())
    del doc['max_queue']
    out = subprocess.run([sys.executable, '-m', 'hetero_infer.serving.planning'],
                         input=json.dumps(doc) + '\n', stdout=subprocess.PIPE,
                         universal_newlines=True, timeout=120, check=True).stdout
    assert json.loads(out) == {'error': 'ConfigError: plan job: field "max_queue" is missing'}
