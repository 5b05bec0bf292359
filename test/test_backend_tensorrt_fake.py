"""TensorRT backend orchestration against an in-process fake of the tensorrt / pycuda APIs.

The real library is tested by test_backend_tensorrt.py (where a GPU is present) and by
tools/device_check.sh. This file runs everywhere and checks the backend's own logic through the
same API calls FACTS.md lists: build flags and DLA configuration, GPU-fallback reporting via
``config.can_run_on_DLA``, the engine cache (hit, corrupt file rebuilt and never deserialized,
``force_engine_update``), the v2 and v3 execute paths, page-locked/device buffer copies, and the
clear errors for DLA requests on a machine without DLA cores and for FP32 on a DLA.
"""

import enum
import itertools
import sys
import types

import numpy as np
import pytest

from hetero_infer.errors import BackendError, ConfigError, ModelError

MAGIC = b'FAKE-ENGINE:'


def _fake_modules(num_dla, version='8.6.1', has_v2=True):
    trt = types.ModuleType('tensorrt')
    trt.__version__ = version
    trt.log = []

    class Logger:
        WARNING = 2

        def __init__(self, level):
            self.level = level

    class DeviceType(enum.Enum):
        GPU = 0
        DLA = 1

    class BuilderFlag(enum.Enum):
        FP16 = 0
        INT8 = 1
        GPU_FALLBACK = 2

    class TensorIOMode(enum.Enum):
        INPUT = 0
        OUTPUT = 1

    class Flag(enum.IntEnum):
        EXPLICIT_BATCH = 0

    class Layer:
        def __init__(self, name):
            self.name = name

    class Network:
        def __init__(self):
            self.layers = []

        @property
        def num_layers(self):
            return len(self.layers)

        def get_layer(self, i):
            return self.layers[i]

    class Parser:
        def __init__(self, network, logger):
            self.network = network
            self.errors = []

        def parse(self, data):
            if not data.startswith(b'ONNX:'):
                self.errors = ['ModelImporter: not an ONNX model']
                return False
            self.network.layers = [Layer(n) for n in data[5:].decode().split(',')]
            return True

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, i):
            return self.errors[i]

    class Config:
        def __init__(self):
            self.flags = set()
            self.default_device_type = DeviceType.GPU
            self.DLA_core = -1

        def set_flag(self, flag):
            self.flags.add(flag)

        def set_memory_pool_limit(self, pool, size):
            self.pool = size

        def can_run_on_DLA(self, layer):
            return not layer.name.startswith('softmax')

    class Builder:
        def __init__(self, logger):
            self.num_DLA_cores = num_dla

        def create_network(self, flags):
            trt.log.append(('create_network', flags))
            return Network()

        def create_builder_config(self):
            return Config()

        def build_serialized_network(self, network, config):
            trt.log.append(('build', sorted(f.name for f in config.flags),
                            config.default_device_type.name, config.DLA_core))
            return MAGIC + ('%s|%d' % (config.default_device_type.name,
                                       config.DLA_core)).encode()

    class Engine:
        names = ('input', 'output')
        num_io_tensors = 2

        def get_tensor_name(self, i):
            return self.names[i]

        def get_tensor_shape(self, name):
            return (1, 4)

        def get_tensor_dtype(self, name):
            return 'float'

        def get_tensor_mode(self, name):
            return TensorIOMode.INPUT if name == 'input' else TensorIOMode.OUTPUT

        def get_binding_index(self, name):
            return self.names.index(name)

        def create_execution_context(self):
            return Context()

    class Context:
        def __init__(self):
            self.addresses = {}

        def set_tensor_address(self, name, ptr):
            self.addresses[name] = ptr

        def execute_async_v3(self, stream):
            trt.log.append('v3')
            cuda.memory[self.addresses['output']][:] = 2 * cuda.memory[self.addresses['input']]
            return True

        def _v2(self, bindings, stream):
            trt.log.append('v2')
            cuda.memory[bindings[1]][:] = 2 * cuda.memory[bindings[0]]
            return True

    if has_v2:
        Context.execute_async_v2 = Context._v2

    class Runtime:
        def __init__(self, logger):
            self.DLA_core = -1

        def deserialize_cuda_engine(self, data):
            trt.log.append(('deserialize', bytes(data[:12])))
            return Engine() if bytes(data).startswith(MAGIC) else None

    trt.Logger, trt.DeviceType, trt.BuilderFlag = Logger, DeviceType, BuilderFlag
    trt.TensorIOMode, trt.NetworkDefinitionCreationFlag = TensorIOMode, Flag
    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, Parser, Runtime
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE=0)
    trt.nptype = lambda dtype: np.float32

    cuda = types.ModuleType('pycuda.driver')
    cuda.memory = {}
    counter = itertools.count(4096, 4096)

    class Alloc:
        def __init__(self, nbytes):
            self.ptr = next(counter)
            cuda.memory[self.ptr] = np.zeros(nbytes // 4, np.float32)

        def __int__(self):
            return self.ptr

        def free(self):
            cuda.memory.pop(self.ptr, None)

    class Ctx:
        @staticmethod
        def pop():
            pass

        def push(self):
            pass

        def detach(self):
            pass

    class Device:
        def __init__(self, i):
            self.i = i

        @staticmethod
        def count():
            return 1

        def name(self):
            return 'Fake GPU'

        def retain_primary_context(self):
            return Ctx()

    class Stream:
        handle = 1

        def synchronize(self):
            pass

    cuda.init = lambda: None
    cuda.Device, cuda.Context, cuda.Stream = Device, Ctx, Stream
    cuda.mem_alloc = Alloc
    cuda.pagelocked_empty = lambda shape, dtype: np.empty(shape, dtype)
    cuda.memcpy_htod_async = lambda dev, host, stream: cuda.memory[int(dev)].__setitem__(
        slice(None), host.reshape(-1))
    cuda.memcpy_dtoh_async = lambda host, dev, stream: host.reshape(-1).__setitem__(
        slice(None), cuda.memory[int(dev)])
    pycuda = types.ModuleType('pycuda')
    pycuda.driver = cuda
    return trt, pycuda, cuda


@pytest.fixture
def fake(monkeypatch, request):
    num_dla, version, has_v2 = getattr(request, 'param', (2, '8.6.1', True))
    trt, pycuda, cuda = _fake_modules(num_dla, version, has_v2)
    monkeypatch.setitem(sys.modules, 'tensorrt', trt)
    monkeypatch.setitem(sys.modules, 'pycuda', pycuda)
    monkeypatch.setitem(sys.modules, 'pycuda.driver', cuda)
    return trt


@pytest.fixture
def model(tmp_path):
    p = tmp_path / 'net.onnx'
    p.write_bytes(b'ONNX:conv1,relu1,fc1,softmax1')
    return str(p)


def _backend(tmp_path, **kw):
    from hetero_infer.backends import create_backend
    return create_backend('tensorrt', cache_dir=str(tmp_path / 'cache'), **kw)


def test_gpu_build_run_and_cache(fake, model, tmp_path):
    with _backend(tmp_path) as be:
        assert be.processor_ids == ('gpu', 'dla0', 'dla1')
        ex = be.load(model, 'gpu')
        assert ex.info['cache'] == 'built' and ex.info['precision'] == 'fp16'
        assert ('build', ['FP16'], 'GPU', -1) in fake.log
        assert ('create_network', 1) in fake.log  # EXPLICIT_BATCH on TensorRT 8
        x = np.arange(4, dtype=np.float32).reshape(1, 4)
        r = ex.run({'input': x})
        assert ex.info['execute_api'] == 'execute_async_v3' and fake.log[-1] == 'v3'
        # the executor's host buffers are reused per inference: a result must own its outputs
        # (a view of the pinned buffer would change under the next request)
        first = r.outputs['output']
        second = ex.run({'input': -x}).outputs['output']
        np.testing.assert_array_equal(first, 2 * x)
        np.testing.assert_array_equal(second, -2 * x)
        assert not np.shares_memory(first, second)
        assert be.load(model, 'gpu').info['cache'] == 'hit'
        assert be.load(model, 'gpu', enable_fp16=False).info['cache'] == 'built'  # new key
        assert be.load(model, 'gpu', force_engine_update=True).info['cache_reason'] == \
            'force_engine_update'


def test_dla_build_reports_gpu_fallback(fake, model, tmp_path):
    with _backend(tmp_path) as be:
        ex = be.load(model, 'dla1')
        assert ('build', ['FP16', 'GPU_FALLBACK'], 'DLA', 1) in fake.log
        assert ex.info['gpu_fallback_layers'] == ['softmax1']
        again = be.load(model, 'dla1')
        assert again.info['cache'] == 'hit' and again.info['gpu_fallback_layers'] == ['softmax1']
        with pytest.raises(BackendError, match='gpu_fallback is off'):
            be.load(model, 'dla0', gpu_fallback=False)
        with pytest.raises(ConfigError, match='FP16 or INT8'):
            be.load(model, 'dla0', enable_fp16=False)
        with pytest.raises(ConfigError, match='calibration cache'):
            be.load(model, 'gpu', precision='int8')


def test_corrupt_engine_rebuilt_never_deserialized(fake, model, tmp_path):
    with _backend(tmp_path) as be:
        path = be.load(model, 'gpu').info['engine_file_path']
        data = open(path, 'rb').read()
        open(path, 'wb').write(b'XXXX' + data[4:])
        fake.log.clear()
        ex = be.load(model, 'gpu')
        assert ex.info['cache'] == 'built' and ex.info['cache_reason'].startswith('corrupt')
        assert ('deserialize', b'XXXX' + data[4:12]) not in fake.log
        np.testing.assert_array_equal(ex.run({'input': np.ones((1, 4), np.float32)})
                                      .outputs['output'], 2 * np.ones((1, 4)))


@pytest.mark.parametrize('fake', [(0, '10.3.0', False)], indirect=True)
def test_trt10_v3_only_and_no_dla(fake, model, tmp_path):
    with _backend(tmp_path) as be:
        assert be.processor_ids == ('gpu',)
        with pytest.raises(BackendError, match=r"'dla0' needs DLA core 0.*0 DLA cores"):
            be.load(model, 'dla0')
        with pytest.raises(BackendError, match="'cpu0'"):
            be.load(model, 'cpu0')
        ex = be.load(model, 'gpu')
        assert ('create_network', 0) in fake.log
        assert ex.run({'input': np.ones((1, 4), np.float32)}).outputs['output'].sum() == 8
    with _backend(tmp_path, api='v2') as be:
        with pytest.raises(BackendError, match='no execute_async_v2'):
            be.load(model, 'gpu')


def test_v2_bindings_path(fake, model, tmp_path):
    with _backend(tmp_path, api='v2') as be:
        ex = be.load(model, 'gpu')
        assert ex.info['execute_api'] == 'execute_async_v2'
        x = np.full((1, 4), 3, np.float32)
        np.testing.assert_array_equal(ex.run({'input': x}).outputs['output'], 2 * x)
        assert fake.log[-1] == 'v2'


def test_bad_model_files(fake, tmp_path):
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'garbage')
    with _backend(tmp_path) as be:
        with pytest.raises(ModelError, match='bad.onnx.*not an ONNX model'):
            be.load(str(bad), 'gpu')
        with pytest.raises(ModelError, match='missing.onnx'):
            be.load(str(tmp_path / 'missing.onnx'), 'gpu')


def test_the_serving_load_request_reaches_tensorrt(fake, model, tmp_path):
    # The serving core asks every backend the same LoadRequest; TensorRT takes the model file,
    # engine file, precision and rebuild from it.
    from hetero_infer.backends import LoadRequest
    from hetero_infer.serving.apps import load_request
    from hetero_infer.serving.config import build_config
    engine = str(tmp_path / 'mine.engine')
    cfg = build_config({'applications': ['cam'], 'apps.cam.input_topic': 'cam',
                        'apps.cam.model': 'resnet18', 'apps.cam.model_file_path': model,
                        'apps.cam.engine_file_path': engine, 'enable_fp16': False,
                        'backend': 'tensorrt'})
    req = load_request(cfg, cfg.apps[0], 'gpu')
    assert (req.source, req.engine_file, req.precision, req.rebuild) == (
        model, engine, 'fp32', False)
    with _backend(tmp_path) as be:
        ex = be.load(req)
        assert ex.info['engine_file_path'] == engine and ex.info['precision'] == 'fp32'
        assert ('build', [], 'GPU', -1) in fake.log
        assert be.load(req).info['cache'] == 'hit'
        rebuilt = be.load(LoadRequest('resnet18', 'gpu', model_file=model, engine_file=engine,
                                      precision='fp32', rebuild=True))
        assert rebuilt.info['cache_reason'] == 'force_engine_update'
        with pytest.raises(ConfigError, match="unknown load options \\['dla_core'\\]"):
            be.load(LoadRequest(model, 'gpu', options={'dla_core': 1}))


def test_load_request_spellings_and_bad_precision():
    from hetero_infer.backends import LoadRequest
    req = LoadRequest.of('m', 'gpu', onnx_path='m.onnx', engine_file_path='m.engine',
                         enable_fp16=False, force_engine_update=True, gpu_fallback=False)
    assert req == LoadRequest('m', 'gpu', model_file='m.onnx', engine_file='m.engine',
                              precision='fp32', rebuild=True, options={'gpu_fallback': False})
    assert LoadRequest.of('m', 'gpu', enable_fp16=False, precision='int8').precision == 'int8'
    with pytest.raises(ConfigError, match="precision='fp8'"):
        LoadRequest('m', 'gpu', precision='fp8')


def test_backends_report_their_library_versions(fake, tmp_path):
    # what a profile records, asked of the backend rather than decided by its name
    from hetero_infer.backends import create_backend
    with _backend(tmp_path) as be:
        assert be.library_versions() == {'tensorrt': be.version}
    with create_backend('null', platform='xavier') as be:
        assert be.library_versions() == {}
