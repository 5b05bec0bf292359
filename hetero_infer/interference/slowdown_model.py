"""The interference model: an MLP that predicts a layer's slowdown under co-running.

Two levels:

- :class:`InterferenceModel`: one scikit-learn-style regressor (``fit`` / ``predict``; standard
  scaling then an MLP) from the features of :mod:`hetero_infer.interference.features` to the
  slowdown
  ``co-run latency / isolated latency``. It trains on ``log(slowdown)`` (so squared error is
  relative error, which is what the accuracy metric measures) and predicts in plain numpy from its
  fitted arrays, so a loaded model predicts exactly like a freshly fitted one and needs no
  scikit-learn at serving time.
- :class:`SlowdownPredictor`: one regressor per co-run configuration (the talk's choice:
  each configuration has its own target processor and co-runner set, hence its own contention
  curve, and a per-configuration model keeps each model small and its accuracy reported per
  column), plus the platform's processor kinds to map a live mapping to its configuration. The
  regressor is an :class:`InterferenceModel` or, where cross-validation chose another kind
  (``hetero-infer train``, :mod:`hetero_infer.interference.regressor_selection`), one
  of
  :mod:`hetero_infer.interference.regressor_models` (random forest, gradient boosting,
  k-neighbours,
  SVR), each predicting from plain arrays. It saves to and loads from a versioned JSON file
  (no pickle: nothing in the file is executed); version 2 names each entry's ``kind``,
  version-1 files (MLPs only, such as the shipped ``xavier.json`` and ``orin.json``) still load.

Model-level prediction (what the planner uses) lives in :class:`ModelLatencyPredictor`.

Accuracy (the talk's table): ``100 * (1 - MAPE)`` of the predicted co-run latency
``predicted slowdown x measured isolated latency`` against the measured co-run latency, over
held-out samples. Because the isolated latency multiplies both, this equals ``100 * (1 - MAPE)``
of the slowdown itself.
"""

import hashlib
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from hetero_infer.errors import ConfigError, ModelError
from hetero_infer.interference.features import (
    KIND_GROUPS,
    Config,
    CorunnerLoad,
    corunner_features,
    corunner_order,
    feature_names,
    mapping_key,
    target_features,
)
from hetero_infer.io.json_file import read_json
from hetero_infer.models.zoo import Layer, ModelSpec

MODEL_FORMAT = 'hetero_infer.interference_model'
MODEL_VERSION = 2
#: Versions this build reads: 1 (MLP entries only) and 2 (each entry names its ``kind``: a kind
#: of the regressor registry, :mod:`hetero_infer.interference.regressor_registry`).
READ_VERSIONS = (1, 2)
#: Bumped whenever :mod:`features` changes meaning; files with another version are refused.
FEATURE_VERSION = 1
#: Slowdown of a layer sharing the GPU with one back-to-back co-runner stream (fair sharing).
GPU_SHARE_SLOWDOWN = 2.0
#: Largest weight or bias magnitude a model file may hold (trained ones stay under 1).
MAX_WEIGHT = 1e3
#: Largest scaler mean or scale magnitude (the features are logs and ratios: under 100).
MAX_SCALER = 1e6
#: Largest interference model file read (the committed Xavier model is 0.7 MB).
MAX_MODEL_BYTES = 64 << 20
DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data',
                        'interference')

try:  # scikit-learn is needed to fit, not to predict (a Jetson may lack it)
    from sklearn.base import BaseEstimator, RegressorMixin
except ImportError:  # pragma: no cover - exercised only without scikit-learn
    BaseEstimator = object  # type: ignore

    class RegressorMixin(object):  # type: ignore
        pass


def accuracy_pct(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """``100 * (1 - MAPE)`` (the talk's accuracy)."""
    t = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    return float(100.0 * (1.0 - np.mean(np.abs(p - t) / np.abs(t))))


class InterferenceModel(BaseEstimator, RegressorMixin):
    """Slowdown regressor: ``StandardScaler`` + ``MLPRegressor`` (ReLU), trained on log slowdown.

    :param hidden_layer_sizes: hidden layer widths.
    :param alpha: L2 penalty.
    :param learning_rate_init: Adam step size.
    :param max_iter: training epochs at most.
    :param log_target: fit ``log(y)`` and predict ``exp``; y must be positive.
    :param random_state: seed of the weight initialisation and batch order.
    """

    kind = 'mlp'
    title = 'MLP'
    #: model selection tries it (and keeps it on a near tie: the talk's model)
    candidate = True

    @classmethod
    def search_space(cls) -> Dict[str, Any]:
        """Hyperparameter distributions model selection searches (scipy is needed)."""
        from scipy.stats import loguniform
        return {'hidden_layer_sizes': [(32,), (64,), (32, 32), (64, 64), (128, 64)],
                'alpha': loguniform(1e-4, 1.0), 'learning_rate_init': loguniform(3e-4, 3e-3)}

    def __init__(self, hidden_layer_sizes: Tuple[int, ...] = (64, 64), alpha: float = 1e-2,
                 learning_rate_init: float = 1e-3, max_iter: int = 1000, log_target: bool = True,
                 random_state: Optional[int] = 0) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alpha = alpha
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.log_target = log_target
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> 'InterferenceModel':
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.utils.validation import check_X_y

        X, y = check_X_y(X, y, dtype=np.float64, y_numeric=True)
        if self.log_target:
            if np.any(y <= 0):
                raise ConfigError('InterferenceModel: slowdowns must be positive for '
                                  'log_target, got min %r' % float(y.min()))
            y = np.log(y)
        pipe = make_pipeline(
            StandardScaler(),
            MLPRegressor(hidden_layer_sizes=tuple(self.hidden_layer_sizes), alpha=self.alpha,
                         learning_rate_init=self.learning_rate_init, max_iter=self.max_iter,
                         random_state=self.random_state, n_iter_no_change=30, tol=1e-7))
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', ConvergenceWarning)
            pipe.fit(X, y)
        scaler, mlp = pipe[0], pipe[-1]
        self.pipeline_ = pipe
        self.n_features_in_ = X.shape[1]
        self.scaler_mean_ = np.asarray(scaler.mean_, dtype=float)
        self.scaler_scale_ = np.asarray(scaler.scale_, dtype=float)
        self.coefs_ = [np.asarray(w, dtype=float) for w in mlp.coefs_]
        self.intercepts_ = [np.asarray(b, dtype=float) for b in mlp.intercepts_]
        self.n_iter_ = int(mlp.n_iter_)
        return self

    def _check_fitted(self) -> None:
        try:
            from sklearn.utils.validation import check_is_fitted
        except ImportError:  # pragma: no cover
            if not hasattr(self, 'coefs_'):
                raise ModelError('InterferenceModel is not fitted') from None
            return
        check_is_fitted(self, 'coefs_')

    def predict(self, X: Any) -> np.ndarray:
        """Predicted slowdowns, one per row of ``X``."""
        self._check_fitted()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ModelError('InterferenceModel expects %d features per row, got shape %s'
                             % (self.n_features_in_, X.shape))
        z = (X - self.scaler_mean_) / self.scaler_scale_
        last = len(self.coefs_) - 1
        for i, (w, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            z = z @ w + b
            if i < last:
                np.maximum(z, 0.0, out=z)
        out = z.ravel()
        if self.log_target:
            with np.errstate(over='ignore'):
                out = np.exp(out)
        if not np.all(np.isfinite(out)):
            raise ModelError('InterferenceModel: non-finite slowdown predicted (features %s); '
                             'the model or its inputs are out of range'
                             % X[~np.isfinite(out)][:1].tolist())
        return out

    # -- arrays for the file format --------------------------------------------------------------
    def to_arrays(self) -> Dict[str, Any]:
        self._check_fitted()
        return {'kind': 'mlp',
                'params': {'hidden_layer_sizes': list(self.hidden_layer_sizes),
                           'alpha': self.alpha, 'learning_rate_init': self.learning_rate_init,
                           'max_iter': self.max_iter, 'log_target': bool(self.log_target),
                           'random_state': self.random_state},
                'activation': 'relu', 'n_features_in': int(self.n_features_in_),
                'scaler_mean': self.scaler_mean_.tolist(),
                'scaler_scale': self.scaler_scale_.tolist(),
                'coefs': [w.tolist() for w in self.coefs_],
                'intercepts': [b.tolist() for b in self.intercepts_]}

    @classmethod
    def from_arrays(cls, d: Mapping[str, Any], *, where: str) -> 'InterferenceModel':
        """Rebuild a fitted model; validates every shape. :raises ModelError: on any mismatch."""
        try:
            params = dict(d['params'])
            model = cls(hidden_layer_sizes=tuple(int(h) for h in params['hidden_layer_sizes']),
                        alpha=float(params['alpha']),
                        learning_rate_init=float(params['learning_rate_init']),
                        max_iter=int(params['max_iter']), log_target=bool(params['log_target']),
                        random_state=params.get('random_state'))
            if d.get('activation') != 'relu':
                raise ModelError('%s: unsupported activation %r' % (where, d.get('activation')))
            n = int(d['n_features_in'])
            mean = np.asarray(d['scaler_mean'], dtype=float)
            scale = np.asarray(d['scaler_scale'], dtype=float)
            coefs = [np.asarray(w, dtype=float) for w in d['coefs']]
            inter = [np.asarray(b, dtype=float) for b in d['intercepts']]
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError('%s: malformed model entry: %s: %s'
                             % (where, type(exc).__name__, exc)) from None
        if mean.shape != (n,) or scale.shape != (n,) or np.any(scale == 0):
            raise ModelError('%s: scaler arrays do not match %d features' % (where, n))
        if len(coefs) != len(inter) or len(coefs) != len(model.hidden_layer_sizes) + 1:
            raise ModelError('%s: %d weight matrices for hidden layers %s'
                             % (where, len(coefs), model.hidden_layer_sizes))
        width = n
        for i, (w, b) in enumerate(zip(coefs, inter)):
            out = 1 if i == len(coefs) - 1 else model.hidden_layer_sizes[i]
            if w.shape != (width, out) or b.shape != (out,):
                raise ModelError('%s: layer %d has weights %s / bias %s, expected (%d, %d)'
                                 % (where, i, w.shape, b.shape, width, out))
            width = out
        for a in [mean, scale] + coefs + inter:
            if not np.all(np.isfinite(a)):
                raise ModelError('%s: non-finite values in the model arrays' % where)
        # A trained MLP (L2-penalised, standardised inputs) has weights well under 10; extreme
        # ones (an edited file with a matching checksum) would overflow to NaN predictions.
        for name, arrays, bound in (('weights', coefs + inter, MAX_WEIGHT),
                                    ('scaler', [mean, scale], MAX_SCALER)):
            worst = max(float(np.max(np.abs(a))) if a.size else 0.0 for a in arrays)
            if worst > bound:
                raise ModelError('%s: %s value %.3g exceeds %.0g in magnitude; not a trained '
                                 'model' % (where, name, worst, bound))
        if float(np.min(np.abs(scale))) < 1e-12:
            raise ModelError('%s: scaler scale %.3g is too close to 0' % (where,
                                                                          float(np.min(scale))))
        model.n_features_in_ = n
        model.scaler_mean_, model.scaler_scale_ = mean, scale
        model.coefs_, model.intercepts_ = coefs, inter
        model.n_iter_ = 0
        return model


class SlowdownPredictor:
    """Per-configuration interference models for one platform.

    :param models: configuration name -> fitted regressor (:class:`InterferenceModel` or a
        :mod:`~hetero_infer.interference.regressor_models` kind).
    :param processor_kinds: ``{processor id: kind}`` of the platform the data came from.
    :param platform_name: e.g. ``'xavier'``.
    :param meta: provenance and accuracy, stored in the file as is (JSON-able).
    """

    def __init__(self, models: Mapping[str, InterferenceModel],
                 processor_kinds: Mapping[str, str], *, platform_name: str,
                 meta: Optional[Mapping[str, Any]] = None) -> None:
        if not models:
            raise ConfigError('SlowdownPredictor needs at least one configuration model')
        self.models = dict(models)
        self.processor_kinds = dict(processor_kinds)
        self.platform_name = platform_name
        self.meta = dict(meta or {})
        self._by_key: Dict[Tuple[str, Tuple[str, ...]], str] = {}
        self._n_cor: Dict[str, int] = {}
        for name in self.models:
            cfg = Config.parse(name)
            key = cfg.key(self.processor_kinds)
            if key in self._by_key:
                raise ConfigError('configurations %r and %r map to the same processor kinds %s'
                                  % (self._by_key[key], name, key))
            self._by_key[key] = name
            self._n_cor[name] = len(cfg.corunners)
            expect = len(feature_names(len(cfg.corunners)))
            if self.models[name].n_features_in_ != expect:
                raise ModelError('model of %r takes %d features, the feature set has %d'
                                 % (name, self.models[name].n_features_in_, expect))

    @property
    def configs(self) -> List[str]:
        return list(self.models)

    def config_for(self, target_proc: str, corunner_procs: Sequence[str]) -> Optional[str]:
        """The configuration modelling ``target_proc`` with these co-runners; ``None`` when
        there are no co-runners (slowdown 1).

        :raises ModelError: no model covers this mapping (the message lists the ones there are).
        """
        if not corunner_procs:
            return None
        key = mapping_key(target_proc, corunner_procs, self.processor_kinds)
        name = self._by_key.get(key)
        if name is None:
            raise ModelError('no interference model for %s with co-runners %s (kinds %s); this '
                             'model covers %s' % (target_proc, list(corunner_procs), key,
                                                  ', '.join(self.models)))
        return name

    def predict_slowdown(self, config: str, X: Any) -> np.ndarray:
        """Vectorised slowdowns for a feature matrix of configuration ``config``."""
        try:
            model = self.models[config]
        except KeyError:
            raise ModelError('no interference model for configuration %r (have %s)'
                             % (config, ', '.join(self.models))) from None
        return model.predict(X)

    def predict_layers(self, target_proc: str, layers: Sequence[Layer],
                       iso_ms: Sequence[float], corunners: Mapping[str, CorunnerLoad]
                       ) -> np.ndarray:
        """Slowdown of each of ``layers`` on ``target_proc`` (with their isolated times) while
        each co-runner processor runs work summarised by a :class:`CorunnerLoad`."""
        cfg = self.config_for(target_proc, list(corunners))
        if cfg is None:
            return np.ones(len(layers))
        order = corunner_order(list(corunners), self.processor_kinds)
        cvec = corunner_features([corunners[p] for p in order])
        t = target_features(layers, iso_ms)
        X = np.hstack([t, np.broadcast_to(cvec, (t.shape[0], cvec.shape[0]))])
        return self.predict_slowdown(cfg, X)

    # -- file format -----------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        body = {'format': MODEL_FORMAT, 'version': MODEL_VERSION,
                'feature_version': FEATURE_VERSION, 'platform': self.platform_name,
                'processor_kinds': self.processor_kinds, 'config_order': list(self.models),
                'models': {name: dict(m.to_arrays(),
                                      feature_names=list(feature_names(self._n_cor[name])))
                           for name, m in self.models.items()},
                'meta': self.meta}
        body['sha256'] = _digest(body)
        return body

    def save(self, path: str) -> None:
        """Write the versioned JSON file (weights as numbers; nothing executable)."""
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        tmp = path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(self.to_dict(), f, separators=(',', ':'), sort_keys=True)
            f.write('\n')
        os.replace(tmp, path)

    @classmethod
    def from_dict(cls, d: Any, *, where: str = '<dict>') -> 'SlowdownPredictor':
        if not isinstance(d, dict):
            raise ModelError('%s: not an interference model (top level is %s)'
                             % (where, type(d).__name__))
        if d.get('format') != MODEL_FORMAT:
            raise ModelError('%s: not an interference model file (format %r, expected %r)'
                             % (where, d.get('format'), MODEL_FORMAT))
        if d.get('version') not in READ_VERSIONS:
            raise ModelError('%s: interference model version %r is not supported (this build '
                             'reads versions %s); retrain with "hetero-infer train"'
                             % (where, d.get('version'),
                                ' and '.join(str(v) for v in READ_VERSIONS)))
        if d.get('feature_version') != FEATURE_VERSION:
            raise ModelError('%s: feature version %r differs from this build\'s %d; retrain '
                             'with "hetero-infer train"' % (where, d.get('feature_version'),
                                                            FEATURE_VERSION))
        stored = d.get('sha256')
        body = {k: v for k, v in d.items() if k != 'sha256'}
        try:
            digest = _digest(body)
        except (TypeError, ValueError, RecursionError) as exc:  # not JSON data (keys, values)
            raise ModelError('%s: not an interference model: %s' % (where, exc)) from None
        if stored != digest:
            raise ModelError('%s: checksum mismatch: the file is corrupt or was edited' % where)
        models = d.get('models')
        kinds = d.get('processor_kinds')
        if not isinstance(models, dict) or not models or not isinstance(kinds, dict):
            raise ModelError('%s: "models" and "processor_kinds" must be non-empty objects'
                             % where)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in kinds.items()) or \
                not all(isinstance(k, str) for k in models):
            raise ModelError('%s: "models" keys and "processor_kinds" must be strings' % where)
        if not isinstance(d.get('meta') or {}, dict):
            raise ModelError('%s: "meta" must be an object' % where)
        order = d.get('config_order') or list(models)
        if not isinstance(order, list) or not all(isinstance(c, str) for c in order):
            raise ModelError('%s: config_order must be a list of configuration names, got %r'
                             % (where, order))
        if sorted(order) != sorted(models):
            raise ModelError('%s: config_order %s does not match the models %s'
                             % (where, order, sorted(models)))
        built = {}
        for name in order:
            entry = models[name]
            if not isinstance(entry, dict):
                raise ModelError('%s: model %r is not an object' % (where, name))
            try:
                n_cor = len(Config.parse(name).corunners)
            except ConfigError as exc:
                raise ModelError('%s: %s' % (where, exc)) from None
            if list(entry.get('feature_names', [])) != list(feature_names(n_cor)):
                raise ModelError('%s: model %r was trained on other features; retrain'
                                 % (where, name))
            built[name] = model_from_arrays(entry, where='%s[%s]' % (where, name))
        try:
            return cls(built, kinds, platform_name=str(d.get('platform', '')),
                       meta=d.get('meta') or {})
        except ConfigError as exc:
            raise ModelError('%s: %s' % (where, exc)) from None

    @classmethod
    def load(cls, path_or_platform: str = 'xavier') -> 'SlowdownPredictor':
        """Load a model file, or the committed default of a platform by name (``'xavier'``).

        :raises ModelError: missing, truncated, corrupt or incompatible file.
        """
        path = path_or_platform
        if not os.path.exists(path) and os.sep not in path and not path.endswith('.json'):
            path = os.path.join(DATA_DIR, path_or_platform + '.json')
            if not os.path.exists(path):
                # accuracy.json beside the models is the training report, not a model
                have = sorted(f[:-5] for f in os.listdir(DATA_DIR)
                              if f.endswith('.json') and f != 'accuracy.json') \
                    if os.path.isdir(DATA_DIR) else []
                raise ModelError('no interference model for platform %r (committed: %s; train '
                                 'one with "hetero-infer train")'
                                 % (path_or_platform, ', '.join(have) or 'none'))
        d = read_json(path, 'interference model', max_bytes=MAX_MODEL_BYTES)
        return cls.from_dict(d, where=path)


def model_from_arrays(entry: Mapping[str, Any], *, where: str) -> Any:
    """A fitted slowdown regressor from its model-file entry (kind ``mlp`` when absent, as in
    version-1 files), read by the registry's class of that kind.

    :raises ModelError: unknown kind or malformed arrays.
    """
    from hetero_infer.interference.regressor_registry import regressor_class
    kind = entry.get('kind', 'mlp')
    if kind == 'mlp':
        return InterferenceModel.from_arrays(entry, where=where)
    if not isinstance(kind, str):
        raise ModelError('%s: regressor kind must be a string, got %r' % (where, kind))
    try:
        cls = regressor_class(kind)
    except ConfigError as exc:  # unknown, or an installed regressor that cannot be loaded
        raise ModelError('%s: %s' % (where, exc)) from None
    return cls.from_arrays(entry, where=where)


def _digest(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(',', ':'))
                          .encode('utf-8')).hexdigest()


class ModelLatencyPredictor:
    """Model-level co-run latency from layer-level slowdowns (what the planner calls).

    Method. The target model's segments on ``proc`` (``platform.segments``: on a DLA the layers
    it cannot run execute on the GPU) each take ``isolated ms x expected slowdown``; transitions
    between DLA and GPU are added unscaled. A co-runner loops its model, so which of its layers
    overlaps a target layer depends on the phase: the expected slowdown of a target layer of
    isolated time ``d`` is the mean, over ``phases`` evenly spaced start times in each
    co-runner's loop, of the predicted slowdown given the co-runner work inside the window
    ``[s, s + d)`` (its time-weighted demand, peak demand and kind shares, computed from the
    co-runner's isolated layer times). Short target layers thus see single co-runner layers (the
    contention curve is convex, so averaging demand first would underestimate), long ones the
    co-runner's average. Co-runner phases are independent (a fixed permutation per co-runner).
    The phases are combined by time, not by count: in joint co-runner phase ``k`` the target's
    loop takes ``L_k = sum(isolated x slowdown)``, and since co-runner phases are uniform in time
    while the target progresses at ``1 / L_k``, its long-run latency is the harmonic mean of the
    ``L_k`` (each phase weighted by ``1 / L_k``). The arithmetic mean over phases (the latency of
    one inference started at a random phase) overweights short heavy phases such as a DLA
    co-runner's FC layers, and over-predicted GPU models next to VGG/AlexNet on the DLAs by
    40-100%.

    GPU time-sharing, which is not bandwidth interference: a GPU model absorbs the fallback
    work DLA co-runners send to the GPU during its run (their fallback time per loop, scaled
    to the target's latency); a DLA model's own fallback layers are predicted as GPU layers
    with the non-GPU co-runners and, when the GPU runs a model too, take
    :data:`GPU_SHARE_SLOWDOWN` times longer (two streams sharing the GPU fairly), as do the
    hand-backs from the GPU (the GPU side of the transitions, ``platform.transition_ms``). Not
    modelled: the DRAM contention a GPU co-runner causes on those fallback layers (no
    configuration profiles a GPU layer against another GPU stream), so DLA models with many
    fallback layers next to a memory-heavy GPU model are under-predicted.

    Isolated layer times come from ``platform.layer_time_ms`` (on hardware: one isolated
    profile per model and processor). Results are cached per (model, proc, co-runner models).

    :param phases: phase samples per co-runner (more: smoother, slower first call).
    """

    def __init__(self, interference: SlowdownPredictor, platform: Any, *,
                 phases: int = 16) -> None:
        if phases < 1:
            raise ConfigError('phases must be >= 1, got %r' % (phases,))
        self.interference = interference
        self.platform = platform
        self.phases = phases
        self._cache: Dict[tuple, float] = {}
        self._keep: Dict[int, ModelSpec] = {}
        self._prof: Dict[tuple, Dict[str, Any]] = {}

    def _model_key(self, model: ModelSpec) -> tuple:
        self._keep[id(model)] = model  # keep ids unique while cached
        return (model.name, id(model))

    def _profile(self, model: ModelSpec, proc: str) -> Dict[str, Any]:
        """Per-segment isolated times and cumulative loop curves of ``model`` on ``proc``."""
        key = self._model_key(model) + (proc,)
        hit = self._prof.get(key)
        if hit is not None:
            return hit
        plat = self.platform
        segs = plat.segments(model, proc)
        layers = [lay for _, lay in segs]
        execs = [p for p, _ in segs]
        iso = np.array([plat.layer_time_ms(lay, p) for p, lay in segs], dtype=float)
        total = float(plat.isolated_latency_ms(model, proc))
        native = np.array([p == proc for p in execs])
        nbytes = np.array([lay.bytes_total for lay in layers], dtype=float)
        groups = np.zeros((len(layers), len(KIND_GROUPS)))
        for i, lay in enumerate(layers):
            g = lay.kind if lay.kind in KIND_GROUPS else 'memory'
            groups[i, KIND_GROUPS.index(g)] = 1.0
        # Transitions are idle gaps for DRAM: spread them over the loop as zero-demand time.
        gap = max(total - float(iso.sum()), 0.0) / max(len(layers), 1)
        dur = iso + gap
        t_cum = np.concatenate([[0.0], np.cumsum(dur)])
        prof = {'layers': layers, 'iso': iso, 'native': native, 'total_ms': total,
                'transition_ms': total - float(iso.sum()), 'loop_ms': float(t_cum[-1]),
                't_cum': t_cum,
                'b_cum': np.concatenate([[0.0], np.cumsum(nbytes)]),
                'g_cum': np.vstack([np.zeros(len(KIND_GROUPS)),
                                    np.cumsum(groups * iso[:, None], axis=0)]),
                'demand': nbytes / (np.maximum(iso, 1e-9) * 1e6),
                'fallback_ms': float(iso[~native].sum()),
                # Hand-backs from the GPU to this processor: their cost is GPU-side work.
                'gpu_handback_ms': sum(plat.transition_ms(a, b) for a, b in
                                       zip(execs, execs[1:] + [proc])
                                       if a != b and plat.processors[a].kind == 'gpu')}
        self._prof[key] = prof
        return prof

    def _window_features(self, prof: Dict[str, Any], starts: np.ndarray,
                         widths: np.ndarray) -> np.ndarray:
        """Co-runner feature columns (demand, peak, kind shares) for loop windows."""
        T = prof['loop_ms']
        t_cum = prof['t_cum']
        layer_t = np.append(t_cum, t_cum[-1] + prof['iso'][:1])  # wrap for interpolation

        def cum(curve: np.ndarray, x: np.ndarray) -> np.ndarray:
            # Piecewise-linear cumulative curve of a periodic loop, evaluated at any time.
            loops = np.floor(x / T)
            r = x - loops * T
            if curve.ndim == 1:
                return loops * curve[-1] + np.interp(r, t_cum, curve)
            return np.stack([loops * curve[-1, g] + np.interp(r, t_cum, curve[:, g])
                             for g in range(curve.shape[1])], axis=-1)

        w = np.maximum(widths, 1e-9)
        ends = starts + w
        demand = (cum(prof['b_cum'], ends) - cum(prof['b_cum'], starts)) / (w * 1e6)
        shares = (cum(prof['g_cum'], ends) - cum(prof['g_cum'], starts))
        shares = shares / np.maximum(shares.sum(axis=-1, keepdims=True), 1e-12)
        # Peak: the heaviest layer among those the window starts in, ends in, or spans (sampled
        # at 4 points inside the window).
        peak = np.zeros_like(demand)
        n = len(prof['demand'])
        for frac in (0.0, 1.0 / 3, 2.0 / 3, 0.999):
            r = np.mod(starts + frac * w, T)
            idx = np.clip(np.searchsorted(t_cum, r, side='right') - 1, 0, n - 1)
            peak = np.maximum(peak, prof['demand'][idx])
        del layer_t
        return demand, np.maximum(peak, demand), shares

    def _expected_slowdown(self, proc: str, layers: List[Layer], iso: np.ndarray,
                           cors: Mapping[str, ModelSpec]) -> np.ndarray:
        cfg = self.interference.config_for(proc, list(cors))
        if cfg is None or not len(layers):
            return np.ones(len(layers))
        kinds = self.interference.processor_kinds
        order = corunner_order(list(cors), kinds)
        n, k = len(layers), self.phases
        t = target_features(layers, iso)
        rows = np.repeat(t, k, axis=0)
        widths = np.repeat(iso, k)
        cols = []
        sums = np.zeros(n * k)
        maxs = np.zeros(n * k)
        share = np.zeros((n * k, len(KIND_GROUPS)))
        for j, p in enumerate(order):
            prof = self._profile(cors[p], p)
            # Evenly spaced phases, permuted per co-runner so their phases are independent.
            perm = np.random.default_rng(1000 + j).permutation(k)
            phase = (perm + 0.5) / k * prof['loop_ms']
            starts = np.tile(phase, n)
            d, pk, sh = self._window_features(prof, starts, widths)
            cols += [d, pk]
            sums += d
            maxs = np.maximum(maxs, d)
            share += sh * d[:, None]
        share = share / np.maximum(sums[:, None], 1e-12)
        X = np.column_stack([rows] + cols + [sums, maxs, np.full(n * k, float(len(order))),
                                             share])
        sd = self.interference.predict_slowdown(cfg, X).reshape(n, k)
        # Phase k is one joint co-runner state; the target's loop there takes L_k. Phases are
        # uniform in *time*, and the target progresses at 1 / L_k in phase k, so it starts (and
        # spends its iterations) mostly in light phases: the long-run latency is the harmonic
        # mean of L_k, i.e. each phase weighted by 1 / L_k. The plain mean over phases would be
        # the latency of one inference started at a uniformly random phase, which overweights
        # the heavy phases (a DLA co-runner's FC layers: 7x slowdowns for a quarter of its
        # loop read as 2.5x instead of 1.3x).
        loop = sd.T @ iso
        w = 1.0 / np.maximum(loop, 1e-12)
        return (sd @ w) / w.sum()

    def predict_model_latency_ms(self, model: ModelSpec, proc: str,
                                 corunners: Mapping[str, ModelSpec]) -> float:
        """Predicted mean latency (ms) of ``model`` on ``proc`` while every processor in
        ``corunners`` runs its model back to back. With no co-runners: the isolated latency.

        :raises ModelError: no configuration model covers the mapping.
        """
        cors = {p: m for p, m in corunners.items() if m is not None and p != proc}
        key = (self._model_key(model), proc,
               tuple(sorted((p, self._model_key(m)) for p, m in cors.items())))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        prof = self._profile(model, proc)
        if not cors:
            self._cache[key] = prof['total_ms']
            return prof['total_ms']
        plat = self.platform
        layers, iso, native = prof['layers'], prof['iso'], prof['native']
        total = prof['transition_ms']
        idx = np.flatnonzero(native)
        if len(idx):
            sd = self._expected_slowdown(proc, [layers[i] for i in idx], iso[idx], cors)
            total += float((iso[idx] * sd).sum())
        fidx = np.flatnonzero(~native)
        if len(fidx):
            gpu = plat.gpu_id
            others = {p: m for p, m in cors.items() if p != gpu}
            sd = self._expected_slowdown(gpu, [layers[i] for i in fidx], iso[fidx], others)
            if gpu in cors:
                # The GPU co-runner loops back to back: the GPU is shared by two streams.
                sd = sd * GPU_SHARE_SLOWDOWN
                total += prof['gpu_handback_ms'] * (GPU_SHARE_SLOWDOWN - 1.0)
            total += float((iso[fidx] * sd).sum())
        if plat.processors[proc].kind == 'gpu':
            # DLA co-runners' fallback layers share this GPU while the model runs.
            extra = 0.0
            for p, m in cors.items():
                cp = self._profile(m, p)
                if cp['fallback_ms'] > 0 and cp['total_ms'] > 0:
                    extra += total * cp['fallback_ms'] / cp['total_ms']
            total += extra
        total = float(total)
        self._cache[key] = total
        return total

    def clear_cache(self) -> None:
        self._cache.clear()
        self._prof.clear()
        self._keep.clear()


def load_default(platform_name: str = 'xavier') -> SlowdownPredictor:
    """The committed interference model of a platform (``hetero_infer/data/interference``)."""
    return SlowdownPredictor.load(platform_name)
