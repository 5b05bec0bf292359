"""The project's scheduler: policy search scored with the learned interference model.

Besides the baselines every searched scheduler seeds (``base``, ``fastest_only``, an even
split), it seeds the ``no_interference`` plan for the same goal and plan seed: the search then
never returns a plan its own (interference-aware) model scores below what the same search
without the model would have chosen. That costs one more search per plan.
"""

from dataclasses import dataclass
from typing import Dict, Protocol, Union

from hetero_infer.interference.predictors import InterferencePredictor, get_predictor
from hetero_infer.interference.slowdown_model import SlowdownPredictor
from hetero_infer.models.layers import ModelSpec
from hetero_infer.planning.schedulers.interface import PlanContext, SchedulerOptions
from hetero_infer.planning.schedulers.searched import SearchScheduler


class LatencyModel(Protocol):
    """Anything that predicts a model's latency among co-runners (a test's fake model)."""

    def predict_model_latency_ms(self, model: ModelSpec, proc: str,
                                 corunners: Dict[str, ModelSpec]) -> float:
        raise NotImplementedError


@dataclass(frozen=True)
class InterferenceOptions(SchedulerOptions):
    """The interference model of ``interference_aware`` and ``talk_exact``.

    :param model: ``None`` (the committed model of the platform), a trained model file, a
        loaded :class:`SlowdownPredictor` (not checked against the platform), or a
        :class:`LatencyModel`; see
        :func:`hetero_infer.interference.predictors.load_latency_predictor`.
    """

    model: Union[None, str, SlowdownPredictor, LatencyModel] = None


class InterferenceAwareScheduler(SearchScheduler):
    evaluated = True
    needs_interference_model = True
    predictor_kind = 'interference'  # made once per context below, shared with talk_exact
    name = 'interference_aware'
    description = ('sampled-simulation search, latencies from the MLP interference model; '
                   "the baselines' and no_interference's plans seeded")
    seed_schedulers = SearchScheduler.seed_schedulers + ('no_interference',)

    def predictor(self, ctx: PlanContext) -> InterferencePredictor:
        # the registry's 'interference' predictor with this context's model (InterferenceOptions),
        # loaded once per context: its goodput and slo99 plans (and talk_exact's) share it
        pred = ctx.predictors.get(self.predictor_kind)
        if pred is None:
            pred = get_predictor(self.predictor_kind)(ctx.platform,
                                                      ctx.option(InterferenceOptions).model)
            ctx.predictors[self.predictor_kind] = pred
        return pred

    def seed_allocations(self, ctx: PlanContext) -> list:
        out = super().seed_allocations(ctx)
        out.append(ctx.seed_plans['no_interference'].policy.allocation)
        return out


SCHEDULER = InterferenceAwareScheduler()
