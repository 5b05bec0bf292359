"""Schedulers (the interference-aware planner and every baseline), one file each, one registry.

Every scheduler has one signature, ``scheduler.plan(PlanContext) -> Plan``; a plan's
``make_dispatcher()`` gives the object that places requests (twin, planner simulator, live node).
"""

from hetero_infer.planning.schedulers.interface import Plan, PlanContext, Scheduler
from hetero_infer.planning.schedulers.registry import (
                                                   get_scheduler,
                                                   known_schedulers,
                                                   register_scheduler,
)

#: The evaluation's schedulers, in the order of the talk's plots.
EVALUATED = ('interference_aware', 'talk_exact', 'no_interference', 'base', 'round_robin',
             'least_finish_time', 'fastest_only', 'oracle')

__all__ = ['EVALUATED', 'Plan', 'PlanContext', 'Scheduler', 'get_scheduler',
           'known_schedulers', 'register_scheduler']
