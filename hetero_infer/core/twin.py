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
"""

import math
import random
from collections import deque
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from hetero_infer.core.model import Layer, ModelSpec
from hetero_infer.core.platform import Platform
from hetero_infer.core.workload import (App, DispatchView, Dispatcher, RequestRecord,
                                        poisson_arrivals)
from hetero_infer.errors import ConfigError

DEFAULT_NOISE_PCT = 3.0
DEFAULT_MAX_QUEUE = 64

# A compiled step: (exec_proc_index, overhead_ms, compute_ms, memory_ms, bytes)
Step = Tuple[int, float, float, float, float]


def contention_factors(platform: Platform, running: Sequence[Tuple[str, float, float, float,
                                                                     float]],
                       *, iterations: int = 4) -> List[float]:
    """Co-run duration of each running layer, in ms (the twin's contention solution).

    ``running`` holds ``(exec_proc_id, overhead_ms, compute_ms, memory_ms, bytes)`` for every
    layer executing at this instant. Used by the emulated backend, which replays the same
    contention in wall-clock time; the twin's event loop computes the same.
    """
    share = {}
    for r in running:
        share[r[0]] = share.get(r[0], 0) + 1
    conts = [platform.processors[r[0]].contention for r in running]
    # -- GPU-side work of DLA inference: GPU layers time-share with it (Platform.gpu_time_scale)
    gpu = platform.gpu_id
    if gpu in share:
        share[gpu] *= platform.gpu_time_scale(sum(
            n for p, n in share.items() if platform.processors[p].kind == 'dla'))
    # -- end of the GPU-side work of DLA inference
    base = []
    for r in running:
        k = share[r[0]]
        ov, c, m = r[1] * k, r[2] * k, r[3]
        base.append(ov + (c if c > m else m))
    return _solve(conts, base, [r[3] for r in running], [r[4] for r in running],
                  platform.dram_gbps * 1e6, iterations)


def _solve(conts, base, mem, byts, dram_bytes_per_ms: float, iterations: int) -> List[float]:
    """Durations (ms) of the running layers under co-running.

    ``base`` is each layer's duration alone (with time-slicing applied), ``mem`` its memory time
    and ``byts`` the bytes it moves; ``conts`` the contention curve of the processor it runs on.
    Demands depend on durations and durations on demands; the fixed point is approached with
    damped iterations (half old, half new), since undamped ones oscillate when a slowed layer's
    lower demand releases its co-runner. The curve is :meth:`Contention.slowdown`, inlined here
    because this is the simulator's hot loop (a test checks the two agree).
    """
    n = len(base)
    if n < 2:
        return list(base)
    durs = base
    for _ in range(iterations):
        dem = [b / d if d > 0.0 else 0.0 for b, d in zip(byts, durs)]
        total = sum(dem)
        new = []
        moved = False
        for i in range(n):
            cont = conts[i]
            x = (total - dem[i]) / dram_bytes_per_ms
            t = base[i]
            # -- Contention.slowdown(x), inlined: keep the two identical (a test checks) ----
            th = cont.threshold
            if x > th:
                cap = cont.cap
                t += mem[i] * cont.alpha * (x - th) ** cont.power / (1.0 - (x if x < cap
                                                                             else cap))
            # -- end of Contention.slowdown ------------------------------------------------
            old = durs[i]
            d = 0.5 * (old + t)
            if d - old > 1e-4 * old or old - d > 1e-4 * old:
                moved = True
            new.append(d)
        durs = new
        if not moved:
            break
    return durs


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


class _Engine:
    """Event loop shared by profiling, co-run measurement and serving."""

    def __init__(self, platform: Platform, rng: random.Random, noise_sigma: float):
        self.platform = platform
        self.rng = rng
        self.sigma = noise_sigma
        self.ids = list(platform.processor_ids)
        self.index = {p: i for i, p in enumerate(self.ids)}
        self.conts = [platform.processors[p].contention for p in self.ids]
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
        self.running = []                      # [job, e, left, ov, c, m, bytes, dur]
        self.now = 0.0
        self.events = 0
        self.on_finish = None                  # callback(job) when a job's last step ends

    # -- steps -------------------------------------------------------------------------
    def _request_slot(self, job):
        self._start(job, job.steps[job.idx][0])

    def _start(self, job, e):
        _, ov, c, m, b = job.steps[job.idx]
        if self.sigma > 0.0:
            f = math.exp(self.rng.gauss(0.0, self.sigma))
            ov *= f
            c *= f
            m *= f
        # [job, exec proc, fraction left, overhead, compute, memory, bytes, duration now]
        ex = [job, e, 1.0, ov, c, m, b, 0.0]
        self.share[e] += 1
        if self.is_dla[e]:
            self.dla_running += 1
        self.running.append(ex)
        self.dirty = True

    def start_job(self, job):
        self._request_slot(job)

    def _recompute(self):
        self.dirty = False
        running = self.running
        share = self.share
        # -- GPU-side work of DLA inference: GPU layers time-share with it
        g = self.gpu
        if self.dla_running and g >= 0 and share[g]:
            share = list(share)
            share[g] *= self.gpu_scale[self.dla_running]
        # -- end of the GPU-side work of DLA inference
        base = []
        for ex in running:
            k = share[ex[1]]
            c, m = ex[4] * k, ex[5]
            base.append(ex[3] * k + (c if c > m else m))
        if len(running) == 1:
            running[0][7] = base[0]
            return
        conts = self.conts
        durs = _solve([conts[ex[1]] for ex in running], base, [ex[5] for ex in running],
                      [ex[6] for ex in running], self.dram, 4)
        for ex, d in zip(running, durs):
            ex[7] = d

    def next_completion(self):
        best = None
        best_t = math.inf
        for ex in self.running:
            t = ex[2] * ex[7]
            if t < best_t:
                best_t = t
                best = ex
        return best, self.now + best_t

    def advance(self, t):
        dt = t - self.now
        if dt > 0:
            for ex in self.running:
                if ex[7] > 0:
                    ex[2] -= dt / ex[7]
            self.now = t

    def complete(self, ex):
        """Finish execution ``ex`` (its time has come); start whatever it unblocks."""
        self.events += 1
        self.running.remove(ex)
        e = ex[1]
        self.share[e] -= 1
        if self.is_dla[e]:
            self.dla_running -= 1
        self.dirty = True
        job = ex[0]
        job.idx += 1
        if job.idx < len(job.steps):
            self._request_slot(job)
        else:
            self.on_finish(job)

    def run_until(self, t_end, stop=None):
        """Process completions up to ``t_end`` (or until ``stop()`` is true)."""
        while self.running:
            if self.dirty:
                self._recompute()
            ex, t = self.next_completion()
            if t > t_end:
                self.advance(t_end)
                return
            self.advance(t)
            self.complete(ex)
            if stop is not None and stop():
                return
        self.now = max(self.now, t_end) if t_end != math.inf else self.now


class _View(DispatchView):
    def __init__(self, twin_state):
        self._s = twin_state

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

    def _engine(self, seed: Optional[int]) -> _Engine:
        rng = random.Random(self.seed if seed is None else seed)
        return _Engine(self.platform, rng, self.noise_pct / 100.0)

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
        eng = self._engine(seed)
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
            warm = max(ex[3] + max(ex[4], ex[5]) for ex in eng.running)
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
              on_event: Optional[Callable[[float], None]] = None) -> List[RequestRecord]:
        """Serve Poisson arrivals (or a given trace) for ``duration_s``; drain; return records.

        Every arrival gets exactly one record: finished, or dropped with a reason
        (``rejected`` by the dispatcher, ``queue_full``, ``no_processor``).
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
        view = _View(st)
        dispatcher.reset(apps, plat)
        records: List[RequestRecord] = []

        def begin(i):
            job = st.queues[i].popleft()
            st.queued_ms[i] -= st.iso[(job.tag, i)]
            job.start_ms = eng.now
            job.record.start_ms = eng.now
            st.current[i] = job
            eng.start_job(job)

        def on_finish(job):
            rec = job.record
            rec.finish_ms = eng.now
            i = eng.index[job.owner]
            st.current[i] = None
            dispatcher.completed(rec.app, job.owner, rec.finish_ms - rec.arrival_ms)
            if st.queues[i]:
                begin(i)

        eng.on_finish = on_finish
        for t, _seq, ai in arrivals:
            eng.run_until(t)
            eng.now = t
            rec = RequestRecord(app=ai, arrival_ms=t)
            records.append(rec)
            view.now_ms = t
            proc = dispatcher.dispatch(ai, t, view)
            if proc is None:
                rec.dropped_reason = 'rejected'
                continue
            if proc not in allowed[ai]:
                rec.dropped_reason = 'no_processor'
                continue
            i = eng.index[proc]
            if len(st.queues[i]) >= max_queue:
                rec.dropped_reason = 'queue_full'
                continue
            rec.proc = proc
            job = _Job(self.program(apps[ai].model, proc), proc, t, record=rec, tag=ai)
            st.queues[i].append(job)
            st.queued_ms[i] += st.iso[(ai, i)]
            if st.current[i] is None:
                begin(i)
            if on_event is not None:
                on_event(t)
        eng.run_until(math.inf)
        self.last_events = eng.events
        return records


class _ServeState:
    def __init__(self, index, n):
        self.index = index
        self.queues = [deque() for _ in range(n)]
        self.queued_ms = [0.0] * n
        self.current = [None] * n
        self.iso = {}
