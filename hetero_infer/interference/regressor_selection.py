"""Choosing the slowdown regressor per configuration by cross-validation.

For each co-run configuration the samples are split as in :func:`regressors.compare` (seeded,
``test_fraction`` held out). On the training part every candidate kind (MLP, random forest,
k-neighbours, gradient boosting, SVR: the regressor registry's ``candidate`` kinds, each searched
over its class's ``search_space()``) gets its hyperparameters searched
with scikit-learn's ``HalvingRandomSearchCV`` (``RandomizedSearchCV`` below 90 samples, where
halving has too little to halve), scored by the project's accuracy (``100 x (1 - MAPE)`` of the
slowdown) in ``cv``-fold cross-validation. The kind with the best cross-validated accuracy is
selected; ties within :data:`TIE_POINTS` go to the MLP (the talk's model, cheapest to serve),
and to a constant (the registry's ``constant`` kinds: no interference, then the median
slowdown) before any regressor: a board whose co-runs a constant predicts as well has no
learnable interference.
Each kind's best hyperparameters are then refitted on the whole training part and scored on the
held-out part, which is the accuracy reported beside the test-retest ceiling (the held-out part
played no role in the choice).

``n_iter`` bounds the candidates per kind (0: no search, default hyperparameters, still
cross-validated); ``max_search_samples`` subsamples the training part for the search only, so a
20,000-sample twin dataset costs about what a 2,000-sample one does.
"""

import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from hetero_infer.errors import ConfigError
from hetero_infer.interference.regressor_registry import (
    candidate_kinds,
    constant_kinds,
    regressor_class,
    regressor_kinds,
)
from hetero_infer.interference.slowdown_model import accuracy_pct

#: A kind must beat the MLP's cross-validated accuracy by more than this to replace it.
TIE_POINTS = 0.1


def search_space(kind: str) -> Dict[str, Any]:
    """Hyperparameter distributions searched for ``kind`` (its class's ``search_space()``).

    :raises ConfigError: unknown kind.
    """
    return regressor_class(kind).search_space()


def make_model(kind: str, params: Optional[Dict[str, Any]] = None, seed: int = 0) -> Any:
    """An unfitted regressor of ``kind`` with ``params`` (JSON form: lists for tuples).

    :raises ConfigError: unknown kind (the message lists the known ones).
    """
    cls = regressor_class(kind)
    params = dict(params or {})
    if 'hidden_layer_sizes' in params:
        params['hidden_layer_sizes'] = tuple(int(h) for h in params['hidden_layer_sizes'])
    if 'random_state' in cls().get_params():
        params.setdefault('random_state', seed)
    return cls(**params)


def _json_params(params: Dict[str, Any]) -> Dict[str, Any]:
    out = {}
    for k, v in params.items():
        if isinstance(v, tuple):
            v = [int(x) for x in v]
        elif isinstance(v, (np.integer,)):
            v = int(v)
        elif isinstance(v, (np.floating, float)):
            v = float(v)
        out[k] = v
    return out


def _scorer() -> Any:
    from sklearn.metrics import make_scorer
    return make_scorer(accuracy_pct)


def search_kind(kind: str, X: np.ndarray, y: np.ndarray, *, n_iter: int, cv: int,
                seed: int) -> Tuple[Dict[str, Any], float]:
    """``(best hyperparameters, their cross-validated accuracy)`` for one kind."""
    import warnings

    from sklearn.model_selection import KFold, cross_val_score
    folds = KFold(n_splits=cv, shuffle=True, random_state=seed)
    base = make_model(kind, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # convergence warnings of small MLP fits
        if n_iter <= 0 or kind in constant_kinds():  # constants have no hyperparameters
            scores = cross_val_score(base, X, y, cv=folds, scoring=_scorer())
            return {}, float(np.mean(scores))
        space = search_space(kind)
        if len(y) >= 90:
            from sklearn.experimental import enable_halving_search_cv  # noqa: F401
            from sklearn.model_selection import HalvingRandomSearchCV
            search = HalvingRandomSearchCV(base, space, n_candidates=n_iter, factor=3,
                                           cv=folds, scoring=_scorer(), random_state=seed,
                                           refit=False, n_jobs=1,
                                           min_resources=max(30, 3 * cv))
        else:
            from sklearn.model_selection import RandomizedSearchCV
            search = RandomizedSearchCV(base, space, n_iter=n_iter, cv=folds,
                                        scoring=_scorer(), random_state=seed, refit=False,
                                        n_jobs=1)
        search.fit(X, y)
    # Halving's last round used the most samples; its best is the one to trust.
    return _json_params(search.best_params_), float(search.best_score_)


def select(X: np.ndarray, y: np.ndarray, iso: np.ndarray, tr: np.ndarray, te: np.ndarray, *,
           candidates: Optional[Sequence[str]] = None, n_iter: int = 8, cv: int = 3,
           seed: int = 0, max_search_samples: int = 2000,
           progress: Optional[Callable[[int], None]] = None) -> Dict[str, Any]:
    """Search, cross-validate and hold-out-score every candidate on one configuration.

    :returns: ``{'kinds': {kind: {'params', 'cv_accuracy', 'holdout_accuracy', 'search_s'}},
        'selected': {'regressor', 'params', 'accuracy', 'cv_accuracy', 'why'}}`` (``accuracy``
        is the held-out accuracy, comparable with the test-retest accuracy).
    :param candidates: kinds to try (default: the registry's ``candidate`` kinds).
    :raises ConfigError: unknown kind, ``cv`` < 2 or too few samples.
    """
    from hetero_infer.interference.regressor_comparison import corun_accuracy
    if cv < 2:
        raise ConfigError('cv must be >= 2, got %r' % (cv,))
    if len(tr) < 2 * cv:
        raise ConfigError('%d training samples are too few for %d-fold cross-validation'
                          % (len(tr), cv))
    candidates = candidate_kinds() if candidates is None else list(candidates)
    for k in candidates:
        regressor_class(k)  # unknown kinds fail before any search
    rng = np.random.default_rng([seed, 31])
    sub = tr if len(tr) <= max_search_samples else rng.choice(tr, max_search_samples,
                                                               replace=False)
    kinds: Dict[str, Dict[str, Any]] = {}
    for k in candidates:
        t0 = time.perf_counter()
        params, cv_acc = search_kind(k, X[sub], y[sub], n_iter=n_iter, cv=cv, seed=seed)
        est = make_model(k, params, seed=seed).fit(X[tr], y[tr])
        kinds[k] = {'params': params, 'cv_accuracy': round(cv_acc, 3),
                    'holdout_accuracy': round(corun_accuracy(np.asarray(est.predict(X[te])),
                                                             y[te], iso[te]), 3),
                    'search_s': round(time.perf_counter() - t0, 2)}
        if progress is not None:
            progress(1)
    order = sorted(kinds, key=lambda k: -kinds[k]['cv_accuracy'])
    best = order[0]
    if 'mlp' in kinds and best != 'mlp' and \
            kinds[best]['cv_accuracy'] - kinds['mlp']['cv_accuracy'] <= TIE_POINTS:
        best = 'mlp'
    runner = [k for k in order if k != best]
    why = ('highest %d-fold cross-validated accuracy on the training split: %.2f'
           % (cv, kinds[best]['cv_accuracy']))
    if runner:
        why += ' (next: %s %.2f)' % (runner[0], kinds[runner[0]]['cv_accuracy'])
    if best == 'mlp' and order[0] != 'mlp':
        why = ('MLP kept: %s is within %.1f point in cross-validation (%.2f vs %.2f)'
               % (order[0], TIE_POINTS, kinds[order[0]]['cv_accuracy'],
                  kinds['mlp']['cv_accuracy']))
    for const in constant_kinds():
        if const in kinds and const != best and \
                kinds[best]['cv_accuracy'] - kinds[const]['cv_accuracy'] <= TIE_POINTS:
            why = ('%s kept: %s is within %.1f point of it in cross-validation (%.2f vs %.2f): '
                   'no learnable interference' % (title(const), best, TIE_POINTS,
                                                  kinds[best]['cv_accuracy'],
                                                  kinds[const]['cv_accuracy']))
            best = const
            break
    why += '; hyperparameters by %s over %d candidates' % (
        'no search (defaults)' if n_iter <= 0 else
        'HalvingRandomSearchCV' if len(sub) >= 90 else 'RandomizedSearchCV', max(n_iter, 1))
    return {'kinds': kinds,
            'selected': {'regressor': best, 'params': kinds[best]['params'],
                         'accuracy': kinds[best]['holdout_accuracy'],
                         'cv_accuracy': kinds[best]['cv_accuracy'], 'why': why,
                         'search_samples': int(len(sub))}}


def title(kind: str) -> str:
    """What reports call ``kind`` (its class's ``title``; the kind itself when unknown)."""
    if kind not in regressor_kinds():
        return kind
    return getattr(regressor_class(kind), 'title', '') or kind


__all__: List[str] = ['TIE_POINTS', 'candidate_kinds', 'make_model', 'search_kind',
                      'search_space', 'select', 'title']
