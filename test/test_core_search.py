"""Search and the planner's simulator: seeded determinism, invariants, baseline schedulers."""

import dataclasses
from collections import Counter

import numpy as np
import pytest

from hetero_infer.errors import ConfigError
from hetero_infer.interference.predictors import IsolatedPredictor, LatencyTable, Predictor
from hetero_infer.models.zoo import load_model
from hetero_infer.planning.plansim import PlanSimulator
from hetero_infer.planning.policy import Policy
from hetero_infer.planning.router import PriorityRouter
from hetero_infer.planning.schedulers import EVALUATED, driver
from hetero_infer.planning.schedulers.interface import Plan, PlanContext, Scheduler
from hetero_infer.planning.schedulers.registry import get_scheduler, known_schedulers
from hetero_infer.planning.schedulers.searched import SearchOptions
from hetero_infer.planning.search import SimSettings, build_problem, search
from hetero_infer.platform.spec import Platform
from hetero_infer.workload.requests import App


@pytest.fixture(scope='module')
def platform():
    return Platform.load('xavier')


@pytest.fixture(scope='module')
def apps(platform):
    out = []
    for name, rate in (('resnet50', 90.0), ('googlenet', 150.0), ('vgg16', 30.0)):
        m = load_model(name)
        out.append(App(name, m, rate, 5 * platform.isolated_latency_ms(m, 'gpu')))
    return out


class _Slowdown(Predictor):
    """Isolated latency x (1 + 0.3 per busy co-runner): a stand-in interference model."""

    name = 'slowdown'

    def __init__(self, platform):
        self.platform = platform

    def latency_ms(self, model, proc, corunners):
        return self.platform.isolated_latency_ms(model, proc) * (1 + 0.3 * len(corunners))


FAST = SimSettings(duration_s=1.5, warmup_s=0.2)


def _sim(platform, apps, predictor, **kw):
    table = LatencyTable(predictor, [a.model for a in apps], platform.processor_ids)
    iso = [[platform.isolated_latency_ms(a.model, p) for p in platform.processor_ids]
           for a in apps]
    return PlanSimulator(apps, platform.processor_ids, table, iso, **kw)


class _Counting:
    """Wraps a dispatcher and records every decision."""

    def __init__(self, inner):
        self.inner = inner
        self.decisions = 0
        self.completions = 0

    def reset(self, apps, platform):
        self.inner.reset(apps, platform)

    def dispatch(self, a, now, view):
        self.decisions += 1
        return self.inner.dispatch(a, now, view)

    def completed(self, a, p, lat):
        self.completions += 1


def test_plansim_places_every_request_once(platform, apps):
    sim = _sim(platform, apps, IsolatedPredictor(platform), duration_s=2.0, warmup_s=0.0)
    pol = Policy([a.name for a in apps], platform.processor_ids, [[0.5, 0.25, 0.25]] * 3)
    d = _Counting(PriorityRouter(pol))
    res = sim.run(d)
    assert sum(res.offered) == d.decisions
    # every dispatched request either completes (drained) or is dropped, never both
    assert d.completions + sum(res.dropped) == d.decisions
    assert [f + x for f, x in zip(res.finished, res.dropped)] == res.offered


def test_interference_makes_the_same_policy_slower(platform, apps):
    pol = Policy([a.name for a in apps], platform.processor_ids, [[0.4, 0.3, 0.3]] * 3)
    iso = _sim(platform, apps, IsolatedPredictor(platform))
    slow = _sim(platform, apps, _Slowdown(platform))
    r_iso = iso.run(PriorityRouter(pol), keep_latencies=True)
    r_slow = slow.run(PriorityRouter(pol), keep_latencies=True)
    mean = [np.mean(r.latencies[0]) for r in (r_iso, r_slow)]
    assert mean[1] > mean[0] * 1.2
    assert r_slow.goodput <= r_iso.goodput


def test_search_is_deterministic_per_seed_and_valid(platform, apps):
    problem = build_problem(platform, apps, _Slowdown(platform), 'goodput', FAST)
    a = search(problem, n_samples=40, seed=5, workers=1, max_refine_evals=30)
    b = search(problem, n_samples=40, seed=5, workers=2, max_refine_evals=30)
    assert a.policy == b.policy and a.score == b.score
    assert np.array_equal(a.policy.mask, problem.mask)  # the problem's allowed processors
    assert a.n_samples == 40 and a.n_evaluated >= 40
    assert a.score == pytest.approx(a.metrics['goodput'])
    c = search(problem, n_samples=40, seed=5, workers=1, refine=False)
    # 40 samples, then 4 finalists x 1 router option x the planner's traces
    assert c.n_evaluated == 40 + 4 * FAST.plan_traces
    # refining starts from the same samples' best and keeps only improvements
    assert a.history[0] == c.history[0]
    climbed = [v for _, v in a.history[:-1]]
    assert climbed == sorted(climbed) and len(climbed) > 1


def test_default_sample_count_is_459(platform, apps):
    problem = build_problem(platform, apps, IsolatedPredictor(platform), 'throughput',
                            SimSettings(duration_s=0.4, warmup_s=0.05))
    r = search(problem, workers=1, refine=False)
    assert r.n_samples == 459 and r.n_evaluated == 459 + 4 * problem.settings.plan_traces


def test_refinement_never_loses_and_slo99_goal_runs(platform, apps):
    problem = build_problem(platform, apps, _Slowdown(platform), 'slo99_throughput', FAST)
    r0 = search(problem, n_samples=12, seed=1, workers=1, refine=False)
    r1 = search(problem, n_samples=12, seed=1, workers=1, max_refine_evals=40)
    assert r1.score >= r0.score > 0
    assert r1.metrics['slo99_throughput'] == r1.score


def test_weighted_goal_with_latency_metric(platform, apps):
    problem = build_problem(platform, apps, _Slowdown(platform),
                            'goodput + -0.1*p99_latency_ms', FAST)
    r = search(problem, n_samples=8, seed=2, workers=1, refine=False)
    assert r.score == pytest.approx(r.metrics['goodput'] - 0.1 * r.metrics['p99_latency_ms'])


def test_problem_refuses_unknown_goal_and_processor(platform, apps):
    with pytest.raises(ConfigError, match='known goals'):
        build_problem(platform, apps, IsolatedPredictor(platform), 'latency', FAST)
    bad = [App('x', apps[0].model, 10.0, 50.0, ('npu',))]
    with pytest.raises(ConfigError, match='npu'):
        build_problem(platform, bad, IsolatedPredictor(platform), 'goodput', FAST)


def test_scheduler_registry_and_rule_based_plans(platform, apps):
    from hetero_infer.planning.schedulers import evaluated_schedulers, searching_schedulers
    # facts the schedulers declare, read through the registry; the order is the output's
    assert evaluated_schedulers() == list(EVALUATED) == [
        'interference_aware', 'talk_exact', 'no_interference', 'base', 'round_robin',
        'least_finish_time', 'fastest_only', 'oracle']
    assert searching_schedulers() == ['interference_aware', 'talk_exact', 'no_interference',
                                      'oracle']
    assert [n for n in known_schedulers() if get_scheduler(n).needs_interference_model] == [
        'interference_aware', 'talk_exact']
    with pytest.raises(ConfigError, match='known'):
        get_scheduler('magic')
    ctx = PlanContext(platform=platform, apps=apps, settings=FAST)
    base = driver.plan_scheduler('base', ctx)
    iso = ctx.isolated_ms()
    expected = (1 / iso) / (1 / iso).sum(axis=1, keepdims=True)
    assert np.allclose(base.policy.allocation, expected)
    fast = driver.plan_scheduler('fastest_only', ctx)
    assert (fast.policy.allocation[:, 0] == 1.0).all()  # the GPU is fastest for all three
    sim = _sim(platform, apps, IsolatedPredictor(platform), duration_s=1.0, warmup_s=0.0)
    for name in ('round_robin', 'least_finish_time', 'base', 'fastest_only'):
        plan = driver.plan_scheduler(name, ctx)
        d = _Counting(plan.make_dispatcher())
        res = sim.run(d)
        assert sum(res.offered) == d.decisions > 0
    no_int = driver.plan_scheduler('no_interference', PlanContext(
        platform=platform, apps=apps, settings=FAST,
        options=(SearchOptions(top_fraction=0.1, confidence=0.9, max_refine_evals=10),)))
    assert no_int.search.n_samples == 22
    assert no_int.policy is not None


def test_plan_command_prints_and_saves_a_policy(tmp_path, capsys):
    import json

    from hetero_infer.cli import main

    out = tmp_path / 'plan.json'
    rc = main(['plan', '--platform', 'xavier', '--scenario', 'mix_r1', '--goal', 'goodput',
               '--scheduler', 'no_interference', '--top-fraction', '0.2', '--confidence',
               '0.9', '--workers', '1', '--out', str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert 'policy' in text and '11 samples' in text
    doc = json.loads(out.read_text())
    pol = Policy.from_dict(doc['policy'])
    assert list(pol.app_names) == [a['name'] for a in doc['applications']]
    assert doc['search']['n_samples'] == 11
    assert main(['plan', '--scenario', 'mix_r1', '--goal', 'latency', '--scheduler',
                 'no_interference', '--out', str(out)]) == 1
    assert 'known goals' in capsys.readouterr().err


def test_orin_plans_its_scenarios_with_its_shipped_interference_model(tmp_path, capsys):
    import json
    import os

    from hetero_infer.cli import main
    from hetero_infer.evaluation.scenarios import load_scenarios
    from hetero_infer.interference.slowdown_model import load_default
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'config',
                        'scenarios_orin.yaml')
    scenarios = load_scenarios(path)
    assert len(scenarios) >= 8 and all(s.platform == 'orin' for s in scenarios)
    assert load_default('orin').meta['trained_on']['platform'] == 'orin'
    out = tmp_path / 'plan.json'
    rc = main(['plan', '--platform', 'orin', '--scenarios', path,
               '--scenario', 'wide_r2', '--goal', 'goodput', '--top-fraction', '0.2',
               '--confidence', '0.9', '--workers', '1', '--out', str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc['platform'] == 'orin' and len(doc['applications']) == 4
    pol = Policy.from_dict(doc['policy'])
    assert np.allclose(pol.allocation.sum(axis=1), 1.0)


def _flooded(platform, apps, **router):
    """``apps`` with the first application at 5x its rate, planned on the GPU only."""
    flood = [apps[0].scaled(5.0)] + list(apps[1:])
    sim = _sim(platform, flood, IsolatedPredictor(platform), duration_s=1.0, warmup_s=0.1,
               max_queue=4)
    sim.platform = platform  # the routers get the platform's service times
    alloc = [[1.0, 0.0, 0.0]] + [[0.0, 0.5, 0.5]] * (len(apps) - 1)
    rec = _Counting(PriorityRouter(Policy([a.name for a in flood], platform.processor_ids,
                                          alloc, router=router)))
    seen = Counter()
    inner = rec.inner

    def dispatch(a, t, view):
        proc = inner.dispatch(a, t, view)
        seen[(a, proc)] += 1
        return proc
    rec.dispatch = dispatch
    return sim.run(rec), seen


def test_plansim_overflow_uses_idle_processors_before_dropping(platform, apps):
    off, seen_off = _flooded(platform, apps, overflow=False)
    on, seen_on = _flooded(platform, apps, overflow=True)
    assert seen_off[(0, 'dla0')] == seen_off[(0, 'dla1')] == 0
    assert seen_on[(0, 'dla0')] > 0 and seen_on[(0, 'dla1')] > 0
    assert off.dropped[0] > 0 and on.dropped[0] < off.dropped[0]
    assert on.goodput > off.goodput


def test_search_keeps_a_seeded_plan_its_own_model_scores_higher(platform, apps):
    problem = build_problem(platform, apps, _Slowdown(platform), 'goodput', FAST)
    big = search(problem, n_samples=60, seed=1, workers=1, max_refine_evals=40)
    small = search(problem, n_samples=3, seed=2, workers=1, refine=False)
    seeded = search(problem, n_samples=3, seed=2, workers=1, refine=False,
                    seed_allocations=[big.policy])
    assert small.score < big.score
    # the seed is a finalist scored on the same traces: the result is at least as good
    assert seeded.score >= big.score
    assert any(np.array_equal(c.allocation, big.policy.allocation) for c in seeded.candidates)
    with pytest.raises(ConfigError, match='sum to'):
        search(problem, n_samples=3, workers=1, seed_allocations=[np.full((3, 3), 0.5)])


def test_search_chooses_the_best_router_options_on_common_traces(platform, apps):
    problem = build_problem(platform, apps, _Slowdown(platform), 'goodput', FAST)
    choices = [{'tie_tolerance': 0.0, 'overflow': False}, {'tie_tolerance': 1.0}]
    both = search(problem, n_samples=20, seed=3, workers=1, router_choices=choices)
    each = [search(problem, n_samples=20, seed=3, workers=1, router_choices=[c])
            for c in choices]
    # the same finalists either way: the pair is the better of the two, options recorded
    best = max(each, key=lambda r: r.score)
    assert both.score == max(r.score for r in each)
    assert both.policy == best.policy and both.policy.router == best.policy.router


def test_search_scores_its_plan_as_the_mean_over_the_planners_traces(platform, apps):
    from hetero_infer.planning.search import plan_simulator, trace_seeds
    problem = build_problem(platform, apps, _Slowdown(platform), 'goodput', FAST)
    r = search(problem, n_samples=10, seed=4, workers=1, refine=False)
    seeds = trace_seeds(problem.settings)
    assert len(set(seeds)) == FAST.plan_traces == 3
    got = [plan_simulator(problem, s).run(PriorityRouter(r.policy)).goodput for s in seeds]
    assert r.score == pytest.approx(np.mean(got))
    assert len(set(got)) > 1   # different traces, not one trace three times


def test_talk_exact_is_registered_evaluated_and_routes_by_the_talks_rule(platform, apps):
    from hetero_infer.planning.schedulers.talk_exact import TALK_ROUTER
    assert 'talk_exact' in known_schedulers() and 'talk_exact' in EVALUATED
    ctx = PlanContext(platform=platform, apps=apps, goal='goodput', settings=FAST,
                      options=(SMALL_SEARCH,))
    plan = driver.plan_scheduler('talk_exact', ctx)
    assert plan.policy.router == TALK_ROUTER
    router = plan.make_dispatcher()
    assert router.options() == TALK_ROUTER
    ia = driver.plan_scheduler('interference_aware', ctx)
    assert ia.policy.router['overflow'] is True


SMALL_SEARCH = SearchOptions(n_samples=8, max_refine_evals=4, workers=1)


def test_interference_aware_seeds_the_no_interference_plan(platform, apps):
    ctx = PlanContext(platform=platform, apps=apps, goal='goodput', settings=FAST,
                      options=(SMALL_SEARCH,))
    ni = driver.plan_scheduler('no_interference', ctx)
    ia = get_scheduler('interference_aware')
    seeded = dataclasses.replace(ctx, seed_plans={n: driver.plan_scheduler(n, ctx)
                                                  for n in ia.seed_schedulers})
    seeds = ia.seed_allocations(seeded)
    assert any(np.array_equal(s, ni.policy.allocation) for s in seeds)
    base = driver.plan_scheduler('base', ctx).policy.allocation
    assert any(np.allclose(s, base) for s in seeds)
    assert get_scheduler('talk_exact').seed_allocations(ctx) == []
    assert get_scheduler('talk_exact').seed_schedulers == ()


def test_the_driver_plans_seeds_first_and_a_scheduler_never_plans_another(platform, apps):
    ctx = PlanContext(platform=platform, apps=apps, goal='goodput', settings=FAST,
                      options=(SMALL_SEARCH,))
    # without its seed plans a scheduler refuses, naming them (it does not look them up)
    with pytest.raises(ConfigError, match='interference_aware needs the seed plans of base, '
                                          'fastest_only, no_interference'):
        get_scheduler('interference_aware').plan(ctx)
    # through the driver: the plan of the seeds planned first on the same context
    via_driver = driver.plan_scheduler('interference_aware', ctx)
    seeds = {n: driver.plan_scheduler(n, ctx) for n in ('base', 'fastest_only', 'no_interference')}
    by_hand = get_scheduler('interference_aware').plan(
        dataclasses.replace(ctx, seed_plans=seeds))
    assert via_driver.policy == by_hand.policy
    assert via_driver.search.metrics == by_hand.search.metrics
    # a seed plan the caller gives is used as given, not planned again
    given = Plan('no_interference', seeds['base'].make_dispatcher, policy=seeds['base'].policy)
    with_given = driver.plan_scheduler('interference_aware',
                             dataclasses.replace(ctx, seed_plans={'no_interference': given}))
    assert with_given.policy is not None
    # the oracle takes every other evaluated scheduler's plan as a candidate
    oracle_seeds = driver.seed_names(get_scheduler('oracle'))
    assert list(oracle_seeds) == [n for n in EVALUATED if n != 'oracle']


def test_the_driver_refuses_schedulers_that_seed_each_other(platform, apps, monkeypatch):
    class Chicken(Scheduler):
        name, seed_schedulers = 'chicken', ('egg',)

    class Egg(Scheduler):
        name, seed_schedulers = 'egg', ('chicken',)

    monkeypatch.setattr(driver, 'get_scheduler', {'chicken': Chicken(), 'egg': Egg()}.get)
    with pytest.raises(ConfigError, match='circle: chicken -> egg -> chicken'):
        driver.plan_scheduler('chicken', PlanContext(platform=platform, apps=apps))


def test_plan_context_keeps_only_typed_options(platform, apps):
    ctx = PlanContext(platform=platform, apps=apps)
    assert ctx.option(SearchOptions) == SearchOptions()
    with pytest.raises(ConfigError, match='2 options of type SearchOptions'):
        PlanContext(platform=platform, apps=apps, options=(SMALL_SEARCH, SearchOptions()))
    with pytest.raises(ConfigError, match="option 'fast' is not a SchedulerOptions"):
        PlanContext(platform=platform, apps=apps, options=('fast',))
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.goal = 'fairness'


def test_slo99_finalists_are_scored_in_full_on_every_trace(platform, apps):
    # pure SLO99 prunes a sampled policy that misses the best scale so far; a finalist is
    # scored on several traces and routers, and a prune against another trace's best would put
    # a 0 into its mean (the search then chose plans its own model rated far lower)
    from hetero_infer.planning.search import _Scorer, trace_seeds
    problem = build_problem(platform, apps, _Slowdown(platform), 'slo99_throughput', FAST)
    choices = [{'tie_tolerance': 0.5}, {'share_tracking': False}]
    r = search(problem, n_samples=12, seed=5, workers=1, max_refine_evals=10,
               router_choices=choices)
    scorer = _Scorer(problem)
    seeds = trace_seeds(problem.settings)
    assert len(r.candidates) > 1
    for pol, value in zip(r.candidates, r.candidate_scores):
        per_trace = [scorer.score(pol.allocation, router=pol.router, seed=s)[0] for s in seeds]
        assert min(per_trace) > 0
        assert value == pytest.approx(np.mean(per_trace))
    assert r.score == r.candidate_scores[0] == max(r.candidate_scores)
