"""The project's scheduler: policy search scored with the learned interference model.

Besides the baselines every searched scheduler seeds (``base``, ``fastest_only``, an even
split), it seeds the ``no_interference`` plan for the same goal and plan seed: the search then
never returns a plan its own (interference-aware) model scores below what the same search
without the model would have chosen. That costs one more search per plan.
"""

from hetero_infer.interference.predictors import InterferencePredictor
from hetero_infer.planning.schedulers.searched import SearchScheduler


class InterferenceAwareScheduler(SearchScheduler):
    evaluated = True
    needs_interference_model = True
    predictor_kind = 'interference'  # made once per context below, shared with talk_exact
    name = 'interference_aware'
    description = ('sampled-simulation search, latencies from the MLP interference model; '
                   "the baselines' and no_interference's plans seeded")

    def predictor(self, ctx):
        pred = getattr(ctx, '_interference_predictor', None)
        if pred is None:
            pred = InterferencePredictor(ctx.platform, ctx.interference_model)
            ctx._interference_predictor = pred
        return pred

    def seed_allocations(self, ctx):
        from hetero_infer.planning.schedulers.registry import get_scheduler
        out = super().seed_allocations(ctx)
        out.append(get_scheduler('no_interference').plan(ctx).policy.allocation)
        return out


SCHEDULER = InterferenceAwareScheduler()
