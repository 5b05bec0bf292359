"""The serving core as one object: applications + engine + planner + drift check + status.

:class:`Service` is what the scheduler node wraps (the node only adds subscriptions, publishers,
parameters and diagnostics); it runs without ROS, which is how ``test/test_serving_*.py`` drive
it. A request goes::

    submit(app, preprocessor) -> engine: router -> processor worker (preprocess, run)
      -> outcome -> statistics, ServedApp.document -> publish(app, document)

Serving starts with the scheduler registry's ``base`` policy; planning then runs in a background
thread, through the planner process (:mod:`hetero_infer.serving.planning`) and the same scheduler
entry point as ``hetero-infer plan``: at start-up, when the goal, the SLOs or the planned rates
change (:meth:`Service.apply`), when the observed rates drift from the planned ones
(:meth:`Service.check_drift`) and when a processor leaves or rejoins routing. The engine swaps
the policy atomically; requests already queued keep their processor.
"""

import sys
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from hetero_infer.errors import BackendError, ConfigError, HeteroInferError
from hetero_infer.planning.policy import Policy
from hetero_infer.platform.spec import Platform
from hetero_infer.serving import planning
from hetero_infer.serving.apps import ServedApp, load_app
from hetero_infer.serving.config import ServeConfig, apply_changes
from hetero_infer.serving.engine import Outcome, ServingEngine
from hetero_infer.serving.preprocess import InputError
from hetero_infer.serving.status import STATUS_SCHEMA, Stats, add_criticality, floors_unmet

#: The interpreter's thread switch interval while serving (s); see :class:`Service`.
SWITCH_INTERVAL_S = 0.0001

#: Observed rates are compared with planned ones only over windows with at least this many
#: requests, so that a few messages' jitter does not trigger a re-plan.
MIN_DRIFT_REQUESTS = 20
#: Requests in a window after a silent one that mark an application's stream as started there.
MIN_STREAM_REQUESTS = 3

Publish = Callable[[ServedApp, Dict[str, Any]], None]


class _Log:
    """The logger interface the service uses (``info``, ``warning``, ``error`` of one text); an
    rclpy logger or a :mod:`logging` logger fits."""

    def info(self, text: str) -> None:
        pass

    warning = error = info


def _platform_source(cfg: ServeConfig) -> str:
    """Which parameter gave the platform, with its value (for messages)."""
    if cfg.bringup_dir:
        return 'bringup_dir=%r (its %s)' % (cfg.bringup_dir, cfg.platform)
    return 'platform=%r' % cfg.platform


def _model_source(cfg: ServeConfig) -> str:
    """The interference model's parameter and value, with the bring-up it may come from."""
    text = 'interference_model=%r' % cfg.interference_model
    return text + (' (bringup_dir=%r)' % cfg.bringup_dir if cfg.bringup_dir else '')


class Service:
    """Serve the applications of ``config`` (see the module docstring).

    :param config: the frozen settings (:func:`hetero_infer.serving.config.build_config`).
    :param publish: ``publish(app, document)`` once per request, from the thread that finished
        it; not called any more once :meth:`close` has started without ``publish_drops``.
    :param backend: an already-created backend to use instead of ``config.backend``'s (tests,
        benchmarks); it is not closed with the service.
    :param log: ``info`` / ``warning`` / ``error`` of one text.
    :param name: who serves, for messages (``node /scheduler``).
    :param plan_in_process: run the policy search in this process (default: the planner's worker
        process, so that planning never holds this process's GIL).
    :raises ConfigError: a bad setting, unknown model or processor (setting and value named).
    """

    def __init__(self, config: ServeConfig, *, publish: Publish, backend: Any = None,
                 log: Any = None, name: str = 'service', plan_in_process: bool = False) -> None:
        self.config = config
        self.log = log if log is not None else _Log()
        self.where = name
        self._publish = publish
        try:
            self.platform = Platform.load(config.platform, power_mode=config.power_mode or None)
        except HeteroInferError as exc:
            raise ConfigError('%s: parameter %s: %s'
                              % (name, _platform_source(config), exc)) from None
        if config.interference_model:
            # refused at start-up, not at the first plan: a model trained on another platform
            # (or no model file at all) must not leave the node planning blind
            from hetero_infer.interference.predictors import load_latency_predictor
            try:
                load_latency_predictor(self.platform, config.interference_model)
            except HeteroInferError as exc:
                raise ConfigError('%s: parameter %s: %s'
                                  % (name, _model_source(config), exc)) from None
        self._own_backend = backend is None
        self.backend = backend if backend is not None else self._create_backend()
        self.apps: List[ServedApp] = []
        executors: List[Dict[str, Any]] = []
        for i, a in enumerate(config.apps):
            app, execs = load_app(i, a, config, self.platform, self.backend, where=name,
                                  warn=self.log.warning, error=self.log.error)
            self.apps.append(app)
            executors.append(execs)
        self._warm_up(executors)
        self.stats = Stats(len(self.apps))
        self.planned_rates = [a.cfg.rate_hz for a in self.apps]
        self._plan_lock = threading.Lock()
        self._plan_wanted = threading.Event()
        self._plan_reason = 'start-up'
        # Every change of what plans are made for (goal, weights, SLOs, planned rates set by the
        # user) counts up; a plan made before the change is never installed (nor kept for a
        # later health change): it is made again for the new settings.
        self._plan_generation = 0
        #: The goal the policy in force was planned for (None: the start-up policy, which is
        #: no goal's); ``config.goal`` is what the user asked for.
        self.policy_goal: Optional[str] = None
        self.superseded = 0
        self.planning = False
        self.last_plan: Dict[str, Any] = {}
        self.last_drift: Optional[float] = None
        self._drift_previous = [0] * len(self.apps)  # requests per app in the last window
        # unhealthy processors -> (last plan, the goal it was made for)
        self._plans_by_down: Dict[frozenset, Tuple[Policy, str]] = {}
        self._warned_predictor = False
        self._closing = False
        self._silent = False
        procs = self.platform.processor_ids
        # the processors each application may use: those its executors loaded on
        self._mask = np.array([[p in execs for p in procs] for execs in executors], dtype=bool)
        policy = planning.initial_policy(self._plan_job(config, self.planned_rates))
        self.engine = ServingEngine(
            app_names=[a.name for a in self.apps], executors=executors,
            expected_ms=[a.iso_ms for a in self.apps], slo_ms=[a.slo_ms for a in self.apps],
            policy=policy, on_outcome=self._on_outcome, queue_limit=config.queue_limit,
            admission_control=config.admission_control, log=self.log.error,
            log_info=self.log.info, health=config.health_settings(), on_health=self._on_health)
        self.engine.set_weights([a.weight for a in config.apps])  # equal: no shedding
        self._last_busy = self.engine.utilisation()
        self._last_status_s = time.perf_counter()
        self._planner_proc = planning.Planner(in_process=plan_in_process)
        self._planner = threading.Thread(target=self._plan_loop, name='hetero-infer-planner',
                                         daemon=True)
        # A request crosses three threads (DDS, the intake, the processor's worker: the
        # inference runs on the worker's own thread through Executor.run_here where the
        # backend allows it), and every C call that lets the GIL go (OpenCV, DDS) has to win it
        # back. With CPython's default 5 ms switch interval each of those waits can last that
        # long behind a busy thread. 0.1 ms measured best (bench/bench_ros_node.py): at 2400
        # requests/s 0.5 ms let the workers' queues run away, and at 30 Hz x 3 it gave p99
        # 1.6 ms from source stamp to publish against 1.0 ms.
        # Set last, when nothing can fail any more: a construction that raises leaves the
        # process's interval as it was (close() restores it otherwise).
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL_S))

    def start(self) -> None:
        """Arm the configured faults and start planning (serving has started already: requests
        follow the initial policy until the first plan is done)."""
        self._inject_faults()
        self._planner.start()
        self.request_replan('start-up')
        cfg = self.config
        self.log.info('serving %s on %s (%s backend), goal %s, policy %r'
                      % (', '.join('%s:%s' % (a.name, a.model.name) for a in self.apps),
                         self.platform.name, cfg.backend, cfg.goal, self.engine.policy))
        if cfg.bringup_dir or cfg.interference_model:
            self.log.info('platform file %s, interference model %s%s'
                          % (cfg.platform, cfg.interference_model or 'committed',
                             ' (bring-up %s)' % cfg.bringup_dir if cfg.bringup_dir else ''))

    # -- set-up -----------------------------------------------------------------------------
    def _create_backend(self) -> Any:
        cfg = self.config
        from hetero_infer.backends import create_backend
        try:
            return create_backend(cfg.backend, platform=self.platform, seed=cfg.seed)
        except HeteroInferError as exc:
            raise ConfigError('%s: parameter backend=%r: %s'
                              % (self.where, cfg.backend, exc)) from None

    def _inject_faults(self) -> None:
        """Arm the ``faults`` setting's faults now that serving starts (after the warm-up,
        which they must not break)."""
        faults = self.config.faults
        if not faults:
            return
        from hetero_infer.twin.faults import check_processors, parse_faults
        inject = getattr(self.backend, 'inject_faults', None)
        if inject is None:
            raise ConfigError('%s: parameter faults=%s: fault injection needs the emulated '
                              'backend, not %s' % (self.where, list(faults), self.config.backend))
        parsed = parse_faults(faults)
        check_processors(parsed, self.platform.processor_ids, '%s: parameter faults' % self.where)
        inject(parsed)
        self.log.warning('injecting faults: %s' % ', '.join(str(f) for f in parsed))

    def _warm_up(self, executors: Sequence[Dict[str, Any]]) -> None:
        """One preprocessing and one inference per executor before serving.

        First calls pay for lazy imports (OpenCV), allocations and backend initialisation
        (TensorRT contexts, onnxruntime arenas); without this the first requests would miss
        their SLO.
        """
        import cv2
        # One frame's preprocessing takes ~0.15 ms on one core; OpenCV's thread pool costs
        # more in wake-ups than it saves at these sizes and competes with the workers.
        cv2.setNumThreads(1)
        for app, execs in zip(self.apps, executors):
            x = app.warm_up_inputs()
            for proc, ex in execs.items():
                try:
                    ex.run(x)
                except Exception as exc:  # noqa: BLE001  reported again per request if it persists
                    self.log.warning('warm-up of %s on %s failed: %s' % (app.name, proc, exc))

    def _plan_job(self, cfg: ServeConfig, rates: Sequence[float], down=frozenset()
                  ) -> planning.PlanJob:
        """The planning job for ``rates`` without the processors ``down``."""
        return planning.PlanJob(
            platform=cfg.platform, power_mode=cfg.power_mode or '',
            apps=planning.plan_apps(self.apps, self.platform.processor_ids,
                                    self._plan_mask(down).tolist(), rates),
            goal=cfg.goal_spec(), n_samples=int(cfg.plan_samples),
            duration_s=float(cfg.plan_duration_s), seed=int(cfg.seed),
            max_queue=int(cfg.queue_limit), interference_model=cfg.interference_model)

    # -- requests ---------------------------------------------------------------------------
    def submit(self, app: ServedApp, prepare: Callable[[], Dict[str, Any]], *, received_s: float,
               stamp: Tuple[int, int] = (0, 0), frame_id: str = '') -> None:
        """One request of ``app`` whose model inputs ``prepare()`` makes (on the worker)."""
        req = self.engine.new_request(app.index, None, received_s=received_s, stamp=stamp,
                                      frame_id=frame_id, prepare=prepare)
        self.stats.received(app.index)
        self.engine.submit(req)

    def bad_input(self, app: ServedApp, exc: InputError, *, received_s: float,
                  stamp: Tuple[int, int] = (0, 0), frame_id: str = '') -> None:
        """A message of ``app`` that could not be decoded: answered at once (``bad_input``)."""
        req = self.engine.new_request(app.index, None, received_s=received_s, stamp=stamp,
                                      frame_id=frame_id)
        self.stats.received(app.index)
        self.stats.bad_input(exc.reason)
        self.engine.reject(req, 'bad_input', '%s: %s' % (exc.reason, exc))

    def _on_outcome(self, o: Outcome) -> None:
        app = self.apps[o.request.app_index]
        total_ms = (o.finished_s - o.request.received_s) * 1e3
        self.stats.outcome(app.index, o.proc, o.drop_reason, o.detail, total_ms,
                           o.ok and total_ms <= app.slo_ms)
        if self._silent:
            return
        self._publish(app, app.document(o, total_ms))

    # -- live changes -----------------------------------------------------------------------
    def apply(self, changes: Mapping[str, Any]) -> ServeConfig:
        """Apply live setting ``changes`` (validated as a whole): SLOs and limits at once, a new
        goal, SLO or planned rate by re-planning. Returns the previous config.

        :raises ConfigError: a bad value or a combination that cannot work (nothing applied).
        """
        old = self.config
        new = apply_changes(old, changes, node_name=self.where)
        self.config = new
        old_slos = [app.slo_ms for app in self.apps]
        for app, a in zip(self.apps, new.apps):
            app.reconfigure(a, new.slo_scale)
        slos_changed = [app.slo_ms for app in self.apps] != old_slos
        if slos_changed:
            self.engine.set_slos([app.slo_ms for app in self.apps])
        if (old.queue_limit, old.admission_control) != (new.queue_limit, new.admission_control):
            self.engine.set_limits(queue_limit=new.queue_limit,
                                   admission_control=new.admission_control)
        if old.health_settings() != new.health_settings():
            self.engine.set_health(new.health_settings())
        rates_changed = any(a.rate_hz != b.rate_hz for a, b in zip(new.apps, old.apps))
        if rates_changed:
            self.planned_rates = [a.rate_hz for a in new.apps]
        weights = [a.weight for a in new.apps]
        if weights != [a.weight for a in old.apps]:
            self.engine.set_weights(weights)
        criticality_changed = [(a.weight, a.min_attainment) for a in new.apps] != \
            [(a.weight, a.min_attainment) for a in old.apps]
        if new.goal_spec() != old.goal_spec() or slos_changed or rates_changed \
                or criticality_changed:
            self.request_replan('parameters ' + ', '.join(sorted(changes)), supersede=True)
        return old

    def check_drift(self) -> None:
        """Re-plan when the observed rates drift from the planned ones.

        drift = max over applications of |observed - planned| / max(planned, 1 Hz), over the
        time since the last call; windows with fewer than MIN_DRIFT_REQUESTS requests are
        ignored, and so is a window in which an application's stream started (at least
        MIN_STREAM_REQUESTS requests after a window without any: it covers only part of it).
        """
        counts, elapsed = self.stats.take_drift_counts(time.perf_counter())
        previous, self._drift_previous = self._drift_previous, counts
        if elapsed <= 0 or sum(counts) < MIN_DRIFT_REQUESTS:
            return
        started = [app.name for app, c, p in zip(self.apps, counts, previous)
                   if p == 0 and c >= MIN_STREAM_REQUESTS]
        if started:
            # a stream that started during this window fills only part of it: its rate shows
            # in the next window (else every start of a camera would look like a drift)
            self.log.info('drift check skipped: the stream of %s started in this window'
                          % ', '.join(started))
            return
        observed = [c / elapsed for c in counts]
        drift = max(abs(o - p) / max(p, 1.0) for o, p in zip(observed, self.planned_rates))
        self.last_drift = drift
        if drift > self.config.drift_threshold and not self.planning:
            self.log.info('request mix drifted by %.2f (> %.2f): observed %s Hz, planned %s Hz; '
                          're-planning' % (drift, self.config.drift_threshold,
                                           [round(o, 1) for o in observed],
                                           [round(p, 1) for p in self.planned_rates]))
            self.planned_rates = observed
            self.request_replan('drift %.2f' % drift)

    # -- faults -----------------------------------------------------------------------------
    def _on_health(self, proc: str, healthy: bool, reason: str) -> None:
        """A processor left (``healthy`` False) or rejoined routing: re-plan for the processors
        that work."""
        down = frozenset(self.engine.health.unhealthy())
        known = self._plans_by_down.get(down)
        if known is not None:
            # A plan made earlier for these very processors serves until the re-plan is done
            # (after a recovery the current plan gives the processor nothing).
            with self._plan_lock:
                version = self.engine.set_policy(known[0])
                self.policy_goal = known[1]
            self.log.info('policy %d: the last plan for processors %s (goal %s)'
                          % (version, ', '.join(p for p in self.engine.workers
                                                if p not in down), known[1]))
        if healthy:
            self.log.info('processor %s is healthy again; re-planning with it' % proc)
            self.request_replan('processor %s recovered' % proc)
        else:
            self.log.error('processor %s is unhealthy (%s); re-planning without it'
                           % (proc, reason))
            self.request_replan('processor %s unhealthy' % proc)

    def _plan_mask(self, down) -> np.ndarray:
        """The processors each application may use, without the unhealthy ones (``down``; an
        application left with none keeps its own: routing still skips them, and the plan stays
        valid)."""
        mask = self._mask.copy()
        for j, p in enumerate(self.platform.processor_ids):
            if p in down:
                for i in range(mask.shape[0]):
                    if mask[i].sum() > 1 and mask[i, j]:
                        mask[i, j] = False
        return mask

    # -- planning ---------------------------------------------------------------------------
    def request_replan(self, reason: str, *, supersede: bool = False) -> None:
        """Ask the planner thread for a new policy (the latest request wins).

        :param supersede: the settings plans are made for changed (a live parameter change):
            a plan under way is never installed, and plans kept for other sets of healthy
            processors are forgotten (they were made for the old settings).
        """
        with self._plan_lock:
            self._plan_reason = reason
            if supersede:
                self._plan_generation += 1
                self._plans_by_down.clear()
        self._plan_wanted.set()

    def _plan_loop(self) -> None:
        while not self._closing:
            self._plan_wanted.wait(0.5)
            if self._closing:
                return
            if not self._plan_wanted.is_set():
                continue
            self._plan_wanted.clear()
            with self._plan_lock:
                reason = self._plan_reason
                generation = self._plan_generation
            cfg = self.config
            rates = list(self.planned_rates)
            down = frozenset(self.engine.health.unhealthy())
            self.planning = True
            try:
                result = self.plan(cfg, rates, down)
            except Exception as exc:  # noqa: BLE001  keep serving with the current policy
                self.planning = False
                self.log.error('planning (%s) failed, keeping policy %d: %s'
                               % (reason, self.engine.policy_version, exc))
                continue
            if self._closing:
                return
            with self._plan_lock:
                # installed (or not) and the flag cleared as one: ~/status never shows
                # planning over with the previous goal's policy still in force
                self.planning = False
                if generation != self._plan_generation:
                    # the goal, an SLO or a rate changed while planning: the plan for the new
                    # settings is made next (the event is set), this one is never installed
                    self.superseded += 1
                    self.log.info('plan (%s, goal %s) superseded by %s before it was installed'
                                  % (reason, cfg.goal, self._plan_reason))
                    continue
                self._plans_by_down[down] = (result.policy, cfg.goal)
                if down != frozenset(self.engine.health.unhealthy()):
                    # health changed while planning: that change asked for the next plan
                    self.log.info('plan (%s) kept aside: made for other healthy processors '
                                  'than now' % reason)
                    continue
                version = self.engine.set_policy(result.policy)
                self.policy_goal = cfg.goal
                self.last_plan = {'reason': reason, 'scheduler': result.scheduler,
                                  'goal': result.goal, 'predictor': result.predictor,
                                  'score': result.score,
                                  'search_time_s': round(result.search_time_s, 3),
                                  'interference_model': cfg.interference_model or None,
                                  'rates_hz': [round(r, 3) for r in rates],
                                  'attainment': {k: round(v, 4)
                                                 for k, v in result.attainment.items()},
                                  'floor_note': result.floor_note,
                                  # the floors this plan was made for that it leaves unmet
                                  'floors_unmet': (floors_unmet(cfg.apps, result.attainment)
                                                   if result.floor_note else [])}
                if result.floor_note:
                    self.log.warning('plan (%s): %s' % (reason, result.floor_note))
            self.log.info('policy %d (%s, goal %s, %s predictor, %.2f s): %r'
                          % (version, reason, result.goal, result.predictor,
                             result.search_time_s, result.policy))

    def plan(self, cfg: ServeConfig, rates: Sequence[float], down=frozenset()
             ) -> planning.PlanAnswer:
        """Search a policy for ``rates`` without the processors ``down`` (waits for it)."""
        answer = self._planner_proc.plan(self._plan_job(cfg, rates, down))
        if answer.predictor_note and not self._warned_predictor:
            self._warned_predictor = True
            self.log.warning('planning with isolated latencies: %s' % answer.predictor_note)
        return answer

    # -- status -----------------------------------------------------------------------------
    def status(self) -> Dict[str, Any]:
        """The ``hetero_infer.status/1`` document of the period since the last call."""
        now = time.perf_counter()
        period = max(now - self._last_status_s, 1e-6)
        self._last_status_s = now
        engine = self.engine
        busy = engine.utilisation()
        util = {p: round(min(1.0, (busy[p] - self._last_busy.get(p, 0.0)) / period), 4)
                for p in busy}
        self._last_busy = busy
        window = self.stats.window(self.apps, period)
        health = engine.health.snapshot()
        with self._plan_lock:  # the policy and the goal it was made for, as one
            version, policy, goal = engine.policy_version, engine.policy, self.policy_goal
        last_plan = dict(self.last_plan)
        add_criticality(window['applications'], self.config.apps,
                        last_plan.get('attainment') or {})
        return {
            'schema': STATUS_SCHEMA,
            'uptime_s': round(engine.elapsed_s(), 3),
            'policy_version': version,
            'policy': policy.to_dict()['allocation'],
            'goal': goal,
            'goal_requested': self.config.goal,
            'planning': self.planning or self._plan_wanted.is_set(),
            'plans_superseded': self.superseded,
            'last_plan': last_plan,
            'applications': window['applications'],
            'floors_unmet': list(last_plan.get('floors_unmet') or []),
            'processors': {p: {'utilisation': util[p], 'queue': w.depth,
                               'results': engine.proc_results[p], 'health': health[p]}
                           for p, w in engine.workers.items()},
            'unhealthy': {p: h['reason'] for p, h in health.items() if not h['healthy']},
            'redispatched': engine.redispatched,
            'late_discarded': engine.late_discarded,
            'drops': dict(engine.drops),
            'bad_inputs': window['bad_inputs'],
            'counts': dict(engine.counts),
        }

    def summary(self) -> Dict[str, Any]:
        """Totals since start per application and per (application, processor)."""
        engine = self.engine
        out = self.stats.totals(self.apps, list(engine.workers))
        out['busy_s'] = engine.utilisation()
        out['health'] = engine.health.snapshot()
        out['health_events'] = [
            {'t_s': round(e.t_s, 3), 'processor': e.proc, 'healthy': e.healthy,
             'reason': e.reason, 'results_before': e.results_before}
            for e in engine.health_events()]
        out['proc_results'] = dict(engine.proc_results)
        out['redispatched'] = engine.redispatched
        out['late_discarded'] = engine.late_discarded
        return out

    # -- shutdown ---------------------------------------------------------------------------
    def close(self, *, publish_drops: bool = True) -> None:
        """Stop planning, drop what is queued (reason shutdown), release the backend.

        :param publish_drops: still publish the shutdown drops (every request gets its one
            document); False when there is nothing left to publish to.
        """
        if self._closing:
            return
        self._silent = not publish_drops
        self.engine.close()
        self._silent = True
        self._closing = True
        self._plan_wanted.set()
        if self._planner.is_alive():
            self._planner.join(timeout=5.0)
        self._planner_proc.close()
        if self._own_backend:
            try:
                self.backend.close()
            except BackendError as exc:
                self.log.error('closing backend: %s' % exc)
        sys.setswitchinterval(self._switch_interval)
