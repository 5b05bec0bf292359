"""The project's scheduler: policy search scored with the learned interference model.

Besides the baselines every searched scheduler seeds (``base``, ``fastest_only``, an even
split), it seeds the ``no_interference`` plan for the same goal and plan seed: the search then
never returns a plan its own (interference-aware) model scores below what the same search
without the model would have chosen. That costs one more search per plan.
"""

from hetero_infer.planning.schedulers.searched import SearchScheduler


class InterferenceAwareScheduler(SearchScheduler):
    name = 'interference_aware'
    description = ('sampled-simulation search, latencies from the MLP interference model; '
                   "the baselines' and no_interference's plans seeded")
    evaluated = True
    needs_interference_model = True
    predictor_kind = 'interference'

    def seed_allocations(self, ctx):
        from hetero_infer.planning.schedulers.registry import get_scheduler
        out = super().seed_allocations(ctx)
        out.append(get_scheduler('no_interference').plan(ctx).policy.allocation)
        return out


SCHEDULER = InterferenceAwareScheduler()
