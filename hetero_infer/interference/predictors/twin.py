"""Ground truth from the digital twin: the oracle's predictor."""

from typing import Dict, Tuple

from hetero_infer.interference.predictors.base import Predictor


class TwinPredictor(Predictor):
    """Ground truth from the digital twin: mean latency when the models co-run back to back.

    One ``Twin.corun`` call measures every processor of a configuration at once, so results are
    cached per configuration.
    """

    name = 'twin'

    def __init__(self, twin, *, iterations: int = 4, seed: int = 0) -> None:
        self.twin = twin
        self.platform = twin.platform
        self.iterations = iterations
        self.seed = seed
        self._cache: Dict[Tuple, Dict[str, float]] = {}

    @classmethod
    def for_context(cls, ctx) -> 'TwinPredictor':
        """A twin of the context's platform, four co-run iterations, seeded from the plan seed
        (apart from any seed the plans are measured with)."""
        from hetero_infer.twin.simulator import Twin
        return cls(Twin(ctx.platform, seed=ctx.seed + 7777), iterations=4, seed=ctx.seed + 1)

    def latencies_ms(self, jobs):
        key = tuple(sorted((p, id(m)) for p, m in jobs.items()))
        hit = self._cache.get(key)
        if hit is None:
            hit = self.twin.corun(dict(jobs), iterations=self.iterations, seed=self.seed)
            self._cache[key] = hit
        return hit

    def latency_ms(self, model, proc, corunners):
        jobs = dict(corunners)
        jobs[proc] = model
        return self.latencies_ms(jobs)[proc]
