"""Plan a scheduler by name, its seed plans first: the one way callers plan.

A scheduler that builds on other schedulers' plans (the searched ones seed ``base`` and
``fastest_only``, ``interference_aware`` also ``no_interference``, the oracle takes every other
scheduler's plan as a candidate) names them in ``seed_schedulers``. :func:`plan` makes those
first, recursively, each on the same context, and hands them over in ``ctx.seed_plans``; the
schedulers themselves never look another one up, so the scheduler modules do not import the
registry that imports them.
"""

import dataclasses
from typing import Dict, Mapping, Tuple

from hetero_infer.errors import ConfigError
from hetero_infer.planning.schedulers.interface import Plan, PlanContext
from hetero_infer.planning.schedulers.registry import evaluated_schedulers, get_scheduler


def plan_scheduler(name: str, ctx: PlanContext) -> Plan:
    """Plan ``ctx`` with the scheduler ``name``.

    Seed plans ``ctx.seed_plans`` already holds (the evaluation gives the oracle the plans it
    made) are used as given; the others are planned on ``ctx`` first, each once per call. A
    plan's ``plan_time_s`` includes the seed plans made for it, not the given ones.

    :raises ConfigError: unknown scheduler, or schedulers that seed each other in a circle.
    """
    return _plan(name, ctx, dict(ctx.seed_plans), {}, ())


def seed_names(scheduler) -> Tuple[str, ...]:
    """The schedulers whose plans ``scheduler`` gets in ``ctx.seed_plans``, in order: with
    ``seeds_every_evaluated``, every other evaluated scheduler (registry order) first, then its
    own ``seed_schedulers``."""
    names = list(scheduler.seed_schedulers)
    if scheduler.seeds_every_evaluated:
        others = [n for n in evaluated_schedulers() if n != scheduler.name]
        names = others + [n for n in names if n not in others]
    return tuple(names)


def _plan(name: str, ctx: PlanContext, given: Mapping[str, Plan], made: Dict[str, Plan],
          chain: Tuple[str, ...]) -> Plan:
    if name in chain:
        raise ConfigError('schedulers seed each other in a circle: %s'
                          % ' -> '.join(chain + (name,)))
    scheduler = get_scheduler(name)
    seeds: Dict[str, Plan] = {}
    seed_time_s = 0.0
    for seed_name in seed_names(scheduler):
        if seed_name in given:
            seeds[seed_name] = given[seed_name]
            continue
        if seed_name not in made:
            made[seed_name] = _plan(seed_name, ctx, given, made, chain + (name,))
        seeds[seed_name] = made[seed_name]
        # as if planned for this scheduler alone (a seed shared by two counts in both)
        seed_time_s += made[seed_name].plan_time_s
    result = scheduler.plan(dataclasses.replace(ctx, seed_plans=seeds))
    result.plan_time_s += seed_time_s
    return result
