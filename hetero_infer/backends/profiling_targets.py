"""Interference profiling on a real backend, through the executor interface only.

:class:`ExecutorProfilingTarget` implements :class:`hetero_infer.core.profiling.ProfilingTarget`
for any :class:`~hetero_infer.backends.base.Backend`: each layer becomes a one-layer ONNX model
(:func:`hetero_infer.backends.onnx_layers.layer_to_onnx`), loaded on the processor that runs it;
the target layer is timed with ``Executor.run`` (``execute_ms``, the processor's own time) while
each co-runner processor loops its layers back to back on a background thread. So the same
profiler that runs against the digital twin runs unchanged on onnxruntime CPU cores (``cpu0``
target, ``cpu1`` co-runner) and on a Jetson with TensorRT (``gpu``, ``dla0``, ``dla1``).

Executors are cached per (layer, processor) for the target's lifetime (a TensorRT build is
expensive) and closed by :meth:`ExecutorProfilingTarget.close`. The first ``warmup`` runs of
every measurement are discarded.
"""

import threading
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from hetero_infer.backends.base import Backend, Executor
from hetero_infer.core.model import Layer
from hetero_infer.core.profiling import ProfilingTarget
from hetero_infer.errors import BackendError, ConfigError, ModelError

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


class ExecutorProfilingTarget(ProfilingTarget):
    """Profiles layers on a backend's processors.

    :param backend: an open backend (its ``processor_ids`` are the processors profiled).
    :param platform_name: name recorded in the dataset's provenance (e.g. ``'cpu-host'``).
    :param warmup: runs discarded before each measurement.
    """

    def __init__(self, backend: Backend, *, platform_name: str = '', warmup: int = 2) -> None:
        self.backend_obj = backend
        self.backend = backend.name
        self.platform_name = platform_name or backend.name
        self.warmup = warmup
        self._kinds = {p: processor_kind(p) for p in backend.processor_ids}
        self._executors: Dict[Tuple[int, str], Tuple[Executor, Dict[str, Any]]] = {}
        self._keep: List[Layer] = []

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
        ex = self.backend_obj.load(layer_to_onnx(layer, seed=len(self._executors)), proc)
        feed = ex.random_inputs(seed=0)
        self._executors[key] = (ex, feed)
        self._keep.append(layer)  # keeps id(layer) unique while cached
        return ex, feed

    def measure(self, proc: str, layer: Layer, corunners: Mapping[str, Sequence[Layer]], *,
                repeats: int, seed: int) -> float:
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
            total = 0.0
            for _ in range(repeats):
                total += ex.run(feed).execute_ms
        finally:
            errors = []
            for loop in loops:
                try:
                    loop.__exit__(None, None, None)
                except BackendError as exc:
                    errors.append(exc)
            if errors:
                raise errors[0]
        return total / repeats

    def versions(self) -> Dict[str, str]:
        out = {'backend': self.backend}
        out.update(self.backend_obj.library_versions())
        try:
            import onnx
            out['onnx'] = onnx.__version__
        except ImportError:
            pass
        return out

    def close(self) -> None:
        for ex, _ in self._executors.values():
            ex.close()
        self._executors.clear()
        self._keep.clear()
