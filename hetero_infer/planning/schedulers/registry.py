"""The scheduler family's registry (:class:`hetero_infer.registry.Registry`), keyed by the name a
user types, and the questions the rest of the code asks it.

The built-in schedulers are registered as ``'module:SCHEDULER'`` entries (imported on first
use), in the order of the talk's plots, which is the order of the evaluation's output; installed
packages add theirs in the entry-point group ``hetero_infer.schedulers`` (``name = module:Class``,
a :class:`Scheduler` subclass or instance). What the commands and the evaluation need to know
about a scheduler is declared on it (:class:`Scheduler`'s class attributes ``searches``,
``needs_interference_model``, ``evaluated``), and read here.
"""

from typing import Any, List

from hetero_infer.errors import ConfigError
from hetero_infer.planning.schedulers.interface import Scheduler
from hetero_infer.registry import Registry

#: Entry-point group of schedulers installed packages provide.
ENTRY_POINT_GROUP = 'hetero_infer.schedulers'


def _adapt(name: str, obj: Any) -> Scheduler:
    if isinstance(obj, type) and issubclass(obj, Scheduler):
        obj = obj()
    if not isinstance(obj, Scheduler):
        raise ConfigError('scheduler %r is %r, not a Scheduler (subclass '
                          'hetero_infer.planning.schedulers.Scheduler)' % (name, obj))
    if obj.name != name:
        raise ConfigError('scheduler registered as %r calls itself %r (its name attribute): '
                          'register it under its own name' % (name, obj.name))
    return obj


SCHEDULERS = Registry('scheduler', group=ENTRY_POINT_GROUP, adapt=_adapt)

_PACKAGE = 'hetero_infer.planning.schedulers.'
for _name, _spec in (
        ('interference_aware', 'interference_aware:SCHEDULER'),
        ('talk_exact', 'talk_exact:SCHEDULER'),
        ('no_interference', 'no_interference:SCHEDULER'),
        ('base', 'base_throughput:SCHEDULER'),
        ('round_robin', 'round_robin:SCHEDULER'),
        ('least_finish_time', 'least_finish_time:SCHEDULER'),
        ('fastest_only', 'fastest_only:SCHEDULER'),
        ('oracle', 'oracle:SCHEDULER')):
    SCHEDULERS.register(_name, _PACKAGE + _spec)


def register_scheduler(scheduler: Scheduler) -> Scheduler:
    """Register a scheduler (instance or class) under its ``name``.

    :raises ConfigError: a scheduler of that name is already registered.
    """
    SCHEDULERS.register(scheduler.name, scheduler)
    return scheduler


def known_schedulers() -> List[str]:
    """Every scheduler's name: the built-in ones in the talk's order, then installed ones."""
    return SCHEDULERS.names()


def get_scheduler(name: str) -> Scheduler:
    """:raises ConfigError: unknown name (the message lists the known ones)."""
    return SCHEDULERS.get(name)


def evaluated_schedulers() -> List[str]:
    """What ``hetero-infer evaluate`` runs by default (``evaluated``), in registry order."""
    return SCHEDULERS.names_where(lambda s: s.evaluated)


def searching_schedulers() -> List[str]:
    """The schedulers that search for the goal (``searches``): their plan depends on it."""
    return SCHEDULERS.names_where(lambda s: s.searches)
