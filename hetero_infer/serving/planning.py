"""The planner process of the serving core.

The policy search is CPU-bound Python; run in the serving process it would hold the GIL for seconds
and stall conversion, routing and publishing (latency spikes while re-planning). So the service
keeps one worker process, ``python -m hetero_infer.serving.planning``, and talks to it with one
JSON line per job on its stdin / stdout; the worker rebuilds platform, models, predictor and goal
from plain data. A plain subprocess rather than multiprocessing: forking a process that runs DDS
threads is unsafe, and ``spawn`` re-imports the caller's ``__main__`` (a user script without a main
guard would start a second node). The worker exits when its stdin closes, so it never outlives the
service.
"""

import json
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from hetero_infer.errors import ConfigError
from hetero_infer.planning.policy import Policy

#: a goal as the service names it: a goal name or ``module:function``, or a weighted sum
#: ``{'weighted': {metric: weight}}`` (``ServeConfig.goal_spec()``)
JobGoal = Union[str, Mapping[str, Mapping[str, float]]]


def _get(doc: Any, key: str, kind: str, where: str) -> Any:
    """``doc[key]`` checked to be of ``kind`` (str, int, number, list, mapping).

    :raises ConfigError: ``doc`` is no mapping, the field is missing or of another type (the
        field and its value named).
    """
    if not isinstance(doc, dict):
        raise ConfigError('%s: expected a JSON object, got %r' % (where, doc))
    if key not in doc:
        raise ConfigError('%s: field "%s" is missing' % (where, key))
    v = doc[key]
    ok, what = {'str': (isinstance(v, str), 'a string'),
                'int': (isinstance(v, int) and not isinstance(v, bool), 'an integer'),
                'number': (isinstance(v, (int, float)) and not isinstance(v, bool), 'a number'),
                'list': (isinstance(v, list), 'a list'),
                'mapping': (isinstance(v, dict), 'an object')}[kind]
    if not ok:
        raise ConfigError('%s: field "%s" must be %s, got %r' % (where, key, what, v))
    return v


def _parse(text: str, where: str) -> Dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ConfigError('%s: not JSON (%s): %r' % (where, exc, text[:200])) from None
    if not isinstance(doc, dict):
        raise ConfigError('%s: expected a JSON object, got %r' % (where, doc))
    return doc


@dataclass(frozen=True)
class PlanApp:
    """One application of a planning job (plain data: the worker loads the model by name)."""

    name: str
    model: str
    rate_hz: float
    slo_ms: float
    processors: Tuple[str, ...]
    weight: float = 1.0
    min_attainment: float = 0.0

    def to_dict(self) -> Dict[str, Any]:
        return {'name': self.name, 'model': self.model, 'rate_hz': self.rate_hz,
                'slo_ms': self.slo_ms, 'processors': list(self.processors),
                'weight': self.weight, 'min_attainment': self.min_attainment}

    @classmethod
    def from_dict(cls, doc: Any, where: str = 'plan job app') -> 'PlanApp':
        """:raises ConfigError: a field missing or of the wrong type (named)."""
        procs = _get(doc, 'processors', 'list', where)
        if not all(isinstance(p, str) for p in procs):
            raise ConfigError('%s: field "processors" must list processor ids, got %r'
                              % (where, procs))
        return cls(name=_get(doc, 'name', 'str', where), model=_get(doc, 'model', 'str', where),
                   rate_hz=float(_get(doc, 'rate_hz', 'number', where)),
                   slo_ms=float(_get(doc, 'slo_ms', 'number', where)), processors=tuple(procs),
                   weight=float(doc.get('weight', 1.0)),
                   min_attainment=float(doc.get('min_attainment', 0.0)))


@dataclass(frozen=True)
class PlanJob:
    """One planning job, what the service sends the planner process (see :func:`run_plan`).

    :param platform: platform name; ``power_mode`` its power mode ('' = the default).
    :param apps: the applications, each restricted to the processors it may use now.
    :param goal: the goal to plan for.
    :param n_samples: policies the search samples.
    :param duration_s: simulated seconds of each of the planner's runs; ``seed`` its arrivals
        and the search's sampling; ``max_queue`` each processor's queue limit.
    :param interference_model: the interference model file to plan with ('' = the platform's
        committed model, and the no-interference scheduler when it has none).
    """

    platform: str
    power_mode: str
    apps: Tuple[PlanApp, ...]
    goal: JobGoal
    n_samples: int
    duration_s: float
    seed: int
    max_queue: int
    interference_model: str = ''

    def to_dict(self) -> Dict[str, Any]:
        return {'platform': self.platform, 'power_mode': self.power_mode,
                'apps': [a.to_dict() for a in self.apps], 'goal': self.goal,
                'n_samples': self.n_samples, 'duration_s': self.duration_s, 'seed': self.seed,
                'max_queue': self.max_queue, 'interference_model': self.interference_model}

    def to_json(self) -> str:
        """One line of JSON (:meth:`from_json` gives the job back)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, doc: Any) -> 'PlanJob':
        """:raises ConfigError: a field missing or of the wrong type (named with its value)."""
        where = 'plan job'
        goal = doc.get('goal') if isinstance(doc, dict) else None
        if not isinstance(goal, (str, dict)):
            if not isinstance(doc, dict) or 'goal' not in doc:
                _get(doc, 'goal', 'str', where)  # names what is missing
            raise ConfigError('%s: field "goal" must be a goal name or {"weighted": {metric: '
                              'weight}}, got %r' % (where, goal))
        apps = tuple(PlanApp.from_dict(a, '%s: apps[%d]' % (where, i))
                     for i, a in enumerate(_get(doc, 'apps', 'list', where)))
        return cls(platform=_get(doc, 'platform', 'str', where),
                   power_mode=_get(doc, 'power_mode', 'str', where), apps=apps, goal=goal,
                   n_samples=_get(doc, 'n_samples', 'int', where),
                   duration_s=float(_get(doc, 'duration_s', 'number', where)),
                   seed=_get(doc, 'seed', 'int', where),
                   max_queue=_get(doc, 'max_queue', 'int', where),
                   interference_model=_get(doc, 'interference_model', 'str', where)
                   if 'interference_model' in doc else '')

    @classmethod
    def from_json(cls, text: str) -> 'PlanJob':
        """:raises ConfigError: not JSON, or a field missing or of the wrong type (named)."""
        return cls.from_dict(_parse(text, 'plan job'))


@dataclass(frozen=True)
class PlanAnswer:
    """What the planner process answers: the policy and what the search reported about it.

    :param policy: the planned policy (with its mask: where each application may run).
    :param scheduler: the scheduler that planned it; ``predictor`` its latency predictor and
        ``predictor_note`` why it is not the interference model ('' when it is).
    :param goal: the goal's name; ``score`` the policy's predicted goal value and ``metrics``
        its other predicted metrics.
    :param search_time_s: wall time of the plan.
    :param attainment: each application's predicted SLO attainment (by name).
    :param floor_note: which floors no plan found meets ('' when every one is met).
    """

    policy: Policy
    scheduler: str
    goal: str
    predictor: str
    score: float
    search_time_s: float
    metrics: Mapping[str, float] = field(default_factory=dict)
    predictor_note: str = ''
    attainment: Mapping[str, float] = field(default_factory=dict)
    floor_note: str = ''

    def to_dict(self) -> Dict[str, Any]:
        return {'policy': self.policy.to_dict(), 'mask': self.policy.mask.tolist(),
                'scheduler': self.scheduler, 'goal': self.goal, 'predictor': self.predictor,
                'score': self.score, 'search_time_s': self.search_time_s,
                'metrics': dict(self.metrics), 'predictor_note': self.predictor_note,
                'attainment': dict(self.attainment), 'floor_note': self.floor_note}

    def to_json(self) -> str:
        """One line of JSON; the policy's shares as ``Policy.to_dict`` writes them (9 digits)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, doc: Any) -> 'PlanAnswer':
        """:raises ConfigError: a field missing or of the wrong type (named with its value)."""
        where = 'plan answer'
        mask = _get(doc, 'mask', 'list', where)
        policy = Policy.from_dict(_get(doc, 'policy', 'mapping', where), mask=mask,
                                  where='%s: field "policy"' % where)
        metrics = _get(doc, 'metrics', 'mapping', where)
        for k, v in metrics.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError('%s: field "metrics" must map names to numbers, got %r: %r'
                                  % (where, k, v))
        return cls(policy=policy, scheduler=_get(doc, 'scheduler', 'str', where),
                   goal=_get(doc, 'goal', 'str', where),
                   predictor=_get(doc, 'predictor', 'str', where),
                   score=float(_get(doc, 'score', 'number', where)),
                   search_time_s=float(_get(doc, 'search_time_s', 'number', where)),
                   metrics={k: float(v) for k, v in metrics.items()},
                   predictor_note=_get(doc, 'predictor_note', 'str', where),
                   attainment={str(k): float(v) for k, v in
                               (doc.get('attainment') or {}).items()},
                   floor_note=str(doc.get('floor_note', '')))

    @classmethod
    def from_json(cls, text: str) -> 'PlanAnswer':
        """:raises ConfigError: not JSON, or a field missing or of the wrong type (named)."""
        return cls.from_dict(_parse(text, 'plan answer'))


#: The scheduler the service plans with, as ``hetero-infer plan`` does by default; the one it
#: falls back to when the platform has no trained interference model; the one that gives the
#: policy serving starts with, before the first plan is done.
PLANNING_SCHEDULER = 'interference_aware'
FALLBACK_SCHEDULER = 'no_interference'
INITIAL_SCHEDULER = 'base'


def plan_context(job: PlanJob):
    """The :class:`~hetero_infer.planning.schedulers.interface.PlanContext` of a job: what
    ``hetero-infer plan`` builds from a scenario, built from the service's applications."""
    from hetero_infer.models.zoo import load_model
    from hetero_infer.planning import search
    from hetero_infer.planning.schedulers.interface import PlanContext
    from hetero_infer.planning.schedulers.interference_aware import InterferenceOptions
    from hetero_infer.planning.schedulers.searched import SearchOptions
    from hetero_infer.platform.spec import Platform
    from hetero_infer.workload.requests import App

    platform = Platform.load(job.platform, power_mode=job.power_mode or None)
    apps = [App(a.name, load_model(a.model), max(a.rate_hz, 0.1), a.slo_ms, a.processors,
                a.weight, a.min_attainment) for a in job.apps]
    settings = search.SimSettings(duration_s=job.duration_s,
                                  warmup_s=min(0.3, job.duration_s / 10.0), seed=job.seed,
                                  max_queue=job.max_queue)
    options = SearchOptions(n_samples=job.n_samples, workers=1,
                            max_refine_evals=max(10, job.n_samples // 4))
    return PlanContext(platform=platform, apps=apps, goal=job.goal, seed=job.seed,
                       settings=settings,
                       options=(options,
                                InterferenceOptions(model=job.interference_model or None)))


def initial_policy(job: PlanJob) -> Policy:
    """The policy serving starts with: the scheduler registry's ``base`` plan (shares in
    proportion to each processor's isolated throughput), made in the calling process (it
    searches nothing)."""
    from hetero_infer.planning.schedulers.driver import plan_scheduler
    return plan_scheduler(INITIAL_SCHEDULER, plan_context(job)).policy


def run_plan(job: PlanJob) -> PlanAnswer:
    """Plan ``job`` through the scheduler driver, as ``hetero-infer plan`` does: the
    interference-aware scheduler, or the no-interference one when the platform has no committed
    interference model (``predictor_note`` says why).

    :raises ModelError: the job's own ``interference_model`` cannot be used (no fallback: the
        user asked for that model).
    """
    from hetero_infer.errors import HeteroInferError
    from hetero_infer.interference.predictors import load_latency_predictor
    from hetero_infer.planning.schedulers.driver import plan_scheduler

    ctx = plan_context(job)
    scheduler, note = PLANNING_SCHEDULER, ''
    if job.interference_model:
        load_latency_predictor(ctx.platform, job.interference_model)
    else:
        try:
            load_latency_predictor(ctx.platform)  # as `hetero-infer plan` checks it first
        except HeteroInferError as exc:
            scheduler, note = FALLBACK_SCHEDULER, str(exc)
    plan = plan_scheduler(scheduler, ctx)
    result = plan.search
    return PlanAnswer(policy=plan.policy, scheduler=scheduler, goal=result.goal,
                      predictor=result.predictor, score=result.score,
                      search_time_s=plan.plan_time_s,
                      metrics={k: v for k, v in result.metrics.items()
                               if not isinstance(v, dict)},
                      predictor_note=note, attainment=result.metrics.get('attainment', {}),
                      floor_note=result.floor_note())


class Planner:
    """One background worker process that runs :func:`run_plan` jobs, one at a time.

    :param in_process: run jobs in the calling thread instead (tests, or where processes cannot
        be started).
    """

    def __init__(self, *, in_process: bool = False) -> None:
        self._proc: Optional[subprocess.Popen] = None
        self._in_process = in_process
        self._lock = threading.Lock()

    def plan(self, job: PlanJob) -> PlanAnswer:
        """Run one job and wait for it.

        :raises ConfigError: the job failed (the worker's message included).
        """
        if self._in_process:
            # through JSON as from the worker, so both give the same (rounded) policy
            return PlanAnswer.from_json(run_plan(job).to_json())
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = subprocess.Popen(
                    [sys.executable, '-m', 'hetero_infer.serving.planning'], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, universal_newlines=True, bufsize=1)
            proc = self._proc
            try:
                proc.stdin.write(job.to_json() + '\n')
                proc.stdin.flush()
                line = proc.stdout.readline()
            except (OSError, ValueError) as exc:
                line = ''
                err = str(exc)
            else:
                err = 'worker exited with %s' % proc.poll()
        if not line:
            raise ConfigError('planning failed: %s' % err)
        doc = _parse(line, 'plan answer')
        if 'error' in doc:
            raise ConfigError('planning failed: %s' % doc['error'])
        return PlanAnswer.from_dict(doc)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()


def _worker_main() -> int:
    """Serve JSON-line jobs on stdin until it closes (or Ctrl-C, which reaches the whole
    process group: the service closes the worker itself)."""
    try:
        return _serve_jobs()
    except KeyboardInterrupt:
        return 0


def _serve_jobs() -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = run_plan(PlanJob.from_json(line)).to_json()
        except Exception as exc:  # noqa: BLE001 - reported to the node, which keeps its current policy
            answer = json.dumps({'error': '%s: %s' % (type(exc).__name__, exc)})
        sys.stdout.write(answer + '\n')
        sys.stdout.flush()
    return 0


def plan_apps(apps: Sequence[Any], procs: Sequence[str], mask, rates: Sequence[float]
              ) -> Tuple[PlanApp, ...]:
    """The node's applications as a job's :class:`PlanApp` (``mask``: where each may run)."""
    out: List[PlanApp] = []
    for app, rate in zip(apps, rates):
        allowed = tuple(p for j, p in enumerate(procs) if mask[app.index][j])
        out.append(PlanApp(app.cfg.name, app.cfg.model, float(rate), float(app.slo_ms),
                           allowed, float(app.cfg.weight), float(app.cfg.min_attainment)))
    return tuple(out)


if __name__ == '__main__':
    sys.exit(_worker_main())
