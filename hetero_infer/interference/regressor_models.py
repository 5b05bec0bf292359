"""Slowdown regressors other than the MLP, stored as plain arrays (no pickle).

Each class here is a scikit-learn estimator (``__init__`` stores arguments, ``fit`` returns
``self``, fitted attributes end in ``_``) that fits a scikit-learn model, then copies its fitted
parameters into plain numpy arrays and predicts from those arrays with numpy alone. So a model
read back from the interference model file (:meth:`to_arrays` / :meth:`from_arrays`, JSON
numbers only; nothing in it is executed) predicts exactly what the fitted model predicted, and
serving needs no scikit-learn. Like
:class:`~hetero_infer.interference.slowdown_model.InterferenceModel`
(the MLP, kind ``'mlp'``), every model fits ``log(slowdown)`` and predicts ``exp`` of it, so
squared error is relative error.

Kinds (``kind``, the name in the model file and in ``accuracy.json``; each class is an entry of
the regressor registry, :mod:`hetero_infer.interference.regressor_registry`):

- ``'random_forest'`` (:class:`ForestModel`): every tree's nodes (children, split feature,
  threshold, leaf value); prediction is the mean over trees. scikit-learn compares features as
  float32 against float64 thresholds; so does :meth:`ForestModel.predict`.
- ``'hist_gb'`` (:class:`HistGBModel`): scikit-learn's ``HistGradientBoostingRegressor``; the
  trees' nodes (numeric thresholds on raw features, leaf values) and the baseline; prediction is
  the baseline plus the sum over trees. The node arrays are read from the fitted estimator's
  ``_predictors`` (scikit-learn has no public accessor); the round-trip test checks them against
  scikit-learn's own ``predict``.
- ``'knn'`` (:class:`KNNModel`): standard scaler, the scaled training samples and their
  targets; Minkowski distance, uniform or inverse-distance weights.
- ``'svr'`` (:class:`SVRModel`): standard scaler, RBF kernel; support vectors, dual
  coefficients, intercept and the numeric ``gamma`` (computed here for ``gamma='scale'`` so the
  fitted value is known without private attributes).
- ``'median'`` (:class:`MedianModel`) and ``'none'`` (:class:`NoInterferenceModel`): the two
  constants a learned model must beat, the training samples' median slowdown and no
  interference (slowdown 1); selected when nothing learnable is left (a board whose co-runs
  barely interfere).
"""

from typing import Any, Dict, Mapping, Optional

import numpy as np

from hetero_infer.errors import ConfigError, ModelError

try:  # scikit-learn is needed to fit, not to predict
    from sklearn.base import BaseEstimator, RegressorMixin
except ImportError:  # pragma: no cover - exercised only without scikit-learn
    BaseEstimator = object  # type: ignore

    class RegressorMixin(object):  # type: ignore
        pass

#: Largest number of stored values a model entry may hold (trees' nodes, training samples).
MAX_ARRAY_VALUES = 20_000_000
#: Largest magnitude of a stored feature-space value (thresholds, samples, scaler).
MAX_VALUE = 1e12


class _ArrayRegressor(BaseEstimator, RegressorMixin):
    """Shared fit/predict plumbing: log target, optional standard scaling, shape checks."""

    kind = ''
    #: what reports call it
    title = ''
    #: model selection tries it unless told otherwise
    candidate = True
    scaled = False

    @classmethod
    def search_space(cls) -> Dict[str, Any]:
        """Hyperparameter distributions model selection searches (scipy is needed)."""
        raise NotImplementedError

    def _prepare_fit(self, X: Any, y: Any):
        from sklearn.utils.validation import check_X_y
        X, y = check_X_y(X, y, dtype=np.float64, y_numeric=True)
        if np.any(y <= 0):
            raise ConfigError('%s: slowdowns must be positive, got min %r'
                              % (type(self).__name__, float(y.min())))
        self.n_features_in_ = X.shape[1]
        if self.scaled:
            self.scaler_mean_ = X.mean(axis=0)
            scale = X.std(axis=0)
            self.scaler_scale_ = np.where(scale > 0, scale, 1.0)
            X = (X - self.scaler_mean_) / self.scaler_scale_
        return X, np.log(y)

    def _check_fitted(self) -> None:
        if not hasattr(self, 'n_features_in_') or not hasattr(self, 'fitted_'):
            raise ModelError('%s is not fitted' % type(self).__name__)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted slowdowns, one per row of ``X``."""
        self._check_fitted()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ModelError('%s expects %d features per row, got shape %s'
                             % (type(self).__name__, self.n_features_in_, X.shape))
        if self.scaled:
            X = (X - self.scaler_mean_) / self.scaler_scale_
        with np.errstate(over='ignore'):
            out = np.exp(self._predict_log(X))
        if not np.all(np.isfinite(out)):
            raise ModelError('%s: non-finite slowdown predicted' % type(self).__name__)
        return out

    def _predict_log(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- file format ---------------------------------------------------------------------------
    def to_arrays(self) -> Dict[str, Any]:
        self._check_fitted()
        d = {'kind': self.kind, 'params': self.get_params(),
             'n_features_in': int(self.n_features_in_), 'fitted': self._fitted_arrays()}
        if self.scaled:
            d['scaler_mean'] = self.scaler_mean_.tolist()
            d['scaler_scale'] = self.scaler_scale_.tolist()
        return d

    def _fitted_arrays(self) -> Dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_arrays(cls, d: Mapping[str, Any], *, where: str) -> '_ArrayRegressor':
        """Rebuild a fitted model, validating every array. :raises ModelError: on any problem."""
        try:
            params = dict(d['params'])
            model = cls(**params)
            n = int(d['n_features_in'])
            fitted = dict(d['fitted'])
            if cls.scaled:
                mean = _array(d['scaler_mean'], where, 'scaler_mean', shape=(n,))
                scale = _array(d['scaler_scale'], where, 'scaler_scale', shape=(n,))
                if np.any(scale <= 0):
                    raise ModelError('%s: scaler scale must be positive' % where)
                model.scaler_mean_, model.scaler_scale_ = mean, scale
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError('%s: malformed %s entry: %s: %s'
                             % (where, cls.kind, type(exc).__name__, exc)) from None
        if n < 1:
            raise ModelError('%s: n_features_in must be >= 1, got %d' % (where, n))
        model.n_features_in_ = n
        try:
            model._load_arrays(fitted, where)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError('%s: malformed %s arrays: %s: %s'
                             % (where, cls.kind, type(exc).__name__, exc)) from None
        model.fitted_ = True
        return model

    def _load_arrays(self, fitted: Mapping[str, Any], where: str) -> None:
        raise NotImplementedError


def _array(values: Any, where: str, name: str, *, shape: Optional[tuple] = None,
           dtype: Any = float, bound: float = MAX_VALUE) -> np.ndarray:
    a = np.asarray(values, dtype=dtype)
    if a.size > MAX_ARRAY_VALUES:
        raise ModelError('%s: %s has %d values (at most %d)' % (where, name, a.size,
                                                                MAX_ARRAY_VALUES))
    if shape is not None and a.shape != shape:
        raise ModelError('%s: %s has shape %s, expected %s' % (where, name, a.shape, shape))
    if a.dtype.kind == 'f':
        if not np.all(np.isfinite(a)):
            raise ModelError('%s: non-finite values in %s' % (where, name))
        if a.size and float(np.max(np.abs(a))) > bound:
            raise ModelError('%s: %s value %.3g exceeds %.0g in magnitude'
                             % (where, name, float(np.max(np.abs(a))), bound))
    return a


# -- trees ---------------------------------------------------------------------------------------

def _check_tree(where: str, left: np.ndarray, right: np.ndarray, feature: np.ndarray,
                n_features: int, leaf: np.ndarray) -> None:
    """Children point forward inside the tree (no cycles), split features exist."""
    n = len(left)
    idx = np.arange(n)
    inner = ~leaf
    if n < 1:
        raise ModelError('%s: empty tree' % where)
    if np.any((left[inner] <= idx[inner]) | (left[inner] >= n)
              | (right[inner] <= idx[inner]) | (right[inner] >= n)):
        raise ModelError('%s: tree children must point to later nodes inside the tree' % where)
    if np.any((feature[inner] < 0) | (feature[inner] >= n_features)):
        raise ModelError('%s: tree splits on a feature outside 0..%d' % (where, n_features - 1))


def _walk(X: np.ndarray, left: np.ndarray, right: np.ndarray, feature: np.ndarray,
          threshold: np.ndarray, leaf: np.ndarray,
          missing_left: Optional[np.ndarray] = None) -> np.ndarray:
    """Leaf index of every row of ``X`` (go left when ``x <= threshold``)."""
    node = np.zeros(X.shape[0], dtype=np.int64)
    rows = np.arange(X.shape[0])
    # Children point forward, so a path is at most as long as the tree.
    for _ in range(len(left)):
        active = ~leaf[node]
        if not active.any():
            break
        a = node[active]
        x = X[rows[active], feature[a]]
        go_left = x <= threshold[a]
        if missing_left is not None:
            nan = np.isnan(x)
            go_left = np.where(nan, missing_left[a], go_left)
        node[active] = np.where(go_left, left[a], right[a])
    return node


class ForestModel(_ArrayRegressor):
    """Random forest (scikit-learn ``RandomForestRegressor``) on log slowdown."""

    kind = 'random_forest'
    title = 'random forest'

    @classmethod
    def search_space(cls) -> Dict[str, Any]:
        return {'n_estimators': [50, 100, 200], 'max_depth': [None, 6, 10, 16],
                'min_samples_leaf': [1, 2, 4, 8], 'max_features': [0.3, 0.6, 1.0]}

    def __init__(self, n_estimators: int = 100, max_depth: Optional[int] = None,
                 min_samples_leaf: int = 1, max_features: float = 1.0,
                 random_state: Optional[int] = 0) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> 'ForestModel':
        from sklearn.ensemble import RandomForestRegressor
        X, ylog = self._prepare_fit(X, y)
        est = RandomForestRegressor(n_estimators=self.n_estimators, max_depth=self.max_depth,
                                    min_samples_leaf=self.min_samples_leaf,
                                    max_features=self.max_features,
                                    random_state=self.random_state, n_jobs=1).fit(X, ylog)
        self.trees_ = []
        for tree in est.estimators_:
            t = tree.tree_
            left = np.asarray(t.children_left, dtype=np.int64)
            self.trees_.append({'left': left,
                                'right': np.asarray(t.children_right, dtype=np.int64),
                                'feature': np.asarray(t.feature, dtype=np.int64),
                                'threshold': np.asarray(t.threshold, dtype=float),
                                'value': np.asarray(t.value, dtype=float).reshape(-1),
                                'leaf': left < 0})
        self.fitted_ = True
        return self

    def _predict_log(self, X: np.ndarray) -> np.ndarray:
        X32 = X.astype(np.float32).astype(np.float64)  # as scikit-learn's trees compare
        total = np.zeros(X.shape[0])
        for t in self.trees_:
            total += t['value'][_walk(X32, t['left'], t['right'], t['feature'], t['threshold'],
                                      t['leaf'])]
        return total / len(self.trees_)

    def _fitted_arrays(self) -> Dict[str, Any]:
        return {'trees': [{k: t[k].tolist() for k in ('left', 'right', 'feature', 'threshold',
                                                      'value')} for t in self.trees_]}

    def _load_arrays(self, fitted: Mapping[str, Any], where: str) -> None:
        trees = list(fitted['trees'])
        if not trees:
            raise ModelError('%s: a forest needs at least one tree' % where)
        self.trees_ = []
        for i, t in enumerate(trees):
            w = '%s tree %d' % (where, i)
            left = _array(t['left'], w, 'left', dtype=np.int64)
            n = (len(left),)
            tree = {'left': left, 'right': _array(t['right'], w, 'right', shape=n,
                                                  dtype=np.int64),
                    'feature': _array(t['feature'], w, 'feature', shape=n, dtype=np.int64),
                    'threshold': _array(t['threshold'], w, 'threshold', shape=n),
                    'value': _array(t['value'], w, 'value', shape=n, bound=1e3),
                    'leaf': left < 0}
            _check_tree(w, tree['left'], tree['right'], tree['feature'], self.n_features_in_,
                        tree['leaf'])
            self.trees_.append(tree)


class HistGBModel(_ArrayRegressor):
    """Gradient boosting (scikit-learn ``HistGradientBoostingRegressor``) on log slowdown.

    Early stopping is off so a seed gives one model.
    """

    kind = 'hist_gb'
    title = 'gradient boosting'

    @classmethod
    def search_space(cls) -> Dict[str, Any]:
        from scipy.stats import loguniform
        return {'learning_rate': loguniform(0.02, 0.3), 'max_iter': [50, 100, 200, 400],
                'max_leaf_nodes': [7, 15, 31], 'min_samples_leaf': [5, 10, 20, 40],
                'l2_regularization': loguniform(1e-3, 10.0)}

    def __init__(self, learning_rate: float = 0.1, max_iter: int = 100,
                 max_leaf_nodes: int = 31, min_samples_leaf: int = 20,
                 l2_regularization: float = 0.0, random_state: Optional[int] = 0) -> None:
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> 'HistGBModel':
        from sklearn.ensemble import HistGradientBoostingRegressor
        X, ylog = self._prepare_fit(X, y)
        est = HistGradientBoostingRegressor(
            learning_rate=self.learning_rate, max_iter=self.max_iter,
            max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization, early_stopping=False,
            random_state=self.random_state).fit(X, ylog)
        self.baseline_ = float(np.asarray(est._baseline_prediction).reshape(-1)[0])
        self.trees_ = []
        for (pred,) in est._predictors:
            nodes = pred.nodes
            if np.any(nodes['is_categorical']):  # pragma: no cover - no categorical features
                raise ModelError('hist_gb: categorical splits are not supported')
            self.trees_.append({'left': nodes['left'].astype(np.int64),
                                'right': nodes['right'].astype(np.int64),
                                'feature': nodes['feature_idx'].astype(np.int64),
                                'threshold': nodes['num_threshold'].astype(float),
                                'missing_left': nodes['missing_go_to_left'].astype(bool),
                                'value': nodes['value'].astype(float),
                                'leaf': nodes['is_leaf'].astype(bool)})
        self.fitted_ = True
        return self

    def _predict_log(self, X: np.ndarray) -> np.ndarray:
        total = np.full(X.shape[0], self.baseline_)
        for t in self.trees_:
            total += t['value'][_walk(X, t['left'], t['right'], t['feature'], t['threshold'],
                                      t['leaf'], t['missing_left'])]
        return total

    def _fitted_arrays(self) -> Dict[str, Any]:
        return {'baseline': self.baseline_,
                'trees': [{'left': t['left'].tolist(), 'right': t['right'].tolist(),
                           'feature': t['feature'].tolist(),
                           'threshold': t['threshold'].tolist(),
                           'missing_left': t['missing_left'].astype(int).tolist(),
                           'value': t['value'].tolist(), 'leaf': t['leaf'].astype(int).tolist()}
                          for t in self.trees_]}

    def _load_arrays(self, fitted: Mapping[str, Any], where: str) -> None:
        self.baseline_ = float(_array(fitted['baseline'], where, 'baseline', shape=(),
                                      bound=1e3))
        self.trees_ = []
        for i, t in enumerate(list(fitted['trees'])):
            w = '%s tree %d' % (where, i)
            left = _array(t['left'], w, 'left', dtype=np.int64)
            n = (len(left),)
            tree = {'left': left,
                    'right': _array(t['right'], w, 'right', shape=n, dtype=np.int64),
                    'feature': _array(t['feature'], w, 'feature', shape=n, dtype=np.int64),
                    'threshold': _array(t['threshold'], w, 'threshold', shape=n),
                    'missing_left': _array(t['missing_left'], w, 'missing_left', shape=n,
                                           dtype=np.int64).astype(bool),
                    'value': _array(t['value'], w, 'value', shape=n, bound=1e3),
                    'leaf': _array(t['leaf'], w, 'leaf', shape=n, dtype=np.int64).astype(bool)}
            _check_tree(w, tree['left'], tree['right'], tree['feature'], self.n_features_in_,
                        tree['leaf'])
            self.trees_.append(tree)


# -- kernels and neighbours ----------------------------------------------------------------------

class KNNModel(_ArrayRegressor):
    """k-nearest neighbours on standardised features (Minkowski ``p``), log slowdown."""

    kind = 'knn'
    title = 'k-neighbors'
    scaled = True

    @classmethod
    def search_space(cls) -> Dict[str, Any]:
        from scipy.stats import randint
        return {'n_neighbors': randint(2, 30), 'weights': ['uniform', 'distance'],
                'p': [1.0, 2.0]}

    def __init__(self, n_neighbors: int = 5, weights: str = 'distance', p: float = 2.0) -> None:
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.p = p

    def _validate(self) -> None:
        if self.weights not in ('uniform', 'distance'):
            raise ConfigError('knn weights=%r: choose uniform or distance' % (self.weights,))
        if not (int(self.n_neighbors) >= 1 and float(self.p) >= 1.0):
            raise ConfigError('knn: n_neighbors >= 1 and p >= 1 needed, got %r, %r'
                              % (self.n_neighbors, self.p))

    def fit(self, X: Any, y: Any) -> 'KNNModel':
        self._validate()
        X, ylog = self._prepare_fit(X, y)
        if int(self.n_neighbors) > X.shape[0]:
            raise ConfigError('knn: n_neighbors=%d > %d training samples'
                              % (self.n_neighbors, X.shape[0]))
        self.X_, self.y_ = X, ylog
        self.fitted_ = True
        return self

    def _predict_log(self, X: np.ndarray) -> np.ndarray:
        k = int(self.n_neighbors)
        out = np.empty(X.shape[0])
        for s in range(0, X.shape[0], 256):  # bounded memory: 256 x n_train distances at once
            diff = np.abs(X[s:s + 256, None, :] - self.X_[None, :, :])
            p = float(self.p)
            dist = np.sqrt((diff ** 2).sum(-1)) if p == 2.0 else (diff ** p).sum(-1) ** (1 / p)
            idx = np.argsort(dist, axis=1, kind='stable')[:, :k]
            d = np.take_along_axis(dist, idx, axis=1)
            yk = self.y_[idx]
            if self.weights == 'uniform':
                out[s:s + 256] = yk.mean(axis=1)
                continue
            # scikit-learn: a query that coincides with training samples takes their mean
            zero = d == 0
            with np.errstate(divide='ignore'):
                w = np.where(zero.any(axis=1, keepdims=True), zero.astype(float), 1.0 / d)
            out[s:s + 256] = (w * yk).sum(axis=1) / w.sum(axis=1)
        return out

    def _fitted_arrays(self) -> Dict[str, Any]:
        return {'X': self.X_.tolist(), 'y': self.y_.tolist()}

    def _load_arrays(self, fitted: Mapping[str, Any], where: str) -> None:
        self._validate()
        X = _array(fitted['X'], where, 'X')
        if X.ndim != 2 or X.shape[1] != self.n_features_in_ or X.shape[0] < self.n_neighbors:
            raise ModelError('%s: training samples of shape %s for %d features and %d '
                             'neighbours' % (where, X.shape, self.n_features_in_,
                                             self.n_neighbors))
        self.X_ = X
        self.y_ = _array(fitted['y'], where, 'y', shape=(X.shape[0],), bound=1e3)


class SVRModel(_ArrayRegressor):
    """Support vector regression, RBF kernel, on standardised features and log slowdown.

    :param gamma: kernel width; ``None`` = scikit-learn's ``'scale'``, ``1 / (n_features x
        variance of the standardised training features)``.
    """

    kind = 'svr'
    title = 'SVR'
    scaled = True

    @classmethod
    def search_space(cls) -> Dict[str, Any]:
        from scipy.stats import loguniform
        return {'C': loguniform(0.1, 100.0), 'epsilon': loguniform(1e-3, 0.1),
                'gamma': loguniform(0.005, 1.0)}

    def __init__(self, C: float = 1.0, epsilon: float = 0.01,
                 gamma: Optional[float] = None) -> None:
        self.C = C
        self.epsilon = epsilon
        self.gamma = gamma

    def fit(self, X: Any, y: Any) -> 'SVRModel':
        from sklearn.svm import SVR
        X, ylog = self._prepare_fit(X, y)
        var = float(X.var())
        self.gamma_ = float(self.gamma) if self.gamma is not None else \
            1.0 / (X.shape[1] * var if var > 0 else 1.0)
        est = SVR(C=self.C, epsilon=self.epsilon, gamma=self.gamma_, kernel='rbf').fit(X, ylog)
        self.support_vectors_ = np.asarray(est.support_vectors_, dtype=float)
        self.dual_coef_ = np.asarray(est.dual_coef_, dtype=float).reshape(-1)
        self.intercept_ = float(np.asarray(est.intercept_).reshape(-1)[0])
        self.fitted_ = True
        return self

    def _predict_log(self, X: np.ndarray) -> np.ndarray:
        sv = self.support_vectors_
        out = np.empty(X.shape[0])
        for s in range(0, X.shape[0], 256):
            xb = X[s:s + 256]
            d2 = (xb ** 2).sum(1)[:, None] + (sv ** 2).sum(1)[None, :] - 2.0 * xb @ sv.T
            out[s:s + 256] = np.exp(-self.gamma_ * np.maximum(d2, 0.0)) @ self.dual_coef_ \
                + self.intercept_
        return out

    def _fitted_arrays(self) -> Dict[str, Any]:
        return {'gamma': self.gamma_, 'support_vectors': self.support_vectors_.tolist(),
                'dual_coef': self.dual_coef_.tolist(), 'intercept': self.intercept_}

    def _load_arrays(self, fitted: Mapping[str, Any], where: str) -> None:
        sv = _array(fitted['support_vectors'], where, 'support_vectors')
        if sv.ndim != 2 or sv.shape[1] != self.n_features_in_ or sv.shape[0] < 1:
            raise ModelError('%s: support vectors of shape %s for %d features'
                             % (where, sv.shape, self.n_features_in_))
        self.support_vectors_ = sv
        self.dual_coef_ = _array(fitted['dual_coef'], where, 'dual_coef', shape=(sv.shape[0],),
                                 bound=1e6)
        self.intercept_ = float(_array(fitted['intercept'], where, 'intercept', shape=(),
                                       bound=1e3))
        self.gamma_ = float(_array(fitted['gamma'], where, 'gamma', shape=(), bound=1e6))
        if not self.gamma_ > 0:
            raise ModelError('%s: gamma must be positive, got %r' % (where, self.gamma_))


class MedianModel(_ArrayRegressor):
    """The training samples' median slowdown, whatever the features."""

    kind = 'median'
    title = 'constant (median slowdown)'
    #: a constant: model selection prefers it to any regressor within TIE_POINTS
    constant = True

    @classmethod
    def search_space(cls) -> Dict[str, Any]:
        return {}   # no hyperparameters

    def fit(self, X: Any, y: Any) -> 'MedianModel':
        _, ylog = self._prepare_fit(X, y)
        self.log_slowdown_ = float(np.median(ylog))
        self.fitted_ = True
        return self

    def _predict_log(self, X: np.ndarray) -> np.ndarray:
        return np.full(X.shape[0], self.log_slowdown_)

    def _fitted_arrays(self) -> Dict[str, Any]:
        return {'log_slowdown': self.log_slowdown_}

    def _load_arrays(self, fitted: Mapping[str, Any], where: str) -> None:
        self.log_slowdown_ = float(_array([fitted['log_slowdown']], where, 'log_slowdown',
                                          shape=(1,), bound=1e3)[0])


class NoInterferenceModel(MedianModel):
    """No interference: slowdown 1 for every sample (fitting only checks the data)."""

    kind = 'none'
    title = 'no interference'

    def fit(self, X: Any, y: Any) -> 'NoInterferenceModel':
        self._prepare_fit(X, y)
        self.log_slowdown_ = 0.0
        self.fitted_ = True
        return self
