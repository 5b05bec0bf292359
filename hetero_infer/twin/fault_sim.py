"""Injected processor faults in the twin's serving simulation (``Twin.serve(faults=...)``).

The twin is the ground truth of what the processors do, so the faults happen here; how serving
reacts follows the serving engine (:mod:`hetero_infer.serving.engine`) and the same
:class:`~hetero_infer.twin.faults.HealthTracker` rule:

- an inference that starts on a processor with an ``error`` fault fails at once; one that starts
  during a ``hang`` holds the processor until the hang ends;
- a failed request is re-dispatched once to the healthy processor its application may use that
  is expected to finish it first (the dispatch view's rule); a request whose SLO has passed,
  that was already re-dispatched, or that has nowhere else to go is dropped
  (``processor_failed``);
- after ``failure_threshold`` consecutive failures, or when an inference overruns its watchdog,
  the processor is unhealthy: requests routed to it go to the best other processor instead (a
  dispatcher with ``remove_processor``, like the priority router, also stops choosing it and
  spreads its share over the rest), and its queue is re-dispatched; an abandoned (hung)
  inference keeps the processor until the hang ends and its result is discarded;
- an unhealthy processor is probed every ``probe_period_s`` (not while a hung inference still
  holds it); a probe is an instant check that no fault is active (its few milliseconds of
  processor time are not simulated); after ``recovery_successes`` good probes in a row it
  rejoins.

Re-planning is the dispatcher's business: ``remove_processor`` / ``restore_processor`` are called
on it when a processor leaves or rejoins (``hetero-infer simulate`` wraps the router in one that
switches to a plan made without the processor, as the node does).
"""

import heapq
import itertools
import math
from typing import Any, Callable, List, Optional, Sequence, Tuple

from hetero_infer.twin.faults import Fault, FaultSchedule, HealthSettings, HealthTracker


class FaultSim:
    """Fault injection and the reaction to it, inside one :meth:`Twin.serve` run.

    :param place: ``place(record, app_index, proc) -> bool`` queues a request on ``proc`` (False
        when its queue is full).
    :param begin: ``begin(proc_index)`` starts the next queued job of an idle processor.
    """

    def __init__(self, faults: Sequence[Fault], settings: Optional[HealthSettings], *, eng: Any,
                 st: Any, view: Any, apps: Sequence[Any], allowed: Sequence[frozenset],
                 dispatcher: Any, place: Callable[[Any, int, str], bool],
                 begin: Callable[[int], None]) -> None:
        self.schedule = FaultSchedule(faults)
        self.eng, self.st, self.view = eng, st, view
        self.apps, self.allowed, self.dispatcher = apps, allowed, dispatcher
        self.place, self.begin = place, begin
        self.health = HealthTracker(eng.ids, settings, clock=lambda: eng.now / 1e3)
        self._timers: List[Tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._retried = set()      # id() of records already re-dispatched
        self._hung = set()         # id() of jobs a hang holds now
        self._abandoned = set()    # id() of hung jobs given up on
        self._draining = False
        self.redispatched = 0
        self.late_discarded = 0

    # -- time --------------------------------------------------------------------------------
    def _at(self, t_ms: float, fn: Callable[[], None]) -> None:
        if math.isfinite(t_ms):
            heapq.heappush(self._timers, (t_ms, next(self._seq), fn))

    def run_until(self, t_ms: float, stop=None) -> None:
        """The engine's ``run_until`` with the fault timers (watchdogs, hang ends, probes)."""
        eng = self.eng
        self._draining = math.isinf(t_ms)
        while self._timers and self._timers[0][0] <= t_ms:
            tt, _, fn = heapq.heappop(self._timers)
            eng.run_until(tt, stop)
            if stop is not None and stop():
                return
            eng.now = max(eng.now, tt)
            fn()
        eng.run_until(t_ms, stop)

    # -- hooks -------------------------------------------------------------------------------
    def route(self, app_index: int, proc: Optional[str]) -> Optional[str]:
        """Where a request the dispatcher sent to ``proc`` goes (elsewhere when unhealthy)."""
        if proc is None or self.health.is_healthy(proc):
            return proc
        best = self._options(app_index, proc)
        return best[0] if best else proc

    def intercept(self, job: Any, i: int) -> bool:
        """Called as ``job`` starts on processor ``i``; True when a fault takes it over."""
        eng, st = self.eng, self.st
        proc = eng.ids[i]
        now_s = eng.now / 1e3
        kind = self.schedule.kind_at(proc, now_s)
        if kind is None:
            return False
        if kind == 'error':
            st.current[i] = None
            if self.health.failure(proc, 'injected fault (error) at %.2f s' % now_s):
                self._leave(i)
            self._retry(job.record, proc)
            if st.queues[i] and st.current[i] is None:
                self.begin(i)
            return True
        self._hung.add(id(job))
        limit_ms = self.health.settings.watchdog_ms(st.iso[(job.tag, i)])
        self._at(eng.now + limit_ms, lambda: self._watchdog(job, i, limit_ms))
        self._at(self.schedule.hang_end_s(proc, now_s) * 1e3, lambda: self._unhang(job, i))
        return True

    # -- reactions ---------------------------------------------------------------------------
    def _watchdog(self, job: Any, i: int, limit_ms: float) -> None:
        if self.st.current[i] is not job or id(job) not in self._hung:
            return
        proc = self.eng.ids[i]
        self._abandoned.add(id(job))
        if self.health.hung(proc, 'hang: inference running > watchdog %.0f ms' % limit_ms):
            self._leave(i)
        self._retry(job.record, proc)

    def _unhang(self, job: Any, i: int) -> None:
        st = self.st
        if st.current[i] is not job:
            return
        self._hung.discard(id(job))
        if id(job) not in self._abandoned:
            self.eng.start_job(job)   # the hang ended before the watchdog: it runs, late
            return
        st.current[i] = None
        self.late_discarded += 1
        if st.queues[i]:
            self.begin(i)

    def _leave(self, i: int) -> None:
        st, proc = self.st, self.eng.ids[i]
        if hasattr(self.dispatcher, 'remove_processor'):
            self.dispatcher.remove_processor(proc)
        queued = list(st.queues[i])
        st.queues[i].clear()
        st.queued_ms[i] = 0.0
        for job in queued:
            self._retry(job.record, proc)
        self._at(self.eng.now + self.health.settings.probe_period_s * 1e3,
                 lambda: self._probe(i))

    def _probe(self, i: int) -> None:
        eng, proc = self.eng, self.eng.ids[i]
        if self.health.is_healthy(proc):
            return
        cur = self.st.current[i]
        stuck = cur is not None and id(cur) in self._abandoned
        if not stuck:
            ok = self.schedule.kind_at(proc, eng.now / 1e3) is None
            if self.health.probe_result(proc, ok, '' if ok else 'fault still active'):
                if hasattr(self.dispatcher, 'restore_processor'):
                    self.dispatcher.restore_processor(proc)
                return
        if not self._draining:
            self._at(eng.now + self.health.settings.probe_period_s * 1e3,
                     lambda: self._probe(i))

    def _options(self, app_index: int, failed: str) -> List[str]:
        """Healthy processors other than ``failed`` for the application, earliest finish first."""
        eng, st, view = self.eng, self.st, self.view
        view.now_ms = eng.now
        opts = []
        for p in self.allowed[app_index]:
            if p != failed and self.health.is_healthy(p):
                opts.append((view.expected_free_ms(p) + st.iso[(app_index, eng.index[p])], p))
        return [p for _, p in sorted(opts)]

    def _retry(self, rec: Any, failed: str) -> None:
        ai = rec.app
        rec.start_ms = None
        if (id(rec) not in self._retried
                and self.eng.now - rec.arrival_ms < self.apps[ai].slo_ms):
            self._retried.add(id(rec))
            for p in self._options(ai, failed):
                if self.place(rec, ai, p):
                    self.redispatched += 1
                    return
        rec.proc = failed
        rec.dropped_reason = 'processor_failed'
