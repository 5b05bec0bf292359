"""The committed evaluation (docs/eval/) reproduces from the code as it is.

The README's and docs/scheduling.md's figures come from docs/eval/summary.json. A change that
moves any of them (a refactor that reorders a float operation, a seed that moves, a scheduler
that plans differently) must fail here, so that it is either fixed or the evaluation is run
again and committed with it. One scenario, goodput, the first replication: every scheduler's
per-replication values must equal the committed ones to the last bit.
"""

import json
import os

import pytest

from hetero_infer.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITTED = os.path.join(ROOT, 'docs', 'eval', 'summary.json')
METRICS = ('goodput_runs', 'throughput_runs', 'fairness_runs', 'slo_attainment_min_runs')


def _results(path):
    with open(path) as f:
        return {s['name']: s['results'] for s in json.load(f)['scenarios']}


@pytest.mark.parametrize('scenario', ['mix_r1'])
def test_first_replication_reproduces_the_committed_evaluation(tmp_path, scenario):
    out = tmp_path / 'eval'
    assert main(['evaluate', '--only', scenario, '--replications', '1', '--no-slo99',
                 '--workers', '1', '--out', str(out)]) == 0
    committed = _results(COMMITTED)[scenario]
    new = _results(str(out / 'summary.json'))[scenario]
    assert sorted(new) == sorted(committed)   # all eight schedulers ran
    differ = ['%s %s: %r != %r' % (sched, key, new[sched][key][0], committed[sched][key][0])
              for sched in new for key in METRICS
              if new[sched][key][0] != committed[sched][key][0]]
    assert not differ, differ
