"""Fastest processor only: every request of a model goes to its fastest processor (isolated)."""

import numpy as np

from hetero_infer.planning.policy import Policy
from hetero_infer.planning.schedulers.interface import Plan, PlanContext, Scheduler
from hetero_infer.planning.schedulers.searched import BASELINE_ROUTER, router_factory


class FastestOnlyScheduler(Scheduler):
    name = 'fastest_only'
    description = "all of a model's requests on its fastest processor"
    evaluated = True

    def _plan(self, ctx: PlanContext) -> Plan:
        iso = ctx.isolated_ms()
        alloc = np.zeros(iso.shape)
        alloc[np.arange(iso.shape[0]), np.argmin(iso, axis=1)] = 1.0
        policy = Policy(ctx.app_names, ctx.platform.processor_ids, alloc, mask=ctx.mask(),
                        router=BASELINE_ROUTER)
        return Plan(self.name, router_factory(policy, ctx.settings), policy=policy)


SCHEDULER = FastestOnlyScheduler()
