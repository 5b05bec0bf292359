"""Emulated processors: inference takes the digital twin's time, in real wall-clock time.

``EmulatedBackend(platform='xavier')`` provides the platform's processors (``gpu``, ``dla0``,
``dla1`` on Xavier). An inference of a model on one of them lasts exactly as long as the twin
(:mod:`hetero_infer.twin.simulator`) says it would *given what the other emulated processors of
the same
platform are running at that moment*: it executes the twin's program for the model
(``Twin.program``: one step per layer, DLA-unsupported layers as steps on the GPU with transition
costs) against a shared :class:`ContentionState`.

How the shared state keeps time: it holds a fluid simulation of every step in flight, advanced
lazily to "now" (virtual ms = wall ms / ``time_scale``). Whenever an inference starts, the state
advances to now, admits the new job, re-solves the contention with the twin's public
:func:`~hetero_infer.twin.contention.contention_factors` (the contention model the twin's event
loops use; rates are recomputed at every step start and end, exactly as in the twin) and
predicts every running job's finish time by simulating forward; then it ``notify_all``s the
``threading.Condition`` so every sleeping worker re-reads its job's finish time. A worker sleeps
until its job's predicted finish, advances the state to now (which retires its job at the exact
virtual finish time, so contention ends on time even if the thread wakes late) and returns. Step
ends inside a job need no wake-ups; only job starts do. With ``noise_pct`` > 0 each step gets the
twin's kind of seeded multiplicative log-normal noise, drawn when the job is admitted.

Outputs: when the model is an ``.onnx`` file (or ``onnx_path=`` is given) and
``compute_outputs=True`` (default), the worker computes the real outputs with onnxruntime while the
emulated time runs, so results are meaningful; if that takes longer than the emulated time the
result is late and ``info['overrun_ms']`` says by how much. Without an ONNX file the outputs are
zeros of the last layer's shape under the name ``output``.

Timing: ``execute_ms`` is the wall-clock time the request occupied the processor; ``info`` adds
``emulated_ms`` (the twin-time latency, virtual ms), ``late_ms`` (wall minus emulated x
``time_scale``: wake-up and Python overhead) and ``overrun_ms``. ``time_scale`` < 1 makes
everything faster than real (tests), > 1 slower.

Several backends may share one platform's contention by passing ``state=other.state``.

Injected faults (tests, demos; :mod:`hetero_infer.twin.faults`): ``faults=['dla1:error@10+5']``
or :meth:`EmulatedBackend.inject_faults` (times count from that call, in emulated seconds). While
an ``error`` fault is active every inference on its processor raises :class:`BackendError`;
an inference that starts during a ``hang`` blocks until the hang ends (then runs as usual and
returns late) or until the backend is closed (then it raises).
"""

import math
import os
import random
import threading
import time
from collections import deque
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from hetero_infer.backends.base import Backend, Executor, LoadRequest, ProcessorWorker, TensorSpec
from hetero_infer.errors import BackendError, ConfigError, ModelError
from hetero_infer.models.zoo import ModelSpec, load_model
from hetero_infer.platform.spec import Platform
from hetero_infer.twin.contention import contention_factors
from hetero_infer.twin.faults import Fault, FaultSchedule, check_processors, parse_faults
from hetero_infer.twin.simulator import DEFAULT_NOISE_PCT, Twin

# A step as Twin.program compiles it: (exec_proc_index, overhead_ms, compute_ms, memory_ms, bytes)
Step = Tuple[int, float, float, float, float]


def merge_steps(steps: Sequence[Step], step_ms: float) -> List[Step]:
    """Merge runs of consecutive steps on one processor into chunks of >= ``step_ms``.

    A chunk keeps the run's isolated duration ``D = sum(ov + max(c, m))``, memory time
    ``M = sum(m)`` and bytes, as the step ``(proc, D - M, 0, M, bytes)``: alone it takes exactly
    ``D``; under contention its memory part stretches like its layers' would, at their average
    bandwidth demand. ``step_ms <= 0`` returns the steps unchanged (layer-exact twin timing).
    """
    if step_ms <= 0:
        return list(steps)
    out: List[Step] = []
    cur = None  # [proc, D, M, bytes]
    for e, ov, c, m, b in steps:
        d = ov + (c if c > m else m)
        if cur is not None and cur[0] == e and cur[1] < step_ms:
            cur[1] += d
            cur[2] += m
            cur[3] += b
            continue
        if cur is not None:
            out.append((cur[0], cur[1] - cur[2], 0.0, cur[2], cur[3]))
        cur = [e, d, m, b]
    if cur is not None:
        out.append((cur[0], cur[1] - cur[2], 0.0, cur[2], cur[3]))
    return out


class _Job:
    __slots__ = ('steps', 'idx', 'start_v', 'finish_v', 'owner')

    def __init__(self, steps: List[Step], owner: str, start_v: float) -> None:
        self.steps = steps
        self.idx = 0
        self.owner = owner
        self.start_v = start_v
        self.finish_v: Optional[float] = None


class _Fluid:
    """The twin's layer-level fluid model over a set of jobs (copyable for look-ahead).

    Running entries are lists ``[job, exec_index, left_fraction, ov, c, m, bytes, duration]``.
    """

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.ids = list(platform.processor_ids)
        n = len(self.ids)
        self.slot: List[Optional[list]] = [None] * n
        self.waiting: List[deque] = [deque() for _ in range(n)]
        self.running: List[list] = []
        self.now = 0.0
        self.finished: List[_Job] = []

    def copy(self) -> '_Fluid':
        new = _Fluid.__new__(_Fluid)
        new.platform, new.ids, new.now = self.platform, self.ids, self.now
        jobs: Dict[int, _Job] = {}

        def twin_job(job: _Job) -> _Job:
            j = jobs.get(id(job))
            if j is None:
                j = _Job(job.steps, job.owner, job.start_v)
                j.idx = job.idx
                jobs[id(job)] = j
            return j

        new.running = [[twin_job(ex[0])] + ex[1:] for ex in self.running]
        new.slot = [None] * len(self.slot)
        for ex in new.running:
            if ex[0].owner == self.ids[ex[1]]:
                new.slot[ex[1]] = ex
        new.waiting = [deque(twin_job(j) for j in q) for q in self.waiting]
        new.finished = []
        return new

    def admit(self, job: _Job) -> None:
        self._request_slot(job)

    def _request_slot(self, job: _Job) -> None:
        e = job.steps[job.idx][0]
        if self.ids[e] != job.owner:
            # a DLA inference's GPU fallback step starts at once and time-slices the GPU with
            # the GPU's own inference, as in the twin; it holds no slot
            self._start(job, e)
        elif self.slot[e] is None:
            self._start(job, e)
        else:
            self.waiting[e].append(job)

    def _start(self, job: _Job, e: int) -> None:
        _, ov, c, m, b = job.steps[job.idx]
        ex = [job, e, 1.0, ov, c, m, b, 0.0]
        if self.ids[e] == job.owner:
            self.slot[e] = ex
        self.running.append(ex)

    def _recompute(self) -> None:
        ids = self.ids
        durs = contention_factors(self.platform, [(ids[ex[1]], ex[3], ex[4], ex[5], ex[6])
                                                  for ex in self.running])
        for ex, d in zip(self.running, durs):
            ex[7] = d

    def _complete(self, ex: list) -> bool:
        self.running.remove(ex)
        e = ex[1]
        job = ex[0]
        job.idx += 1
        if self.slot[e] is ex:
            self.slot[e] = None
            if self.waiting[e]:
                self._start(self.waiting[e].popleft(), e)
        if job.idx < len(job.steps):
            self._request_slot(job)
            return False
        job.finish_v = self.now
        self.finished.append(job)
        return True

    def advance_to(self, t: float, *, stop_on_finish: bool = False) -> None:
        """Process every step end up to virtual time ``t`` (rates re-solved at each event), or
        only up to the first job end when ``stop_on_finish``."""
        while self.running:
            self._recompute()
            best, best_dt = None, math.inf
            for ex in self.running:
                dt = ex[2] * ex[7]
                if dt < best_dt:
                    best, best_dt = ex, dt
            t_next = self.now + best_dt
            if t_next > t:
                self._move(t - self.now)
                self.now = t
                return
            self._move(best_dt)
            self.now = t_next
            if self._complete(best) and stop_on_finish:
                return
        self.now = max(self.now, t)

    def _move(self, dt: float) -> None:
        if dt > 0:
            for ex in self.running:
                if ex[7] > 0:
                    ex[2] -= dt / ex[7]


class ContentionState:
    """Shared by every emulated processor of one platform: who runs what, in virtual time.

    :param platform: the emulated platform.
    :param time_scale: wall seconds per emulated second.
    :param noise_pct: per-step multiplicative noise (twin's convention), 0 for none.
    :param seed: seeds the noise.
    :param clock: wall clock in seconds (``time.perf_counter``).
    """

    def __init__(self, platform: Platform, *, time_scale: float = 1.0, noise_pct: float = 0.0,
                 seed: int = 0, clock: Any = time.perf_counter) -> None:
        if not time_scale > 0:
            raise ConfigError('time_scale must be > 0, got %r' % (time_scale,))
        if noise_pct < 0 or noise_pct > 50:
            raise ConfigError('noise_pct must be in [0, 50], got %r' % (noise_pct,))
        self.platform = platform
        self.time_scale = float(time_scale)
        self.sigma = noise_pct / 100.0
        self._rng = random.Random(seed)
        self._clock = clock
        self._t0 = clock()
        self._fluid = _Fluid(platform)
        self._jobs: List[_Job] = []
        self._checkpoint_v = math.inf
        self._stale = False
        self.lookaheads = 0
        self.cond = threading.Condition()

    def now_v(self) -> float:
        """Virtual (emulated) time in ms."""
        return (self._clock() - self._t0) * 1e3 / self.time_scale

    def _noisy(self, steps: Sequence[Step]) -> List[Step]:
        if self.sigma <= 0:
            return list(steps)
        out = []
        for e, ov, c, m, b in steps:
            f = math.exp(self._rng.gauss(0.0, self.sigma))
            out.append((e, ov * f, c * f, m * f, b))
        return out

    def start(self, steps: Sequence[Step], owner: str, *, step_ms: float = 0.0,
              at_v: Optional[float] = None) -> _Job:
        """Admit one inference (its twin program) now, or at virtual time ``at_v``.

        :param step_ms: merge consecutive steps on one processor into chunks of at least this
            many ms (after noise); 0 keeps the twin's layer steps.
        """
        with self.cond:
            t = self.now_v() if at_v is None else max(at_v, self._fluid.now)
            self._fluid.advance_to(t)
            self._collect()
            job = _Job(merge_steps(self._noisy(steps), step_ms), owner, t)
            if not job.steps:
                job.finish_v = t
                return job
            self._fluid.admit(job)
            self._jobs.append(job)
            self._predict()
            self.cond.notify_all()
            return job

    def _collect(self) -> bool:
        if not self._fluid.finished:
            return False
        done = set(id(j) for j in self._fluid.finished)
        self._jobs = [j for j in self._jobs if id(j) not in done]
        self._fluid.finished = []
        return True

    def _predict(self) -> None:
        """Set the checkpoint: when the next job in flight finishes if nothing else starts.

        The look-ahead runs on a copy and stops at the first job end, so its cost is the steps
        up to the next job-level event, not the whole remaining work.
        """
        self.lookaheads += 1
        self._stale = False
        if not self._jobs:
            self._checkpoint_v = math.inf
            return
        look = self._fluid.copy()
        look.advance_to(math.inf, stop_on_finish=True)
        self._checkpoint_v = look.finished[0].finish_v if look.finished else math.inf

    def wait(self, job: _Job) -> float:
        """Sleep until ``job`` is finished in virtual time; returns its finish time (ms).

        Every waiter sleeps until the checkpoint (the next job end); whoever wakes first
        advances the shared simulation, and if that ended jobs, sets the next checkpoint and
        wakes the others. Finish times are exact whichever thread does the advancing.
        """
        with self.cond:
            while job.finish_v is None:
                if self._stale:
                    self._predict()
                now = self.now_v()
                if now < self._checkpoint_v:
                    self.cond.wait((self._checkpoint_v - now) * self.time_scale / 1e3)
                    continue
                self._fluid.advance_to(max(now, self._checkpoint_v))
                if self._collect():
                    # jobs ended: the next checkpoint is computed by the next waiter that
                    # needs it, so a finishing thread returns without paying for it
                    self._stale = True
                    self.cond.notify_all()
                else:
                    self._predict()  # rounding left the job a hair short of the checkpoint
            return job.finish_v

    def advance_to(self, t_v: float) -> None:
        """Advance the simulation to virtual time ``t_v`` (for clock-driven tests)."""
        with self.cond:
            self._fluid.advance_to(t_v)
            if self._collect():
                self._stale = True
                self.cond.notify_all()

    def busy(self) -> Dict[str, int]:
        """Jobs in flight per owner processor."""
        with self.cond:
            out: Dict[str, int] = {}
            for j in self._jobs:
                out[j.owner] = out.get(j.owner, 0) + 1
            return out


class EmulatedExecutor(Executor):
    """A model on one emulated processor."""

    inline = True  # sleeping on the shared state needs no thread-bound state

    def __init__(self, *, state: ContentionState, steps: List[Step], step_ms: float,
                 session: Any, zero_outputs: Dict[str, np.ndarray],
                 faults: Optional['_InjectedFaults'] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.faults = faults
        self.steps = steps
        self.step_ms = step_ms
        self.session = session
        self._zero = zero_outputs
        self._output_names = [t.name for t in self.outputs]

    def _execute(self, inputs: Dict[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], Dict]:
        if self.faults is not None:
            self.faults.apply(self.processor, self.model_path)
        w0 = time.perf_counter()
        job = self.state.start(self.steps, self.processor, step_ms=self.step_ms)
        if self.session is not None:
            outs = self.session.run(self._output_names, inputs)
            outputs = dict(zip(self._output_names, outs))
        else:
            outputs = {k: v.copy() for k, v in self._zero.items()}
        computed = time.perf_counter()
        finish_v = self.state.wait(job)
        end = time.perf_counter()
        emulated_ms = finish_v - job.start_v
        scaled_ms = emulated_ms * self.state.time_scale
        return outputs, {'execute_ms': (end - w0) * 1e3, 'emulated_ms': emulated_ms,
                         'late_ms': (end - w0) * 1e3 - scaled_ms,
                         'overrun_ms': max(0.0, (computed - w0) * 1e3 - scaled_ms)}

    def _release(self) -> None:
        self.session = None


class EmulatedBackend(Backend):
    """The platform's processors, emulated in wall-clock time with the twin's contention.

    :param platform: a :class:`Platform` or a platform name / YAML path (``'xavier'``).
    :param time_scale: wall seconds per emulated second (< 1 = faster than real).
    :param noise_pct: per-step noise; default the twin's default, 0 for deterministic timing.
    :param seed: seeds the noise.
    :param compute_outputs: compute real outputs with onnxruntime when an ONNX file is known.
    :param ort_threads: onnxruntime intra-op threads per emulated processor.
    :param step_ms: emulate in chunks of at least this many (virtual) ms of consecutive layers
        on one processor (see :func:`merge_steps`); 0 = the twin's exact layer steps. Chunks
        keep isolated latency exact and bound the emulator's CPU cost.
    :param state: share another backend's :class:`ContentionState` (same platform).
    :param faults: faults to inject, ``PROC:KIND@SECONDS[+DURATION]`` (see
        :meth:`inject_faults`).
    """

    name = 'emulated'

    def __init__(self, *, platform: Union[str, Platform] = 'xavier', time_scale: float = 1.0,
                 noise_pct: float = DEFAULT_NOISE_PCT, seed: int = 0,
                 compute_outputs: bool = True, ort_threads: int = 1, step_ms: float = 0.25,
                 state: Optional[ContentionState] = None,
                 faults: Sequence[Union[str, Fault]] = ()) -> None:
        super().__init__()
        if step_ms < 0:
            raise ConfigError('step_ms must be >= 0, got %r' % (step_ms,))
        self.step_ms = float(step_ms)
        if state is not None:
            self.platform = state.platform
            self.state = state
        else:
            self.platform = platform if isinstance(platform, Platform) else Platform.load(
                platform)
            self.state = ContentionState(self.platform, time_scale=time_scale,
                                         noise_pct=noise_pct, seed=seed)
        self.twin = Twin(self.platform, seed=seed, noise_pct=0.0)
        self.compute_outputs = bool(compute_outputs)
        self.ort_threads = int(ort_threads)
        self._faults = _InjectedFaults(self.state)
        if faults:
            self.inject_faults(faults)

    def inject_faults(self, faults: Sequence[Union[str, Fault]]) -> None:
        """From now on fail processors as ``faults`` say (times count from this call; replaces
        faults injected before).

        :raises ConfigError: a malformed fault or a processor this platform lacks.
        """
        parsed = parse_faults(faults)
        check_processors(parsed, self.platform.processor_ids,
                         'emulated backend (platform %s)' % self.platform.name)
        self._faults.set(parsed)

    def close(self) -> None:
        self._faults.close()  # inferences held by a hang raise instead of blocking shutdown
        super().close()

    def _provided(self) -> Tuple[str, ...]:
        return tuple(self.platform.processor_ids)

    @classmethod
    def create(cls, *, platform: Any = None, seed: int = 0, **options: Any) -> 'EmulatedBackend':
        """The registry's factory: emulate ``platform`` (default xavier) seeded with ``seed``."""
        if platform is not None:
            options['platform'] = platform
        return cls(seed=seed, **options)

    def _load(self, request: LoadRequest, worker: ProcessorWorker) -> Executor:
        # engine_file, precision and rebuild do not apply: the timing is the platform's
        if request.options:
            raise ConfigError('emulated backend: unknown load options %s'
                              % sorted(request.options))
        processor = request.processor
        spec, label, onnx_file = _resolve_model(request.model, request.model_file or None)
        if not self.platform.can_run(spec, processor):
            raise BackendError('model %s cannot run on %s of platform %s'
                               % (label, processor, self.platform.name))
        steps = list(self.twin.program(spec, processor))
        session = None
        if onnx_file is not None and self.compute_outputs:
            session = worker.call(self._session, onnx_file)
        if session is not None:
            from hetero_infer.backends.onnxruntime_backend import session_tensor_specs
            inputs = session_tensor_specs(session.get_inputs())
            outputs = session_tensor_specs(session.get_outputs())
            zero: Dict[str, np.ndarray] = {}
        else:
            inputs = (TensorSpec(spec.input_name or 'input', tuple(spec.input_shape)),)
            out_shape = tuple(spec.layers[-1].out_shape)
            outputs = (TensorSpec('output', out_shape),)
            zero = {'output': np.zeros(out_shape, np.float32)}
        return EmulatedExecutor(
            state=self.state, steps=steps, step_ms=self.step_ms, session=session,
            zero_outputs=zero, faults=self._faults,
            processor=processor, model_path=label, worker=worker, inputs=inputs,
            outputs=outputs,
            info={'platform': self.platform.name, 'model': spec.name,
                  'isolated_ms': self.platform.isolated_latency_ms(spec, processor),
                  'steps': len(steps), 'real_outputs': session is not None})

    def _session(self, onnx_file: str) -> Any:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendError('computing real outputs needs onnxruntime (or pass '
                               'compute_outputs=False): %s' % exc) from None
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.ort_threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        so.add_session_config_entry('session.intra_op.allow_spinning', '0')
        try:
            return ort.InferenceSession(onnx_file, so, providers=['CPUExecutionProvider'])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own error types
            raise ModelError('cannot load ONNX model %s: %s' % (onnx_file, exc)) from None

    def isolated_ms(self, model: Any, processor: str) -> float:
        """The twin's isolated latency (ms) of ``model`` on ``processor``, no noise."""
        spec = _resolve_model(model, None)[0]
        return self.platform.isolated_latency_ms(spec, processor)


class _InjectedFaults:
    """The backend's fault schedule on the emulated clock, and the hangs waiting on it."""

    def __init__(self, state: ContentionState) -> None:
        self._state = state
        self._schedule = FaultSchedule(())
        self._t0_v = 0.0
        self._closed = False
        self._cond = threading.Condition()

    def set(self, faults: Sequence[Fault]) -> None:
        with self._cond:
            self._schedule = FaultSchedule(faults)
            self._t0_v = self._state.now_v()
            self._cond.notify_all()

    def now_s(self) -> float:
        return (self._state.now_v() - self._t0_v) / 1e3

    def apply(self, proc: str, model: str) -> None:
        """Raise for an ``error`` fault; block through a ``hang``."""
        schedule = self._schedule
        if not schedule:
            return
        t = self.now_s()
        kind = schedule.kind_at(proc, t)
        if kind == 'error':
            raise BackendError('%s on %s: injected fault (error) at %.2f s' % (model, proc, t))
        if kind != 'hang':
            return
        with self._cond:
            while not self._closed:
                t = self.now_s()
                end = self._schedule.hang_end_s(proc, t)
                if end <= t:
                    return
                self._cond.wait(None if math.isinf(end)
                                else (end - t) * self._state.time_scale + 1e-3)
        raise BackendError('%s on %s: backend closed during an injected hang' % (model, proc))

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def _resolve_model(model: Any, onnx_path: Optional[str]) -> Tuple[ModelSpec, str, Optional[str]]:
    """(layer table, label, ONNX file for real outputs or None)."""
    if isinstance(model, ModelSpec):
        spec, label = model, model.name
    elif isinstance(model, (str, os.PathLike)):
        label = os.fspath(model)
        if label.endswith('.onnx') and not os.path.isfile(label):
            raise ModelError('model file not found: %s' % label)
        spec = load_model(label)
        if label.endswith('.onnx') and onnx_path is None:
            onnx_path = label
    else:
        raise ModelError('model must be a ModelSpec, zoo name or path, got %r' % (model,))
    if onnx_path is not None and not os.path.isfile(onnx_path):
        raise ModelError('model file not found: %s' % onnx_path)
    return spec, label, onnx_path
