"""The talk's "base throughput" scheduler.

Definition used here: every application's requests are split over the processors it can run
on in proportion to each processor's isolated throughput for its model
(``A[i, p] = (1 / L[i, p]) / sum_q (1 / L[i, q])``, ``L`` the isolated latency), and the priority
router enforces that split. It maximises each model's stand-alone throughput and ignores both
the other applications and memory interference.
"""

from hetero_infer.planning.policy import uniform_policy
from hetero_infer.planning.schedulers.interface import Plan, PlanContext, Scheduler
from hetero_infer.planning.schedulers.searched import BASELINE_ROUTER, router_factory


class BaseThroughputScheduler(Scheduler):
    name = 'base'
    description = 'split each model over processors in proportion to isolated throughput'
    evaluated = True

    def _plan(self, ctx: PlanContext) -> Plan:
        iso = ctx.isolated_ms()
        policy = uniform_policy(ctx.app_names, ctx.platform.processor_ids, ctx.mask(),
                                weights=1.0 / iso, router=BASELINE_ROUTER)
        return Plan(self.name, router_factory(policy, ctx.settings), policy=policy)


SCHEDULER = BaseThroughputScheduler()
