"""The serving engine of the scheduler node: routing, one worker per processor, accounting.

It has no ROS in it (the node feeds it decoded requests and publishes what it reports), so its
rules are tested directly:

- every request submitted ends in exactly one outcome, reported once through ``on_outcome``:
  a result, or a drop with a reason from :data:`DROP_REASONS`;
- each processor has one worker thread and a bounded FIFO queue (``queue_limit`` waiting); a
  request routed to a full queue is dropped (``queue_full``) at once, so overload never grows
  memory or latency without bound;
- with admission control, a request whose SLO is already lost when its processor is free to start
  it (waited + expected execution > SLO) is dropped (``rejected``) instead of wasting the
  processor;
- routing is the planner's: the :class:`PriorityRouter` gets the same isolated-latency table
  the planner's simulator uses (``expected_ms``) and the policy's router options, kept across
  re-plans and processor removal / restore; so a request whose processor's queue is full goes
  to an idle processor its application may use before it would be dropped, and with
  ``slo_dispatch='drop'`` a request no processor can finish within its SLO is dropped at once
  (``slo_unreachable``, counted apart from the other drops); when the applications' weights
  differ, a lower-weight request is shed under overload (``shed``, the router's rule);
- the policy is swapped atomically (:meth:`set_policy`): requests already queued keep their
  processor, new ones follow the new plan; nothing is lost or stalled;
- a processor whose executor fails to load is taken out of routing (its share is spread over the
  rest);
- processor faults (:mod:`hetero_infer.twin.faults` has the rule): an inference that raises is
  logged once per kind of error and re-dispatched once to the healthy processor, among those its
  application may use, that is expected to finish it first; after ``failure_threshold``
  consecutive failures, or at once when an inference overruns its watchdog, the processor is
  unhealthy: it leaves routing, everything queued on it is re-dispatched the same way, and
  ``on_health`` is called (the node re-plans without it). A request is dropped
  (``processor_failed``, the detail says why) only when its SLO has already passed, when it was
  already re-dispatched once, or when no other processor is left. A hung worker thread is
  abandoned (never reused; a fresh one takes the processor's queue) and what it returns later
  is discarded, so every request still has one outcome. An unhealthy processor is probed every
  ``probe_period_s`` with a real inference (not while an abandoned inference is still stuck on
  it); after ``recovery_successes`` successes in a row it rejoins routing.
"""

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from hetero_infer.errors import ModelError
from hetero_infer.planning.policy import Policy
from hetero_infer.planning.router import SHED, SLO_UNREACHABLE, PriorityRouter
from hetero_infer.twin.faults import HealthSettings, HealthTracker

DROP_REASONS = ('queue_full', 'rejected', 'no_processor', 'processor_failed', 'bad_input',
                'shutdown', SLO_UNREACHABLE, SHED)

#: How often the watchdog looks at the running inferences and due probes (s). Detection takes
#: at most the watchdog plus this.
WATCH_PERIOD_S = 0.02


@dataclass
class Request:
    """One input message: model inputs, or a function that computes them.

    ``prepare`` (when set and ``inputs`` is None) runs on the processor's worker just before the
    inference: preprocessing then costs nothing for requests dropped at the queue, and the
    subscription callback stays short. An exception from it with a ``reason`` attribute (an
    ``InputError``) drops the request as ``bad_input``.
    """

    request_id: int
    app_index: int
    inputs: Optional[Dict[str, Any]]
    received_s: float                       # time.perf_counter() at receipt
    stamp: Tuple[int, int] = (0, 0)         # header stamp of the input message
    frame_id: str = ''
    policy_version: int = 0
    proc: Optional[str] = None
    expected_ms: float = 0.0
    prepare: Optional[Callable[[], Dict[str, Any]]] = None
    failed_on: Optional[str] = None         # processor it failed on (it was re-dispatched)


@dataclass
class Outcome:
    """What happened to one request."""

    request: Request
    proc: Optional[str]
    drop_reason: Optional[str] = None
    detail: str = ''
    outputs: Optional[Dict[str, Any]] = None
    queue_ms: float = 0.0
    execute_ms: float = 0.0
    finished_s: float = 0.0
    info: Dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.drop_reason is None


class _Probe:
    """A health probe: one real inference of application ``app_index`` on an unhealthy
    processor."""

    __slots__ = ('app_index', 'inputs', 'expected_ms')

    def __init__(self, app_index: int, inputs: Dict[str, Any], expected_ms: float) -> None:
        self.app_index = app_index
        self.inputs = inputs
        self.expected_ms = expected_ms


class _View:
    """DispatchView over the live queues (what the router's tie-break reads)."""

    def __init__(self, engine: 'ServingEngine') -> None:
        self._engine = engine
        self.now_ms = 0.0

    def queue_full(self, proc: str) -> bool:
        w = self._engine.workers.get(proc)
        return w is not None and len(w.queue) >= self._engine.queue_limit

    def queue_len(self, proc: str) -> int:
        w = self._engine.workers.get(proc)
        return w.depth if w is not None else 0

    def expected_free_ms(self, proc: str) -> float:
        w = self._engine.workers.get(proc)
        if w is None:
            return float('inf')
        return max(self.now_ms, w.busy_until_ms)


class ProcessorQueue:
    """Bounded FIFO queue and the one thread that runs a processor's requests in order.

    ``run_started_s`` is set while an inference (or probe) is inside the backend: the watchdog
    reads it. Once ``abandoned`` (the inference overran its watchdog) the thread ends after that
    inference returns, and what it returned is discarded.
    """

    def __init__(self, engine: 'ServingEngine', proc: str) -> None:
        self.engine = engine
        self.proc = proc
        self.queue = collections.deque()
        self.cond = threading.Condition()
        self.running: Any = None
        self.run_started_s: Optional[float] = None
        self.run_expected_ms = 0.0
        self.abandoned = False
        self.busy_until_ms = 0.0
        self.busy_s = 0.0          # execution time accumulated (utilisation)
        self.closed = False
        self.thread = threading.Thread(target=self._loop, name='hetero-infer-' + proc,
                                       daemon=True)

    @property
    def depth(self) -> int:
        return len(self.queue) + (1 if self.running is not None else 0)

    def offer(self, req: Any, limit: int, now_ms: float) -> Optional[bool]:
        """Queue ``req``: True; False when the queue is full (the caller drops it); None when
        the queue is closed (the processor went away: the caller re-dispatches)."""
        with self.cond:
            if self.closed:
                return None
            if len(self.queue) >= limit:
                return False
            self.queue.append(req)
            self.busy_until_ms = max(self.busy_until_ms, now_ms) + req.expected_ms
            self.cond.notify()
            return True

    def take_queue(self) -> List[Any]:
        """Empty the queue; returns what was waiting."""
        with self.cond:
            left = list(self.queue)
            self.queue.clear()
            self.busy_until_ms = 0.0
        return left

    def close(self) -> List[Any]:
        """Stop taking work; returns what was still waiting (the caller drops it)."""
        with self.cond:
            self.closed = True
            left = list(self.queue)
            self.queue.clear()
            self.cond.notify_all()
        return left

    def abandon(self, item: Any, started_s: float) -> Optional[List[Any]]:
        """Give up on the thread if it is still running ``item`` started at ``started_s``:
        close the queue and return what was waiting; None if that inference has ended (the
        thread's result stands)."""
        with self.cond:
            if self.running is not item or self.run_started_s != started_s or self.abandoned:
                return None
            self.abandoned = True
            self.closed = True
            left = list(self.queue)
            self.queue.clear()
            self.cond.notify_all()
            return left

    def _loop(self) -> None:
        engine = self.engine
        cond, queue = self.cond, self.queue
        try:
            while True:
                with cond:
                    while not queue and not self.closed:
                        cond.wait()
                    if self.closed:
                        return
                    item = queue.popleft()
                    self.running = item
                if isinstance(item, _Probe):
                    result = engine._probe(self, item)
                else:
                    result = engine._execute(self, item)
                with cond:
                    abandoned = self.abandoned
                    self.running = None
                    self.run_started_s = None
                if abandoned:
                    engine._late(self, item)
                    return
                if isinstance(item, _Probe):
                    engine._probe_done(self.proc, *result)
                else:
                    engine._settle(self, item, *result)
        finally:
            engine._detach(self.proc)


class ServingEngine:
    """Routes requests with a :class:`PriorityRouter` to per-processor workers.

    :param app_names: application names (rows of every policy).
    :param executors: ``executors[app_index][proc]`` -> an object with ``run(inputs)`` returning
        an ``InferenceResult`` (a :class:`hetero_infer.backends.Executor`, whose ``run_here`` is
        used when it has one: the inference then runs on the processor queue's own thread);
        processors absent from every application are not served.
    :param expected_ms: ``expected_ms[app_index][proc]``: isolated latency (routing tie-break,
        admission control, watchdog).
    :param slo_ms: SLO per application (ms); updated live with :meth:`set_slos`.
    :param policy: the initial plan.
    :param on_outcome: called once per request, from a worker or the submitting thread.
    :param queue_limit: requests waiting per processor (not counting the one running).
    :param admission_control: drop requests whose SLO is lost before they start.
    :param log: ``log(text)`` for errors (failures, hangs); ``log_info`` for the rest (a
        recovery, a late result discarded), default ``log``.
    :param health: failure detection and recovery settings (:class:`HealthSettings`).
    :param on_health: ``on_health(proc, healthy, reason)`` when a processor leaves (False) or
        rejoins (True) routing; from a worker or the watchdog thread.
    """

    def __init__(self, *, app_names: Sequence[str], executors: Sequence[Dict[str, Any]],
                 expected_ms: Sequence[Dict[str, float]], slo_ms: Sequence[float],
                 policy: Policy, on_outcome: Callable[[Outcome], None], queue_limit: int = 4,
                 admission_control: bool = True,
                 log: Optional[Callable[[str], None]] = None,
                 log_info: Optional[Callable[[str], None]] = None,
                 health: Optional[HealthSettings] = None,
                 on_health: Optional[Callable[[str, bool, str], None]] = None) -> None:
        self.app_names = list(app_names)
        self.executors = [dict(e) for e in executors]
        self.expected_ms = [dict(e) for e in expected_ms]
        self.slo_ms = [float(s) for s in slo_ms]
        self.on_outcome = on_outcome
        self.queue_limit = int(queue_limit)
        self.admission_control = bool(admission_control)
        self._log = log or (lambda msg: None)
        self._log_info = log_info or self._log
        self._on_health = on_health or (lambda proc, healthy, reason: None)
        self._logged_errors = set()
        procs: List[str] = []
        for p in policy.processor_ids:
            if any(p in e for e in self.executors):
                procs.append(p)
        self.workers: Dict[str, ProcessorQueue] = {p: ProcessorQueue(self, p) for p in procs}
        self._lock = threading.Lock()
        self._t0 = time.perf_counter()
        self.health = HealthTracker(procs, health, clock=self.elapsed_s)
        self._stuck: Dict[str, int] = collections.Counter()  # abandoned, still in the backend
        self._probing: Dict[str, bool] = {}
        self._next_probe_s: Dict[str, float] = {}
        self._last_inputs: Dict[int, Dict[str, Any]] = {}
        self._view = _View(self)
        # the planner's simulator routes with the platform's isolated latencies; the engine's
        # executors come with the same table (``expected_ms``), so both decide alike
        self.router = PriorityRouter(policy)
        self.router.reset(_apps_view(self.app_names))
        self.router.set_service_ms(self.expected_ms)
        self.router.set_slos(self.slo_ms)
        for p in policy.processor_ids:
            if p not in self.workers:
                self.router.remove_processor(p)
        self.policy = policy
        self.policy_version = 1
        self._next_id = 0
        self._open = True
        self.counts = {'submitted': 0, 'results': 0, 'dropped': 0}
        self.drops: Dict[str, int] = collections.Counter()
        self.redispatched = 0
        self.late_discarded = 0
        self.proc_results: Dict[str, int] = collections.Counter()
        for w in self.workers.values():
            w.thread.start()
        self._wake = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name='hetero-infer-watchdog',
                                          daemon=True)
        self._watchdog.start()

    # -- time -----------------------------------------------------------------------------------
    def now_ms(self) -> float:
        return (time.perf_counter() - self._t0) * 1e3

    def elapsed_s(self) -> float:
        return time.perf_counter() - self._t0

    # -- requests -------------------------------------------------------------------------------
    def new_request(self, app_index: int, inputs: Optional[Dict[str, Any]], *,
                    received_s: Optional[float] = None, stamp: Tuple[int, int] = (0, 0),
                    frame_id: str = '',
                    prepare: Optional[Callable[[], Dict[str, Any]]] = None) -> Request:
        with self._lock:
            self._next_id += 1
            rid = self._next_id
        return Request(rid, app_index, inputs,
                       received_s if received_s is not None else time.perf_counter(),
                       stamp=stamp, frame_id=frame_id, prepare=prepare)

    def submit(self, req: Request) -> None:
        """Route and queue one request; its outcome is reported through ``on_outcome``."""
        with self._lock:
            self.counts['submitted'] += 1
            is_open = self._open
        if not is_open:
            self._finish(Outcome(req, None, 'shutdown', 'node is shutting down'))
            return
        now = self.now_ms()
        self._view.now_ms = now
        req.policy_version = self.policy_version
        proc, why = self.router.route(req.app_index, now, self._view)
        if why == SLO_UNREACHABLE:
            self._finish(Outcome(req, None, SLO_UNREACHABLE,
                                 'no processor can finish it within its SLO of %.1f ms'
                                 % self.slo_ms[req.app_index]))
            return
        if why == SHED:
            self._finish(Outcome(req, None, SHED,
                                 'shed under overload: application %s has a lower weight'
                                 % self.app_names[req.app_index]))
            return
        if proc is None or proc not in self.workers:
            self._finish(Outcome(req, proc, 'no_processor',
                                 'no processor left for application %s'
                                 % self.app_names[req.app_index]))
            return
        req.proc = proc
        req.expected_ms = self.expected_ms[req.app_index].get(proc, 0.0)
        queued = self.workers[proc].offer(req, self.queue_limit, now)
        if queued is None:  # the processor failed between routing and queueing
            self._redispatch(req, proc, 'processor %s left routing' % proc)
        elif not queued:
            self._finish(Outcome(req, proc, 'queue_full',
                                 '%s queue holds %d' % (proc, self.queue_limit)))

    def reject(self, req: Request, reason: str, detail: str) -> None:
        """Account a request that never reached routing (bad input)."""
        with self._lock:
            self.counts['submitted'] += 1
        self._finish(Outcome(req, None, reason, detail))

    def _execute(self, worker: ProcessorQueue, req: Request
                 ) -> Tuple[Optional[Outcome], Optional[Exception], Any, float]:
        """Run ``req`` on the worker's thread: (drop outcome or None, the inference's exception
        or None, its result, start time); :meth:`_settle` acts on it unless the thread was
        abandoned meanwhile."""
        start = time.perf_counter()
        waited_ms = (start - req.received_s) * 1e3
        app = req.app_index
        if self.admission_control and waited_ms + req.expected_ms > self.slo_ms[app]:
            return Outcome(req, worker.proc, 'rejected',
                           'waited %.1f ms + expected %.1f ms > SLO %.1f ms'
                           % (waited_ms, req.expected_ms, self.slo_ms[app])), None, None, start
        try:
            if req.inputs is None and req.prepare is not None:
                req.inputs = req.prepare()
        except Exception as exc:  # noqa: BLE001 - preprocessing failures drop the request
            reason = getattr(exc, 'reason', None)
            if reason is None:
                self._log('application %s: preprocessing failed: %s'
                          % (self.app_names[app], exc))
            return Outcome(req, worker.proc, 'bad_input',
                           '%s: %s' % (reason or type(exc).__name__, exc)), None, None, start
        ex = self.executors[app][worker.proc]
        # This thread is the only one feeding the processor: run the inference here when
        # the backend allows it (Executor.run_here) instead of handing it to the backend's
        # own worker thread and waiting (two thread switches per request).
        run = getattr(ex, 'run_here', None) or ex.run
        worker.run_expected_ms = req.expected_ms
        worker.run_started_s = time.perf_counter()
        try:
            return None, None, run(req.inputs), start
        except Exception as exc:  # noqa: BLE001 - a failing inference must not stop the worker
            return None, exc, None, start

    def _settle(self, worker: ProcessorQueue, req: Request, dropped: Optional[Outcome],
                error: Optional[Exception], res: Any, start: float) -> None:
        """Account what :meth:`_execute` found (on the worker's thread, which still owns it)."""
        if dropped is not None:
            self._finish(dropped)
            return
        proc = worker.proc
        app = req.app_index
        if isinstance(error, ModelError):
            # the model refused these inputs (names, shapes): the request's fault, not the
            # processor's, and another processor would refuse them too
            self._finish(Outcome(req, proc, 'bad_input', 'model_inputs: %s' % error))
            return
        if error is not None:
            self._failed(proc, req, error)
            return
        end = time.perf_counter()
        self.health.success(proc)
        if app not in self._last_inputs:
            self._last_inputs[app] = req.inputs
        worker.busy_s += res.execute_ms / 1e3
        self.router.completed(app, proc, (end - req.received_s) * 1e3)
        info = res.info
        if req.failed_on is not None:
            info = dict(info, failed_on=req.failed_on)
        self._finish(Outcome(req, proc, outputs=res.outputs,
                             queue_ms=(start - req.received_s) * 1e3 + res.queue_ms,
                             execute_ms=res.execute_ms, finished_s=end, info=info))

    # -- faults ---------------------------------------------------------------------------------
    def _failed(self, proc: str, req: Request, exc: Exception) -> None:
        key = (proc, type(exc).__name__)
        if key not in self._logged_errors:
            self._logged_errors.add(key)
            self._log('processor %s: inference of %s failed: %s'
                      % (proc, self.app_names[req.app_index], exc))
        left = []
        if self.health.failure(proc, str(exc)):
            left = self._leave_routing(proc)
        self._redispatch(req, proc, 'inference on %s failed: %s' % (proc, exc))
        for r in left:
            self._redispatch(r, proc, 'processor %s unhealthy' % proc)

    def _leave_routing(self, proc: str, worker: Optional[ProcessorQueue] = None, *,
                       changed: bool = True) -> List[Any]:
        """Take ``proc`` out of routing (it just became unhealthy when ``changed``); returns
        the requests queued on it. ``worker``: its abandoned worker, replaced by a fresh one."""
        reason = self.health.unhealthy().get(proc, '') if changed else ''
        self.router.remove_processor(proc)
        old = self.workers[proc]
        if worker is not None and worker is old:
            fresh = ProcessorQueue(self, proc)
            fresh.busy_s = old.busy_s
            self.workers[proc] = fresh
            fresh.thread.start()
            left = []
        else:
            left = old.take_queue()
        with self._lock:
            self._next_probe_s[proc] = self.elapsed_s() + self.health.settings.probe_period_s
        if reason:
            self._mark(proc)
            self._log('processor %s unhealthy (%s): out of routing, %d queued requests '
                      're-dispatched' % (proc, reason, len([r for r in left
                                                            if isinstance(r, Request)])))
            self._on_health(proc, False, reason)
        return left

    def _redispatch(self, req: Any, failed: str, why: str) -> None:
        """Send ``req`` once to the healthy processor expected to finish it first, among those
        its application may use; drop it (``processor_failed``) when that cannot help."""
        if isinstance(req, _Probe):
            with self._lock:
                self._probing[failed] = False
            return
        app = req.app_index
        now_s = time.perf_counter()
        waited_ms = (now_s - req.received_s) * 1e3
        slo = self.slo_ms[app]
        if not self._open:
            self._finish(Outcome(req, failed, 'shutdown', '%s; node is shutting down' % why))
            return
        if req.failed_on is not None:
            note = 'already re-dispatched once (from %s)' % req.failed_on
        elif waited_ms >= slo:
            note = 'SLO %.1f ms already passed (waited %.1f ms)' % (slo, waited_ms)
        else:
            note = ''
        if not note:
            now = self.now_ms()
            options = []
            for p in self.executors[app]:
                w = self.workers.get(p)
                if p != failed and w is not None and self.health.is_healthy(p):
                    exp = self.expected_ms[app].get(p, 0.0)
                    options.append((max(now, w.busy_until_ms) + exp, p, w, exp))
            options.sort(key=lambda o: o[0])
            req.failed_on = failed
            for _, p, w, exp in options:
                req.proc, req.expected_ms = p, exp
                if w.offer(req, self.queue_limit, now):
                    with self._lock:
                        self.redispatched += 1
                    return
            note = ('the queues of %s are full' % ', '.join(o[1] for o in options)
                    if options else 'no other healthy processor for application %s'
                    % self.app_names[app])
        self._finish(Outcome(req, failed, 'processor_failed', '%s; %s' % (why, note)))

    def _watch(self) -> None:
        """The watchdog: overrunning inferences and due probes, every WATCH_PERIOD_S."""
        while self._open:
            self._wake.wait(WATCH_PERIOD_S)
            if not self._open:
                return
            now = time.perf_counter()
            settings = self.health.settings
            for w in list(self.workers.values()):
                started, item = w.run_started_s, w.running
                if started is None or item is None:
                    continue
                ran_ms = (now - started) * 1e3
                limit_ms = settings.watchdog_ms(w.run_expected_ms)
                if ran_ms > limit_ms:
                    self._hung(w, item, started, ran_ms, limit_ms)
            self._probe_due()

    def _hung(self, w: ProcessorQueue, item: Any, started: float, ran_ms: float,
              limit_ms: float) -> None:
        proc = w.proc
        left = w.abandon(item, started)
        if left is None:
            return  # it returned just now
        with self._lock:
            self._stuck[proc] += 1
        what = ('probe' if isinstance(item, _Probe)
                else 'inference of %s' % self.app_names[item.app_index])
        why = 'hang: %s running %.0f ms > watchdog %.0f ms' % (what, ran_ms, limit_ms)
        self._log('processor %s: %s; its worker thread is abandoned' % (proc, why))
        if self.health.hung(proc, why):
            left += self._leave_routing(proc, w)
        else:  # already unhealthy (a probe hung): replace the thread
            self._leave_routing(proc, w, changed=False)
        for r in [item] + left:
            self._redispatch(r, proc, 'processor %s %s' % (proc, why))

    def _late(self, w: ProcessorQueue, item: Any) -> None:
        """An abandoned thread's inference returned: its request was re-dispatched long ago."""
        with self._lock:
            self._stuck[w.proc] -= 1
            self.late_discarded += 1
        self._log_info('processor %s: an abandoned inference returned; its output is discarded'
                       % w.proc)

    def _probe_due(self) -> None:
        unhealthy = self.health.unhealthy()
        if not unhealthy:
            return
        now = self.elapsed_s()
        period = self.health.settings.probe_period_s
        for proc in unhealthy:
            w = self.workers.get(proc)
            with self._lock:
                due = (w is not None and not self._stuck[proc] and not self._probing.get(proc)
                       and now >= self._next_probe_s.get(proc, 0.0))
                if due:
                    self._probing[proc] = True
                    self._next_probe_s[proc] = now + period
            if not due:
                continue
            probe = self._make_probe(proc)
            if probe is None or w.offer(probe, self.queue_limit + 1, self.now_ms()) is not True:
                with self._lock:
                    self._probing[proc] = False

    def _make_probe(self, proc: str) -> Optional[_Probe]:
        """A probe with the cheapest application on ``proc`` (its model's own dummy inputs when
        the executor makes them, else the last inputs it saw)."""
        apps = sorted((self.expected_ms[a].get(proc, 0.0), a) for a in range(len(self.executors))
                      if proc in self.executors[a])
        for exp, a in apps:
            ex = self.executors[a][proc]
            inputs = ex.random_inputs() if hasattr(ex, 'random_inputs') else None
            if inputs is None:
                inputs = self._last_inputs.get(a)
            if inputs is not None:
                return _Probe(a, inputs, exp)
        return None

    def _probe(self, worker: ProcessorQueue, probe: _Probe) -> Tuple[bool, str]:
        ex = self.executors[probe.app_index][worker.proc]
        run = getattr(ex, 'run_here', None) or ex.run
        worker.run_expected_ms = probe.expected_ms
        worker.run_started_s = time.perf_counter()
        try:
            run(probe.inputs)
        except Exception as exc:  # noqa: BLE001 - a failed probe, whatever the error
            return False, str(exc)
        return True, ''

    def _probe_done(self, proc: str, ok: bool, why: str) -> None:
        with self._lock:
            self._probing[proc] = False
        if self.health.probe_result(proc, ok, why):
            self._mark(proc)
            self.router.restore_processor(proc)
            self._log_info('processor %s healthy again (%d probes in a row succeeded): back in '
                           'routing' % (proc, self.health.settings.recovery_successes))
            self._on_health(proc, True, 'recovered')

    def _mark(self, proc: str) -> None:
        """Note on ``proc``'s latest health event how many results it had delivered."""
        with self._lock:
            for e in reversed(self.health.events):
                if e.proc == proc:
                    e.results_before = self.proc_results[proc]
                    break

    def health_events(self) -> List[Any]:
        """Every health transition so far (:class:`~hetero_infer.twin.faults.HealthEvent`)."""
        return list(self.health.events)

    # -- accounting -----------------------------------------------------------------------------
    def _detach(self, proc: str) -> None:
        """On ``proc``'s worker thread as it ends: undo what ``run_here`` set up on it."""
        seen = set()
        for execs in self.executors:
            worker = getattr(execs.get(proc), 'worker', None)
            if worker is None or id(worker) in seen or not hasattr(worker, 'detach'):
                continue
            seen.add(id(worker))
            try:
                worker.detach()
            except Exception as exc:  # noqa: BLE001 - the thread is ending anyway
                self._log('processor %s: releasing the worker thread failed: %s' % (proc, exc))

    def _finish(self, outcome: Outcome) -> None:
        with self._lock:
            if outcome.drop_reason is None:
                self.counts['results'] += 1
                self.proc_results[outcome.proc] += 1
            else:
                self.counts['dropped'] += 1
                self.drops[outcome.drop_reason] += 1
        if not outcome.finished_s:
            outcome.finished_s = time.perf_counter()
        self.on_outcome(outcome)

    # -- live changes ---------------------------------------------------------------------------
    def set_policy(self, policy: Policy) -> int:
        """Follow ``policy`` from the next request on; returns the new policy version.

        Unhealthy processors stay out of routing whatever the policy says."""
        self.router.set_policy(policy)
        for p in policy.processor_ids:
            if p not in self.workers or not self.health.is_healthy(p):
                self.router.remove_processor(p)
        with self._lock:
            self.policy = policy
            self.policy_version += 1
            return self.policy_version

    def set_slos(self, slo_ms: Sequence[float]) -> None:
        self.slo_ms = [float(s) for s in slo_ms]
        self.router.set_slos(self.slo_ms)

    def set_weights(self, weights: Sequence[float]) -> None:
        """Each application's weight: the router sheds lower-weight requests under overload."""
        self.router.set_weights(weights)

    def set_limits(self, *, queue_limit: int, admission_control: bool) -> None:
        self.queue_limit = int(queue_limit)
        self.admission_control = bool(admission_control)

    def set_health(self, settings: HealthSettings) -> None:
        """New detection / recovery settings (the next failure or probe follows them)."""
        self.health.settings = settings

    # -- inspection -----------------------------------------------------------------------------
    def in_flight(self) -> int:
        return sum(w.depth for w in self.workers.values())

    def utilisation(self) -> Dict[str, float]:
        """Busy seconds per processor since start (callers difference it per period)."""
        return {p: w.busy_s for p, w in self.workers.items()}

    def close(self, *, timeout_s: float = 5.0) -> None:
        """Drop what is still waiting (reason shutdown), then stop the workers (a hung one is
        not waited for beyond ``timeout_s``)."""
        with self._lock:
            self._open = False
        self._wake.set()
        for w in list(self.workers.values()):
            for req in w.close():
                if isinstance(req, Request):
                    self._finish(Outcome(req, w.proc, 'shutdown', 'node is shutting down'))
        deadline = time.perf_counter() + timeout_s
        for w in list(self.workers.values()):
            w.thread.join(max(0.0, deadline - time.perf_counter()))
        self._watchdog.join(1.0)


class _AppRow:
    __slots__ = ('name', 'model')

    def __init__(self, name: str) -> None:
        self.name = name
        self.model = None


def _apps_view(names: Sequence[str]) -> List[_AppRow]:
    return [_AppRow(n) for n in names]
