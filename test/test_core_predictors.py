"""The predictor family: one base, one file each, one registry (as goals and schedulers)."""

import pytest

from hetero_infer.errors import ConfigError
from hetero_infer.interference.predictors import (
    InterferencePredictor,
    IsolatedPredictor,
    Predictor,
    TwinPredictor,
    get_predictor,
    known_predictors,
    register_predictor,
)
from hetero_infer.models.zoo import load_model
from hetero_infer.platform.spec import Platform


def test_registry_names_every_predictor_once():
    assert known_predictors() == ['interference', 'isolated', 'twin']
    for cls in (InterferencePredictor, IsolatedPredictor, TwinPredictor):
        assert get_predictor(cls.name) is cls and issubclass(cls, Predictor)
    with pytest.raises(ConfigError,
                       match="unknown predictor 'oracle' \\(known predictors: interference"):
        get_predictor('oracle')

    class Other(Predictor):
        name = 'isolated'
    with pytest.raises(ConfigError, match="predictor 'isolated' is already registered"):
        register_predictor(Other)
    assert get_predictor('isolated') is IsolatedPredictor


def test_isolated_predictor_ignores_corunners():
    platform = Platform.load('xavier')
    pred = get_predictor('isolated')(platform)
    r18, vgg = load_model('resnet18'), load_model('vgg16')
    alone = platform.isolated_latency_ms(r18, 'gpu')
    assert pred.latency_ms(r18, 'gpu', {}) == alone
    assert pred.latencies_ms({'gpu': r18, 'dla0': vgg})['gpu'] == alone
