"""The no-interference baseline: isolated latencies from the platform's profile."""

from hetero_infer.interference.predictors.base import Predictor


class IsolatedPredictor(Predictor):
    """Isolated latency from the platform's profile; co-runners are ignored."""

    name = 'isolated'

    def __init__(self, platform) -> None:
        self.platform = platform

    def latency_ms(self, model, proc, corunners):
        return self.platform.isolated_latency_ms(model, proc)
