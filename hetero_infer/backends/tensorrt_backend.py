"""TensorRT engines on the GPU and on DLA cores, executed with pycuda.

Processors: ``gpu`` (CUDA device ``device_id``, default 0) and ``dla0`` ... ``dla{n-1}`` where n is
``builder.num_DLA_cores`` (2 on Xavier and Orin, 0 on desktop GPUs). Asking for a DLA where there
is none raises :class:`BackendError` saying so.

Building (once per model x processor x precision x TensorRT version, then cached; see
:mod:`hetero_infer.backends.engine_cache`): the ONNX file is parsed with ``trt.OnnxParser``;
``BuilderFlag.FP16`` for ``fp16`` (the default, ``enable_fp16=True``), ``BuilderFlag.INT8`` plus a
calibrator that serves the given calibration cache for ``int8`` (a cache is required: this
backend does not run calibration); for ``dlaN``: ``config.default_device_type = DeviceType.DLA``,
``config.DLA_core = N`` and ``BuilderFlag.GPU_FALLBACK`` unless ``gpu_fallback=False``. DLAs run
FP16/INT8 only, so ``fp32`` on a DLA is a :class:`ConfigError`. Before building, every network
layer is asked ``config.can_run_on_DLA(layer)``; those that cannot are the GPU-fallback layers,
reported in ``executor.info['gpu_fallback_layers']`` (and stored in the cache sidecar so a cached
engine reports them too). The engine is built with ``ProfilingVerbosity.DETAILED`` where
available, and ``executor.info['engine_layers']`` lists the engine inspector's layers.

A model is an ONNX file, or an in-memory ``onnx.ModelProto`` / its bytes (the profiler's
layer networks), which is written to ``<cache_dir>/onnx/inline-<sha256>.onnx`` first.

Parameters named as in Isaac ROS ``dnn_inference``: ``model_file_path``, ``engine_file_path``
(an explicit engine location; its sidecar is checked like a cache entry), ``dla_core`` (-1 = GPU;
:func:`processor_for_dla_core`), ``enable_fp16`` and ``force_engine_update``.

Execution: one worker thread per processor (see :mod:`hetero_infer.backends.base`) makes the
device's primary CUDA context current (``retain_primary_context().push()``) and does all TensorRT
and pycuda work for that processor, so contexts never cross threads. Each engine owns one
``cuda.Stream``, page-locked host buffers (``cuda.pagelocked_empty``) and device buffers
(``cuda.mem_alloc``); a request is ``memcpy_htod_async`` -> execute -> ``memcpy_dtoh_async`` ->
``stream.synchronize()``. The execute call is ``set_tensor_address`` + ``execute_async_v3`` where
the context has it (TensorRT 8.5, 8.6, 10.x), else ``execute_async_v2(bindings)`` (8.x); on 8.5/8.6
``api='v2'`` forces the older call. Static input shapes only (as DLA requires).

``tensorrt`` and ``pycuda`` are imported only when this backend is created.
"""

import os
import re
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from hetero_infer.backends.base import Backend, Executor, LoadRequest, ProcessorWorker, TensorSpec
from hetero_infer.backends.engine_cache import (
    EngineCache,
    EngineKey,
    bytes_sha256,
    file_sha256,
    get_or_build,
)
from hetero_infer.errors import BackendError, ConfigError, ModelError

_DLA_RE = re.compile(r'^dla(\d+)$')


def processor_for_dla_core(dla_core: int) -> str:
    """Isaac ROS ``dla_core`` (-1 = GPU) -> processor id (``'gpu'``, ``'dla0'``, ...).

    :raises ConfigError: ``dla_core`` below -1.
    """
    dla_core = int(dla_core)
    if dla_core < -1:
        raise ConfigError('dla_core=%d: use -1 for the GPU or a DLA core index >= 0' % dla_core)
    return 'gpu' if dla_core == -1 else 'dla%d' % dla_core


def dla_core_of(processor: str) -> int:
    """Processor id -> Isaac ROS ``dla_core`` (-1 for ``gpu``).

    :raises ConfigError: not ``gpu`` or ``dlaN``.
    """
    if processor == 'gpu':
        return -1
    m = _DLA_RE.match(processor)
    if not m:
        raise ConfigError('processor %r: TensorRT processors are gpu, dla0, dla1, ...' % processor)
    return int(m.group(1))


def resolve_precision(precision: Optional[str], enable_fp16: Optional[bool]) -> str:
    """``precision`` wins; else ``enable_fp16`` (default True) picks fp16 or fp32."""
    if precision is not None:
        p = str(precision).lower()
        if p not in ('fp32', 'fp16', 'int8'):
            raise ConfigError('precision=%r: choose fp32, fp16 or int8' % precision)
        return p
    return 'fp16' if enable_fp16 is None or enable_fp16 else 'fp32'


def _trt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendError('the tensorrt backend needs the tensorrt Python package '
                           '(JetPack, or pip install tensorrt): %s' % exc) from None
    return trt


def _cuda():
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise BackendError('the tensorrt backend needs pycuda (pip install pycuda): %s'
                           % exc) from None
    return cuda


def trt_major(trt: Any) -> int:
    return int(str(trt.__version__).split('.')[0])


class TensorRTExecutor(Executor):
    """One deserialized engine, its execution context, stream and buffers."""

    def __init__(self, *, engine: Any, trt: Any, cuda: Any, api: str, **kwargs: Any) -> None:
        self._trt = trt
        self._cuda = cuda
        self.engine = engine
        self.context = engine.create_execution_context()
        if self.context is None:
            raise BackendError('%s: cannot create an execution context (out of device memory?)'
                               % kwargs.get('model_path'))
        self.stream = cuda.Stream()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        ins, outs = [], []
        self._host: Dict[str, np.ndarray] = {}
        self._dev: Dict[str, Any] = {}
        for name in names:
            shape = tuple(int(d) for d in engine.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise ModelError('%s: tensor %r has dynamic shape %s; build the ONNX model with '
                                 'static shapes' % (kwargs.get('model_path'), name, shape))
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            spec = TensorSpec(name, shape, dtype.type)
            (ins if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outs).append(spec)
            self._host[name] = cuda.pagelocked_empty(shape, dtype)
            self._dev[name] = cuda.mem_alloc(max(1, self._host[name].nbytes))
        super().__init__(inputs=ins, outputs=outs, **kwargs)
        has_v3 = hasattr(self.context, 'execute_async_v3')
        has_v2 = hasattr(self.context, 'execute_async_v2')
        if api == 'auto':
            api = 'v3' if has_v3 else 'v2'
        if (api == 'v3' and not has_v3) or (api == 'v2' and not has_v2):
            raise BackendError('TensorRT %s has no execute_async_%s' % (trt.__version__, api))
        self.api = api
        if api == 'v3':
            for name in names:
                self.context.set_tensor_address(name, int(self._dev[name]))
        else:
            order = sorted(names, key=self._binding_index)
            self._bindings = [int(self._dev[n]) for n in order]
        self.info['execute_api'] = 'execute_async_' + api

    def _binding_index(self, name: str) -> int:
        get = getattr(self.engine, 'get_binding_index', None)
        if get is None:  # no binding API: I/O tensor order is binding order
            return [self.engine.get_tensor_name(i)
                    for i in range(self.engine.num_io_tensors)].index(name)
        return int(get(name))

    def _execute(self, inputs: Dict[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], Dict]:
        cuda, stream = self._cuda, self.stream
        for t in self.inputs:
            np.copyto(self._host[t.name], inputs[t.name], casting='same_kind')
            cuda.memcpy_htod_async(self._dev[t.name], self._host[t.name], stream)
        if self.api == 'v3':
            ok = self.context.execute_async_v3(stream.handle)
        else:
            ok = self.context.execute_async_v2(self._bindings, stream.handle)
        if ok is False:
            raise BackendError('%s on %s: TensorRT execution failed'
                               % (self.model_path, self.processor))
        for t in self.outputs:
            cuda.memcpy_dtoh_async(self._host[t.name], self._dev[t.name], stream)
        stream.synchronize()
        return {t.name: self._host[t.name].copy() for t in self.outputs}, {}

    def _release(self) -> None:
        for buf in self._dev.values():
            buf.free()
        self._dev.clear()
        self._host.clear()
        self.context = None
        self.engine = None
        self.stream = None


class TensorRTBackend(Backend):
    """TensorRT on ``gpu`` and ``dlaN``.

    :param cache_dir: engine cache directory (default
        :func:`~hetero_infer.backends.engine_cache.default_cache_dir`).
    :param device_id: CUDA device for ``gpu`` (and the DLAs' GPU fallback).
    :param workspace_mb: builder workspace limit (0: TensorRT's default).
    :param api: ``'auto'``, ``'v3'`` or ``'v2'`` execute call.
    """

    name = 'tensorrt'

    def __init__(self, *, cache_dir: Optional[str] = None, device_id: int = 0,
                 workspace_mb: int = 0, api: str = 'auto') -> None:
        super().__init__()
        if api not in ('auto', 'v2', 'v3'):
            raise ConfigError('api=%r: choose auto, v2 or v3' % api)
        self.trt = _trt()
        self.cuda = _cuda()
        self.cuda.init()
        if self.cuda.Device.count() <= device_id:
            raise BackendError('no CUDA device %d (found %d)'
                               % (device_id, self.cuda.Device.count()))
        self.device_id = int(device_id)
        self.device_name = self.cuda.Device(self.device_id).name()
        self.cache = EngineCache(cache_dir)
        self.workspace_mb = int(workspace_mb)
        self.api = api
        self.logger = self.trt.Logger(self.trt.Logger.WARNING)
        self._ctx: Dict[str, Any] = {}
        self._num_dla: Optional[int] = None
        self._runtimes: List[Any] = []

    @property
    def version(self) -> str:
        return str(self.trt.__version__)

    def library_versions(self) -> Dict[str, str]:
        return {'tensorrt': self.version}

    @property
    def num_dla_cores(self) -> int:
        return len(self.processor_ids) - 1

    def _provided(self) -> Tuple[str, ...]:
        if self._num_dla is None:
            self._num_dla = int(_with_context(self.cuda, self.device_id,
                                              lambda: self.trt.Builder(self.logger).num_DLA_cores))
        return ('gpu',) + tuple('dla%d' % i for i in range(self._num_dla))

    def check_processor(self, processor: str) -> None:
        if processor != 'gpu' and not _DLA_RE.match(str(processor)):
            super().check_processor(processor)  # lists what this backend provides
        core = dla_core_of(processor)
        if core >= 0 and processor not in self.processor_ids:
            raise BackendError('processor %r needs DLA core %d, but this machine has %d DLA '
                               'cores (builder.num_DLA_cores on %s); use gpu'
                               % (processor, core, self._num_dla, self.device_name))

    def _worker_setup(self, processor: str) -> None:
        ctx = self.cuda.Device(self.device_id).retain_primary_context()
        ctx.push()
        self._ctx[processor] = ctx

    def _worker_teardown(self, processor: str) -> None:
        ctx = self._ctx.pop(processor, None)
        if ctx is not None:
            self.cuda.Context.pop()
            ctx.detach()

    # -- building -------------------------------------------------------------------------------
    def engine_key(self, model_path: str, processor: str, precision: str, *,
                   gpu_fallback: bool = True,
                   calibration_cache: Optional[str] = None) -> EngineKey:
        calib = file_sha256(calibration_cache) if calibration_cache else ''
        return EngineKey(model_sha256=file_sha256(model_path), processor=processor,
                         precision=precision, trt_version=self.version,
                         gpu_fallback=bool(gpu_fallback) and processor != 'gpu',
                         calibration_sha256=calib, workspace_mb=self.workspace_mb,
                         device_name=self.device_name)

    def build_engine(self, model_path: str, processor: str, precision: str, *,
                     gpu_fallback: bool = True,
                     calibration_cache: Optional[str] = None) -> Tuple[bytes, Dict[str, Any]]:
        """Build a serialized engine (call on the processor's worker thread).

        :returns: ``(engine bytes, info)`` with ``gpu_fallback_layers`` and ``network_layers``.
        """
        trt = self.trt
        core = dla_core_of(processor)
        builder = trt.Builder(self.logger)
        flags = 0
        if trt_major(trt) < 10:
            flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self.logger)
        with open(model_path, 'rb') as f:
            data = f.read()
        if not parser.parse(data):
            errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelError('TensorRT cannot parse ONNX model %s: %s' % (model_path, errors))
        config = builder.create_builder_config()
        if self.workspace_mb > 0:
            if hasattr(config, 'set_memory_pool_limit'):
                config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE,
                                             self.workspace_mb << 20)
            else:
                config.max_workspace_size = self.workspace_mb << 20
        if hasattr(trt, 'ProfilingVerbosity'):
            config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
        if precision == 'fp16':
            config.set_flag(trt.BuilderFlag.FP16)
        elif precision == 'int8':
            if not calibration_cache:
                raise ConfigError('precision int8 for %s needs a calibration cache '
                                  '(calibration_cache=...); none given' % model_path)
            config.set_flag(trt.BuilderFlag.INT8)
            config.set_flag(trt.BuilderFlag.FP16)  # layers without INT8 kernels stay FP16
            config.int8_calibrator = _cache_calibrator(trt, calibration_cache)
        fallback: List[str] = []
        if core >= 0:
            if precision == 'fp32':
                raise ConfigError('processor %s: DLA runs FP16 or INT8 only; precision fp32 '
                                  'requested (set enable_fp16 true)' % processor)
            config.default_device_type = trt.DeviceType.DLA
            config.DLA_core = core
            if gpu_fallback:
                config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
            for i in range(network.num_layers):
                layer = network.get_layer(i)
                if not config.can_run_on_DLA(layer):
                    fallback.append(layer.name)
            if fallback and not gpu_fallback:
                raise BackendError('%s: %d layers cannot run on %s and gpu_fallback is off: %s'
                                   % (model_path, len(fallback), processor,
                                      ', '.join(fallback[:10])))
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendError('TensorRT failed to build %s for %s (%s); see the TensorRT log'
                               % (model_path, processor, precision))
        return bytes(serialized), {'gpu_fallback_layers': fallback,
                                   'network_layers': int(network.num_layers),
                                   'trt_version': self.version, 'precision': precision}

    def _deserialize(self, processor: str, data: bytes) -> Any:
        runtime = self.trt.Runtime(self.logger)
        core = dla_core_of(processor)
        if core >= 0:
            runtime.DLA_core = core
        engine = runtime.deserialize_cuda_engine(data)
        if engine is not None:
            self._runtimes.append(runtime)  # a runtime must outlive its engines
        return engine

    # -- loading --------------------------------------------------------------------------------
    def _load(self, request: LoadRequest, worker: ProcessorWorker) -> Executor:
        options = dict(request.options)
        gpu_fallback = bool(options.pop('gpu_fallback', True))
        calibration_cache = options.pop('calibration_cache', None)
        if options:
            raise ConfigError('tensorrt backend: unknown load options %s' % sorted(options))
        processor = request.processor
        model_path = self._model_file(request.source)
        engine_file_path = request.engine_file or None
        force_engine_update = request.rebuild
        prec = resolve_precision(request.precision or None, None)
        if dla_core_of(processor) >= 0 and prec == 'fp32':
            raise ConfigError('processor %s: DLA runs FP16 or INT8 only; precision fp32 '
                              'requested (set enable_fp16 true)' % processor)
        key = self.engine_key(model_path, processor, prec, gpu_fallback=gpu_fallback,
                              calibration_cache=calibration_cache)
        name = os.path.splitext(os.path.basename(model_path))[0]
        path = engine_file_path or self.cache.path_for(key, name)

        def load_on_worker() -> TensorRTExecutor:
            outcome = get_or_build(
                self.cache, key, path,
                build=lambda: self._build_with_inspection(model_path, processor, prec,
                                                          gpu_fallback, calibration_cache),
                deserialize=lambda data: self._deserialize(processor, data),
                force=force_engine_update)
            info = dict(outcome.info)
            info.update(engine_file_path=outcome.path, cache=outcome.status,
                        cache_reason=outcome.reason, precision=prec,
                        engine_key=key.digest())
            return TensorRTExecutor(engine=outcome.engine, trt=self.trt, cuda=self.cuda,
                                    api=self.api, processor=processor, model_path=model_path,
                                    worker=worker, info=info)

        return worker.call(load_on_worker)

    def _model_file(self, source: Any) -> str:
        """The ONNX file of ``source``: a path as it is; an in-memory model (``onnx.ModelProto``
        or its bytes, what the profiler's layer networks are) written once to ``onnx/`` in the
        engine cache, named by its content, since TensorRT's cache key and parser read a file.

        :raises ModelError: ``source`` is none of these.
        """
        if hasattr(source, 'SerializeToString'):
            source = source.SerializeToString()
        if not isinstance(source, (bytes, bytearray)):
            try:
                return os.fspath(source)
            except TypeError:
                raise ModelError('model must be a path, bytes or onnx.ModelProto, got %r'
                                 % (source,)) from None
        data = bytes(source)
        folder = os.path.join(self.cache.cache_dir, 'onnx')
        path = os.path.join(folder, 'inline-%s.onnx' % bytes_sha256(data)[:20])
        if not os.path.isfile(path):
            os.makedirs(folder, exist_ok=True)
            tmp = '%s.tmp-%d' % (path, os.getpid())
            with open(tmp, 'wb') as f:
                f.write(data)
            os.replace(tmp, path)  # whole or not at all: a half file would mis-key the cache
        return path

    def _build_with_inspection(self, model_path: str, processor: str, precision: str,
                               gpu_fallback: bool, calibration_cache: Optional[str]
                               ) -> Tuple[bytes, Dict[str, Any]]:
        data, info = self.build_engine(model_path, processor, precision,
                                       gpu_fallback=gpu_fallback,
                                       calibration_cache=calibration_cache)
        info['engine_layers'] = self._inspect(processor, data)
        info['engine_sha256'] = bytes_sha256(data)
        return data, info

    def _inspect(self, processor: str, data: bytes) -> List[Dict[str, str]]:
        """Layers of a built engine per the engine inspector: name and where it runs."""
        import json
        trt = self.trt
        engine = self._deserialize(processor, data)
        if engine is None or not hasattr(engine, 'create_engine_inspector'):
            return []
        inspector = engine.create_engine_inspector()
        try:
            doc = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
        except (ValueError, TypeError):
            return []
        layers = []
        for entry in doc.get('Layers', []):
            if isinstance(entry, str):
                layers.append({'name': entry,
                               'device': 'dla' if 'ForeignNode' in entry else 'gpu'})
            else:
                name = str(entry.get('Name', ''))
                ltype = str(entry.get('LayerType', ''))
                dla = 'ForeignNode' in name or 'DLA' in ltype.upper()
                layers.append({'name': name, 'type': ltype, 'device': 'dla' if dla else 'gpu'})
        return layers


def _cache_calibrator(trt: Any, path: str) -> Any:
    """An INT8 calibrator that only serves an existing calibration cache."""
    with open(path, 'rb') as f:
        cache = f.read()

    class _CacheCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: Any, *args: Any) -> Any:
            return None  # no data: the cache must cover every tensor

        def read_calibration_cache(self, *args: Any) -> bytes:
            return cache

        def write_calibration_cache(self, data: Any, *args: Any) -> None:
            return None

    return _CacheCalibrator()


def _with_context(cuda: Any, device_id: int, fn: Any) -> Any:
    """Run ``fn`` with the device's primary context current on this thread."""
    ctx = cuda.Device(device_id).retain_primary_context()
    ctx.push()
    try:
        return fn()
    finally:
        cuda.Context.pop()
        ctx.detach()
