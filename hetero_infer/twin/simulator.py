"""The digital twin: a layer-level ground-truth simulator of a heterogeneous SoC.

What it models (DESIGN.md, "Where the hardware is not here"):

* every inference runs layer by layer; a processor runs one inference at a time (non-preemptive)
  and queues requests FIFO;
* on a DLA, layers it cannot run execute on the GPU between DLA layers, with transition costs;
  they start at once and time-slice the GPU with its own inference's layer (kernel-level
  sharing: while k layers share a processor, each one's compute and fixed cost take k times as
  long);
* every DLA inference also puts work on the GPU (reformat kernels, submission and completion
  signalling) while the DLA computes: GPU layers' compute and fixed cost stretch by
  :meth:`Platform.gpu_time_scale` of the number of layers running on DLAs; the DLA never waits
  for it;
* every running layer pulls DRAM bandwidth; its memory time stretches by the processor's
  contention curve of the co-runners' utilisation, and all rates are recomputed whenever any layer
  starts or ends (a fluid model solved exactly between events);
* seeded multiplicative log-normal noise on every layer execution, so a seed gives one trace.

The interference model must never read this module's formulas: it learns from what
:meth:`Twin.profile_layer` measures, as it would on a Jetson.

The contention model (durations alone, the curves, the fixed point) is
:mod:`hetero_infer.twin.contention`. The event loop runs compiled (:mod:`hetero_infer.twin.kernel`,
numba) when numba imports, else as the Python below; both give the same results
(:data:`KERNEL_ENV` chooses).
"""

import math
import os
import random
from collections import deque
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from hetero_infer.errors import ConfigError
from hetero_infer.models.zoo import Layer, ModelSpec
from hetero_infer.platform.spec import Platform
from hetero_infer.twin.contention import base_ms, curve_params, solve_running
from hetero_infer.workload.requests import (
    DEFAULT_MAX_QUEUE,
    App,
    Dispatcher,
    DispatchView,
    RequestRecord,
    poisson_arrivals,
)

DEFAULT_NOISE_PCT = 3.0
#: Which event loop runs: ``numba`` (the compiled kernel, :mod:`~hetero_infer.twin.kernel`),
#: ``python`` (the loop below), or unset / ``auto`` (the kernel when numba imports, else the
#: loop below).
#: Both give the same results bit for bit.
KERNEL_ENV = 'HETERO_INFER_TWIN_KERNEL'

# A compiled step: (exec_proc_index, overhead_ms, compute_ms, memory_ms, bytes)
Step = Tuple[int, float, float, float, float]


# A layer execution in progress is a list, indexed by position in the hot loop:
#   [0 job, 1 exec processor index, 2 fraction left, 3 duration now (ms, co-running),
#    4 duration alone (ms, time-slicing applied), 5 bytes, 6 overhead, 7 compute, 8 memory]
# (6-8 with the execution's noise applied). The duration alone changes only when the number
# of layers sharing its processor does (on the GPU also when the number of layers running on
# DLAs does: GPU-side work of DLA inference); the duration now, whenever any layer starts or
# ends.


class _Job:
    __slots__ = ('steps', 'idx', 'owner', 'start_ms', 'record', 'loop', 'latencies', 'tag')

    def __init__(self, steps, owner, start_ms, record=None, loop=False, tag=None):
        self.steps = steps
        self.idx = 0
        self.owner = owner
        self.start_ms = start_ms
        self.record = record
        self.loop = loop
        self.latencies = []
        self.tag = tag


class _EventLoop:
    """Event loop shared by profiling, co-run measurement and serving.

    :class:`~hetero_infer.twin.kernel.KernelEventLoop` is this loop compiled with numba (same
    interface, same results bit for bit); :func:`_new_event_loop` picks one (:data:`KERNEL_ENV`).
    Both call the contention model of :mod:`~hetero_infer.twin.contention`; a change to the
    loop's own arithmetic or order of operations here (the advance, the time-slicing, the tie
    rule) must be made there too (test_core_twin_kernel fails otherwise).

    Any job (a list of steps) can be started with :meth:`start_job`; ``on_finish(job)`` is called
    when its last step ends. ``noise_batch`` noise factors are drawn from ``rng`` at a time (in
    the order executions start, so the trace is the same as drawing one per start); use 1 when
    the caller draws other numbers from ``rng`` between starts.
    """

    def __init__(self, platform: Platform, rng: random.Random, noise_sigma: float, *,
                 noise_batch: int = 256):
        self.platform = platform
        self.rng = rng
        self.sigma = noise_sigma
        self.ids = list(platform.processor_ids)
        self.index = {p: i for i, p in enumerate(self.ids)}
        self.curves = curve_params(platform, self.ids)
        self.dram = platform.dram_gbps * 1e6  # bytes per ms
        n = len(self.ids)
        self.share = [0] * n                   # layers executing on each processor now
        # GPU-side work of DLA inference: the GPU's index, which processors are DLAs, how many
        # layers run on DLAs now, and the GPU time scale for each count
        self.gpu = self.index.get(platform.gpu_id, -1)
        self.is_dla = [platform.processors[p].kind == 'dla' for p in self.ids]
        self.dla_running = 0
        self.gpu_scale = [platform.gpu_time_scale(k) for k in range(2 * n + 2)]
        self.dirty = False                     # running set changed since the last solve
        self.running = []                      # executions in progress (layout above)
        self.now = 0.0
        self.events = 0
        self.on_finish = None                  # callback(job) when a job's last step ends
        self._noise = []                       # drawn noise factors, next one last
        self._noise_batch = noise_batch

    def _draw_noise(self):
        gauss, sigma, exp = self.rng.gauss, self.sigma, math.exp
        drawn = [exp(gauss(0.0, sigma)) for _ in range(self._noise_batch)]
        drawn.reverse()
        self._noise.extend(drawn)

    def start_job(self, job):
        """Start ``job``'s current step (``job.idx``) now."""
        e, ov, c, m, b = job.steps[job.idx]
        if self.sigma > 0.0:
            if not self._noise:
                self._draw_noise()
            f = self._noise.pop()
            ov *= f
            c *= f
            m *= f
        k = self.share[e] + 1
        self.share[e] = k
        self.running.append([job, e, 1.0, 0.0, base_ms(ov, c, m, 1), b, ov, c, m])
        if self.is_dla[e]:
            self.dla_running += 1
            if self.gpu >= 0 and self.share[self.gpu]:
                self._reslice(self.gpu, self.share[self.gpu])
        if k > 1 or (e == self.gpu and self.dla_running):
            self._reslice(e, k)
        self.dirty = True

    def _reslice(self, e, k):
        """``k`` layers now share processor ``e``: each one's duration alone changes (on the
        GPU, also stretched by the GPU-side work of the layers running on DLAs)."""
        if e == self.gpu and self.dla_running:
            k = k * self.gpu_scale[self.dla_running]
        for ex in self.running:
            if ex[1] == e:
                ex[4] = base_ms(ex[6], ex[7], ex[8], k)

    def run_until(self, t_end, stop=None):
        """Process completions up to ``t_end`` (or until ``stop()`` is true).

        The hot loop: per layer end, re-solve the durations (when the running set changed),
        find the next end, advance every execution to it, and start the job's next step in
        place of the one that ended (:meth:`start_job` written out, the same list reused).
        """
        running = self.running
        share = self.share
        curves = self.curves
        dram = self.dram
        noise = self._noise
        noisy = self.sigma > 0.0
        is_dla = self.is_dla
        gpu = self.gpu
        inf = math.inf
        dirty = self.dirty
        now = self.now
        events = self.events
        while running:
            best = None
            best_t = inf
            if dirty:
                dirty = False
                if len(running) == 1:
                    best = running[0]
                    best[3] = best[4]
                    best_t = best[2] * best[4]
                else:
                    for ex, d in zip(running, solve_running(running, curves, dram, 4)):
                        ex[3] = d
                        t = ex[2] * d
                        if t < best_t:
                            best_t = t
                            best = ex
            else:
                for ex in running:
                    t = ex[2] * ex[3]
                    if t < best_t:
                        best_t = t
                        best = ex
            t = now + best_t
            late = t > t_end
            if late:
                t = t_end
            dt = t - now
            if dt > 0:
                for ex in running:
                    d = ex[3]
                    if d > 0:
                        ex[2] -= dt / d
                now = self.now = t
            if late:
                self.dirty = False
                self.events = events
                return
            # ``best`` ends now; its job's next step starts (or the job is done)
            events += 1
            dirty = True
            running.remove(best)
            job = best[0]
            e = best[1]
            idx = job.idx + 1
            job.idx = idx
            steps = job.steps
            if idx < len(steps):
                e2, ov, c, m, b = steps[idx]
                if noisy:
                    if not noise:
                        self._draw_noise()
                    f = noise.pop()
                    ov *= f
                    c *= f
                    m *= f
                if e2 == e:
                    k = share[e]
                    dla_moved = False
                else:
                    k = share[e] - 1
                    share[e] = k
                    dla_moved = is_dla[e] or is_dla[e2]
                    if is_dla[e]:
                        self.dla_running -= 1
                    if is_dla[e2]:
                        self.dla_running += 1
                    # the GPU is re-sliced once below when the DLA count moved
                    if k and not (dla_moved and e == gpu):
                        self._reslice(e, k)
                    k = share[e2] + 1
                    share[e2] = k
                best[1] = e2
                best[2] = 1.0
                kk = k
                if e2 == gpu and self.dla_running:
                    kk = k * self.gpu_scale[self.dla_running]
                best[4] = base_ms(ov, c, m, kk)
                best[5] = b
                best[6] = ov
                best[7] = c
                best[8] = m
                running.append(best)
                if k > 1 and e2 != e and not (dla_moved and e2 == gpu):
                    self._reslice(e2, k)
                if dla_moved and gpu >= 0 and share[gpu]:
                    self._reslice(gpu, share[gpu])
            else:
                k = share[e] - 1
                share[e] = k
                if k:
                    self._reslice(e, k)
                if is_dla[e]:
                    self.dla_running -= 1
                    if gpu >= 0 and share[gpu]:
                        self._reslice(gpu, share[gpu])
                self.events = events
                self.on_finish(job)
            if stop is not None and stop():
                self.dirty = True
                self.events = events
                return
        self.dirty = dirty
        self.events = events
        self.now = now = max(now, t_end) if t_end != inf else now


_kernel_engine = None       # kernel.KernelEventLoop once imported; False: numba is missing
_kernel_error = ''


def event_loop_kind() -> str:
    """The event loop new twin runs use: ``'numba'`` or ``'python'`` (see :data:`KERNEL_ENV`).

    :raises ConfigError: the variable has another value, or asks for numba where it is missing.
    """
    global _kernel_engine, _kernel_error
    choice = os.environ.get(KERNEL_ENV, '').strip().lower() or 'auto'
    if choice == 'python':
        return 'python'
    if choice not in ('auto', 'numba'):
        raise ConfigError('%s must be auto, numba or python, got %r'
                          % (KERNEL_ENV, os.environ[KERNEL_ENV]))
    if _kernel_engine is None:
        try:
            from hetero_infer.twin.kernel import KernelEventLoop
            _kernel_engine = KernelEventLoop
        except ImportError as exc:
            _kernel_engine, _kernel_error = False, str(exc)
    if _kernel_engine:
        return 'numba'
    if choice == 'numba':
        raise ConfigError('%s=numba but numba cannot be imported: %s'
                          % (KERNEL_ENV, _kernel_error))
    return 'python'


def _new_event_loop(platform: Platform, rng: random.Random, noise_sigma: float,
                noise_batch: int):
    """An :class:`_EventLoop`, or the compiled one with the same interface and results."""
    if event_loop_kind() == 'numba':
        return _kernel_engine(platform, rng, noise_sigma, noise_batch=noise_batch)
    return _EventLoop(platform, rng, noise_sigma, noise_batch=noise_batch)


class _View(DispatchView):
    def __init__(self, twin_state, max_queue=None):
        self._s = twin_state
        self._limit = max_queue

    def queue_full(self, proc):
        return self._limit is not None and len(self._s.queues[self._s.index[proc]]) >= self._limit

    def queue_len(self, proc):
        s = self._s
        i = s.index[proc]
        return len(s.queues[i]) + (1 if s.current[i] is not None else 0)

    def expected_free_ms(self, proc):
        s = self._s
        i = s.index[proc]
        t = self.now_ms
        cur = s.current[i]
        if cur is not None:
            t = max(t, cur.start_ms + s.iso[(cur.tag, i)])
        return t + s.queued_ms[i]


class Twin:
    """Ground-truth simulator for one platform. Deterministic for a seed.

    :param platform: the simulated SoC.
    :param seed: seeds the noise (and arrivals, when :meth:`serve` is not given one).
    :param noise_pct: standard deviation of the per-layer multiplicative noise, in percent.
    """

    def __init__(self, platform: Platform, *, seed: int = 0,
                 noise_pct: float = DEFAULT_NOISE_PCT):
        if noise_pct < 0 or noise_pct > 50:
            raise ConfigError('noise_pct must be in [0, 50], got %r' % noise_pct)
        self.platform = platform
        self.seed = seed
        self.noise_pct = noise_pct
        self._programs: Dict[Tuple[int, str], List[Step]] = {}

    # -- compilation -------------------------------------------------------------------
    def _layer_step(self, exec_proc: str, layer: Layer) -> Step:
        ov, c, m = self.platform.layer_components_ms(layer, exec_proc)
        return (self.platform.processor_ids.index(exec_proc), ov, c, m,
                float(self.platform.processors[exec_proc].dram_bytes(layer)))

    def program(self, model: ModelSpec, proc: str) -> List[Step]:
        """The steps one inference of ``model`` on ``proc`` executes (with fallback)."""
        key = (id(model), proc)
        prog = self._programs.get(key)
        if prog is not None:
            return prog
        plat = self.platform
        ids = plat.processor_ids
        prog = []
        prev = proc
        for exec_proc, layer in plat.segments(model, proc):
            if exec_proc != prev:
                t = plat.transition_ms(prev, exec_proc)
                if t > 0:
                    prog.append((ids.index(prev), t, 0.0, 0.0, 0.0))
                prev = exec_proc
            prog.append(self._layer_step(exec_proc, layer))
        if prev != proc:
            t = plat.transition_ms(prev, proc)
            if t > 0:
                prog.append((ids.index(prev), t, 0.0, 0.0, 0.0))
        self._programs[key] = prog
        return prog

    def _engine(self, seed: Optional[int], noise_batch: int = 256):
        rng = random.Random(self.seed if seed is None else seed)
        return _new_event_loop(self.platform, rng, self.noise_pct / 100.0, noise_batch)

    # -- measurements a profiler could make ---------------------------------------------
    def profile_layer(self, layer: Layer, proc: str,
                      corunners: Optional[Dict[str, Sequence[Layer]]] = None, *,
                      repeats: int = 5, seed: Optional[int] = None) -> float:
        """Mean time (ms) of ``layer`` on ``proc`` while each co-runner loops its layers.

        The co-runners start before the target and keep looping for the whole measurement,
        as a profiler on a Jetson would arrange with background threads.
        """
        plat = self.platform
        plat.processor(proc)
        if plat.processors[proc].kind == 'dla' and not layer.dla:
            raise ConfigError('layer %s cannot run on %s: %s'
                              % (layer.name, proc, layer.dla_reason))
        eng = self._engine(seed, noise_batch=1)  # the warm-up phase draws from the same rng
        done = []

        def on_finish(job):
            if job.loop:
                job.latencies.append(eng.now - job.start_ms)
                if job.tag == 'target' and len(job.latencies) >= repeats:
                    done.append(True)
                    return
                job.idx = 0
                job.start_ms = eng.now
                eng.start_job(job)

        eng.on_finish = on_finish
        for cproc, layers in (corunners or {}).items():
            if cproc == proc:
                raise ConfigError('co-runner processor %r is the target processor' % cproc)
            plat.processor(cproc)
            steps = [self._layer_step(cproc, lay) for lay in layers]
            if not steps:
                continue
            eng.start_job(_Job(steps, cproc, 0.0, loop=True, tag='co'))
        # Let the co-runners reach a steady state (random phase) before the target starts.
        if eng.running:
            warm = max(base_ms(ex[6], ex[7], ex[8], 1) for ex in eng.running)
            eng.run_until(warm * eng.rng.random())
        target = _Job([self._layer_step(proc, layer)], proc, eng.now, loop=True, tag='target')
        eng.start_job(target)
        eng.run_until(math.inf, stop=lambda: bool(done))
        return sum(target.latencies) / len(target.latencies)

    def corun(self, jobs: Dict[str, ModelSpec], *, iterations: int = 5,
              seed: Optional[int] = None) -> Dict[str, float]:
        """Mean latency (ms) of each model when every processor runs its model back to back.

        With one entry this is the isolated latency with noise. Measurement stops when every
        processor has finished ``iterations`` inferences (the first of each is discarded).
        """
        eng = self._engine(seed)
        need = iterations + 1
        finished = []

        def on_finish(job):
            job.latencies.append(eng.now - job.start_ms)
            if len(job.latencies) == need:
                finished.append(job.owner)
            job.idx = 0
            job.start_ms = eng.now
            eng.start_job(job)

        eng.on_finish = on_finish
        all_jobs = []
        for proc, model in jobs.items():
            job = _Job(self.program(model, proc), proc, 0.0, loop=True)
            all_jobs.append(job)
            eng.start_job(job)
        eng.run_until(math.inf, stop=lambda: len(finished) == len(all_jobs))
        return {j.owner: sum(j.latencies[1:need]) / iterations for j in all_jobs}

    # -- serving -----------------------------------------------------------------------
    def serve(self, apps: Sequence[App], dispatcher: Dispatcher, *, duration_s: float,
              seed: Optional[int] = None, max_queue: int = DEFAULT_MAX_QUEUE,
              arrivals: Optional[List[Tuple[float, int, int]]] = None,
              on_event: Optional[Callable[[float], None]] = None,
              give_up: Optional[Callable[[RequestRecord], bool]] = None,
              faults: Sequence = (), health=None) -> List[RequestRecord]:
        """Serve Poisson arrivals (or a given trace) for ``duration_s``; drain; return records.

        Every arrival gets exactly one record: finished, or dropped with a reason
        (``rejected`` by the dispatcher, ``queue_full``, ``no_processor``, ``processor_failed``).

        :param give_up: called with each record as soon as its outcome is known; once it
            returns True the run ends there, and every request not finished by then is dropped
            with reason ``shutdown`` (lets a load probe that has already failed stop early).
        :param faults: injected processor faults (``'dla1:error@5+5'`` strings or
            :class:`~hetero_infer.twin.faults.Fault`), handled as serving would
            (:mod:`hetero_infer.twin.fault_sim`); ``health`` (a
            :class:`~hetero_infer.twin.faults.HealthSettings`) sets the detection rule. The
            run's :class:`~hetero_infer.twin.fault_sim.FaultSim` is left in ``last_faults``.
        """
        seed = self.seed if seed is None else seed
        plat = self.platform
        if arrivals is None:
            arrivals = poisson_arrivals(apps, duration_s, seed)
        eng = self._engine(seed + 1)
        ids = eng.ids
        n = len(ids)
        allowed = []
        for a in apps:
            procs = a.processors or plat.processor_ids
            for p in procs:
                plat.processor(p)
            allowed.append(frozenset(p for p in procs if plat.can_run(a.model, p)))
        st = _ServeState(eng.index, n)
        st.iso = {}
        for ai, a in enumerate(apps):
            for p in allowed[ai]:
                st.iso[(ai, eng.index[p])] = plat.isolated_latency_ms(a.model, p)
        view = _View(st, max_queue)
        # host post-processing (detectors' decoding and NMS) ends each request after its
        # processor is free again: no scheduled processor, only latency
        post_ms = [a.model.postprocess_ms for a in apps]
        dispatcher.reset(apps, plat)
        records: List[RequestRecord] = []
        gave_up = []
        stop = None if give_up is None else (lambda: bool(gave_up))

        def begin(i):
            job = st.queues[i].popleft()
            st.queued_ms[i] -= st.iso[(job.tag, i)]
            job.start_ms = eng.now
            job.record.start_ms = eng.now
            st.current[i] = job
            if fsim is not None and fsim.intercept(job, i):
                return
            eng.start_job(job)

        def place(rec, ai, proc):
            i = eng.index[proc]
            if len(st.queues[i]) >= max_queue:
                return False
            rec.proc = proc
            job = _Job(self.program(apps[ai].model, proc), proc, eng.now, record=rec, tag=ai)
            st.queues[i].append(job)
            st.queued_ms[i] += st.iso[(ai, i)]
            if st.current[i] is None:
                begin(i)
            return True

        fsim = None
        if faults:
            from hetero_infer.twin.fault_sim import FaultSim
            from hetero_infer.twin.faults import check_processors, parse_faults
            parsed = parse_faults(faults)
            check_processors(parsed, ids, 'twin of %s' % plat.name)
            fsim = FaultSim(parsed, health, eng=eng, st=st, view=view, apps=apps,
                            allowed=allowed, dispatcher=dispatcher, place=place, begin=begin)
        self.last_faults = fsim
        run_until = eng.run_until if fsim is None else fsim.run_until

        def on_finish(job):
            rec = job.record
            rec.finish_ms = eng.now + post_ms[rec.app]
            i = eng.index[job.owner]
            st.current[i] = None
            dispatcher.completed(rec.app, job.owner, rec.finish_ms - rec.arrival_ms)
            if give_up is not None and give_up(rec):
                gave_up.append(rec)
            if st.queues[i]:
                begin(i)

        eng.on_finish = on_finish
        for k, (t, _seq, ai) in enumerate(arrivals):
            run_until(t, stop)
            if gave_up:
                self._shut_down(records, arrivals[k:])
                break
            eng.now = t
            rec = RequestRecord(app=ai, arrival_ms=t)
            records.append(rec)
            view.now_ms = t
            proc = dispatcher.dispatch(ai, t, view)
            if fsim is not None:
                proc = fsim.route(ai, proc)
            if proc is None:
                rec.dropped_reason = 'rejected'
            elif proc not in allowed[ai]:
                rec.dropped_reason = 'no_processor'
            elif place(rec, ai, proc):
                if on_event is not None:
                    on_event(t)
                continue
            else:
                rec.dropped_reason = 'queue_full'
            if give_up is not None and give_up(rec):
                gave_up.append(rec)
        else:
            run_until(math.inf, stop)
            if gave_up:
                self._shut_down(records, [])
        self.last_events = eng.events
        return records

    @staticmethod
    def _shut_down(records: List[RequestRecord], not_arrived) -> None:
        """End a run early: unfinished requests and later arrivals are dropped (shutdown)."""
        for rec in records:
            if rec.finish_ms is None and rec.dropped_reason is None:
                rec.dropped_reason = 'shutdown'
        for t, _seq, ai in not_arrived:
            records.append(RequestRecord(app=ai, arrival_ms=t, dropped_reason='shutdown'))


class _ServeState:
    def __init__(self, index, n):
        self.index = index
        self.queues = [deque() for _ in range(n)]
        self.queued_ms = [0.0] * n
        self.current = [None] * n
        self.iso = {}
