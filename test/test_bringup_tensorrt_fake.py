"""``hetero-infer bringup --backend tensorrt``'s first steps against the fake TensorRT / pycuda
APIs of test_backend_tensorrt_fake.py (the real library is only on a Jetson): the environment
step finds the GPU and both DLA cores, the engines step builds one FP16 engine per model and
processor (DLA cores with GPU fallback, the layers that fall back reported), the isolated
step times the cached engines without building any again (also when the run is resumed), and
the co-run step runs pairs and triples on them. The profile step's layer networks (in-memory
ONNX models) load on TensorRT; the fake runs in microseconds, so the profile itself (layers of
at least 0.1 ms) and what follows it need the real library.
"""

import os

import pytest
from test_backend_tensorrt_fake import _fake_modules

from hetero_infer.bringup import artifacts
from hetero_infer.bringup.runner import run
from hetero_infer.bringup.steps import Settings
from hetero_infer.errors import ModelError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONNX = os.path.join(ROOT, 'hetero_infer', 'data', 'onnx')
MODELS = ('tiny_cnn', 'kws_matchboxnet')
STEPS = ['environment', 'engines', 'isolated', 'fit', 'coruns']


@pytest.fixture
def fake(monkeypatch):
    """The fake TensorRT, its ONNX parser reading real ONNX files (layers named as their nodes:
    the fake's DLA takes every layer but a softmax)."""
    onnx = pytest.importorskip('onnx')
    trt, pycuda, cuda = _fake_modules(2)
    parser_class = trt.OnnxParser

    class Parser(parser_class):
        def parse(self, data):
            graph = onnx.load_from_string(bytes(data)).graph
            return super().parse(b'ONNX:' + ','.join(
                n.name or n.op_type.lower() for n in graph.node).encode())

    trt.OnnxParser = Parser
    for name, module in (('tensorrt', trt), ('pycuda', pycuda), ('pycuda.driver', cuda)):
        monkeypatch.setitem(__import__('sys').modules, name, module)
    return trt


def _builds(trt):
    return [e for e in trt.log if isinstance(e, tuple) and e[0] == 'build']


def _builds_after_engines(trt):
    """Engines built after the engines step's last one (its artifact is written then)."""
    builds = [i for i, e in enumerate(trt.log) if isinstance(e, tuple) and e[0] == 'build']
    return builds[3 * len(MODELS):]


def test_tensorrt_engines_and_isolated_steps_on_the_fake_api(fake, tmp_path):
    out = str(tmp_path / 'bringup')
    settings = Settings(backend='tensorrt', platform='xavier', models=MODELS, repeats=5)
    run(settings, out, log=lambda text: None, only=STEPS)
    assert not _builds_after_engines(fake)
    env = artifacts.read_json(os.path.join(out, 'environment.json'))
    assert env['processors'] == ['gpu', 'dla0', 'dla1']
    assert env['backend_versions'] == {'tensorrt': '8.6.1'}

    engines = artifacts.read_json(os.path.join(out, 'engines.json'))
    assert engines['precision'] == 'fp16'
    rows = {(r['model'], r['processor']): r for r in engines['rows']}
    assert set(rows) == {(m, p) for m in MODELS for p in ('gpu', 'dla0', 'dla1')}
    assert all(r['status'] == 'ok' and r['cache'] == 'built' for r in rows.values()), rows
    # one engine per model and processor, DLA ones on their own core with GPU fallback
    assert sorted(_builds(fake)) == sorted(
        [('build', ['FP16'], 'GPU', -1)] * len(MODELS)
        + [('build', ['FP16', 'GPU_FALLBACK'], 'DLA', core) for core in (0, 1)] * len(MODELS))
    # tiny_cnn's softmax is the layer the (fake) DLA cannot run: reported per DLA engine
    assert rows[('tiny_cnn', 'dla0')]['gpu_fallback_layers'] == ['softmax']
    assert rows[('tiny_cnn', 'dla1')]['gpu_fallback_layers'] == ['softmax']
    assert rows[('tiny_cnn', 'gpu')]['gpu_fallback_layers'] == []
    cached = os.listdir(os.path.join(out, 'engines'))
    assert len([f for f in cached if f.endswith('.engine')]) == 3 * len(MODELS), cached

    iso = artifacts.read_json(os.path.join(out, 'isolated.json'))
    assert iso['clock'] == 'execute_ms' and iso['repeats'] == 5
    assert {(r['model'], r['processor']) for r in iso['rows']} == set(rows)
    for r in iso['rows']:
        assert r['n'] == 5 and r['median_ms'] > 0.0, r
    # the isolated step ran the engines the engines step cached: nothing was built again
    assert len(_builds(fake)) == 3 * len(MODELS)

    # pairs on every ordered processor pair and triples, on the same engines
    coruns = artifacts.read_json(os.path.join(out, 'coruns.json'))
    assert len(coruns['rows']) == 3 * 3 * len(MODELS)
    assert all(r['board_ms'] > 0.0 and r['twin_ms'] > 0.0 for r in coruns['rows'])

    # a resumed run skips them all; a run without its isolated.json redoes only that step,
    # still on the cached engines
    os.unlink(os.path.join(out, 'isolated.json'))
    fake.log.clear()
    run(settings, out, log=lambda text: None, only=STEPS)
    assert _builds(fake) == [] and os.path.exists(os.path.join(out, 'isolated.json'))
    assert artifacts.read_json(os.path.join(out, 'engines.json')) == engines


def test_profiler_layer_networks_load_on_tensorrt(fake, tmp_path):
    """``hetero-infer profile --backend tensorrt`` hands the backend in-memory ONNX models (one
    per random layer); TensorRT reads files, so each is written once under the cache."""
    import numpy as np

    from hetero_infer.backends import create_backend
    from hetero_infer.backends.profiling_targets import ExecutorProfilingTarget
    from hetero_infer.interference.random_layers import random_layers
    layer = random_layers(1, seed=3)[0]
    with create_backend('tensorrt', cache_dir=str(tmp_path / 'cache')) as be:
        target = ExecutorProfilingTarget(be, platform_name='xavier')
        assert target.measure('gpu', layer, {}, repeats=3, seed=0) > 0.0
        from hetero_infer.backends.onnx_layers import layer_to_onnx
        model = layer_to_onnx(layer, seed=7)
        first = be.load(model, 'dla0')
        assert first.info['cache'] == 'built'
        assert be.load(model.SerializeToString(), 'dla0').info['cache'] == 'hit'
        written = os.listdir(str(tmp_path / 'cache' / 'onnx'))
        assert len(written) == 2 and all(f.startswith('inline-') for f in written), written
        assert first.run(first.random_inputs(0)).outputs
        with pytest.raises(ModelError, match='path, bytes or onnx.ModelProto'):
            be.load(np.zeros(3), 'gpu')
