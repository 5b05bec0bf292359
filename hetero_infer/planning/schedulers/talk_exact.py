"""The talk's rule as stated, kept as its own scheduler so the reproduction stays visible.

The same sampled-simulation search with the MLP interference model as ``interference_aware``,
but routed by the talk's literal priority rule: exact ties only (``tie_tolerance`` 0), the
earliest-finish tie-break on isolated latencies, no overflow to idle processors when a queue is
full, no SLO-aware dispatch, one router configuration (not chosen by the search), no baseline
plans seeded into the candidates, and one planner trace.
"""

import dataclasses

from hetero_infer.planning.schedulers.interface import PlanContext
from hetero_infer.planning.schedulers.interference_aware import InterferenceAwareScheduler
from hetero_infer.planning.search import SimSettings

#: The talk's router: exact share tracking and nothing else.
TALK_ROUTER = {'tie_tolerance': 0.0, 'overflow': False, 'slo_dispatch': 'off',
               'share_tracking': True}


class TalkExactScheduler(InterferenceAwareScheduler):
    name = 'talk_exact'
    description = ("the talk's literal rule: interference-aware search, exact ties, isolated "
                   'latencies, no overflow or SLO-aware dispatch')
    router_choices = (TALK_ROUTER,)
    seed_schedulers = ()

    def seed_allocations(self, ctx: PlanContext) -> list:
        return []

    def settings(self, ctx: PlanContext) -> SimSettings:
        return dataclasses.replace(ctx.settings, router_tie_tolerance=0.0, plan_traces=1)


SCHEDULER = TalkExactScheduler()
