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
- the policy is swapped atomically (:meth:`set_policy`): requests already queued keep their
  processor, new ones follow the new plan; nothing is lost or stalled;
- a processor whose executor fails to load is taken out of routing (its share is spread over the
  rest); an inference that raises is dropped (``processor_failed``), logged once per kind of
  error, and the worker goes on.
"""

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from hetero_infer.core.policy import Policy
from hetero_infer.core.router import PriorityRouter

DROP_REASONS = ('queue_full', 'rejected', 'no_processor', 'processor_failed', 'bad_input',
                'shutdown')


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


class _View:
    """DispatchView over the live queues (what the router's tie-break reads)."""

    def __init__(self, engine: 'ServingEngine') -> None:
        self._engine = engine
        self.now_ms = 0.0

    def queue_len(self, proc: str) -> int:
        w = self._engine.workers.get(proc)
        return w.depth if w is not None else 0

    def expected_free_ms(self, proc: str) -> float:
        w = self._engine.workers.get(proc)
        if w is None:
            return float('inf')
        return max(self.now_ms, w.busy_until_ms)


class ProcessorQueue:
    """Bounded FIFO queue and the one thread that runs a processor's requests in order."""

    def __init__(self, engine: 'ServingEngine', proc: str) -> None:
        self.engine = engine
        self.proc = proc
        self.queue = collections.deque()
        self.cond = threading.Condition()
        self.running: Optional[Request] = None
        self.busy_until_ms = 0.0
        self.busy_s = 0.0          # execution time accumulated (utilisation)
        self.closed = False
        self.thread = threading.Thread(target=self._loop, name='hetero-infer-' + proc,
                                       daemon=True)

    @property
    def depth(self) -> int:
        return len(self.queue) + (1 if self.running is not None else 0)

    def offer(self, req: Request, limit: int, now_ms: float) -> bool:
        """Queue ``req``; False when the queue is full or closed (the caller drops it)."""
        with self.cond:
            if self.closed or len(self.queue) >= limit:
                return False
            self.queue.append(req)
            self.busy_until_ms = max(self.busy_until_ms, now_ms) + req.expected_ms
            self.cond.notify()
            return True

    def close(self) -> List[Request]:
        """Stop taking work; returns what was still waiting (the caller drops it)."""
        with self.cond:
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
                    req = queue.popleft()
                    self.running = req
                try:
                    engine._execute(self, req)
                finally:
                    with cond:
                        self.running = None
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
        admission control).
    :param slo_ms: SLO per application (ms); updated live with :meth:`set_slos`.
    :param policy: the initial plan.
    :param on_outcome: called once per request, from a worker or the submitting thread.
    :param queue_limit: requests waiting per processor (not counting the one running).
    :param admission_control: drop requests whose SLO is lost before they start.
    """

    def __init__(self, *, app_names: Sequence[str], executors: Sequence[Dict[str, Any]],
                 expected_ms: Sequence[Dict[str, float]], slo_ms: Sequence[float],
                 policy: Policy, on_outcome: Callable[[Outcome], None], queue_limit: int = 4,
                 admission_control: bool = True,
                 log: Optional[Callable[[str], None]] = None) -> None:
        self.app_names = list(app_names)
        self.executors = [dict(e) for e in executors]
        self.expected_ms = [dict(e) for e in expected_ms]
        self.slo_ms = [float(s) for s in slo_ms]
        self.on_outcome = on_outcome
        self.queue_limit = int(queue_limit)
        self.admission_control = bool(admission_control)
        self._log = log or (lambda msg: None)
        self._logged_errors = set()
        procs: List[str] = []
        for p in policy.processor_ids:
            if any(p in e for e in self.executors):
                procs.append(p)
        self.workers: Dict[str, ProcessorQueue] = {p: ProcessorQueue(self, p) for p in procs}
        self._lock = threading.Lock()
        self._t0 = time.perf_counter()
        self._view = _View(self)
        self.router = PriorityRouter(policy)
        self.router.reset(_apps_view(self.app_names))
        for p in policy.processor_ids:
            if p not in self.workers:
                self.router.remove_processor(p)
        self.policy = policy
        self.policy_version = 1
        self._next_id = 0
        self._open = True
        self.counts = {'submitted': 0, 'results': 0, 'dropped': 0}
        self.drops: Dict[str, int] = collections.Counter()
        for w in self.workers.values():
            w.thread.start()

    # -- time -----------------------------------------------------------------------------------
    def now_ms(self) -> float:
        return (time.perf_counter() - self._t0) * 1e3

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
        proc = self.router.dispatch(req.app_index, now, self._view)
        if proc is None or proc not in self.workers:
            self._finish(Outcome(req, proc, 'no_processor',
                                 'no processor left for application %s'
                                 % self.app_names[req.app_index]))
            return
        req.proc = proc
        req.expected_ms = self.expected_ms[req.app_index].get(proc, 0.0)
        if not self.workers[proc].offer(req, self.queue_limit, now):
            self._finish(Outcome(req, proc, 'queue_full',
                                 '%s queue holds %d' % (proc, self.queue_limit)))

    def reject(self, req: Request, reason: str, detail: str) -> None:
        """Account a request that never reached routing (bad input)."""
        with self._lock:
            self.counts['submitted'] += 1
        self._finish(Outcome(req, None, reason, detail))

    def _execute(self, worker: ProcessorQueue, req: Request) -> None:
        start = time.perf_counter()
        waited_ms = (start - req.received_s) * 1e3
        app = req.app_index
        if self.admission_control and waited_ms + req.expected_ms > self.slo_ms[app]:
            self._finish(Outcome(req, worker.proc, 'rejected',
                                 'waited %.1f ms + expected %.1f ms > SLO %.1f ms'
                                 % (waited_ms, req.expected_ms, self.slo_ms[app])))
            return
        try:
            if req.inputs is None and req.prepare is not None:
                req.inputs = req.prepare()
        except Exception as exc:
            reason = getattr(exc, 'reason', None)
            if reason is None:
                self._log('application %s: preprocessing failed: %s'
                          % (self.app_names[app], exc))
            self._finish(Outcome(req, worker.proc, 'bad_input',
                                 '%s: %s' % (reason or type(exc).__name__, exc)))
            return
        try:
            ex = self.executors[app][worker.proc]
            # This thread is the only one feeding the processor: run the inference here when
            # the backend allows it (Executor.run_here) instead of handing it to the backend's
            # own worker thread and waiting (two thread switches per request).
            run = getattr(ex, 'run_here', None) or ex.run
            res = run(req.inputs)
        except Exception as exc:  # a failing inference must not stop the worker
            key = (worker.proc, type(exc).__name__)
            if key not in self._logged_errors:
                self._logged_errors.add(key)
                self._log('processor %s: inference of %s failed: %s'
                          % (worker.proc, self.app_names[app], exc))
            self._finish(Outcome(req, worker.proc, 'processor_failed', str(exc)))
            return
        end = time.perf_counter()
        worker.busy_s += res.execute_ms / 1e3
        self.router.completed(app, worker.proc, (end - req.received_s) * 1e3)
        self._finish(Outcome(req, worker.proc, outputs=res.outputs,
                             queue_ms=(start - req.received_s) * 1e3 + res.queue_ms,
                             execute_ms=res.execute_ms, finished_s=end, info=res.info))

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
            except Exception as exc:  # the thread is ending anyway
                self._log('processor %s: releasing the worker thread failed: %s' % (proc, exc))

    def _finish(self, outcome: Outcome) -> None:
        with self._lock:
            if outcome.drop_reason is None:
                self.counts['results'] += 1
            else:
                self.counts['dropped'] += 1
                self.drops[outcome.drop_reason] += 1
        if not outcome.finished_s:
            outcome.finished_s = time.perf_counter()
        self.on_outcome(outcome)

    # -- live changes ---------------------------------------------------------------------------
    def set_policy(self, policy: Policy) -> int:
        """Follow ``policy`` from the next request on; returns the new policy version."""
        self.router.set_policy(policy)
        for p in policy.processor_ids:
            if p not in self.workers:
                self.router.remove_processor(p)
        with self._lock:
            self.policy = policy
            self.policy_version += 1
            return self.policy_version

    def set_slos(self, slo_ms: Sequence[float]) -> None:
        self.slo_ms = [float(s) for s in slo_ms]

    def set_limits(self, *, queue_limit: int, admission_control: bool) -> None:
        self.queue_limit = int(queue_limit)
        self.admission_control = bool(admission_control)

    # -- inspection -----------------------------------------------------------------------------
    def in_flight(self) -> int:
        return sum(w.depth for w in self.workers.values())

    def utilisation(self) -> Dict[str, float]:
        """Busy seconds per processor since start (callers difference it per period)."""
        return {p: w.busy_s for p, w in self.workers.items()}

    def close(self, *, timeout_s: float = 5.0) -> None:
        """Drop what is still waiting (reason shutdown), then stop the workers."""
        with self._lock:
            self._open = False
        for w in self.workers.values():
            for req in w.close():
                self._finish(Outcome(req, w.proc, 'shutdown', 'node is shutting down'))
        deadline = time.perf_counter() + timeout_s
        for w in self.workers.values():
            w.thread.join(max(0.0, deadline - time.perf_counter()))


class _AppRow:
    __slots__ = ('name', 'model')

    def __init__(self, name: str) -> None:
        self.name = name
        self.model = None


def _apps_view(names: Sequence[str]) -> List[_AppRow]:
    return [_AppRow(n) for n in names]
