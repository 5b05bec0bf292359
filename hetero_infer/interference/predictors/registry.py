"""One registry of predictors keyed by their ``name``, like goals and schedulers."""

from typing import Dict, List, Type

from hetero_infer.errors import ConfigError

_REGISTRY: Dict[str, Type] = {}


def register_predictor(cls: Type) -> Type:
    """Register a :class:`~hetero_infer.interference.predictors.base.Predictor` class under its
    ``name`` (usable as a class decorator).

    :raises ConfigError: another class is registered under that name.
    """
    known = _REGISTRY.get(cls.name)
    if known is not None and known is not cls:
        raise ConfigError('predictor %r is already registered (%r)' % (cls.name, known))
    _REGISTRY[cls.name] = cls
    return cls


def known_predictors() -> List[str]:
    return sorted(_REGISTRY)


def predictor_class(name: str) -> Type:
    """:raises ConfigError: unknown name (the message lists the known ones)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError('unknown predictor %r (known: %s)'
                          % (name, ', '.join(known_predictors()))) from None
