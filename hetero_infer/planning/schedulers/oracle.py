"""The oracle: an upper reference, the best plan found anywhere, chosen by the twin itself.

1. Search as the other planners do, but with the :class:`TwinPredictor` (model-level co-run
   latencies measured on the digital twin, i.e. a perfect interference model) and twice the
   refinement budget (``oracle_top_fraction`` sets the samples; default the same 459).
2. Candidates: its own best ``rerank`` policies plus **every other scheduler's plan** for the
   same goal (its seed plans, ``seeds_every_evaluated``: given by the caller, as the
   evaluation does, or planned first by the driver), so no scheduler can hold a plan the oracle
   did not consider.
3. Each distinct candidate is served on the layer-level twin on traces whose seeds start at
   ``select_seed`` (disjoint from the evaluation's measurement traces, which the evaluation
   checks), and the one the goal scores highest is kept: ``select_traces`` runs of ``serve_s``
   for goals without SLO99 (default 20); for ``slo99_throughput`` the measurement's own
   estimator, the mean over ``slo99_traces`` (10) traces of each trace's throughput at SLO99
   by bisection. Both are raced: candidates more than 20% behind the best on the first trace
   are not run on the others (:func:`twin_measure.select_on_twin`). Under the applications'
   floors (``min_attainment``) only the candidates with the least weighted shortfall below
   them are raced, as every searched scheduler ranks its plans.

The knobs are :class:`OracleOptions`; the search's confidence, workers and refinement budget
(doubled) are the context's ``SearchOptions``.

What remains between the oracle and another scheduler in the evaluation is then selection
noise (the chosen plan was best on other traces), which the paired confidence intervals show.
"""

from dataclasses import dataclass
from typing import List, Mapping, Optional, Tuple, Union

import numpy as np

from hetero_infer.planning.schedulers.interface import (
    ORACLE_SELECT_SEED,
    Plan,
    PlanContext,
    SchedulerOptions,
)
from hetero_infer.planning.schedulers.searched import (
    SearchOptions,
    SearchScheduler,
    router_factory,
)
from hetero_infer.planning.search import build_problem, search
from hetero_infer.planning.twin_measure import select_on_twin


@dataclass(frozen=True)
class OracleOptions(SchedulerOptions):
    """The oracle's search and selection.

    :param top_fraction: its search's guarantee (its search is longer through twice the
        refinement budget and the re-ranking on the twin).
    :param rerank: how many of its own best candidates join the selection.
    :param serve_s: simulated seconds of each goodput-type selection run on the twin.
    :param select_traces: twin traces each candidate is scored on (goals without SLO99);
        ``slo99_traces`` the same for goals that need throughput at SLO99.
    :param select_seed: first arrival seed of the selection traces; keep it apart from any
        seed the plans are measured with (the evaluation checks that).
    :param twin_slo99: keyword arguments of the twin's SLO99 bisection the selection uses
        (:func:`hetero_infer.planning.twin_measure.twin_slo99_throughput`: ``hi_scale``,
        ``iterations``, ``requests``, ``min_app_requests``); ``None``: its defaults.
    """

    top_fraction: float = 0.01
    rerank: int = 4
    serve_s: float = 2.0
    select_traces: int = 20
    slo99_traces: int = 10
    select_seed: int = ORACLE_SELECT_SEED
    twin_slo99: Optional[Mapping[str, Union[int, float]]] = None


def _same_plan(a: Plan, b: Plan) -> bool:
    if a.policy is not None and b.policy is not None:
        return bool(np.array_equal(a.policy.allocation, b.policy.allocation)
                    and a.policy.router == b.policy.router)
    return a.policy is None and b.policy is None and a.source == b.source


class OracleScheduler(SearchScheduler):
    evaluated = True
    # made once per context (SearchScheduler.predictor): both goals share its co-runs; the
    # twin is the ground truth, seeded apart from the evaluation's runs (TwinPredictor)
    predictor_kind = 'twin'
    name = 'oracle'
    description = ('long search with ground-truth co-run latencies; its best candidates and '
                   "every other scheduler's plan chosen between on held-out twin traces")

    # every other evaluated scheduler's plan joins the candidates, in the registry's
    # (the evaluation's) order: on a tie between candidates the earlier one is kept
    seeds_every_evaluated = True

    def _plan(self, ctx: PlanContext) -> Plan:
        opts, search_opts = ctx.option(OracleOptions), ctx.option(SearchOptions)
        pred = self.predictor(ctx)
        problem = build_problem(ctx.platform, ctx.apps, pred, ctx.goal, ctx.settings)
        result = search(problem, seed=ctx.seed, workers=search_opts.workers,
                        predictor_name=pred.name, top_fraction=opts.top_fraction,
                        confidence=search_opts.confidence,
                        max_refine_evals=2 * search_opts.max_refine_evals,
                        keep_top=max(1, opts.rerank),
                        seed_allocations=self.seed_allocations(ctx),
                        router_choices=self.router_choices)
        cands: List[Tuple[str, Plan]] = []
        for k, policy in enumerate(result.candidates[:max(1, opts.rerank)]):
            cands.append(('oracle#%d' % k, Plan(self.name, router_factory(policy, ctx.settings),
                                                 policy=policy, source=self.name)))
        for name, plan in ctx.seed_plans.items():
            if not any(_same_plan(plan, c) for _, c in cands):
                cands.append((name, plan))
        best, report = select_on_twin(
            pred.twin, ctx.apps, ctx.goal, cands, serve_s=opts.serve_s,
            select_seed=opts.select_seed, select_traces=opts.select_traces,
            slo99_traces=opts.slo99_traces, twin_slo99=opts.twin_slo99)
        label, chosen = cands[best]
        # the candidate's own plan-time prediction of the floors, when it has one
        floor_note = chosen.search.floor_note() if chosen.search is not None and \
            chosen.source != self.name else result.floor_note()
        if floor_note:
            report += '; ' + floor_note
        return Plan(self.name, chosen.make_dispatcher, policy=chosen.policy, search=result,
                    source=chosen.source or label,
                    notes='chose %s of %d distinct candidates on held-out twin traces (%s)'
                          % (label, len(cands), report))


SCHEDULER = OracleScheduler()
