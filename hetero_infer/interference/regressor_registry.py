"""The regressor family's registry (:class:`hetero_infer.registry.Registry`): the slowdown
regressors an interference model file may hold, keyed by their ``kind`` (the name in the model
file and in ``accuracy.json``).

A regressor is a scikit-learn-style estimator class (``fit(X, slowdown)``, ``predict(X)``,
``get_params()``) that stores itself as plain arrays (``to_arrays()`` and the class method
``from_arrays(entry, where=...)``) and declares its facts as class attributes: ``kind``,
``title`` (what reports print), ``candidate`` (model selection tries it by default),
``constant`` (it ignores the features: preferred on a tie) and the class
method ``search_space()`` (hyperparameter distributions for the selection's search). The
built-in kinds are ``'module:Class'`` entries; installed packages add theirs in the entry-point
group ``hetero_infer.regressors`` (``kind = module:Class``).
"""

from typing import Any, List

from hetero_infer.errors import ConfigError
from hetero_infer.registry import Registry

#: Entry-point group of regressors installed packages provide.
ENTRY_POINT_GROUP = 'hetero_infer.regressors'
#: What a regressor class must have (checked when it is registered or loaded).
_REQUIRED = ('fit', 'predict', 'get_params', 'to_arrays', 'from_arrays', 'search_space')


def _adapt(name: str, obj: Any) -> type:
    if not isinstance(obj, type):
        raise ConfigError('regressor %r is %r, not a regressor class' % (name, obj))
    missing = [a for a in _REQUIRED if not callable(getattr(obj, a, None))]
    if missing:
        raise ConfigError('regressor %r (%s.%s) lacks %s' % (name, obj.__module__,
                                                              obj.__qualname__,
                                                              ', '.join(missing)))
    if getattr(obj, 'kind', None) != name:
        raise ConfigError('regressor registered as %r has kind %r: register it under its kind'
                          % (name, getattr(obj, 'kind', None)))
    return obj


REGRESSORS = Registry('regressor', group=ENTRY_POINT_GROUP, adapt=_adapt)

# in the order model selection tries them (ties in cross-validated accuracy keep this order)
for _kind, _spec in (('mlp', 'slowdown_model:InterferenceModel'),
                     ('random_forest', 'regressor_models:ForestModel'),
                     ('knn', 'regressor_models:KNNModel'),
                     ('hist_gb', 'regressor_models:HistGBModel'),
                     ('svr', 'regressor_models:SVRModel'),
                     # the constants a learned model must beat, simplest first
                     ('none', 'regressor_models:NoInterferenceModel'),
                     ('median', 'regressor_models:MedianModel')):
    REGRESSORS.register(_kind, 'hetero_infer.interference.' + _spec)


def register_regressor_kind(cls: type) -> type:
    """Register a regressor class under its ``kind`` (usable as a class decorator).

    :raises ConfigError: that kind is already registered, or the class lacks the contract.
    """
    REGRESSORS.register(getattr(cls, 'kind', None), cls)
    return cls


def regressor_kinds() -> List[str]:
    """Every registered kind, in registration order."""
    return REGRESSORS.names()


def regressor_class(kind: str) -> type:
    """:raises ConfigError: unknown kind (the message lists the known ones)."""
    return REGRESSORS.get(kind)


def candidate_kinds() -> List[str]:
    """The kinds model selection tries by default (``candidate``), in registration order."""
    return REGRESSORS.names_where(lambda cls: getattr(cls, 'candidate', False))


def constant_kinds() -> List[str]:
    """The constant kinds (``constant``: no features used), simplest first; model selection
    prefers one to any regressor it ties with."""
    return REGRESSORS.names_where(lambda cls: getattr(cls, 'constant', False))
