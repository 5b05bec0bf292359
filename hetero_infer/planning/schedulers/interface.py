"""What every scheduler (baseline or not) looks like: ``scheduler.plan(context) -> Plan``.

One signature for the whole family (the lesson from Gavel's policies). The :class:`PlanContext`
holds what every scheduler needs (platform, applications, goal, seed, the planner simulator's
settings); a scheduler that needs more reads its own typed options from the context
(:meth:`PlanContext.option`: ``SearchOptions``, ``InterferenceOptions``, ``OracleOptions``, each
defined in its scheduler's module). A scheduler that builds on other schedulers' plans names
them in :attr:`Scheduler.seed_schedulers` and finds them in ``ctx.seed_plans``:
:func:`hetero_infer.planning.schedulers.driver.plan_scheduler` plans them first, so no
scheduler plans another. A :class:`Plan` makes fresh dispatchers (``docs/INTERFACES.md``
protocol) for the twin, the planner's simulator or the live node, and carries the policy and
search report where there is one.
"""

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union

import numpy as np

from hetero_infer.errors import ConfigError
from hetero_infer.interference.predictors.base import Predictor
from hetero_infer.planning.goals.base import Goal
from hetero_infer.planning.policy import Policy
from hetero_infer.planning.search import SearchResult, SimSettings
from hetero_infer.platform.spec import Platform
from hetero_infer.workload.requests import App

#: what :func:`hetero_infer.planning.goals.get_goal` takes: a name or ``module:function``, a
#: weighted sum (``{'weighted': {metric: weight}}``), or a goal object
GoalSpec = Union[str, Mapping[str, Mapping[str, float]], Goal]

#: Default first seed of the oracle's selection traces (the evaluation's trace seeds stay below)
ORACLE_SELECT_SEED = 1000000


class SchedulerOptions:
    """Base of the options dataclasses a scheduler reads from :meth:`PlanContext.option`.

    A subclass is a frozen dataclass whose every field has a default: a context without one
    plans with the defaults.
    """


OptionsT = TypeVar('OptionsT', bound=SchedulerOptions)


@dataclass(frozen=True)
class PlanContext:
    """Everything a scheduler may use to plan one scenario.

    :param platform: the SoC.
    :param apps: the applications.
    :param goal: the goal the plan should maximise.
    :param seed: seeds sampling, simulated arrivals and measurements made while planning.
    :param settings: the planner simulator's settings.
    :param options: per-scheduler options (at most one of each type); a scheduler finds its
        own with :meth:`option`, and the defaults when there is none.
    :param seed_plans: the plans of the schedulers this one names in
        ``seed_schedulers`` (name -> :class:`Plan`), filled in by
        :func:`hetero_infer.planning.schedulers.driver.plan_scheduler`; a caller may give some
        (the evaluation gives the oracle the plans it already made), the driver plans the rest.
    :param predictors: predictors made for this context, by predictor name, which its plans
        share (``dataclasses.replace`` keeps the same dict): making them again (loading the
        interference model, measuring the twin's co-runs) costs time, but a plan is the same
        either way.
    :raises ConfigError: no applications, or two options of one type.
    """

    platform: Platform
    apps: Sequence[App]
    goal: GoalSpec = 'goodput'
    seed: int = 0
    settings: SimSettings = field(default_factory=SimSettings)
    options: Tuple[SchedulerOptions, ...] = ()
    seed_plans: Mapping[str, 'Plan'] = field(default_factory=dict)
    predictors: Dict[str, Predictor] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.apps:
            raise ConfigError('plan context: no applications to plan for')
        kinds = [type(o) for o in self.options]
        for o in self.options:
            if not isinstance(o, SchedulerOptions):
                raise ConfigError('plan context: option %r is not a SchedulerOptions' % (o,))
            if kinds.count(type(o)) > 1:
                raise ConfigError('plan context: %d options of type %s (give at most one)'
                                  % (kinds.count(type(o)), type(o).__name__))
        object.__setattr__(self, 'options', tuple(self.options))

    def option(self, kind: Type[OptionsT]) -> OptionsT:
        """The context's options of type ``kind``, or ``kind()`` (its defaults)."""
        for o in self.options:
            if type(o) is kind:
                return o
        return kind()

    def mask(self) -> np.ndarray:
        """``apps x processors``: True where the app may and can run."""
        procs = self.platform.processor_ids
        m = np.zeros((len(self.apps), len(procs)), dtype=bool)
        for i, a in enumerate(self.apps):
            allowed = set(a.processors or procs)
            for j, p in enumerate(procs):
                m[i, j] = p in allowed and self.platform.can_run(a.model, p)
        return m

    def isolated_ms(self) -> np.ndarray:
        procs = self.platform.processor_ids
        mask = self.mask()
        out = np.full(mask.shape, np.inf)
        for i, a in enumerate(self.apps):
            for j, p in enumerate(procs):
                if mask[i, j]:
                    out[i, j] = self.platform.isolated_latency_ms(a.model, p)
        return out

    @property
    def app_names(self) -> List[str]:
        return [a.name for a in self.apps]


@dataclass
class Plan:
    """A scheduler's decision for one scenario."""

    scheduler: str
    make_dispatcher: Callable[[], object]
    policy: Optional[Policy] = None
    search: Optional[SearchResult] = None
    #: seconds the plan took, the seed plans made for it included
    plan_time_s: float = 0.0
    notes: str = ''
    #: the scheduler whose plan this is (the oracle may adopt another scheduler's plan)
    source: str = ''

    def to_dict(self) -> dict:
        d = {'scheduler': self.scheduler, 'plan_time_s': round(self.plan_time_s, 3)}
        if self.policy is not None:
            d['policy'] = self.policy.to_dict()
        if self.search is not None:
            d['search'] = self.search.to_dict()
        if self.notes:
            d['notes'] = self.notes
        if self.source and self.source != self.scheduler:
            d['source'] = self.source
        return d


class Scheduler:
    """Base class: subclasses set ``name`` and implement :meth:`_plan`."""

    # What the rest of the code needs to know about a scheduler it declares here, as class
    # attributes; the registry answers questions with them (``searching_schedulers()``).
    #: Plans by searching for the goal: its plan depends on the goal (the evaluation plans it
    #: once per goal, ``hetero-infer plan`` accepts it) and carries a ``SearchResult``.
    searches = False
    #: Reads the interference model: ``plan`` and ``evaluate`` check the model before any work.
    needs_interference_model = False
    #: Run by ``hetero-infer evaluate`` without ``--schedulers`` (in registry order).
    evaluated = False

    name = 'scheduler'
    description = ''
    #: schedulers whose plans (for the same context) this one needs in ``ctx.seed_plans``
    seed_schedulers: Tuple[str, ...] = ()
    #: also take every other evaluated scheduler's plan as a seed (the oracle's candidates),
    #: in the registry's order, ahead of ``seed_schedulers``; the driver looks them up
    seeds_every_evaluated = False

    def plan(self, ctx: PlanContext) -> Plan:
        """Plan ``ctx``; its ``seed_plans`` must hold every scheduler of ``seed_schedulers``.

        :raises ConfigError: a seed plan is missing (plan through
            :func:`hetero_infer.planning.schedulers.driver.plan_scheduler`, which makes them).
        """
        missing = [n for n in self.seed_schedulers if n not in ctx.seed_plans]
        if missing:
            raise ConfigError('scheduler %s needs the seed plans of %s in its context (plan '
                              'it with hetero_infer.planning.schedulers.driver.plan_scheduler)'
                              % (self.name, ', '.join(missing)))
        t0 = time.perf_counter()
        plan = self._plan(ctx)
        plan.plan_time_s = time.perf_counter() - t0
        if not plan.source:
            plan.source = self.name
        return plan

    def _plan(self, ctx: PlanContext) -> Plan:
        raise NotImplementedError
