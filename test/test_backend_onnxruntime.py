"""onnxruntime backend: correct outputs, pinning, one inference at a time, registry errors."""

import os
import threading

import numpy as np
import pytest

from hetero_infer.backends import (
    Backend,
    BackgroundLoop,
    backend_names,
    create_backend,
    register_backend,
)
from hetero_infer.backends.onnxruntime_backend import available_cores, default_core_sets
from hetero_infer.errors import BackendError, ConfigError, ModelError
from hetero_infer.models.zoo import Layer

onnx = pytest.importorskip('onnx')
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _tiny_cnn(seed=0):
    """conv(3->4, 3x3, pad 1) + relu + flatten + gemm(4*6*6 -> 5), and its weights."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    fw = rng.standard_normal((5, 4 * 6 * 6)).astype(np.float32) * 0.1
    fb = rng.standard_normal(5).astype(np.float32)
    nodes = [helper.make_node('Conv', ['x', 'w', 'b'], ['c'], pads=[1, 1, 1, 1],
                              kernel_shape=[3, 3]),
             helper.make_node('Relu', ['c'], ['r']),
             helper.make_node('Flatten', ['r'], ['f'], axis=1),
             helper.make_node('Gemm', ['f', 'fw', 'fb'], ['logits'], transB=1)]
    graph = helper.make_graph(
        nodes, 'tiny_cnn',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 3, 6, 6])],
        [helper.make_tensor_value_info('logits', TensorProto.FLOAT, [1, 5])],
        initializer=[numpy_helper.from_array(a, n) for a, n in
                     ((w, 'w'), (b, 'b'), (fw, 'fw'), (fb, 'fb'))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    return model, (w, b, fw, fb)


def _numpy_reference(x, w, b, fw, fb):
    n, c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, w.shape[0], h, wd), dtype=np.float64)
    for i in range(h):
        for j in range(wd):
            patch = xp[:, :, i:i + 3, j:j + 3]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    out += b[None, :, None, None]
    out = np.maximum(out, 0.0)
    return out.reshape(n, -1) @ fw.T + fb


@pytest.fixture
def tiny_path(tmp_path):
    model, weights = _tiny_cnn()
    path = str(tmp_path / 'tiny_cnn.onnx')
    onnx.save(model, path)
    return path, weights


@pytest.fixture
def backend():
    be = create_backend('onnxruntime', core_sets={'cpu0': available_cores()[:1]})
    yield be
    be.close()


def test_outputs_match_numpy_reference(tiny_path, backend):
    path, weights = tiny_path
    ex = backend.load(path, 'cpu0')
    assert [t.name for t in ex.inputs] == ['x'] and ex.inputs[0].shape == (1, 3, 6, 6)
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
        res = ex.run({'x': x})
        np.testing.assert_allclose(res.outputs['logits'], _numpy_reference(x, *weights),
                                   rtol=1e-4, atol=1e-4)
        assert res.processor == 'cpu0' and res.queue_ms >= 0 and res.execute_ms > 0


def test_in_memory_model_and_bad_inputs(backend):
    model, weights = _tiny_cnn(seed=3)
    ex = backend.load(model, 'cpu0')
    x = np.ones((1, 3, 6, 6), np.float32)
    np.testing.assert_allclose(ex.run({'x': x}).outputs['logits'],
                               _numpy_reference(x, *weights), rtol=1e-4, atol=1e-4)
    with pytest.raises(ModelError, match="'x'"):
        ex.run({'x': np.ones((1, 3, 5, 5), np.float32)})
    with pytest.raises(ModelError, match='expected'):
        ex.run({'y': x})
    ex.close()
    with pytest.raises(BackendError, match='closed'):
        ex.run({'x': x})


def test_bad_model_files_name_the_file(tmp_path, backend):
    missing = str(tmp_path / 'nope.onnx')
    with pytest.raises(ModelError, match='nope.onnx'):
        backend.load(missing, 'cpu0')
    garbage = tmp_path / 'garbage.onnx'
    garbage.write_bytes(b'\x00not a protobuf\xff' * 10)
    with pytest.raises(ModelError, match='garbage.onnx'):
        backend.load(str(garbage), 'cpu0')
    # the processor keeps working after a failed load
    model, _ = _tiny_cnn()
    assert backend.load(model, 'cpu0').run({'x': np.zeros((1, 3, 6, 6), np.float32)})


def test_unknown_processor_lists_known(backend):
    with pytest.raises(BackendError, match=r"'cpu9'.*cpu0"):
        backend.load(_tiny_cnn()[0], 'cpu9')


def test_one_inference_at_a_time_per_processor(backend):
    """Many threads submitting to one processor never overlap (start/end intervals disjoint)."""
    ex = backend.load(_tiny_cnn()[0], 'cpu0')
    feed = ex.random_inputs(seed=2)
    results, lock = [], threading.Lock()

    def client():
        for _ in range(10):
            r = ex.run(feed)
            with lock:
                results.append(r)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 40
    spans = sorted((r.start_s, r.end_s) for r in results)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end
    first = results[0].outputs['logits']
    assert all(np.array_equal(r.outputs['logits'], first) for r in results)


@pytest.mark.skipif(not hasattr(os, 'sched_getaffinity'), reason='no sched_getaffinity')
def test_worker_thread_pinned_to_core_set():
    cores = sorted(os.sched_getaffinity(0))
    with create_backend('onnxruntime', core_sets=[[cores[-1]]]) as be:
        ex = be.load(_tiny_cnn()[0], 'cpu0')
        seen = be.worker('cpu0').call(lambda: sorted(os.sched_getaffinity(0)))
        assert seen == [cores[-1]]
        assert ex.info['intra_op_num_threads'] == 1 and ex.info['pinned'] is True
    assert sorted(os.sched_getaffinity(0)) == cores  # the caller's thread is untouched


def test_default_core_sets_split():
    sets = default_core_sets(2, cores=[0, 1, 2, 3, 4])
    assert sets == {'cpu0': (0, 1, 2), 'cpu1': (3, 4)}
    assert default_core_sets(cores=[4, 7]) == {'cpu0': (4,), 'cpu1': (7,)}
    with pytest.raises(ConfigError, match='num_processors=3'):
        default_core_sets(3, cores=[0, 1])
    with pytest.raises(ConfigError, match='no such cores'):
        create_backend('onnxruntime', core_sets={'cpu0': [100000]})


def test_background_loop_and_single_layer_models():
    from hetero_infer.backends.onnx_layers import layer_to_onnx
    conv = Layer(name='c', kind='conv', in_shape=(1, 8, 16, 16), out_shape=(1, 8, 16, 16),
                 macs=0, weight_bytes=0, in_bytes=0, out_bytes=0, kernel=(3, 3),
                 stride=(1, 1), padding=(1, 1), op='conv+relu')
    add = Layer(name='a', kind='eltwise', in_shape=(1, 8, 16, 16), out_shape=(1, 8, 16, 16),
                macs=0, weight_bytes=0, in_bytes=0, out_bytes=0, op='add')
    cores = available_cores()
    with create_backend('onnxruntime', core_sets=[[cores[0]], [cores[-1]]]) as be:
        target = be.load(layer_to_onnx(conv), 'cpu0')
        other = be.load(layer_to_onnx(add, seed=1), 'cpu1')
        feed = other.random_inputs(seed=4)
        out = other.run(feed).outputs['output']
        np.testing.assert_allclose(out, feed['input'] + feed['input2'], rtol=1e-6)
        with BackgroundLoop(other, feed) as loop:
            for _ in range(5):
                assert target.run(target.random_inputs()).outputs['output'].min() >= 0.0
        assert loop.iterations >= 1 and loop.mean_execute_ms > 0


def test_registry_refuses_duplicates_and_names_known():
    assert {'onnxruntime', 'tensorrt', 'emulated'} <= set(backend_names())
    with pytest.raises(ConfigError, match='already registered'):
        register_backend('onnxruntime', Backend)
    with pytest.raises(ConfigError, match=r"'nosuch'.*emulated.*onnxruntime"):
        create_backend('nosuch')


def test_background_loop_cycles_layers_on_one_processor():
    from hetero_infer.backends.onnx_layers import layer_to_onnx
    act = Layer(name='s', kind='act', in_shape=(1, 4, 8, 8), out_shape=(1, 4, 8, 8),
                macs=0, weight_bytes=0, in_bytes=0, out_bytes=0, op='sigmoid')
    pool = Layer(name='p', kind='pool', in_shape=(1, 4, 8, 8), out_shape=(1, 4, 4, 4),
                 macs=0, weight_bytes=0, in_bytes=0, out_bytes=0, kernel=(2, 2), stride=(2, 2),
                 op='max')
    cores = available_cores()
    with create_backend('onnxruntime', core_sets=[[cores[0]], [cores[-1]]]) as be:
        a, b = be.load(layer_to_onnx(act), 'cpu1'), be.load(layer_to_onnx(pool), 'cpu1')
        with BackgroundLoop([a, b]) as loop:
            target = be.load(layer_to_onnx(pool), 'cpu0')
            target.run(target.random_inputs())
        assert loop.iterations >= 1
        with pytest.raises(ConfigError, match='one processor'):
            BackgroundLoop([a, target])
