"""The predictor family's registry (:class:`hetero_infer.registry.Registry`), keyed by a
predictor's ``name``.

A searched scheduler names the predictor its search scores policies with (its class attribute
``predictor_kind``) and gets it here, made for its plan context by the class's
:meth:`~hetero_infer.interference.predictors.base.Predictor.for_context`. The built-in
predictors are ``'module:Class'`` entries; installed packages add theirs in the entry-point
group ``hetero_infer.predictors`` (``name = module:Class``, a :class:`Predictor` subclass).
"""

from typing import Any, List, Type

from hetero_infer.errors import ConfigError
from hetero_infer.interference.predictors.base import Predictor
from hetero_infer.registry import Registry

#: Entry-point group of predictors installed packages provide.
ENTRY_POINT_GROUP = 'hetero_infer.predictors'


def _adapt(name: str, obj: Any) -> Type[Predictor]:
    if not (isinstance(obj, type) and issubclass(obj, Predictor)):
        raise ConfigError('predictor %r is %r, not a Predictor subclass '
                          '(hetero_infer.interference.predictors.Predictor)' % (name, obj))
    if obj.name != name:
        raise ConfigError('predictor registered as %r calls itself %r (its name attribute): '
                          'register it under its own name' % (name, obj.name))
    return obj


PREDICTORS = Registry('predictor', group=ENTRY_POINT_GROUP, adapt=_adapt)

_PACKAGE = 'hetero_infer.interference.predictors.'
for _name, _spec in (('interference', 'interference:InterferencePredictor'),
                     ('isolated', 'isolated:IsolatedPredictor'),
                     ('twin', 'twin:TwinPredictor')):
    PREDICTORS.register(_name, _PACKAGE + _spec)


def register_predictor(cls: Type[Predictor]) -> Type[Predictor]:
    """Register a :class:`Predictor` class under its ``name`` (usable as a class decorator).

    :raises ConfigError: a predictor of that name is already registered.
    """
    PREDICTORS.register(cls.name, cls)
    return cls


def known_predictors() -> List[str]:
    """Every predictor's name, sorted."""
    return sorted(PREDICTORS.names())


def get_predictor(name: str) -> Type[Predictor]:
    """The predictor class registered as ``name``.

    :raises ConfigError: unknown name (the message lists the known ones).
    """
    return PREDICTORS.get(name)
