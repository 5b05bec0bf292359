"""The learned interference model (:mod:`hetero_infer.interference.slowdown_model`) as a
predictor."""

from hetero_infer.interference.predictors.base import Predictor


class InterferencePredictor(Predictor):
    """The learned interference model: isolated latency times its predicted slowdown.

    :param platform: the platform the model was trained for.
    :param model: see :func:`load_latency_predictor` (default: the committed model of
        ``platform.name``).
    :raises ModelError: no trained interference model is available for the platform.
    """

    name = 'interference'

    def __init__(self, platform, model=None) -> None:
        self.platform = platform
        self.model = load_latency_predictor(platform, model)

    @classmethod
    def for_context(cls, ctx) -> 'InterferencePredictor':
        """The committed model of the context's platform (``interference_aware`` passes the
        model of its ``InterferenceOptions`` instead)."""
        return cls(ctx.platform)

    def latency_ms(self, model, proc, corunners):
        if not corunners:
            return self.platform.isolated_latency_ms(model, proc)
        return float(self.model.predict_model_latency_ms(model, proc, dict(corunners)))


def load_latency_predictor(platform, model=None, *, force: bool = False):
    """The model-level interference predictor for ``platform`` (issue 3's module).

    :param model: ``None`` (the committed model of ``platform.name``), a path to a trained model
        file, a ``slowdown_model.SlowdownPredictor``, or anything with
        ``predict_model_latency_ms(model, proc, corunners)``.
    :param force: use a model file trained on another platform (refused otherwise: its
        contention is not this platform's). An object passed as ``model`` is not checked.
    :raises ModelError: no trained model for the platform (train one with ``hetero-infer train``),
        or a model file trained on another platform without ``force``.
    """
    from hetero_infer.errors import ModelError
    from hetero_infer.interference import slowdown_model as interference

    if model is not None and hasattr(model, 'predict_model_latency_ms'):
        return model
    if model is None or isinstance(model, str):
        path = model
        model = interference.SlowdownPredictor.load(model or platform.name)
        trained = model.platform_name
        if trained and trained != platform.name and not force:
            raise ModelError('interference model %s was trained on platform %r, not %r; train '
                             'one for %s ("hetero-infer profile" + "train") or force it with '
                             '--force-interference-model'
                             % (path or platform.name, trained, platform.name, platform.name))
    return interference.ModelLatencyPredictor(model, platform)
