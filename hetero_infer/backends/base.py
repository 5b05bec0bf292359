"""The executor interface every backend implements, and the registry of backends.

Usage (the scheduler node and the interference profiler both go through this)::

    from hetero_infer.backends import LoadRequest, create_backend

    backend = create_backend('onnxruntime', platform=None, seed=0)  # 'tensorrt', 'emulated'...
    print(backend.processor_ids)                       # ('cpu0', 'cpu1')
    ex = backend.load(LoadRequest('model.onnx', 'cpu0'))  # an Executor bound to one processor
    res = ex.run({'input': x})                         # InferenceResult
    res.outputs['logits'], res.queue_ms, res.execute_ms
    fut = ex.submit({'input': x})                      # concurrent.futures.Future[InferenceResult]
    ex.close(); backend.close()                        # or use both as context managers

Concepts:

- A :class:`Backend` is a factory for one execution library on this machine. ``processor_ids``
  lists the processors it can provide; ``load(LoadRequest)`` returns an :class:`Executor`;
  asking for a processor it does not have raises :class:`BackendError` naming the processor and
  listing the ones it has. A :class:`LoadRequest` carries everything a caller may ask of any
  backend (model, model file, engine file, precision, rebuild); each backend uses the fields
  that apply to it (see the class), so no caller needs to know which backend it talks to.
  ``load(model, processor, **options)`` is a shorter spelling of the same request.
- Each processor has exactly one :class:`ProcessorWorker`: a thread that runs that processor's
  work (loading and inference) one item at a time, in FIFO order, under the processor's
  ``exclusive`` lock. So a processor never runs two inferences at once, whatever thread calls
  ``run``; ``run`` and ``submit`` are safe to call from any thread. Executors whose inference
  needs no thread-bound state (``Executor.inline``: the emulated backend) run ``run`` in the
  caller's thread under the same lock, which saves two thread hand-offs (``submit`` still
  queues on the worker). Backends use the worker thread for per-processor state: onnxruntime
  pins it to the processor's CPU cores, TensorRT makes the CUDA context current on it.
- :meth:`Executor.run_here` runs one request on the calling thread (under the same lock), for a
  caller that is itself the one thread feeding a processor (the scheduler node's per-processor
  queue): no hand-off at all. Inline executors, the worker's own thread, and backends whose
  per-processor thread state can be set up on other threads too (``Backend.attachable``:
  onnxruntime, whose state is the core pinning) take that path; the caller's thread then gets
  the processor's set-up once (pinned to its cores) and :meth:`ProcessorWorker.detach` undoes
  it. Other backends (TensorRT) fall back to :meth:`Executor.run`.
- :class:`InferenceResult` carries the outputs (name -> numpy array) and the timing of that one
  request: ``queue_ms`` (from ``run``/``submit`` until the processor's worker started it, i.e. time
  waiting behind earlier requests for the same processor) and ``execute_ms`` (time the processor
  spent on it: for TensorRT copy-in + execute + copy-out, for onnxruntime ``session.run``, for the
  emulated backend the emulated time). ``start_s``/``end_s`` are ``time.perf_counter()`` stamps.
- :class:`BackgroundLoop` runs one executor back to back on its processor until stopped: what the
  interference profiler needs to keep co-runners busy while it times a target layer elsewhere.

The registry of backends (``register_backend``, ``create_backend``, entry-point group
``hetero_infer.backends``) is :mod:`hetero_infer.backends.registry`.
"""

import concurrent.futures
import threading
import time
from collections import abc
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from hetero_infer.errors import BackendError, ConfigError, ModelError


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and numpy dtype of one model input or output."""

    name: str
    shape: Tuple[int, ...]
    dtype: Any = np.float32

    def zeros(self) -> np.ndarray:
        return np.zeros(self.shape, dtype=self.dtype)


@dataclass
class InferenceResult:
    """Outputs and timing of one request on one processor."""

    outputs: Dict[str, np.ndarray]
    processor: str
    queue_ms: float
    execute_ms: float
    start_s: float = 0.0
    end_s: float = 0.0
    info: Dict[str, Any] = field(default_factory=dict)

    @property
    def total_ms(self) -> float:
        return self.queue_ms + self.execute_ms


class ProcessorWorker:
    """One thread that runs everything one processor does, one item at a time (FIFO).

    :param processor: processor id, used in the thread name and in error messages.
    :param setup: called once on the worker thread before its first item (pin cores, push a
        CUDA context, ...).
    :param teardown: called once on the worker thread at :meth:`close`.
    """

    def __init__(self, processor: str, *, setup: Optional[Callable[[], None]] = None,
                 teardown: Optional[Callable[[], None]] = None,
                 attachable: bool = False) -> None:
        self.processor = processor
        self._setup = setup
        self._teardown = teardown
        self._closed = False
        self._lock = threading.Lock()
        #: held while the processor executes anything, on its thread or inline in a caller's
        self.exclusive = threading.Lock()
        #: whether ``setup`` may also run on other threads (see :meth:`attach`)
        self.attachable = bool(attachable)
        self._attached = set()     # idents of the other threads set up with ``setup``
        self._thread_ident: Optional[int] = None
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix='hetero-infer-' + processor,
            initializer=self._init_thread)

    def _init_thread(self) -> None:
        self._thread_ident = threading.get_ident()
        if self._setup is not None:
            self._setup()

    def runs_here(self) -> bool:
        """True when the calling thread may execute this processor's work itself: it is the
        worker's thread, or a thread :meth:`attach` set up."""
        ident = threading.get_ident()
        return ident == self._thread_ident or ident in self._attached

    def attach(self) -> bool:
        """Set the calling thread up as the worker's would be (once per thread); False when this
        processor's thread state cannot live on another thread (``attachable`` false).

        :raises BackendError: the worker is closed, or the set-up failed on this thread.
        """
        if self.runs_here():
            return True
        if not self.attachable:
            return False
        with self._lock:
            if self._closed:
                raise BackendError('processor %s: worker is closed' % self.processor)
        if self._setup is not None:
            try:
                self._setup()
            except Exception as exc:  # noqa: BLE001 - the backend's set-up: any failure is reported as it
                raise BackendError('processor %s: set-up on thread %s failed: %s'
                                   % (self.processor, threading.current_thread().name, exc)) \
                    from None
        self._attached.add(threading.get_ident())
        return True

    def detach(self) -> None:
        """Undo :meth:`attach` on the calling thread (call it from that thread); no-op
        otherwise."""
        ident = threading.get_ident()
        if ident not in self._attached:
            return
        self._attached.discard(ident)
        if self._teardown is not None:
            self._teardown()

    def submit(self, fn: Callable[..., Any], *args: Any,
               **kwargs: Any) -> concurrent.futures.Future:
        """Queue ``fn(*args, **kwargs)`` on the processor's thread."""
        with self._lock:
            if self._closed:
                raise BackendError('processor %s: worker is closed' % self.processor)
            try:
                return self._pool.submit(fn, *args, **kwargs)
            except RuntimeError as exc:  # setup failed: the pool is broken
                raise BackendError('processor %s: worker unusable: %s'
                                   % (self.processor, exc)) from None

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on the processor's thread and return its result (re-raising its error)."""
        fut = self.submit(fn, *args, **kwargs)
        try:
            return fut.result()
        except concurrent.futures.BrokenExecutor as exc:
            raise BackendError('processor %s: worker setup failed: %s'
                               % (self.processor, exc)) from None

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._teardown is not None:
                try:
                    self._pool.submit(self._teardown).result()
                except (concurrent.futures.BrokenExecutor, RuntimeError):
                    pass  # setup never succeeded: nothing to tear down
        self._pool.shutdown(wait=True)


class Executor:
    """A model loaded on one processor. Subclasses implement :meth:`_execute` (and may override
    :meth:`_release`); everything else (queueing, timing, validation, closing) lives here.

    Attributes: ``processor`` (id), ``model_path``, ``inputs`` / ``outputs`` (tuples of
    :class:`TensorSpec`), ``info`` (backend-specific facts, e.g. TensorRT's GPU-fallback layers).
    """

    def __init__(self, *, processor: str, model_path: str, worker: ProcessorWorker,
                 inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                 info: Optional[Dict[str, Any]] = None) -> None:
        self.processor = processor
        self.model_path = model_path
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.info = dict(info or {})
        self._worker = worker
        self._closed = False
        self._input_names = tuple(t.name for t in self.inputs)

    # -- to implement ---------------------------------------------------------------------------
    def _execute(self, inputs: Dict[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], Dict]:
        """Run one inference on the worker thread; return ``(outputs, info)``."""
        raise NotImplementedError

    def _release(self) -> None:
        """Free the processor-side resources (runs on the worker thread)."""

    # -- public API -----------------------------------------------------------------------------
    #: True when inference needs no thread-bound state (emulated): :meth:`run` then executes
    #: in the caller's thread under the processor's lock, saving two thread hand-offs.
    inline = False

    def submit(self, inputs: Mapping[str, np.ndarray]) -> concurrent.futures.Future:
        """Queue one request; the future resolves to an :class:`InferenceResult`.

        :raises BackendError: the executor is closed.
        :raises ModelError: an input is missing, unexpected or of the wrong shape.
        """
        if self._closed:
            raise BackendError('%s on %s: executor is closed' % (self.model_path, self.processor))
        feed = self._check_inputs(inputs)
        return self._worker.submit(self._exclusive_timed, feed, time.perf_counter())

    def run(self, inputs: Mapping[str, np.ndarray], *,
            timeout_s: Optional[float] = None) -> InferenceResult:
        """Run one request and wait for it (see :meth:`submit`)."""
        if self.inline:
            if self._closed:
                raise BackendError('%s on %s: executor is closed'
                                   % (self.model_path, self.processor))
            feed = self._check_inputs(inputs)
            submitted = time.perf_counter()
            if not self._worker.exclusive.acquire(timeout=-1 if timeout_s is None
                                                  else timeout_s):
                raise BackendError('%s on %s: processor busy for %.3f s'
                                   % (self.model_path, self.processor, timeout_s))
            try:
                return self._timed(feed, submitted)
            finally:
                self._worker.exclusive.release()
        fut = self.submit(inputs)
        try:
            return fut.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            raise BackendError('%s on %s: no result after %.3f s'
                               % (self.model_path, self.processor, timeout_s)) from None

    def run_here(self, inputs: Mapping[str, np.ndarray]) -> InferenceResult:
        """Run one request on the calling thread, under the processor's lock, when the backend
        allows it (inline executor, the worker's own thread, or an ``attachable`` backend: the
        calling thread is then set up like the worker's, once); otherwise as :meth:`run`.

        For the one thread that feeds a processor (it saves two thread hand-offs per request);
        that thread should call ``worker.detach()`` (:attr:`worker`) when it ends.
        ``queue_ms`` is the wait for the lock.
        """
        worker = self._worker
        if not (self.inline or worker.runs_here() or worker.attach()):
            return self.run(inputs)
        if self._closed:
            raise BackendError('%s on %s: executor is closed' % (self.model_path, self.processor))
        feed = self._check_inputs(inputs)
        submitted = time.perf_counter()
        with worker.exclusive:
            return self._timed(feed, submitted)

    @property
    def worker(self) -> ProcessorWorker:
        """The processor's worker (shared by every executor on that processor)."""
        return self._worker

    def random_inputs(self, seed: int = 0) -> Dict[str, np.ndarray]:
        """Seeded random inputs of the right shapes and dtypes (for profiling and warm-up)."""
        rng = np.random.default_rng(seed)
        out = {}
        for t in self.inputs:
            shape = tuple(d if d > 0 else 1 for d in t.shape)  # dynamic dims -> 1
            if np.issubdtype(np.dtype(t.dtype), np.floating):
                out[t.name] = rng.standard_normal(shape).astype(t.dtype)
            else:
                out[t.name] = rng.integers(0, 2, size=shape).astype(t.dtype)
        return out

    def close(self) -> None:
        """Release the model; later calls raise :class:`BackendError`. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._worker.call(self._release)
        except BackendError:
            pass  # worker already closed with its backend: resources went with it

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> 'Executor':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return '%s(%r on %s)' % (type(self).__name__, self.model_path, self.processor)

    # -- internals ------------------------------------------------------------------------------
    def _check_inputs(self, inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        if not isinstance(inputs, (dict, abc.Mapping)):  # typing.Mapping's check is slow
            raise ModelError('%s: inputs must be a dict name -> array, got %s'
                             % (self.model_path, type(inputs).__name__))
        missing = [n for n in self._input_names if n not in inputs]
        extra = [n for n in inputs if n not in self._input_names]
        if missing or extra:
            raise ModelError('%s: inputs %s expected, got %s'
                             % (self.model_path, list(self._input_names), sorted(inputs)))
        feed = {}
        for t in self.inputs:
            a = np.asarray(inputs[t.name])
            if tuple(a.shape) != tuple(t.shape) and all(d > 0 for d in t.shape):
                raise ModelError('%s: input %r has shape %s, expected %s'
                                 % (self.model_path, t.name, tuple(a.shape), tuple(t.shape)))
            if a.dtype != t.dtype:
                a = a.astype(t.dtype)
            feed[t.name] = a
        return feed

    def _exclusive_timed(self, feed: Dict[str, np.ndarray],
                         submitted_s: float) -> InferenceResult:
        with self._worker.exclusive:
            return self._timed(feed, submitted_s)

    def _timed(self, feed: Dict[str, np.ndarray], submitted_s: float) -> InferenceResult:
        start = time.perf_counter()
        outputs, info = self._execute(feed)
        end = time.perf_counter()
        return InferenceResult(outputs=outputs, processor=self.processor,
                               queue_ms=(start - submitted_s) * 1e3,
                               execute_ms=info.pop('execute_ms', (end - start) * 1e3),
                               start_s=start, end_s=end, info=info)


PRECISIONS = ('fp32', 'fp16', 'int8')

#: The short keywords of ``Backend.load(model, processor, **options)`` -> LoadRequest fields.
_LOAD_ALIASES = {'onnx_path': 'model_file', 'model_file_path': 'model_file',
                 'engine_file_path': 'engine_file', 'force_engine_update': 'rebuild'}


@dataclass(frozen=True)
class LoadRequest:
    """What to load on which processor: the one argument of :meth:`Backend.load`.

    :param model: what the model is: a zoo name, a layer-table or ONNX path, or an in-memory
        ONNX model (``onnx.ModelProto`` or bytes). The emulated backend times it with the twin;
        the null backend takes its input and output shapes from it.
    :param processor: processor id (``gpu``, ``dla0``, ``cpu0``...).
    :param model_file: ONNX file with the weights: what onnxruntime and TensorRT run (``model``
        when empty), and what the emulated backend computes real outputs from (zeros when
        empty; timing stays the twin's for ``model``).
    :param engine_file: prebuilt TensorRT engine (tensorrt; empty = build and cache).
    :param precision: ``fp32``, ``fp16`` or ``int8`` (tensorrt; empty = its default, fp16).
        The other backends compute in fp32 whatever is asked (the emulated backend's timing is
        the platform description's).
    :param rebuild: rebuild a cached engine even when it is up to date (tensorrt).
    :param options: backend-specific extras (tensorrt: ``gpu_fallback``, ``calibration_cache``);
        a backend refuses extras it does not know.
    """

    model: Any
    processor: str
    model_file: str = ''
    engine_file: str = ''
    precision: str = ''
    rebuild: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.precision and self.precision not in PRECISIONS:
            raise ConfigError('precision=%r: choose %s' % (self.precision, ', '.join(PRECISIONS)))

    @property
    def source(self) -> Any:
        """What a backend that runs the ONNX file loads: ``model_file``, else ``model``."""
        return self.model_file or self.model

    @classmethod
    def of(cls, model: Any, processor: str, **options: Any) -> 'LoadRequest':
        """The request ``load(model, processor, **options)`` stands for: field names, their
        older spellings (``onnx_path``, ``engine_file_path``, ``force_engine_update``,
        ``enable_fp16``) and backend-specific extras."""
        fields: Dict[str, Any] = {}
        extra: Dict[str, Any] = {}
        fp16 = options.pop('enable_fp16', None)
        for key, value in options.items():
            name = _LOAD_ALIASES.get(key, key)
            if name in ('model_file', 'engine_file', 'precision'):
                fields[name] = '' if value is None else str(value)
            elif name == 'rebuild':
                fields[name] = bool(value)
            else:
                extra[key] = value
        if fp16 is not None and not fields.get('precision'):
            fields['precision'] = 'fp16' if fp16 else 'fp32'
        return cls(model, processor, options=extra, **fields)


class Backend:
    """An execution library on this machine, providing executors for its processors.

    Subclasses set ``name``, implement :meth:`_provided` (processor ids) and :meth:`_load`, and may
    override :meth:`_worker_setup` / :meth:`_worker_teardown` for per-processor thread state.
    """

    name = ''
    #: True when :meth:`_worker_setup` / :meth:`_worker_teardown` may also run on threads other
    #: than the worker's (each on its own thread), so :meth:`Executor.run_here` can run there.
    attachable = False

    def __init__(self) -> None:
        self._workers: Dict[str, ProcessorWorker] = {}
        self._executors = []
        self._lock = threading.Lock()
        self._closed = False

    # -- to implement ---------------------------------------------------------------------------
    def _provided(self) -> Tuple[str, ...]:
        raise NotImplementedError

    def _load(self, request: LoadRequest, worker: ProcessorWorker) -> Executor:
        raise NotImplementedError

    def library_versions(self) -> Dict[str, str]:
        """Versions of the libraries this backend runs on (recorded with profiles)."""
        return {}

    @classmethod
    def create(cls, *, platform: Any = None, seed: int = 0, **options: Any) -> 'Backend':
        """The backend for ``platform`` (a :class:`~hetero_infer.platform.spec.Platform`, or
        None) with ``options``; what :func:`create_backend` calls. Backends that neither
        emulate a platform nor draw random numbers ignore both."""
        return cls(**options)

    def _worker_setup(self, processor: str) -> None:
        """Runs on a processor's worker thread before anything else."""

    def _worker_teardown(self, processor: str) -> None:
        """Runs on a processor's worker thread when the backend closes."""

    # -- public API -----------------------------------------------------------------------------
    @property
    def processor_ids(self) -> Tuple[str, ...]:
        """The processors this backend can run models on, on this machine."""
        return self._provided()

    def check_processor(self, processor: str) -> None:
        """:raises BackendError: this backend cannot provide ``processor``."""
        known = self.processor_ids
        if processor not in known:
            raise BackendError('backend %r cannot provide processor %r (it provides: %s)'
                               % (self.name, processor, ', '.join(known) or 'none'))

    def worker(self, processor: str) -> ProcessorWorker:
        """The single worker thread of ``processor`` (created on first use)."""
        self.check_processor(processor)
        with self._lock:
            if self._closed:
                raise BackendError('backend %r is closed' % self.name)
            w = self._workers.get(processor)
            if w is None:
                w = ProcessorWorker(processor,
                                    setup=lambda: self._worker_setup(processor),
                                    teardown=lambda: self._worker_teardown(processor),
                                    attachable=self.attachable)
                self._workers[processor] = w
            return w

    def load(self, request: Any, processor: Optional[str] = None, **options: Any) -> Executor:
        """Load what ``request`` (a :class:`LoadRequest`) asks; ``load(model, processor,
        **options)`` is the same as ``load(LoadRequest.of(model, processor, **options))``.

        :raises BackendError: unknown processor, closed backend, library failure.
        :raises ModelError: missing or unreadable model file (the path is in the message).
        :raises ConfigError: an option this backend does not know, or a bad precision.
        """
        if not isinstance(request, LoadRequest):
            if processor is None:
                raise ConfigError('load(%r): no processor given' % (request,))
            request = LoadRequest.of(request, processor, **options)
        elif processor is not None or options:
            raise ConfigError('load(LoadRequest) takes no other arguments')
        worker = self.worker(request.processor)
        ex = self._load(request, worker)
        with self._lock:
            self._executors.append(ex)
        return ex

    def close(self) -> None:
        """Close every executor and stop the worker threads. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            executors, self._executors = self._executors, []
            workers, self._workers = dict(self._workers), {}
        for ex in executors:
            ex.close()
        for w in workers.values():
            w.close()

    def __enter__(self) -> 'Backend':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class BackgroundLoop:
    """Runs executors back to back on their processor until stopped (co-runner for profiling).

    Given one executor it loops that model; given a list (all on one processor) it cycles
    through them, e.g. one single-layer model per co-runner layer
    (:mod:`hetero_infer.backends.onnx_layers`)::

        with BackgroundLoop([ex_a, ex_b]) as loop:  # cpu1 now loops layers a, b, a, b, ...
            t = ex_cpu0.run(feed).execute_ms        # measured under interference
        loop.iterations, loop.mean_execute_ms

    :param inputs: one feed (single executor) or one per executor; default seeded random.
    """

    def __init__(self, executors: Union[Executor, Sequence[Executor]],
                 inputs: Optional[Union[Mapping[str, np.ndarray],
                                        Sequence[Mapping[str, np.ndarray]]]] = None,
                 *, seed: int = 0) -> None:
        execs = [executors] if isinstance(executors, Executor) else list(executors)
        if not execs:
            raise ConfigError('BackgroundLoop needs at least one executor')
        procs = sorted(set(e.processor for e in execs))
        if len(procs) != 1:
            raise ConfigError('BackgroundLoop executors must share one processor, got %s'
                              % procs)
        self.executors = execs
        self.executor = execs[0]
        self.processor = procs[0]
        if inputs is None:
            feeds = [e.random_inputs(seed + i) for i, e in enumerate(execs)]
        elif isinstance(inputs, Mapping):
            feeds = [dict(inputs)] * len(execs)
        else:
            feeds = [dict(f) for f in inputs]
        if len(feeds) != len(execs):
            raise ConfigError('BackgroundLoop: %d input feeds for %d executors'
                              % (len(feeds), len(execs)))
        self.inputs = feeds[0]
        self._feeds = feeds
        self.iterations = 0
        self.total_execute_ms = 0.0
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> 'BackgroundLoop':
        """Start looping; returns once the first inference is under way."""
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name='hetero-infer-loop-' + self.processor)
        self._thread.start()
        self._started.wait()
        return self

    def _loop(self) -> None:
        try:
            n = len(self.executors)
            first = self.executors[0].submit(self._feeds[0])
            self._started.set()
            res = first.result()
            i = 0
            while True:
                self.iterations += 1
                self.total_execute_ms += res.execute_ms
                if self._stop.is_set():
                    return
                i = (i + 1) % n
                res = self.executors[i].run(self._feeds[i])
        except BaseException as exc:  # noqa: BLE001 - reported to the caller by stop()
            self.error = exc
            self._started.set()

    def stop(self) -> None:
        """Stop after the inference in flight; re-raises an error the loop hit."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.error is not None:
            raise BackendError('background loop on %s failed: %s'
                               % (self.processor, self.error))

    @property
    def mean_execute_ms(self) -> float:
        return self.total_execute_ms / self.iterations if self.iterations else float('nan')

    def __enter__(self) -> 'BackgroundLoop':
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
