"""Shared by the search-based schedulers: sampled-simulation search with a given predictor."""

import functools

from hetero_infer.core.router import PriorityRouter
from hetero_infer.core.schedulers.interface import Plan, PlanContext, Scheduler
from hetero_infer.core.search import build_problem, search


def router_factory(policy, settings):
    """A fresh :class:`PriorityRouter` per run, configured like the planner's: the settings'
    decay, and the router options the policy records (band, overflow, SLO-aware dispatch)."""
    return functools.partial(PriorityRouter, policy, decay=settings.router_decay)


class SearchScheduler(Scheduler):
    """Search policies scored with ``self.predictor(ctx)``; route with the priority router."""

    def predictor(self, ctx: PlanContext):
        raise NotImplementedError

    def search_args(self, ctx: PlanContext) -> dict:
        return {'top_fraction': ctx.top_fraction, 'confidence': ctx.confidence,
                'n_samples': ctx.n_samples, 'max_refine_evals': ctx.max_refine_evals,
                'keep_top': max(1, ctx.keep_top)}

    def _plan(self, ctx: PlanContext) -> Plan:
        pred = self.predictor(ctx)
        problem = build_problem(ctx.platform, ctx.apps, pred, ctx.goal, ctx.settings)
        result = search(problem, seed=ctx.seed, workers=ctx.workers,
                        predictor_name=pred.name, **self.search_args(ctx))
        return Plan(self.name, router_factory(result.policy, ctx.settings),
                    policy=result.policy, search=result)
