"""One registry of schedulers keyed by the name a user types; duplicates are refused."""

from typing import Dict, List

from hetero_infer.errors import ConfigError
from hetero_infer.planning.schedulers.interface import Scheduler

_REGISTRY: Dict[str, Scheduler] = {}


def register_scheduler(scheduler: Scheduler) -> Scheduler:
    """:raises ConfigError: a scheduler of that name is already registered."""
    if scheduler.name in _REGISTRY:
        raise ConfigError('scheduler %r is already registered' % scheduler.name)
    _REGISTRY[scheduler.name] = scheduler
    return scheduler


def known_schedulers() -> List[str]:
    _load_builtins()
    return list(_REGISTRY)


def get_scheduler(name: str) -> Scheduler:
    """:raises ConfigError: unknown name (the message lists the known ones)."""
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError('unknown scheduler %r (known: %s)'
                          % (name, ', '.join(_REGISTRY))) from None


_LOADED = []


def _load_builtins() -> None:
    if _LOADED:
        return
    _LOADED.append(True)
    from hetero_infer.planning.schedulers import (
        base_throughput,
        fastest_only,
        interference_aware,
        least_finish_time,
        no_interference,
        oracle,
        round_robin,
        talk_exact,
    )
    for module in (interference_aware, talk_exact, no_interference, base_throughput,
                   round_robin, least_finish_time, fastest_only, oracle):
        if module.SCHEDULER.name not in _REGISTRY:
            register_scheduler(module.SCHEDULER)
