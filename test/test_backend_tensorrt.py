"""TensorRT backend on a real GPU; skipped where tensorrt, pycuda or a CUDA device is absent."""

import importlib.util

import numpy as np
import pytest

from hetero_infer.backends import create_backend
from hetero_infer.errors import BackendError

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec('tensorrt') is None or importlib.util.find_spec('pycuda') is None,
    reason='tensorrt / pycuda not installed')


def _gpu_backend(tmp_path):
    try:
        return create_backend('tensorrt', cache_dir=str(tmp_path / 'engines'))
    except BackendError as exc:  # tensorrt installed but no usable CUDA device
        pytest.skip('no usable GPU: %s' % exc)


def _model(tmp_path):
    import onnx

    from hetero_infer.backends.onnx_layers import layer_to_onnx
    from hetero_infer.models.zoo import Layer
    conv = Layer(name='c', kind='conv', in_shape=(1, 8, 16, 16), out_shape=(1, 16, 16, 16),
                 macs=0, weight_bytes=0, in_bytes=0, out_bytes=0, kernel=(3, 3),
                 stride=(1, 1), padding=(1, 1), op='conv+relu')
    path = str(tmp_path / 'conv.onnx')
    onnx.save(layer_to_onnx(conv), path)
    return path


def test_gpu_engine_matches_onnxruntime_and_is_cached(tmp_path):
    be = _gpu_backend(tmp_path)
    path = _model(tmp_path)
    try:
        ex = be.load(path, 'gpu', enable_fp16=False)
        assert ex.info['cache'] == 'built'
        feed = ex.random_inputs(seed=1)
        got = ex.run(feed).outputs['output']
        with create_backend('onnxruntime', num_processors=1) as ort_be:
            want = ort_be.load(path, 'cpu0').run(feed).outputs['output']
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
        again = be.load(path, 'gpu', enable_fp16=False)
        assert again.info['cache'] == 'hit'
        forced = be.load(path, 'gpu', enable_fp16=False, force_engine_update=True)
        assert forced.info['cache'] == 'built'
        # corrupt the engine file: it is rebuilt, not run
        with open(again.info['engine_file_path'], 'r+b') as f:
            f.seek(100)
            f.write(b'\x00' * 64)
        rebuilt = be.load(path, 'gpu', enable_fp16=False)
        assert rebuilt.info['cache'] == 'built' and rebuilt.info['cache_reason'].startswith(
            'corrupt')
        np.testing.assert_allclose(rebuilt.run(feed).outputs['output'], want,
                                   rtol=1e-3, atol=1e-3)
    finally:
        be.close()


def test_dla_request_without_dla_is_clear(tmp_path):
    be = _gpu_backend(tmp_path)
    try:
        if be.num_dla_cores > 0:
            pytest.skip('this machine has DLA cores')
        with pytest.raises(BackendError, match='DLA'):
            be.load(_model(tmp_path), 'dla0')
    finally:
        be.close()
