"""Every slowdown regressor kind round-trips through the model file: predictions equal after
load, equal to scikit-learn's own, and a tampered or malformed entry is refused."""

import json

import numpy as np
import pytest

from hetero_infer.errors import ConfigError, ModelError
from hetero_infer.interference.features import feature_names
from hetero_infer.interference.regressor_registry import (
    candidate_kinds,
    constant_kinds,
    regressor_kinds,
)
from hetero_infer.interference.regressor_selection import make_model, select, title
from hetero_infer.interference.slowdown_model import SlowdownPredictor, model_from_arrays

N_FEAT = len(feature_names(1))


def _data(n=240, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEAT))
    y = np.exp(0.3 * X[:, 0] + 0.1 * X[:, 1] ** 2 + 0.02 * rng.normal(size=n))
    return X, y


SMALL = {'mlp': {'hidden_layer_sizes': [16], 'max_iter': 200},
         'random_forest': {'n_estimators': 10}, 'hist_gb': {'max_iter': 20}, 'knn': {},
         'svr': {}, 'median': {}, 'none': {}}


CANDIDATES = ('mlp', 'random_forest', 'knn', 'hist_gb', 'svr', 'none', 'median')


def test_registry_holds_the_candidates_in_selection_order_with_their_titles():
    assert candidate_kinds() == list(CANDIDATES) and regressor_kinds()[:7] == list(CANDIDATES)
    assert [title(k) for k in CANDIDATES] == ['MLP', 'random forest', 'k-neighbors',
                                              'gradient boosting', 'SVR', 'no interference',
                                              'constant (median slowdown)']
    # the constants, simplest first: selection prefers them on a tie
    assert constant_kinds() == ['none', 'median']
    with pytest.raises(ConfigError, match="unknown regressor 'xgboost' \\(known regressors: mlp"):
        make_model('xgboost')


@pytest.mark.parametrize('kind', CANDIDATES)
def test_round_trip_predicts_the_same(kind, tmp_path):
    X, y = _data()
    model = make_model(kind, SMALL[kind]).fit(X[:200], y[:200])
    pred = model.predict(X[200:])
    assert np.all(np.isfinite(pred)) and np.all(pred > 0)
    entry = json.loads(json.dumps(model.to_arrays()))
    assert entry['kind'] == kind
    back = model_from_arrays(entry, where='test')
    np.testing.assert_array_equal(back.predict(X[200:]), pred)
    # Through the checksummed model file as well.
    path = str(tmp_path / 'm.json')
    SlowdownPredictor({'gpu|dla': model}, {'gpu': 'gpu', 'dla0': 'dla'},
                          platform_name='x').save(path)
    loaded = SlowdownPredictor.load(path)
    np.testing.assert_array_equal(loaded.predict_slowdown('gpu|dla', X[200:]), pred)


def test_numpy_prediction_matches_scikit_learn():
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.svm import SVR
    X, y = _data()
    tr, te = slice(0, 200), slice(200, None)
    ylog = np.log(y[tr])
    mean, std = X[tr].mean(0), X[tr].std(0)
    Xs, Xts = (X[tr] - mean) / std, (X[te] - mean) / std
    refs = {
        'random_forest': RandomForestRegressor(n_estimators=10, random_state=0,
                                               max_features=1.0).fit(X[tr], ylog).predict(X[te]),
        'hist_gb': HistGradientBoostingRegressor(max_iter=20, early_stopping=False,
                                                 random_state=0).fit(X[tr], ylog).predict(X[te]),
        'knn': KNeighborsRegressor(5, weights='distance').fit(Xs, ylog).predict(Xts),
        'svr': SVR(C=1.0, epsilon=0.01, gamma='scale').fit(Xs, ylog).predict(Xts),
    }
    for kind, ref in refs.items():
        ours = np.log(make_model(kind, SMALL[kind]).fit(X[tr], y[tr]).predict(X[te]))
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9, err_msg=kind)


def test_malformed_entries_are_refused():
    X, y = _data()
    entry = json.loads(json.dumps(make_model('random_forest', {'n_estimators': 2})
                                  .fit(X, y).to_arrays()))
    cyc = json.loads(json.dumps(entry))
    cyc['fitted']['trees'][0]['left'][0] = 0  # a child pointing back: would loop forever
    with pytest.raises(ModelError, match='later nodes'):
        model_from_arrays(cyc, where='f')
    bad = json.loads(json.dumps(entry))
    bad['fitted']['trees'][0]['feature'][0] = N_FEAT + 3
    with pytest.raises(ModelError, match='feature outside'):
        model_from_arrays(bad, where='f')
    with pytest.raises(ModelError, match="f: unknown regressor 'xgboost'"):
        model_from_arrays(dict(entry, kind='xgboost'), where='f')
    svr = json.loads(json.dumps(make_model('svr').fit(X, y).to_arrays()))
    svr['fitted']['gamma'] = float('nan')
    with pytest.raises(ModelError, match='non-finite'):
        model_from_arrays(svr, where='f')
    knn = json.loads(json.dumps(make_model('knn').fit(X, y).to_arrays()))
    knn['fitted']['X'] = knn['fitted']['X'][:2]
    with pytest.raises(ModelError, match='training samples'):
        model_from_arrays(knn, where='f')


def test_selection_picks_by_cross_validation():
    X, y = _data(150)
    iso = np.ones(len(y))
    tr, te = np.arange(120), np.arange(120, 150)
    out = select(X, y, iso, tr, te, candidates=('knn', 'random_forest'), n_iter=2, cv=2)
    kinds = out['kinds']
    best = max(kinds, key=lambda k: kinds[k]['cv_accuracy'])
    assert out['selected']['regressor'] == best
    assert out['selected']['accuracy'] == kinds[best]['holdout_accuracy']
    assert 'cross-validated' in out['selected']['why']
    with pytest.raises(ConfigError, match="'lasso'"):
        select(X, y, iso, tr, te, candidates=('lasso',))
    with pytest.raises(ConfigError, match='cv must be'):
        select(X, y, iso, tr, te, cv=1)


def test_shipped_models_still_load():
    for name in ('xavier', 'orin'):
        pred = SlowdownPredictor.load(name)
        assert pred.configs
