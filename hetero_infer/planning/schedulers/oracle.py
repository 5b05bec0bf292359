"""The oracle: an upper reference, the best plan found anywhere, chosen by the twin itself.

1. Search as the other planners do, but with the :class:`TwinPredictor` (model-level co-run
   latencies measured on the digital twin, i.e. a perfect interference model) and twice the
   refinement budget (``oracle_top_fraction`` sets the samples; default the same 459).
2. Candidates: its own best ``oracle_rerank`` policies plus **every other scheduler's plan** for
   the same goal (``ctx.reference_plans``, or planned here when the context has none), so no
   scheduler can hold a plan the oracle did not consider.
3. Each distinct candidate is served on the layer-level twin on traces whose seeds start at
   ``oracle_select_seed`` (disjoint from the evaluation's measurement traces, which the
   evaluation checks), and the one the goal scores highest is kept: ``oracle_select_traces``
   runs of ``oracle_serve_s`` for goals without SLO99 (default 20); for ``slo99_throughput``
   the measurement's own estimator, the mean over ``oracle_slo99_traces`` (10) traces of each
   trace's throughput at SLO99 by bisection. Both are raced: candidates more than 20% behind
   the best on the first trace are not run on the others (:func:`twin_measure.select_on_twin`).

What remains between the oracle and another scheduler in the evaluation is then selection
noise (the chosen plan was best on other traces), which the paired confidence intervals show.
"""

from typing import List, Tuple

import numpy as np

from hetero_infer.interference.predictors import TwinPredictor
from hetero_infer.planning.schedulers.interface import Plan, PlanContext
from hetero_infer.planning.schedulers.searched import SearchScheduler, router_factory
from hetero_infer.planning.search import build_problem, search


def _same_plan(a: Plan, b: Plan) -> bool:
    if a.policy is not None and b.policy is not None:
        return bool(np.array_equal(a.policy.allocation, b.policy.allocation)
                    and a.policy.router == b.policy.router)
    return a.policy is None and b.policy is None and a.source == b.source


class OracleScheduler(SearchScheduler):
    evaluated = True
    predictor_kind = 'twin'  # made once per context below: both goals share its co-runs
    name = 'oracle'
    description = ('long search with ground-truth co-run latencies; its best candidates and '
                   "every other scheduler's plan chosen between on held-out twin traces")

    def predictor(self, ctx):
        # kept on the context so the goodput and slo99 plans share the measured co-runs
        pred = getattr(ctx, '_twin_predictor', None)
        if pred is None:
            pred = TwinPredictor(ctx.twin, iterations=4, seed=ctx.seed + 1)
            ctx._twin_predictor = pred
        return pred

    def _references(self, ctx: PlanContext) -> List[Tuple[str, Plan]]:
        if ctx.reference_plans is not None:
            return list(ctx.reference_plans.items())
        from hetero_infer.planning.schedulers import EVALUATED, get_scheduler
        return [(n, get_scheduler(n).plan(ctx)) for n in EVALUATED if n != self.name]

    def _plan(self, ctx: PlanContext) -> Plan:
        from hetero_infer.planning.twin_measure import select_on_twin

        pred = self.predictor(ctx)
        problem = build_problem(ctx.platform, ctx.apps, pred, ctx.goal, ctx.settings)
        result = search(problem, seed=ctx.seed, workers=ctx.workers, predictor_name=pred.name,
                        top_fraction=ctx.oracle_top_fraction, confidence=ctx.confidence,
                        max_refine_evals=2 * ctx.max_refine_evals,
                        keep_top=max(1, ctx.oracle_rerank),
                        seed_allocations=self.seed_allocations(ctx),
                        router_choices=self.router_choices)
        cands: List[Tuple[str, Plan]] = []
        for k, policy in enumerate(result.candidates[:max(1, ctx.oracle_rerank)]):
            cands.append(('oracle#%d' % k, Plan(self.name, router_factory(policy, ctx.settings),
                                                 policy=policy, source=self.name)))
        for name, plan in self._references(ctx):
            if not any(_same_plan(plan, c) for _, c in cands):
                cands.append((name, plan))
        best, report = select_on_twin(ctx, cands)
        label, chosen = cands[best]
        return Plan(self.name, chosen.make_dispatcher, policy=chosen.policy, search=result,
                    source=chosen.source or label,
                    notes='chose %s of %d distinct candidates on held-out twin traces (%s)'
                          % (label, len(cands), report))


SCHEDULER = OracleScheduler()
