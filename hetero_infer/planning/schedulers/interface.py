"""What every scheduler (baseline or not) looks like: ``scheduler.plan(context) -> Plan``.

One signature for the whole family (the lesson from Gavel's policies): whatever a scheduler
needs (platform, applications, goal, seeds, search budget, the twin for the oracle, the
interference model) it reads from the :class:`PlanContext` it receives. A :class:`Plan` makes
fresh dispatchers (``docs/INTERFACES.md`` protocol) for the twin, the planner's simulator or the
live node, and carries the policy and search report where there is one.
"""

import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import numpy as np

from hetero_infer.errors import ConfigError
from hetero_infer.planning.policy import Policy
from hetero_infer.planning.search import SearchResult, SimSettings


@dataclass
class PlanContext:
    """Everything a scheduler may use to plan one scenario.

    :param platform: the SoC (``hetero_infer.platform.spec.Platform``).
    :param apps: the applications (``hetero_infer.workload.requests.App``).
    :param goal: goal spec (name, ``module:function``, weighted sum) the plan should maximise.
    :param seed: seeds sampling and simulated arrivals.
    :param settings: the planner simulator's settings.
    :param top_fraction, confidence: the sampling guarantee (n = 459 for 1% / 99%).
    :param n_samples: sample exactly this many policies instead (the serving node's
        ``plan_samples``); None = from the guarantee.
    :param workers: processes a search may use (1 = serial).
    :param keep_top: how many of a search's best policies its result keeps as candidates.
    :param oracle_top_fraction: the oracle's search guarantee (its search is longer through
        twice the refinement budget and the re-ranking on the twin).
    :param oracle_rerank: how many of the oracle's own best candidates join its selection.
    :param oracle_serve_s: simulated seconds of each goodput-type selection run on the twin.
    :param oracle_select_traces: twin traces each candidate is scored on (goals without SLO99);
        ``oracle_slo99_traces`` the same for goals that need throughput at SLO99.
    :param oracle_select_seed: first arrival seed of the oracle's selection traces; keep it
        apart from any seed the plans are measured with (the evaluation checks that).
    :param reference_plans: other schedulers' plans for this goal (name -> :class:`Plan`),
        which the oracle adds to its candidates; ``None`` lets it plan them itself.
    :param twin_slo99: keyword arguments of the twin's SLO99 bisection the oracle's selection
        uses (``hetero_infer.evaluation.runner.twin_slo99_throughput``); ``None``: its defaults.
    """

    platform: object
    apps: Sequence
    goal: object = 'goodput'
    seed: int = 0
    settings: SimSettings = field(default_factory=SimSettings)
    top_fraction: float = 0.01
    confidence: float = 0.99
    n_samples: Optional[int] = None
    workers: int = 1
    max_refine_evals: int = 120
    keep_top: int = 4
    oracle_top_fraction: float = 0.01
    oracle_rerank: int = 4
    oracle_serve_s: float = 2.0
    oracle_select_traces: int = 20
    oracle_slo99_traces: int = 10
    oracle_select_seed: int = 1000000
    reference_plans: Optional[dict] = None
    twin_slo99: Optional[dict] = None
    interference_model: object = None
    _twin: object = None

    @property
    def twin(self):
        """The ground-truth twin (seeded apart from evaluation runs), made on first use."""
        if self._twin is None:
            from hetero_infer.twin.simulator import Twin
            self._twin = Twin(self.platform, seed=self.seed + 7777)
        return self._twin

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

    def plan(self, ctx: PlanContext) -> Plan:
        if not ctx.apps:
            raise ConfigError('scheduler %s: no applications to plan for' % self.name)
        t0 = time.perf_counter()
        plan = self._plan(ctx)
        plan.plan_time_s = time.perf_counter() - t0
        if not plan.source:
            plan.source = self.name
        return plan

    def _plan(self, ctx: PlanContext) -> Plan:
        raise NotImplementedError
