"""Model-level latency predictors for the planner's simulator.

A predictor answers one question: how long does one inference of ``model`` take on ``proc`` while
the other processors run ``corunners`` (``{proc_id: ModelSpec}``, idle processors absent)?

* :class:`IsolatedPredictor`: the isolated latency, ignoring co-runners (the no-interference
  baseline; what a planner without an interference model believes).
* :class:`InterferencePredictor`: the interference model of ``hetero_infer.core.interference``
  (learned from profiled random layers, never from the twin's formulas).
* :class:`TwinPredictor`: the ground truth, measured on the digital twin by co-running the models
  back to back (``Twin.corun``); the oracle's predictor.

Every predictor has the same call, ``predictor.latency_ms(model, proc, corunners)``, and
:class:`LatencyTable` memoises it per ``(application, processor, what runs elsewhere)`` so that
the simulator pays a dictionary lookup per request.
"""

from typing import Dict, List, Optional, Sequence, Tuple

from hetero_infer.core.model import ModelSpec
from hetero_infer.errors import ConfigError


class Predictor:
    """Base class: ``latency_ms(model, proc, corunners) -> float``."""

    name = 'predictor'

    def latency_ms(self, model: ModelSpec, proc: str, corunners: Dict[str, ModelSpec]) -> float:
        raise NotImplementedError

    def latencies_ms(self, jobs: Dict[str, ModelSpec]) -> Dict[str, float]:
        """Latency of every job of one co-run configuration (``{proc: model}``)."""
        out = {}
        for proc, model in jobs.items():
            others = {p: m for p, m in jobs.items() if p != proc}
            out[proc] = self.latency_ms(model, proc, others)
        return out


class IsolatedPredictor(Predictor):
    """Isolated latency from the platform's profile; co-runners are ignored."""

    name = 'isolated'

    def __init__(self, platform) -> None:
        self.platform = platform

    def latency_ms(self, model, proc, corunners):
        return self.platform.isolated_latency_ms(model, proc)


class InterferencePredictor(Predictor):
    """The learned interference model: isolated latency times its predicted slowdown.

    :param platform: the platform the model was trained for.
    :param model: see :func:`load_interference_model` (default: the committed model of
        ``platform.name``).
    :raises ModelError: no trained interference model is available for the platform.
    """

    name = 'interference'

    def __init__(self, platform, model=None) -> None:
        self.platform = platform
        self.model = load_interference_model(platform, model)

    def latency_ms(self, model, proc, corunners):
        if not corunners:
            return self.platform.isolated_latency_ms(model, proc)
        return float(self.model.predict_model_latency_ms(model, proc, dict(corunners)))


def load_interference_model(platform, model=None, *, force: bool = False):
    """The model-level interference predictor for ``platform`` (issue 3's module).

    :param model: ``None`` (the committed model of ``platform.name``), a path to a trained model
        file, an ``interference.InterferencePredictor``, or anything with
        ``predict_model_latency_ms(model, proc, corunners)``.
    :param force: use a model file trained on another platform (refused otherwise: its
        contention is not this platform's). An object passed as ``model`` is not checked.
    :raises ModelError: no trained model for the platform (train one with ``hetero-infer train``),
        or a model file trained on another platform without ``force``.
    """
    from hetero_infer.core import interference
    from hetero_infer.errors import ModelError

    if model is not None and hasattr(model, 'predict_model_latency_ms'):
        return model
    if model is None or isinstance(model, str):
        path = model
        model = interference.InterferencePredictor.load(model or platform.name)
        trained = model.platform_name
        if trained and trained != platform.name and not force:
            raise ModelError('interference model %s was trained on platform %r, not %r; train '
                             'one for %s ("hetero-infer profile" + "train") or force it with '
                             '--force-interference-model'
                             % (path or platform.name, trained, platform.name, platform.name))
    return interference.ModelLatencyPredictor(model, platform)


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


class LatencyTable:
    """Memoised predictions for one application set, indexed the way the simulator asks.

    ``get(app, proc_index, running)`` where ``running`` is a tuple with, per processor, the index
    of the application running there or -1; the entry of ``proc_index`` itself is ignored.
    """

    def __init__(self, predictor: Predictor, models: Sequence[ModelSpec],
                 processor_ids: Sequence[str]) -> None:
        self.predictor = predictor
        self.models = list(models)
        self.processor_ids = tuple(processor_ids)
        self._table: Dict[Tuple, float] = {}

    def get(self, app: int, proc_index: int, running: Tuple[int, ...]) -> float:
        key = (app, proc_index) + tuple(-2 if j == proc_index else a
                                        for j, a in enumerate(running))
        hit = self._table.get(key)
        if hit is not None:
            return hit
        procs = self.processor_ids
        jobs = {procs[j]: self.models[a] for j, a in enumerate(running)
                if a >= 0 and j != proc_index}
        jobs[procs[proc_index]] = self.models[app]
        lat = self.predictor.latencies_ms(jobs)
        # one co-run configuration answers for every processor in it
        for j, p in enumerate(procs):
            if p not in jobs:
                continue
            a = app if j == proc_index else running[j]
            state = [(-1 if p2 not in jobs else (app if j2 == proc_index else running[j2]))
                     for j2, p2 in enumerate(procs)]
            state[j] = -2
            self._table[(a, j) + tuple(state)] = float(lat[p])
        return self._table[key]

    def prefill(self, allowed: List[List[int]]) -> int:
        """Fill every configuration the applications' allowed processors can produce.

        :param allowed: per application, indices of the processors it may run on.
        :returns: the number of entries.
        """
        n_procs = len(self.processor_ids)
        options = [[-1] + [a for a in range(len(self.models)) if j in allowed[a]]
                   for j in range(n_procs)]

        def rec(j, state):
            if j == n_procs:
                for k, a in enumerate(state):
                    if a >= 0:
                        self.get(a, k, tuple(state))
                return
            for a in options[j]:
                rec(j + 1, state + [a])

        rec(0, [])
        return len(self._table)

    def snapshot(self) -> Dict[Tuple, float]:
        return dict(self._table)

    @classmethod
    def from_snapshot(cls, entries: Dict[Tuple, float], models, processor_ids,
                      predictor: Optional[Predictor] = None) -> 'LatencyTable':
        table = cls(predictor or _Missing(), models, processor_ids)
        table._table.update(entries)
        return table


class _Missing(Predictor):
    name = 'missing'

    def latencies_ms(self, jobs):
        raise ConfigError('latency table has no entry for co-run %s'
                          % {p: m.name for p, m in jobs.items()})
