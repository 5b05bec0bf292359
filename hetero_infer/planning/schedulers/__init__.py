"""Schedulers (the interference-aware planner and every baseline), one file each, one registry.

Every scheduler has one signature, ``scheduler.plan(PlanContext) -> Plan``; a plan's
``make_dispatcher()`` gives the object that places requests (twin, planner simulator, live node).
What the evaluation and the commands need to know about a scheduler it declares as class
attributes (:class:`Scheduler`), read through the registry (:mod:`.registry`).
"""

from hetero_infer.planning.schedulers.interface import Plan, PlanContext, Scheduler
from hetero_infer.planning.schedulers.registry import (
                                                   ENTRY_POINT_GROUP,
                                                   SCHEDULERS,
                                                   evaluated_schedulers,
                                                   get_scheduler,
                                                   known_schedulers,
                                                   register_scheduler,
                                                   searching_schedulers,
)

__all__ = ['ENTRY_POINT_GROUP', 'Plan', 'PlanContext', 'SCHEDULERS', 'Scheduler',
           'evaluated_schedulers', 'get_scheduler', 'known_schedulers', 'register_scheduler',
           'searching_schedulers']


def __getattr__(name):
    # EVALUATED is no longer a list kept here but the registry's answer, computed when read
    # (the oracle's fallback reads it); a constant would freeze it before plug-ins load.
    if name == 'EVALUATED':
        return tuple(evaluated_schedulers())
    raise AttributeError('module %r has no attribute %r' % (__name__, name))
