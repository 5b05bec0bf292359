"""The same search, but its simulator believes isolated latencies (no interference prediction)."""

from hetero_infer.interference.predictors import IsolatedPredictor
from hetero_infer.planning.schedulers.searched import SearchScheduler


class NoInterferenceScheduler(SearchScheduler):
    name = 'no_interference'
    description = 'sampled-simulation search, isolated latencies only'

    def predictor(self, ctx):
        return IsolatedPredictor(ctx.platform)


SCHEDULER = NoInterferenceScheduler()
