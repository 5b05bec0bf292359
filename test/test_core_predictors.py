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


def test_searched_schedulers_get_their_predictor_by_kind_from_the_registry():
    from hetero_infer.evaluation.scenarios import find_scenario, load_scenarios
    from hetero_infer.interference.predictors import PREDICTORS
    from hetero_infer.planning.schedulers import PlanContext, get_scheduler, searching_schedulers
    platform = Platform.load('xavier')
    apps = find_scenario(load_scenarios(), 'mix_r1').build(platform)
    ctx = PlanContext(platform=platform, apps=apps)
    kinds = {n: get_scheduler(n).predictor_kind for n in searching_schedulers()}
    assert kinds == {'interference_aware': 'interference', 'talk_exact': 'interference',
                     'no_interference': 'isolated', 'oracle': 'twin'}
    for name, kind in kinds.items():  # what each declares is what it searches with
        assert get_scheduler(name).predictor(ctx).name == kind
        # made once per context: the goodput and SLO99 plans share it
        assert get_scheduler(name).predictor(ctx) is ctx.predictors[kind]
        assert isinstance(get_predictor(kind).for_context(ctx), get_predictor(kind))

    class Replacement(IsolatedPredictor):
        pass

    # the registry's 'isolated' is what no_interference searches with, not a class it imports
    PREDICTORS.unregister('isolated')
    try:
        register_predictor(Replacement)
        fresh = PlanContext(platform=platform, apps=apps)   # ctx holds the one made above
        assert type(get_scheduler('no_interference').predictor(fresh)) is Replacement
    finally:
        PREDICTORS.unregister('isolated')
        register_predictor(IsolatedPredictor)
    assert get_predictor('isolated') is IsolatedPredictor
