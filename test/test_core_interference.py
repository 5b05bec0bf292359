"""InterferenceModel (estimator contract, numpy predict == sklearn), secure save/load, predictor
API, the regressor comparison and the model-level helper."""

import json

import numpy as np
import pytest

from hetero_infer.errors import ModelError
from hetero_infer.interference.features import feature_names
from hetero_infer.interference.profiling import TwinTarget, profile_random
from hetero_infer.interference.regressor_comparison import compare, design_matrix, regressor_names
from hetero_infer.interference.slowdown_model import (
    InterferenceModel,
    ModelLatencyPredictor,
    SlowdownPredictor,
    accuracy_pct,
)
from hetero_infer.models.zoo import load_model
from hetero_infer.platform.spec import Platform
from hetero_infer.twin.simulator import Twin

CONFIGS = ('gpu|dla', 'dla|gpu', 'gpu|dla0+dla1', 'dla0|dla1+gpu', 'dla0|dla1')


@pytest.fixture(scope='module')
def platform():
    return Platform.load('xavier')


@pytest.fixture(scope='module')
def dataset(platform):
    return profile_random(TwinTarget(Twin(platform, seed=0)), CONFIGS, 1500, seed=0)


@pytest.fixture(scope='module')
def predictor(dataset):
    models = {}
    for cfg in CONFIGS:
        X, y, _ = design_matrix(dataset.select(cfg), dataset.processor_kinds)
        models[cfg] = InterferenceModel(hidden_layer_sizes=(32, 32), max_iter=300).fit(X, y)
    return SlowdownPredictor(models, dataset.processor_kinds, platform_name='xavier')


def test_estimator_contract(dataset):
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError
    est = InterferenceModel(hidden_layer_sizes=(16,), alpha=0.1)
    assert est.get_params()['alpha'] == 0.1 and not hasattr(est, 'coefs_')
    with pytest.raises(NotFittedError):
        est.predict(np.zeros((1, 3)))
    X, y, _ = design_matrix(dataset.select('gpu|dla0+dla1'), dataset.processor_kinds)
    assert X.shape[1] == len(feature_names(2))
    assert est.fit(X, y) is est
    assert clone(est).get_params() == est.get_params()
    # numpy forward pass == the fitted sklearn pipeline
    np.testing.assert_allclose(est.predict(X), np.exp(est.pipeline_.predict(X)), rtol=1e-10)
    with pytest.raises(ModelError, match='features'):
        est.predict(X[:, :5])


def test_mlp_learns_slowdown(dataset):
    table, mlps = compare(dataset, configs=['gpu|dla0+dla1'], regressors=['mlp'], seed=0)
    acc = table['mlp']['gpu|dla0+dla1']
    obs = dataset.select('gpu|dla0+dla1')
    flat = accuracy_pct([o.slowdown for o in obs], np.ones(len(obs)))
    assert acc > flat + 2.0  # clearly better than "no interference"
    assert set(regressor_names()) == {'mlp', 'knn', 'random_forest', 'decision_tree', 'svr'}


def test_save_load_identical_predictions(predictor, dataset, tmp_path):
    path = str(tmp_path / 'm.json')
    predictor.save(path)
    back = SlowdownPredictor.load(path)
    assert back.configs == predictor.configs
    for cfg in CONFIGS:
        X, _, _ = design_matrix(dataset.select(cfg)[:50], dataset.processor_kinds)
        np.testing.assert_array_equal(back.predict_slowdown(cfg, X),
                                      predictor.predict_slowdown(cfg, X))


def test_corrupt_truncated_incompatible_files(predictor, tmp_path):
    path = tmp_path / 'm.json'
    predictor.save(str(path))
    text = path.read_text()
    (tmp_path / 'trunc.json').write_text(text[: len(text) // 3])
    with pytest.raises(ModelError, match='truncated'):
        SlowdownPredictor.load(str(tmp_path / 'trunc.json'))
    d = json.loads(text)
    d['models']['gpu|dla']['intercepts'][0][0] += 1.0
    (tmp_path / 'edit.json').write_text(json.dumps(d))
    with pytest.raises(ModelError, match='checksum'):
        SlowdownPredictor.load(str(tmp_path / 'edit.json'))
    d = json.loads(text)
    d['version'] = 99
    (tmp_path / 'ver.json').write_text(json.dumps(d))
    with pytest.raises(ModelError, match='version 99'):
        SlowdownPredictor.load(str(tmp_path / 'ver.json'))
    (tmp_path / 'pickle.json').write_bytes(b'\x80\x04\x95')
    with pytest.raises(ModelError):
        SlowdownPredictor.load(str(tmp_path / 'pickle.json'))
    with pytest.raises(ModelError, match='committed'):
        SlowdownPredictor.load('no_such_platform')


def test_committed_xavier_model_loads_and_covers_every_mapping(platform):
    pred = SlowdownPredictor.load('xavier')
    assert set(pred.configs) == set(CONFIGS)
    procs = platform.processor_ids
    for target in procs:
        others = [p for p in procs if p != target]
        for k in range(1, len(others) + 1):
            for cors in ([others[0]], others)[: k]:
                assert pred.config_for(target, cors) in CONFIGS
    assert pred.config_for('gpu', []) is None


def test_model_level_helper(platform):
    pred = SlowdownPredictor.load('xavier')
    lat = ModelLatencyPredictor(pred, platform)
    r50, vgg, mb = load_model('resnet50'), load_model('vgg16'), load_model('mobilenet_v2')
    iso = platform.isolated_latency_ms(r50, 'gpu')
    assert lat.predict_model_latency_ms(r50, 'gpu', {}) == pytest.approx(iso)
    pair = lat.predict_model_latency_ms(r50, 'gpu', {'dla0': vgg})
    triple = lat.predict_model_latency_ms(r50, 'gpu', {'dla0': vgg, 'dla1': mb})
    assert iso * 0.97 < pair < iso * 3 and iso * 0.97 < triple < iso * 3
    assert lat.predict_model_latency_ms(r50, 'gpu', {'dla0': vgg}) == pair  # cached
    # Against the twin: within 15% for a pair (the full check is in hetero-infer train).
    meas = Twin(platform, seed=1).corun({'gpu': r50, 'dla0': vgg})['gpu']
    assert abs(pair - meas) / meas < 0.15
