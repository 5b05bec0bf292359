"""onnxruntime on CPU cores: processors ``cpu0``, ``cpu1``, ... each owning a set of cores.

Core sets: by default every core this process may use (``os.sched_getaffinity``) becomes its own
processor (``cpu0`` = first core, ...); ``num_processors=k`` splits the cores into k contiguous,
near-equal sets instead, and ``core_sets={'cpu0': [0, 1], 'cpu1': [2, 3]}`` (or a list of lists)
gives them explicitly.

Pinning: each processor's worker thread (see :mod:`hetero_infer.backends.base`) calls
``os.sched_setaffinity(0, cores)`` on itself where the OS has it (Linux), and creates that
processor's sessions on that thread, so onnxruntime's intra-op pool threads, created with the
session, inherit the same core set (Linux threads inherit their creator's affinity). Each session
gets ``intra_op_num_threads = len(cores)``, ``inter_op_num_threads = 1``, sequential execution and,
unless ``allow_spinning=True``, no spin-waiting, so an idle processor does not burn the cores of
another one (which would distort interference profiling). Where ``sched_setaffinity`` is missing
(macOS, Windows) sessions still get the thread count and ``executor.info['pinned']`` is False.

``load`` takes a path to an ``.onnx`` file, or the model itself as bytes or an
``onnx.ModelProto`` (what :mod:`hetero_infer.backends.onnx_layers` builds for the profiler).
"""

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import onnxruntime as ort

from hetero_infer.backends.base import Backend, Executor, LoadRequest, ProcessorWorker, TensorSpec
from hetero_infer.errors import ConfigError, ModelError

_ORT_TYPES = {
    'tensor(float)': np.float32, 'tensor(float16)': np.float16, 'tensor(double)': np.float64,
    'tensor(int64)': np.int64, 'tensor(int32)': np.int32, 'tensor(int8)': np.int8,
    'tensor(uint8)': np.uint8, 'tensor(bool)': np.bool_,
}


def available_cores() -> List[int]:
    """CPU cores this process may run on."""
    if hasattr(os, 'sched_getaffinity'):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def default_core_sets(num_processors: Optional[int] = None,
                      cores: Optional[Sequence[int]] = None) -> Dict[str, Tuple[int, ...]]:
    """Split ``cores`` (default: :func:`available_cores`) into ``num_processors`` contiguous sets
    named ``cpu0``...; one core per processor when ``num_processors`` is None.

    :raises ConfigError: more processors than cores, or fewer than one.
    """
    cores = list(cores if cores is not None else available_cores())
    n = len(cores) if num_processors is None else int(num_processors)
    if n < 1 or n > len(cores):
        raise ConfigError('num_processors=%r: must be between 1 and the %d available cores %s'
                          % (num_processors, len(cores), cores))
    base, extra = divmod(len(cores), n)
    sets, i = {}, 0
    for p in range(n):
        size = base + (1 if p < extra else 0)
        sets['cpu%d' % p] = tuple(cores[i:i + size])
        i += size
    return sets


def _normalise_core_sets(core_sets: Union[Mapping[str, Sequence[int]], Sequence[Sequence[int]]]
                         ) -> Dict[str, Tuple[int, ...]]:
    if isinstance(core_sets, Mapping):
        items = list(core_sets.items())
    else:
        items = [('cpu%d' % i, cs) for i, cs in enumerate(core_sets)]
    known = set(range(os.cpu_count() or 1))
    out = {}
    for name, cs in items:
        cs = tuple(int(c) for c in cs)
        if not cs:
            raise ConfigError('core_sets[%r] is empty' % name)
        bad = [c for c in cs if c not in known]
        if bad:
            raise ConfigError('core_sets[%r] = %s: no such cores %s on this machine (0-%d)'
                              % (name, list(cs), bad, max(known)))
        out[str(name)] = cs
    if not out:
        raise ConfigError('core_sets is empty')
    return out


def session_tensor_specs(args: Sequence[Any]) -> Tuple[TensorSpec, ...]:
    """The :class:`TensorSpec` of each of an onnxruntime session's ``get_inputs()`` or
    ``get_outputs()`` (a dynamic or unknown dimension as -1, an unknown type as float32)."""
    specs = []
    for a in args:
        shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in (a.shape or ()))
        specs.append(TensorSpec(a.name, shape, _ORT_TYPES.get(a.type, np.float32)))
    return tuple(specs)


class OnnxRuntimeExecutor(Executor):
    """An onnxruntime session on one CPU processor."""

    def __init__(self, session: 'ort.InferenceSession', **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session = session
        self._output_names = [t.name for t in self.outputs]

    def _execute(self, inputs: Dict[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], Dict]:
        outs = self.session.run(self._output_names, inputs)
        return dict(zip(self._output_names, outs)), {}

    def _release(self) -> None:
        self.session = None


class OnnxRuntimeBackend(Backend):
    """onnxruntime CPU sessions pinned to per-processor core sets.

    :param core_sets: ``{'cpu0': [cores], ...}`` or a list of core lists; overrides
        ``num_processors``.
    :param num_processors: split the available cores into this many processors.
    :param allow_spinning: let onnxruntime's threads spin-wait between runs (lower latency, but
        busy cores when idle).
    :param graph_optimization: ``'all'`` (default), ``'extended'``, ``'basic'`` or ``'disable'``.
    """

    name = 'onnxruntime'
    #: the per-processor thread state is the core pinning, which any thread can take on: a
    #: thread that feeds one processor (the scheduler node's) runs ``run_here`` pinned itself.
    attachable = True

    def __init__(self, *, core_sets: Optional[Union[Mapping[str, Sequence[int]],
                                                    Sequence[Sequence[int]]]] = None,
                 num_processors: Optional[int] = None, allow_spinning: bool = False,
                 graph_optimization: str = 'all') -> None:
        super().__init__()
        if core_sets is not None:
            self.core_sets = _normalise_core_sets(core_sets)
        else:
            self.core_sets = default_core_sets(num_processors)
        levels = {'all': ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                  'extended': ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  'basic': ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  'disable': ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
        if graph_optimization not in levels:
            raise ConfigError('graph_optimization=%r: choose one of %s'
                              % (graph_optimization, ', '.join(levels)))
        self._opt_level = levels[graph_optimization]
        self.allow_spinning = bool(allow_spinning)
        self._pinned: Dict[str, bool] = {}

    def _provided(self) -> Tuple[str, ...]:
        return tuple(self.core_sets)

    def _worker_setup(self, processor: str) -> None:
        if hasattr(os, 'sched_setaffinity'):
            os.sched_setaffinity(0, self.core_sets[processor])
            self._pinned[processor] = True
        else:
            self._pinned[processor] = False

    def session_options(self, processor: str) -> 'ort.SessionOptions':
        """The session options a session on ``processor`` gets (also used by the benchmark)."""
        so = ort.SessionOptions()
        so.intra_op_num_threads = len(self.core_sets[processor])
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = self._opt_level
        so.log_severity_level = 3
        if not self.allow_spinning:
            so.add_session_config_entry('session.intra_op.allow_spinning', '0')
        return so

    def library_versions(self) -> Dict[str, str]:
        return {'onnxruntime': onnxruntime_version()}

    def _load(self, request: LoadRequest, worker: ProcessorWorker) -> Executor:
        # engine_file, precision and rebuild do not apply: the CPU runs the ONNX file in fp32
        if request.options:
            raise ConfigError('onnxruntime backend: unknown load options %s'
                              % sorted(request.options))
        processor = request.processor
        source, label = _model_source(request.source)

        def create() -> 'ort.InferenceSession':
            try:
                return ort.InferenceSession(source, self.session_options(processor),
                                            providers=['CPUExecutionProvider'])
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidProtobuf/...
                raise ModelError('cannot load ONNX model %s: %s' % (label, exc)) from None

        session = worker.call(create)
        return OnnxRuntimeExecutor(
            session, processor=processor, model_path=label, worker=worker,
            inputs=session_tensor_specs(session.get_inputs()),
            outputs=session_tensor_specs(session.get_outputs()),
            info={'cores': list(self.core_sets[processor]),
                  'intra_op_num_threads': len(self.core_sets[processor]),
                  'pinned': self._pinned.get(processor, False)})


def _model_source(model: Any) -> Tuple[Union[str, bytes], str]:
    """(what onnxruntime takes, a label for messages) for a path, bytes or ModelProto."""
    if isinstance(model, (bytes, bytearray)):
        return bytes(model), '<in-memory ONNX model>'
    if hasattr(model, 'SerializeToString'):
        name = getattr(getattr(model, 'graph', None), 'name', '') or 'model'
        return model.SerializeToString(), '<in-memory ONNX model %s>' % name
    if not isinstance(model, (str, os.PathLike)):
        raise ModelError('model must be a path, bytes or onnx.ModelProto, got %r' % (model,))
    path = os.fspath(model)
    if not os.path.isfile(path):
        raise ModelError('model file not found: %s' % path)
    return path, path


def onnxruntime_version() -> str:
    return ort.__version__


__all__ = ['OnnxRuntimeBackend', 'OnnxRuntimeExecutor', 'available_cores', 'default_core_sets']
