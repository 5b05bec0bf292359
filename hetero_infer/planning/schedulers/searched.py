"""Shared by the search-based schedulers: sampled-simulation search with a given predictor."""

import functools
from dataclasses import dataclass
from typing import Optional

from hetero_infer.interference.predictors.base import Predictor
from hetero_infer.planning.policy import uniform_policy
from hetero_infer.planning.router import PriorityRouter
from hetero_infer.planning.schedulers.interface import (
                                                   Plan,
                                                   PlanContext,
                                                   Scheduler,
                                                   SchedulerOptions,
)
from hetero_infer.planning.search import SimSettings, build_problem, search


@dataclass(frozen=True)
class SearchOptions(SchedulerOptions):
    """How the search-based schedulers search (the oracle reads ``confidence``, ``workers`` and
    ``max_refine_evals``; its sample count and candidates are ``OracleOptions``').

    :param top_fraction, confidence: the sampling guarantee (n = 459 for 1% / 99%).
    :param n_samples: sample exactly this many policies instead (the serving node's
        ``plan_samples``); None = from the guarantee.
    :param workers: processes a search may use (1 = serial).
    :param max_refine_evals: simulations the refinement of the best samples may spend.
    :param keep_top: how many of a search's best policies its result keeps as candidates.
    """

    top_fraction: float = 0.01
    confidence: float = 0.99
    n_samples: Optional[int] = None
    workers: int = 1
    max_refine_evals: int = 120
    keep_top: int = 4


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
    seed_schedulers = ('base', 'fastest_only')

    def seed_allocations(self, ctx: PlanContext) -> list:
        """Allocations the search must consider besides its samples: the ``base`` and
        ``fastest_only`` seed plans' and an even split."""
        out = [ctx.seed_plans[n].policy.allocation for n in ('base', 'fastest_only')]
        out.append(uniform_policy(ctx.app_names, ctx.platform.processor_ids,
                                  ctx.mask()).allocation)
        return out

    def predictor(self, ctx: PlanContext) -> Predictor:
        """The registry's predictor ``predictor_kind``, made for ``ctx`` by the class's
        ``for_context`` once per context (``ctx.predictors``: the goodput and SLO99 plans of a
        context, and schedulers naming the same kind, share it: the interference model is
        loaded once, the twin's co-runs measured once).

        :raises ConfigError: ``predictor_kind`` is not a registered predictor.
        """
        pred = ctx.predictors.get(self.predictor_kind)
        if pred is None:
            from hetero_infer.interference.predictors import get_predictor
            pred = get_predictor(self.predictor_kind).for_context(ctx)
            ctx.predictors[self.predictor_kind] = pred
        return pred

    def search_args(self, ctx: PlanContext) -> dict:
        opts = ctx.option(SearchOptions)
        return {'top_fraction': opts.top_fraction, 'confidence': opts.confidence,
                'n_samples': opts.n_samples, 'max_refine_evals': opts.max_refine_evals,
                'keep_top': max(1, opts.keep_top),
                'seed_allocations': self.seed_allocations(ctx),
                'router_choices': self.router_choices}

    def settings(self, ctx: PlanContext) -> SimSettings:
        """The simulation settings this scheduler plans with (the context's by default)."""
        return ctx.settings

    def _plan(self, ctx: PlanContext) -> Plan:
        pred = self.predictor(ctx)
        problem = build_problem(ctx.platform, ctx.apps, pred, ctx.goal, self.settings(ctx))
        result = search(problem, seed=ctx.seed, workers=ctx.option(SearchOptions).workers,
                        predictor_name=pred.name, **self.search_args(ctx))
        return Plan(self.name, router_factory(result.policy, ctx.settings),
                    policy=result.policy, search=result, notes=result.floor_note())
