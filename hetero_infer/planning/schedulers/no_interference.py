"""The same search, but its simulator believes isolated latencies (no interference prediction)."""

from hetero_infer.planning.schedulers.searched import SearchScheduler


class NoInterferenceScheduler(SearchScheduler):
    name = 'no_interference'
    description = 'sampled-simulation search, isolated latencies only'
    evaluated = True
    predictor_kind = 'isolated'


SCHEDULER = NoInterferenceScheduler()
