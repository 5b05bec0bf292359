"""The project's scheduler: policy search scored with the learned interference model."""

from hetero_infer.core.predictors import InterferencePredictor
from hetero_infer.core.schedulers.searched import SearchScheduler


class InterferenceAwareScheduler(SearchScheduler):
    name = 'interference_aware'
    description = 'sampled-simulation search, latencies from the MLP interference model'

    def predictor(self, ctx):
        pred = getattr(ctx, '_interference_predictor', None)
        if pred is None:
            pred = InterferencePredictor(ctx.platform, ctx.interference_model)
            ctx._interference_predictor = pred
        return pred


SCHEDULER = InterferenceAwareScheduler()
