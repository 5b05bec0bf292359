"""Shared by the search-based schedulers: sampled-simulation search with a given predictor."""

import functools

from hetero_infer.planning.router import PriorityRouter
from hetero_infer.planning.schedulers.interface import Plan, PlanContext, Scheduler
from hetero_infer.planning.search import build_problem, search


def router_factory(policy, settings):
    """A fresh :class:`PriorityRouter` per run, configured like the planner's: the settings'
    decay, and the router options the policy records (band, overflow, SLO-aware dispatch)."""
    return functools.partial(PriorityRouter, policy, decay=settings.router_decay)


#: The router of the rule-based policy baselines (``base``, ``fastest_only``): the band the
#: evaluation always used, no overflow (a full queue drops, as the baselines are defined), no
#: SLO-aware dispatch.
BASELINE_ROUTER = {'tie_tolerance': 0.5, 'overflow': False, 'slo_dispatch': 'off'}

#: The router option sets the searched schedulers choose among, per scenario and goal, by the
#: mean goal value of their finalists over the planner's traces: a tie band of 0.25, 0.5 or 1,
#: or no share tracking (every processor the plan gives a share is tied: earliest expected
#: finish among them, which is least_finish_time restricted to the plan's processors; with the
#: seeded even plan, exactly least_finish_time), each with SLO-aware dispatch off or on.
ROUTER_CHOICES = tuple(dict(band, overflow=True, slo_dispatch=d)
                       for d in ('off', 'drop')
                       for band in ({'tie_tolerance': 0.25}, {'tie_tolerance': 0.5},
                                    {'tie_tolerance': 1.0}, {'share_tracking': False}))


class SearchScheduler(Scheduler):
    """Search policies scored with ``self.predictor(ctx)``; route with the priority router.

    The baselines' plans (``base``, ``fastest_only``, an even split) are seeded into the
    search's candidates, and the router options come from :data:`ROUTER_CHOICES`.
    """

    searches = True
    #: The predictor the search scores policies with: a name in the predictor registry
    #: (:mod:`hetero_infer.interference.predictors.registry`), made by :meth:`predictor`.
    predictor_kind = ''
    router_choices = ROUTER_CHOICES

    def seed_allocations(self, ctx: PlanContext) -> list:
        """Allocations the search must consider besides its samples."""
        from hetero_infer.planning.policy import uniform_policy
        from hetero_infer.planning.schedulers.registry import get_scheduler
        out = [get_scheduler(n).plan(ctx).policy.allocation for n in ('base', 'fastest_only')]
        out.append(uniform_policy(ctx.app_names, ctx.platform.processor_ids,
                                  ctx.mask()).allocation)
        return out

    def predictor(self, ctx: PlanContext):
        """The registry's predictor ``predictor_kind``, made for ``ctx`` by the class's
        ``for_context`` (a subclass may override this to share one across plans of a context).

        :raises ConfigError: ``predictor_kind`` is not a registered predictor.
        """
        from hetero_infer.interference.predictors import get_predictor
        return get_predictor(self.predictor_kind).for_context(ctx)

    def search_args(self, ctx: PlanContext) -> dict:
        return {'top_fraction': ctx.top_fraction, 'confidence': ctx.confidence,
                'n_samples': ctx.n_samples, 'max_refine_evals': ctx.max_refine_evals,
                'keep_top': max(1, ctx.keep_top),
                'seed_allocations': self.seed_allocations(ctx),
                'router_choices': self.router_choices}

    def settings(self, ctx: PlanContext):
        """The simulation settings this scheduler plans with (the context's by default)."""
        return ctx.settings

    def _plan(self, ctx: PlanContext) -> Plan:
        pred = self.predictor(ctx)
        problem = build_problem(ctx.platform, ctx.apps, pred, ctx.goal, self.settings(ctx))
        result = search(problem, seed=ctx.seed, workers=ctx.workers,
                        predictor_name=pred.name, **self.search_args(ctx))
        return Plan(self.name, router_factory(result.policy, ctx.settings),
                    policy=result.policy, search=result)
