"""Profiling on the digital twin: slowdowns >= ~1, configurations resolved, dataset round trip."""

import json
import os

import numpy as np
import pytest

from hetero_infer.errors import ConfigError, ModelError
from hetero_infer.interference.features import TALK_CONFIGS, Config, default_configs, mapping_key
from hetero_infer.interference.profiling import (
    Dataset,
    TwinTarget,
    profile_random,
    profile_zoo_layers,
)
from hetero_infer.models.zoo import list_models, load_model
from hetero_infer.platform.spec import Platform
from hetero_infer.twin.simulator import Twin

KINDS = {'gpu': 'gpu', 'dla0': 'dla', 'dla1': 'dla'}


@pytest.fixture(scope='module')
def target():
    return TwinTarget(Twin(Platform.load('xavier'), seed=0))


@pytest.fixture(scope='module')
def dataset(target):
    return profile_random(target, default_configs(target.processor_kinds()), 100, seed=1)


def test_configs_resolve_to_processors():
    assert Config.parse('gpu|dla').resolve(KINDS) == ('gpu', ('dla0',))
    assert Config.parse('dla|gpu').resolve(KINDS) == ('dla0', ('gpu',))
    assert Config.parse('gpu|dla0+dla1').resolve(KINDS) == ('gpu', ('dla0', 'dla1'))
    assert Config.parse('dla0|dla1+gpu').resolve(KINDS) == ('dla0', ('dla1', 'gpu'))
    # A live mapping finds its configuration by kinds, whichever DLA it is.
    assert mapping_key('dla1', ['gpu', 'dla0'], KINDS) == Config.parse('dla0|dla1+gpu').key(KINDS)
    with pytest.raises(ConfigError, match='cpu'):
        Config.parse('gpu|cpu').resolve(KINDS)
    with pytest.raises(ConfigError, match='gpu-dla'):
        Config.parse('gpu-dla')


def test_random_profile_invariants(dataset):
    obs = dataset.observations
    assert len(obs) == 100
    assert {o.config for o in obs} == set(TALK_CONFIGS) | {'dla0|dla1'}
    for o in obs:
        assert o.iso_ms > 0 and o.corun_ms > 0
        assert o.slowdown > 0.85  # co-running never speeds a layer up beyond noise
        if o.target_proc.startswith('dla'):
            assert o.layer.dla
        for proc, pairs in o.corunners.items():
            assert proc != o.target_proc and 1 <= len(pairs) <= 3
            assert all(t > 0 for _, t in pairs)
    # Heavy co-runners do slow layers down on this platform.
    assert max(o.slowdown for o in obs) > 1.2


def test_profile_is_seeded(target):
    a = profile_random(target, ['gpu|dla'], 5, seed=3)
    b = profile_random(target, ['gpu|dla'], 5, seed=3)
    assert [o.corun_ms for o in a.observations] == [o.corun_ms for o in b.observations]


def test_dataset_round_trip_and_provenance(dataset, tmp_path):
    dataset.save(str(tmp_path))
    meta = json.loads((tmp_path / 'dataset.json').read_text())
    assert meta['platform'] == 'xavier' and meta['backend'] == 'twin'
    assert meta['seed'] == 1 and 'numpy' in meta['versions'] and 'python' in meta['versions']
    back = Dataset.load(str(tmp_path))
    assert len(back.observations) == 100
    assert [o.layer for o in back.observations] == [o.layer for o in dataset.observations]
    assert np.allclose([o.slowdown for o in back.observations],
                       [o.slowdown for o in dataset.observations])


def test_dataset_tamper_and_missing(dataset, tmp_path):
    dataset.save(str(tmp_path))
    csv_path = tmp_path / 'dataset.csv'
    text = csv_path.read_text()
    csv_path.write_text(text[: len(text) // 2])
    with pytest.raises(ModelError, match='checksum'):
        Dataset.load(str(tmp_path))
    with pytest.raises(ModelError, match='hetero-infer profile'):
        Dataset.load(str(tmp_path / 'nowhere'))


def test_zoo_layers_profile(target):
    models = [load_model(n) for n in list_models()[:4]]
    ds = profile_zoo_layers(target, ['dla|gpu', 'gpu|dla'], models, 10, seed=0)
    names = {m.name for m in models}
    for o in ds.observations:
        assert o.source[4:] in names
        assert o.slowdown > 0.85
        assert os.path.basename(o.source)


def test_retest_reports_the_measurement_ceiling(target):
    ds = profile_random(target, ['gpu|dla', 'dla|gpu'], 40, seed=4, retest_fraction=0.25)
    q = ds.meta['quality']
    assert sum(q['retest_samples'].values()) == 10 and len(ds.meta['retest']) == 10
    # The twin's noise (3% per layer, 20 runs averaged) is small: two measurements agree well,
    # but not perfectly (each measurement has its own noise seed).
    for cfg in ('gpu|dla', 'dla|gpu'):
        assert 95.0 < q['test_retest'][cfg] < 100.0
    noisy = profile_random(TwinTarget(Twin(Platform.load('xavier'), seed=0, noise_pct=12.0)),
                           ['gpu|dla'], 40, seed=4, repeats=1, retest_fraction=0.25)
    assert noisy.meta['quality']['test_retest']['gpu|dla'] < q['test_retest']['gpu|dla']


def test_min_layer_time_and_budget(target):
    ds = profile_random(target, ['gpu|dla'], 10, seed=2, min_layer_ms=0.1)
    # The probe decides (3 runs); the recorded isolated time has its own noise.
    assert min(o.iso_ms for o in ds.observations) > 0.1 * 0.8
    assert ds.meta['protocol']['redrawn_short_layers'] > 0
    ticks = iter([0.0, 0.0, 5.0] + [50.0] * 100)  # start, 2 samples inside, then past it
    ds = profile_random(target, ['gpu|dla'], 10, seed=2, budget_s=10.0,
                        clock=lambda: next(ticks))
    assert len(ds.observations) == 2 and ds.meta['stopped_by_budget'] is True
    assert ds.meta['samples'] == 2 and ds.meta['samples_asked'] == 10
    for bad, match in (({'min_layer_ms': -1.0}, 'min_layer_ms'),
                       ({'retest_fraction': 1.0}, 'retest_fraction'),
                       ({'budget_s': 0.0}, 'budget'), ({'aggregate': 'mode'}, 'mode'),
                       ({'blocks': 0}, 'blocks'), ({'min_layer_ms': 1e6}, '--min-layer-ms')):
        with pytest.raises(ConfigError, match=match):
            profile_random(target, ['gpu|dla'], 2, **bad)


def test_aggregates_resist_a_preempted_run():
    from hetero_infer.interference.profiling import aggregate_runs, run_cv
    runs = [1.0, 1.1, 0.9, 1.0, 25.0]  # one run preempted by another process
    assert aggregate_runs(runs, 'mean') > 5
    assert aggregate_runs(runs, 'median') == 1.0
    assert abs(aggregate_runs(runs, 'trimmed') - 1.0333) < 1e-3
    assert run_cv([2.0]) is None and run_cv([1.0, 1.0]) == 0.0


def test_old_datasets_without_quality_columns_load(dataset, tmp_path):
    import csv

    from hetero_infer.interference.profiling import CSV_COLUMNS
    dataset.save(str(tmp_path))
    path = tmp_path / 'dataset.csv'
    with open(str(path), newline='') as f:
        rows = list(csv.DictReader(f))
    with open(str(path), 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction='ignore')
        w.writeheader()
        w.writerows(rows)
    meta = json.loads((tmp_path / 'dataset.json').read_text())
    meta.pop('csv_sha256')
    (tmp_path / 'dataset.json').write_text(json.dumps(meta))
    back = Dataset.load(str(tmp_path))
    assert len(back.observations) == len(dataset.observations)
    assert all(o.iso_cv is None and o.load1 is None for o in back.observations)


def test_disturbed_measurements_are_taken_again():
    from hetero_infer.interference.profiling import ProfilingTarget

    class Disturbed(ProfilingTarget):
        """The first measurement of every layer has one preempted run."""
        backend = 'fake'
        platform_name = 'fake'

        def __init__(self):
            self.seen = set()

        def processor_kinds(self):
            return {'cpu0': 'cpu', 'cpu1': 'cpu'}

        def measure_runs(self, proc, layer, corunners, *, repeats, seed):
            runs = [2.0 if corunners else 1.0] * repeats
            key = (layer.name, bool(corunners))
            if key not in self.seen:
                self.seen.add(key)
                runs[0] *= 10
            return runs

    ds = profile_random(Disturbed(), ['cpu0|cpu1'], 4, repeats=5, max_cv=0.25)
    assert all(o.iso_ms == 1.0 and o.corun_ms == 2.0 for o in ds.observations)
    assert ds.meta['protocol']['remeasured_unsteady'] > 0
    ds = profile_random(Disturbed(), ['cpu0|cpu1'], 4, repeats=5)  # no gate: the means show it
    assert max(o.iso_ms for o in ds.observations) > 1.0
