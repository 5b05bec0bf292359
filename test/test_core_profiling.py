"""Profiling on the digital twin: slowdowns >= ~1, configurations resolved, dataset round trip."""

import json
import os

import numpy as np
import pytest

from hetero_infer.core.features import TALK_CONFIGS, Config, default_configs, mapping_key
from hetero_infer.core.model import list_models, load_model
from hetero_infer.core.platform import Platform
from hetero_infer.core.profiling import Dataset, TwinTarget, profile_random, profile_zoo_layers
from hetero_infer.core.twin import Twin
from hetero_infer.errors import ConfigError, ModelError

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
