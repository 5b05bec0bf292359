"""Interference profiling on a real backend, through the executor interface only.

:class:`ExecutorProfilingTarget` implements
:class:`hetero_infer.interference.profiling.ProfilingTarget`
for any :class:`~hetero_infer.backends.base.Backend`: each layer becomes a one-layer ONNX model
(:func:`hetero_infer.backends.onnx_layers.layer_to_onnx`), loaded on the processor that runs it;
the target layer is timed with ``Executor.run`` (``execute_ms``, the processor's own time) while
each co-runner processor loops its layers back to back on a background thread. So the same
profiler that runs against the digital twin runs unchanged on onnxruntime CPU cores (``cpu0``
target, ``cpu1`` co-runner) and on a Jetson with TensorRT (``gpu``, ``dla0``, ``dla1``).

Executors are cached per (layer, processor) for the target's lifetime (a TensorRT build is
expensive) and closed by :meth:`ExecutorProfilingTarget.close`. The first ``warmup`` runs of
every measurement are discarded.

Two protocols (``protocol=``):

- ``'robust'`` (default): every run happens on the processors' own pinned worker threads. A whole
  measurement is one call on the target's worker (no thread hand-off per run: the harness's main
  thread sleeps while layers are timed, instead of waking up on one of the cores being measured),
  and each co-runner loops its layers on its own worker, paused and resumed by the target's
  thread. Isolated and co-run runs are interleaved in ``blocks`` (A B B A ...), so drift in
  frequency or in other processes' load hits both halves of a slowdown alike, and every run's
  time is returned so the caller aggregates robustly (median, trimmed mean). The worker threads'
  CPU affinity is checked against the backend's core sets at construction (:attr:`affinity`).
- ``'legacy'``: the protocol before issue 17, kept for ``bench/bench_profile_noise.py`` to
  measure the difference in one run (``hetero-infer profile`` does not offer it): each run
  is handed to the worker from the calling thread, co-runners loop from Python threads through
  the same hand-off, isolated and co-run measurements are separate.
"""

import os
import threading
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from hetero_infer.backends.base import Backend, Executor
from hetero_infer.errors import BackendError, ConfigError, ModelError
from hetero_infer.interference.profiling import ProfilingTarget
from hetero_infer.models.zoo import Layer

#: processor-id prefix -> kind, for backends whose processors carry no kind attribute.
_KIND_PREFIXES = (('dla', 'dla'), ('gpu', 'gpu'), ('cpu', 'cpu'))


def processor_kind(proc: str) -> str:
    for prefix, kind in _KIND_PREFIXES:
        if proc.startswith(prefix):
            return kind
    raise ConfigError('cannot tell the kind of processor %r (expected gpu*, dla* or cpu*)'
                      % proc)


class _LayerLoop:
    """Loops a list of executors (one co-runner processor's layers) until stopped."""

    def __init__(self, executors: Sequence[Executor], feeds: Sequence[Dict[str, Any]]) -> None:
        self.executors = list(executors)
        self.feeds = list(feeds)
        self.iterations = 0
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name='hetero-infer-profile-loop')

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                for ex, feed in zip(self.executors, self.feeds):
                    ex.run(feed)
                    self._started.set()
                    if self._stop.is_set():
                        break
                self.iterations += 1
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc
            self._started.set()

    def __enter__(self) -> '_LayerLoop':
        self._thread.start()
        self._started.wait()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        if self.error is not None:
            raise BackendError('co-runner loop failed: %s' % self.error)


class _PausableLoop:
    """Loops one co-runner processor's layers on that processor's own worker thread.

    Starts paused; :meth:`resume` returns once the loop is running again, :meth:`pause` once the
    layer in flight has finished (so an isolated run that follows sees an idle co-runner).
    """

    def __init__(self, executors: Sequence[Executor], feeds: Sequence[Dict[str, Any]]) -> None:
        self.executors = list(executors)
        self.feeds = list(feeds)
        self.iterations = 0
        self.error: Optional[BaseException] = None
        self._cond = threading.Condition()
        self._run = False
        self._stop = False
        self._looping = False
        #: wall and on-CPU seconds of the co-runner's thread inside its runs (see :meth:`duty`)
        self.wall_s = 0.0
        self.cpu_s = 0.0
        self._future = self.executors[0].worker.submit(self._loop)

    def _loop(self) -> None:
        try:
            while True:
                with self._cond:
                    self._looping = False
                    self._cond.notify_all()
                    while not self._run and not self._stop:
                        self._cond.wait()
                    if self._stop:
                        return
                    self._looping = True
                    self._cond.notify_all()
                for ex, feed in zip(self.executors, self.feeds):
                    w0, c0 = time.perf_counter(), time.thread_time()
                    ex.run_here(feed)  # on the worker's own thread: runs right here
                    self.cpu_s += time.thread_time() - c0
                    self.wall_s += time.perf_counter() - w0
                    if not self._run:
                        break
                self.iterations += 1
        except BaseException as exc:  # noqa: BLE001 - reported by resume/close
            with self._cond:
                self.error = exc
                self._looping = False
                self._cond.notify_all()

    def _check(self) -> None:
        if self.error is not None:
            raise BackendError('co-runner loop failed: %s' % self.error)

    def resume(self) -> None:
        with self._cond:
            self._run = True
            self._cond.notify_all()
            while not self._looping and self.error is None:
                self._cond.wait()
        self._check()

    def pause(self) -> None:
        with self._cond:
            self._run = False
            while self._looping and self.error is None:
                self._cond.wait()
        self._check()

    def counters(self) -> Tuple[float, float]:
        """``(wall s, on-CPU s)`` so far; the share of a window's wall time the co-runner was
        on its core (its duty) is the ratio of two differences."""
        return self.wall_s, self.cpu_s

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._run = False
            self._cond.notify_all()
        self._future.result()
        self._check()


PROTOCOLS = ('robust', 'legacy')


class ExecutorProfilingTarget(ProfilingTarget):
    """Profiles layers on a backend's processors.

    :param backend: an open backend (its ``processor_ids`` are the processors profiled).
    :param platform_name: name recorded in the dataset's provenance (e.g. ``'cpu-host'``).
    :param warmup: runs discarded before each measurement (and before each co-run block).
    :param protocol: ``'robust'`` or ``'legacy'`` (see the module docstring).
    :param on_cpu: (robust) subtract from each run the time the target's thread was not on its
        core (wall minus thread CPU time around the call): another process preempting the
        target then no longer lengthens the run. Only right where the whole layer runs on the
        calling thread (onnxruntime with one intra-op thread per processor, checked per
        executor), not for accelerators.
    :param min_duty: (robust) measure a co-run block again (``block_retries`` times at most)
        when a co-runner was on its core for less than this share of the block's time (another
        process took its core, so it interfered less than it should).
    :raises ConfigError: unknown protocol.
    :raises BackendError: a worker thread is not pinned to its processor's cores.
    """

    def __init__(self, backend: Backend, *, platform_name: str = '', warmup: int = 2,
                 protocol: str = 'robust', on_cpu: bool = False, min_duty: float = 0.0,
                 block_retries: int = 2) -> None:
        if protocol not in PROTOCOLS:
            raise ConfigError('protocol=%r: choose one of %s' % (protocol, ', '.join(PROTOCOLS)))
        if on_cpu and protocol != 'robust':
            raise ConfigError('on_cpu needs protocol robust (runs timed on the worker thread)')
        if not 0.0 <= min_duty < 1.0:
            raise ConfigError('min_duty must be in [0, 1), got %r' % (min_duty,))
        self.on_cpu = bool(on_cpu)
        self.min_duty = float(min_duty)
        self.block_retries = int(block_retries)
        #: co-run blocks measured again because a co-runner was off its core too long
        self.redone_blocks = 0
        self.backend_obj = backend
        self.backend = backend.name
        self.platform_name = platform_name or backend.name
        self.warmup = warmup
        self.protocol = protocol
        self._kinds = {p: processor_kind(p) for p in backend.processor_ids}
        self._executors: Dict[Tuple[int, str], Tuple[Executor, Dict[str, Any]]] = {}
        self._keep: List[Layer] = []
        self._loaded = 0
        #: ``{processor: cores its worker thread may run on}``, read on that thread
        self.affinity: Dict[str, List[int]] = {}
        self._check_affinity()

    def _check_affinity(self) -> None:
        """Read every worker thread's CPU affinity on that thread; refuse a mismatch with the
        backend's core sets (a measurement on the wrong cores measures something else)."""
        if not hasattr(os, 'sched_getaffinity'):
            return
        wanted = getattr(self.backend_obj, 'core_sets', None)
        for proc in self._kinds:
            cores = sorted(self.backend_obj.worker(proc).call(os.sched_getaffinity, 0))
            self.affinity[proc] = cores
            if wanted is not None and proc in wanted and cores != sorted(wanted[proc]):
                raise BackendError('processor %s: worker thread runs on cores %s, not its core '
                                   'set %s' % (proc, cores, sorted(wanted[proc])))

    def processor_kinds(self) -> Dict[str, str]:
        return dict(self._kinds)

    def supports(self, layer: Layer, proc: str) -> bool:
        """DLA rules, and whether the layer converts to an ONNX graph this backend loads."""
        if not super().supports(layer, proc):
            return False
        from hetero_infer.backends.onnx_layers import layer_to_onnx
        try:
            layer_to_onnx(layer)
        except ModelError:
            return False
        return True

    def _executor(self, layer: Layer, proc: str) -> Tuple[Executor, Dict[str, Any]]:
        key = (id(layer), proc)
        hit = self._executors.get(key)
        if hit is not None:
            return hit
        from hetero_infer.backends.onnx_layers import layer_to_onnx
        self._loaded += 1
        ex = self.backend_obj.load(layer_to_onnx(layer, seed=self._loaded), proc)
        feed = ex.random_inputs(seed=0)
        self._executors[key] = (ex, feed)
        self._keep.append(layer)  # keeps id(layer) unique while cached
        return ex, feed

    def measure(self, proc: str, layer: Layer, corunners: Mapping[str, Sequence[Layer]], *,
                repeats: int, seed: int) -> float:
        runs = self.measure_runs(proc, layer, corunners, repeats=repeats, seed=seed)
        return sum(runs) / len(runs)

    def measure_runs(self, proc: str, layer: Layer, corunners: Mapping[str, Sequence[Layer]],
                     *, repeats: int, seed: int) -> List[float]:
        if self.protocol == 'legacy':
            return self._legacy_runs(proc, layer, corunners, repeats)
        if corunners:
            return self.measure_pair(proc, layer, corunners, repeats=0, corun_repeats=repeats,
                                     blocks=1, seed=seed)[1]
        ex, feed = self._executor(layer, proc)
        one = self._timer(ex, feed)

        def timed() -> List[float]:
            for _ in range(self.warmup):
                ex.run_here(feed)
            return [one() for _ in range(repeats)]

        return ex.worker.call(timed)

    def measure_pair(self, proc: str, layer: Layer, corunners: Mapping[str, Sequence[Layer]],
                     *, repeats: int, corun_repeats: int, blocks: int, seed: int
                     ) -> Tuple[List[float], List[float]]:
        """Isolated and co-run run times of ``layer``, interleaved in ``blocks`` blocks (A B B A:
        even blocks time isolated runs first, odd ones co-run runs first).

        ``repeats`` isolated and ``corun_repeats`` co-run runs in all, split over the blocks.
        """
        if self.protocol == 'legacy':
            return (self._legacy_runs(proc, layer, {}, repeats) if repeats else [],
                    self._legacy_runs(proc, layer, corunners, corun_repeats))
        if proc in corunners:
            raise ConfigError('co-runner processor %r is the target processor' % proc)
        if blocks < 1:
            raise ConfigError('blocks must be >= 1, got %r' % (blocks,))
        ex, feed = self._executor(layer, proc)
        loops = []
        try:
            for cproc, layers in corunners.items():
                pairs = [self._executor(lay, cproc) for lay in layers]
                if pairs:
                    loops.append(_PausableLoop([p[0] for p in pairs], [p[1] for p in pairs]))

            def split(n: int) -> List[int]:
                base, extra = divmod(n, blocks)
                return [base + (1 if b < extra else 0) for b in range(blocks)]

            n_iso, n_cor = split(repeats), split(corun_repeats)

            one = self._timer(ex, feed)

            def timed() -> Tuple[List[float], List[float]]:
                iso: List[float] = []
                cor: List[float] = []

                def isolated(n: int) -> None:
                    for _ in range(self.warmup if n else 0):
                        ex.run_here(feed)
                    iso.extend(one() for _ in range(n))

                def corun(n: int) -> None:
                    if not n:
                        return
                    for attempt in range(self.block_retries + 1):
                        before = [loop.counters() for loop in loops]
                        for loop in loops:
                            loop.resume()
                        try:
                            for _ in range(self.warmup):
                                ex.run_here(feed)
                            runs = [one() for _ in range(n)]
                        finally:
                            for loop in loops:
                                loop.pause()
                        duty = min([(c1 - c0) / (w1 - w0) if w1 > w0 else 1.0
                                    for (w0, c0), (w1, c1) in
                                    zip(before, [loop.counters() for loop in loops])] or [1.0])
                        if duty >= self.min_duty or attempt == self.block_retries:
                            break
                        self.redone_blocks += 1
                    cor.extend(runs)

                for b in range(blocks):
                    if b % 2 == 0:
                        isolated(n_iso[b])
                        corun(n_cor[b])
                    else:
                        corun(n_cor[b])
                        isolated(n_iso[b])
                return iso, cor

            return ex.worker.call(timed)
        finally:
            errors = []
            for loop in loops:
                try:
                    loop.close()
                except BackendError as exc:
                    errors.append(exc)
            if errors:
                raise errors[0]

    def _timer(self, ex: Executor, feed: Dict[str, Any]):
        """One timed run on the calling (worker) thread, in ms."""
        if not self.on_cpu:
            return lambda: ex.run_here(feed).execute_ms
        if ex.info.get('intra_op_num_threads', 0) != 1:
            raise ConfigError('on_cpu timing needs the layer to run on the calling thread alone '
                              '(one intra-op thread); %s on %s has %r'
                              % (ex.model_path, ex.processor,
                                 ex.info.get('intra_op_num_threads')))

        def one() -> float:
            w0, c0 = time.perf_counter(), time.thread_time()
            ms = ex.run_here(feed).execute_ms
            off_ms = ((time.perf_counter() - w0) - (time.thread_time() - c0)) * 1e3
            # clock granularity can make off_ms slightly negative; the run's own time stays
            return max(ms - max(off_ms, 0.0), 0.05 * ms)
        return one

    def _legacy_runs(self, proc: str, layer: Layer, corunners: Mapping[str, Sequence[Layer]],
                     repeats: int) -> List[float]:
        if proc in corunners:
            raise ConfigError('co-runner processor %r is the target processor' % proc)
        ex, feed = self._executor(layer, proc)
        loops = []
        for cproc, layers in corunners.items():
            pairs = [self._executor(lay, cproc) for lay in layers]
            if pairs:
                loops.append(_LayerLoop([p[0] for p in pairs], [p[1] for p in pairs]))
        for loop in loops:
            loop.__enter__()
        try:
            for _ in range(self.warmup):
                ex.run(feed)
            runs = [ex.run(feed).execute_ms for _ in range(repeats)]
        finally:
            errors = []
            for loop in loops:
                try:
                    loop.__exit__(None, None, None)
                except BackendError as exc:
                    errors.append(exc)
            if errors:
                raise errors[0]
        return runs

    def versions(self) -> Dict[str, str]:
        out = {'backend': self.backend, 'protocol': self.protocol,
               'on_cpu_timing': str(self.on_cpu), 'min_corunner_duty': str(self.min_duty),
               'redone_corun_blocks': str(self.redone_blocks)}
        if self.affinity:
            out['affinity'] = ' '.join('%s:%s' % (p, ','.join(str(c) for c in cs))
                                       for p, cs in sorted(self.affinity.items()))
        out.update(self.backend_obj.library_versions())
        try:
            import onnx
            out['onnx'] = onnx.__version__
        except ImportError:
            pass
        return out

    def release(self, layers) -> None:
        """Close the executors of ``layers`` (on every processor) and forget them."""
        ids = {id(lay) for lay in layers}
        for key in [k for k in self._executors if k[0] in ids]:
            ex, _ = self._executors.pop(key)
            ex.close()
        self._keep = [lay for lay in self._keep if id(lay) not in ids]

    def close(self) -> None:
        for ex, _ in self._executors.values():
            ex.close()
        self._executors.clear()
        self._keep.clear()
