"""The talk's regressor comparison: MLP vs k-neighbors, random forest, decision tree and SVR.

Every regressor sees the same features (:mod:`hetero_infer.interference.features`), the same target
(the slowdown) and the same split (a seeded shuffle per configuration; ``test_fraction`` held out).
Distance- and kernel-based regressors get a standard scaler in front, as the MLP does; trees do
not need one. Accuracy is ``100 * (1 - MAPE)`` of the predicted co-run latency
(``predicted slowdown x measured isolated latency``) against the measured co-run latency on the
held-out samples, which equals ``100 * (1 - MAPE)`` of the slowdown.

The compared regressors are kept in a :class:`~hetero_infer.registry.Registry` keyed by the name
used in ``accuracy.json`` (``factory(seed) -> unfitted estimator``); duplicates are refused. They
are the talk's comparison set (a decision tree too, which no model file holds); the regressors a
model file may hold are the regressor family, :mod:`.regressor_registry`.
"""

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from hetero_infer.errors import ConfigError
from hetero_infer.interference.features import feature_names
from hetero_infer.interference.profiling import Dataset, Observation
from hetero_infer.interference.slowdown_model import InterferenceModel, accuracy_pct
from hetero_infer.registry import Registry

REGRESSOR_TITLES = {'mlp': 'MLP', 'knn': 'k-neighbors', 'random_forest': 'random forest',
                    'decision_tree': 'decision tree', 'svr': 'SVR'}

def _callable(name: str, factory: Any) -> Callable[[int], Any]:
    if not callable(factory):
        raise ConfigError('compared regressor %r is %r, not a factory(seed)' % (name, factory))
    return factory


COMPARED = Registry('compared regressor', adapt=_callable)


def register_regressor(name: str, factory: Callable[[int], Any]) -> None:
    """Register ``factory(seed) -> unfitted estimator``. :raises ConfigError: duplicate name."""
    COMPARED.register(name, factory)


def regressor_names() -> Tuple[str, ...]:
    return tuple(COMPARED.names())


def make_regressor(name: str, seed: int = 0) -> Any:
    """:raises ConfigError: unknown name (the message lists the known ones)."""
    return COMPARED.get(name)(seed)


def _mlp(seed: int) -> Any:
    return InterferenceModel(random_state=seed)


def _knn(seed: int) -> Any:
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return make_pipeline(StandardScaler(), KNeighborsRegressor(n_neighbors=5, weights='distance'))


def _forest(seed: int) -> Any:
    from sklearn.ensemble import RandomForestRegressor
    return RandomForestRegressor(n_estimators=100, random_state=seed, n_jobs=1)


def _tree(seed: int) -> Any:
    from sklearn.tree import DecisionTreeRegressor
    return DecisionTreeRegressor(random_state=seed)


def _svr(seed: int) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR
    return make_pipeline(StandardScaler(), SVR(C=1.0, epsilon=0.01, gamma='scale'))


register_regressor('mlp', _mlp)
register_regressor('knn', _knn)
register_regressor('random_forest', _forest)
register_regressor('decision_tree', _tree)
register_regressor('svr', _svr)


def design_matrix(observations: Sequence[Observation], processor_kinds: Mapping[str, str]
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, slowdown, iso_ms)`` of observations that share one configuration."""
    from hetero_infer.interference.features import build_features
    if not observations:
        raise ConfigError('design_matrix: no observations')
    n_cor = {len(o.corunners) for o in observations}
    if len(n_cor) != 1:
        raise ConfigError('design_matrix: observations mix co-runner counts %s' % sorted(n_cor))
    X = build_features([o.layer for o in observations], [o.iso_ms for o in observations],
                       [o.loads(processor_kinds) for o in observations])
    assert X.shape[1] == len(feature_names(n_cor.pop()))
    y = np.array([o.slowdown for o in observations])
    iso = np.array([o.iso_ms for o in observations])
    return X, y, iso


def split_indices(n: int, test_fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError('test_fraction must be in (0, 1), got %r' % (test_fraction,))
    perm = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * test_fraction)))
    return perm[n_test:], perm[:n_test]


def corun_accuracy(pred_slowdown: np.ndarray, true_slowdown: np.ndarray,
                   iso_ms: np.ndarray) -> float:
    """Accuracy of predicted co-run latency ``pred x iso`` vs measured ``true x iso``."""
    return accuracy_pct(true_slowdown * iso_ms, pred_slowdown * iso_ms)


def compare(dataset: Dataset, *, configs: Optional[Sequence[str]] = None,
            regressors: Optional[Sequence[str]] = None, test_fraction: float = 0.2,
            seed: int = 0, progress: Optional[Callable[[int], None]] = None
            ) -> Tuple[Dict[str, Dict[str, float]], Dict[str, InterferenceModel]]:
    """Fit every regressor per configuration on the same split; return
    ``({regressor: {config: accuracy %}}, {config: fitted MLP})``.

    The returned MLPs are the ones scored (trained on the training split only).
    """
    kinds = dataset.processor_kinds
    configs = list(configs) if configs is not None else dataset.configs()
    names = list(regressors) if regressors is not None else list(regressor_names())
    table: Dict[str, Dict[str, float]] = {name: {} for name in names}
    mlps: Dict[str, InterferenceModel] = {}
    for ci, cfg in enumerate(configs):
        obs = dataset.select(cfg, source='random')
        if len(obs) < 10:
            raise ConfigError('configuration %r has %d random samples; need at least 10'
                              % (cfg, len(obs)))
        X, y, iso = design_matrix(obs, kinds)
        tr, te = split_indices(len(y), test_fraction, seed + ci)
        for name in names:
            est = make_regressor(name, seed)
            est.fit(X[tr], y[tr])
            table[name][cfg] = corun_accuracy(np.asarray(est.predict(X[te])), y[te], iso[te])
            if name == 'mlp':
                mlps[cfg] = est
            if progress is not None:
                progress(1)
    return table, mlps


def evaluate_observations(models: Mapping[str, Any], observations: Sequence[Observation],
                          processor_kinds: Mapping[str, str]) -> Dict[str, Dict[str, float]]:
    """Accuracy and sample count per configuration of fitted models on other observations
    (e.g. zoo layers): ``{config: {'accuracy': %, 'samples': n}}``."""
    by_cfg: Dict[str, List[Observation]] = {}
    for o in observations:
        by_cfg.setdefault(o.config, []).append(o)
    out = {}
    for cfg, obs in by_cfg.items():
        if cfg not in models:
            continue
        X, y, iso = design_matrix(obs, processor_kinds)
        pred = np.asarray(models[cfg].predict(X))
        out[cfg] = {'accuracy': corun_accuracy(pred, y, iso), 'samples': len(obs),
                    'no_interference_accuracy': corun_accuracy(np.ones_like(y), y, iso)}
    return out


def evaluate_model_level(latency: Any, twin: Any, models: Sequence[Any], *, pairs: int = 30,
                         triples: int = 20, seed: int = 0, iterations: int = 5,
                         progress: Optional[Callable[[int], None]] = None) -> Dict[str, Any]:
    """Model-level co-run latency error against the twin's measured co-run latency.

    Random pairs (GPU + DLA0) and triples (GPU + DLA0 + DLA1) of distinct zoo models; every
    model of a mapping is one prediction (``latency.predict_model_latency_ms``) compared with
    ``twin.corun``. Also reports the error of assuming no interference (isolated latency).
    """
    from hetero_infer.interference.slowdown_model import accuracy_pct
    plat = latency.platform
    gpu = plat.gpu_id
    dlas = [p for p, pr in plat.processors.items() if pr.kind == 'dla']
    if gpu is None or len(dlas) < 2:
        raise ConfigError('model-level evaluation needs a GPU and two DLAs; platform %s has %s'
                          % (plat.name, list(plat.processor_ids)))
    rng = np.random.default_rng([seed, 3])
    out: Dict[str, Any] = {}
    for label, procs, count in (('pairs', (gpu, dlas[0]), pairs),
                                ('triples', (gpu, dlas[0], dlas[1]), triples)):
        meas_all, pred_all, iso_all, cases = [], [], [], []
        for i in range(count):
            pick = rng.choice(len(models), size=len(procs), replace=False)
            jobs = {p: models[j] for p, j in zip(procs, pick)}
            meas = twin.corun(jobs, iterations=iterations, seed=int(seed * 1000 + i))
            for p, m in jobs.items():
                cors = {q: n for q, n in jobs.items() if q != p}
                pred = latency.predict_model_latency_ms(m, p, cors)
                iso = plat.isolated_latency_ms(m, p)
                meas_all.append(meas[p])
                pred_all.append(pred)
                iso_all.append(iso)
                cases.append({'model': m.name, 'proc': p,
                              'corunners': {q: n.name for q, n in cors.items()},
                              'isolated_ms': round(iso, 4), 'measured_ms': round(meas[p], 4),
                              'predicted_ms': round(pred, 4)})
            if progress is not None:
                progress(1)
        if not cases:
            continue
        acc = accuracy_pct(meas_all, pred_all)
        base = accuracy_pct(meas_all, iso_all)
        out[label] = {'mappings': count, 'predictions': len(cases),
                      'mape_pct': 100.0 - acc, 'accuracy': acc,
                      'no_interference_mape_pct': 100.0 - base, 'cases': cases}
    return out
