"""Emulated processors keep the digital twin's time, alone and under contention."""

import math
import threading

import numpy as np
import pytest

from hetero_infer.backends import BackgroundLoop, create_backend
from hetero_infer.backends.emulated import ContentionState, merge_steps
from hetero_infer.errors import BackendError, ConfigError, ModelError
from hetero_infer.models.zoo import load_model
from hetero_infer.platform.spec import Platform
from hetero_infer.twin.simulator import Twin
from hetero_infer.workload.requests import App, FixedDispatcher


@pytest.fixture(scope='module')
def xavier():
    return Platform.load('xavier')


# (processor, model, arrival ms): overlapping, with DLA fallback steps competing for the GPU.
# Each processor's next inference arrives after its previous one ended (the backends run one
# inference per processor at a time; the state driven by hand does not queue them).
SCENARIO = (('gpu', 'resnet50', 0.0), ('dla0', 'googlenet', 0.4), ('dla1', 'vgg16', 1.1),
            ('gpu', 'resnet18', 7.0), ('dla0', 'mobilenet_v2', 7.5))


def _twin_finishes(platform):
    """Ground truth: the twin serving exactly these arrivals (noise off)."""
    apps = [App('a%d' % i, load_model(m), 1.0, 1e6, (p,)) for i, (p, m, _) in
            enumerate(SCENARIO)]
    arrivals = [(t, i, i) for i, (_, _, t) in enumerate(SCENARIO)]
    twin = Twin(platform, noise_pct=0.0)
    recs = twin.serve(apps, FixedDispatcher([p for p, _, _ in SCENARIO]), duration_s=1.0,
                      arrivals=arrivals)
    return [r.finish_ms for r in recs]


def _state_finishes(platform, step_ms):
    """The emulator's shared state driven by hand at the same arrival times (no threads)."""
    state = ContentionState(platform, clock=lambda: 0.0)
    twin = Twin(platform, noise_pct=0.0)
    jobs = [state.start(twin.program(load_model(m), p), p, step_ms=step_ms, at_v=t)
            for p, m, t in SCENARIO]
    state.advance_to(math.inf)
    assert state.busy() == {}
    return [j.finish_v for j in jobs]


def test_layer_exact_state_reproduces_twin(xavier):
    """step_ms=0: same steps, same contention function, same event order -> same finish times."""
    want = _twin_finishes(xavier)
    got = _state_finishes(xavier, 0.0)
    np.testing.assert_allclose(got, want, rtol=1e-9)
    isolated = [xavier.isolated_latency_ms(load_model(m), p) for p, m, _ in SCENARIO]
    latencies = [f - t for f, (_, _, t) in zip(got, SCENARIO)]
    assert sum(latencies) > 1.02 * sum(isolated)  # the scenario really has contention


def test_chunked_state_within_10pct_of_twin(xavier):
    want = _twin_finishes(xavier)
    got = _state_finishes(xavier, 0.25)
    for (p, m, t), w, g in zip(SCENARIO, want, got):
        assert abs((g - t) - (w - t)) <= 0.10 * (w - t), (p, m, w - t, g - t)


def test_merge_steps_keeps_isolated_time(xavier):
    steps = Twin(xavier, noise_pct=0.0).program(load_model('googlenet'), 'dla0')
    merged = merge_steps(steps, 0.5)
    assert len(merged) < len(steps)
    iso = sum(ov + max(c, m) for _, ov, c, m, _ in steps)
    assert sum(ov + max(c, m) for _, ov, c, m, _ in merged) == pytest.approx(iso, rel=1e-12)
    assert sum(b for *_, b in merged) == pytest.approx(sum(b for *_, b in steps))
    assert merge_steps(steps, 0.0) == list(steps)
    # processor order is kept: fallback GPU runs stay separate chunks
    def runs(seq):
        procs = [s[0] for s in seq]
        return [e for i, e in enumerate(procs) if i == 0 or procs[i - 1] != e]
    assert runs(merged) == runs(steps) and len(set(runs(steps))) == 2


def test_alone_latency_is_twins_isolated_latency(xavier):
    with create_backend('emulated', platform=xavier, noise_pct=0.0, time_scale=0.5) as be:
        for proc, model in (('gpu', 'resnet18'), ('dla1', 'googlenet')):
            ex = be.load(model, proc)
            res = [ex.run(ex.random_inputs()) for _ in range(3)]
            iso = xavier.isolated_latency_ms(load_model(model), proc)
            for r in res:
                assert r.info['emulated_ms'] == pytest.approx(iso, rel=1e-9)
                # never early in wall-clock terms (a lower bound only: no wall-clock equality)
                assert r.execute_ms >= 0.5 * iso * (1 - 1e-6)
                assert r.outputs['output'].shape == load_model(model).layers[-1].out_shape


def test_threaded_corun_within_10pct_of_twin(xavier):
    """Real threads: gpu loops resnet50 while both DLAs loop theirs (the twin's corun set-up)."""
    models = {'gpu': 'resnet50', 'dla0': 'googlenet', 'dla1': 'resnet18'}
    want = Twin(xavier, noise_pct=0.0).corun({p: load_model(m) for p, m in models.items()},
                                             iterations=20)
    with create_backend('emulated', platform=xavier, noise_pct=0.0, time_scale=1.0) as be:
        ex = {p: be.load(m, p) for p, m in models.items()}
        with BackgroundLoop(ex['dla0']) as l0, BackgroundLoop(ex['dla1']) as l1:
            feed = ex['gpu'].random_inputs()
            got = [ex['gpu'].run(feed).info['emulated_ms'] for _ in range(25)][3:]
        assert l0.iterations > 5 and l1.iterations > 5
    iso = xavier.isolated_latency_ms(load_model('resnet50'), 'gpu')
    assert np.mean(got) > iso * 1.02  # slowed by the DLAs
    assert abs(np.mean(got) - want['gpu']) <= 0.10 * want['gpu'], (np.mean(got), want)


def test_contention_is_shared_between_backends(xavier):
    a = create_backend('emulated', platform=xavier, noise_pct=0.0)
    b = create_backend('emulated', state=a.state)
    try:
        ga, db = a.load('vgg16', 'gpu'), b.load('vgg16', 'dla0')
        fut = db.submit(db.random_inputs())
        r = ga.run(ga.random_inputs())
        fut.result()
        assert r.info['emulated_ms'] > xavier.isolated_latency_ms(load_model('vgg16'), 'gpu')
    finally:
        a.close()
        b.close()


def test_noise_is_seeded(xavier):
    def run(seed):
        state = ContentionState(xavier, noise_pct=3.0, seed=seed, clock=lambda: 0.0)
        job = state.start(Twin(xavier).program(load_model('resnet18'), 'gpu'), 'gpu', at_v=0.0)
        state.advance_to(math.inf)
        return job.finish_v
    assert run(1) == run(1) and run(1) != run(2)
    iso = xavier.isolated_latency_ms(load_model('resnet18'), 'gpu')
    assert abs(run(1) - iso) < 0.1 * iso


def test_real_outputs_from_onnx(tmp_path, xavier):
    onnx = pytest.importorskip('onnx')
    pytest.importorskip('onnxruntime')
    from onnx import TensorProto, helper
    spec = load_model('resnet18')
    shape = list(spec.input_shape)
    graph = helper.make_graph([helper.make_node('Relu', [spec.input_name], ['out'])], 'g',
                              [helper.make_tensor_value_info(spec.input_name,
                                                             TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info('out', TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    path = str(tmp_path / 'relu.onnx')
    onnx.save(model, path)
    with create_backend('emulated', platform=xavier, noise_pct=0.0, time_scale=0.2) as be:
        ex = be.load(spec, 'gpu', onnx_path=path)
        feed = ex.random_inputs(seed=5)
        r = ex.run(feed)
        np.testing.assert_array_equal(r.outputs['out'], np.maximum(feed[spec.input_name], 0))
        assert r.info['emulated_ms'] == pytest.approx(xavier.isolated_latency_ms(spec, 'gpu'))


def test_errors(xavier, tmp_path):
    with create_backend('emulated', platform=xavier) as be:
        assert be.processor_ids == ('gpu', 'dla0', 'dla1')
        with pytest.raises(BackendError, match=r"'cpu0'.*gpu, dla0, dla1"):
            be.load('resnet18', 'cpu0')
        with pytest.raises(ModelError, match='nosuch'):
            be.load('nosuch_model', 'gpu')
        with pytest.raises(ModelError, match='missing.onnx'):
            be.load('resnet18', 'gpu', onnx_path=str(tmp_path / 'missing.onnx'))
    with pytest.raises(ConfigError, match='time_scale'):
        create_backend('emulated', platform=xavier, time_scale=0)
    with pytest.raises(ConfigError, match='step_ms'):
        create_backend('emulated', platform=xavier, step_ms=-1)


def test_one_inference_at_a_time(xavier):
    with create_backend('emulated', platform=xavier, noise_pct=0.0, time_scale=0.2) as be:
        ex = be.load('resnet18', 'dla0')
        feed = ex.random_inputs()
        out = []
        threads = [threading.Thread(target=lambda: out.extend(ex.run(feed) for _ in range(3)))
                   for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        spans = sorted((r.start_s, r.end_s) for r in out)
        assert len(spans) == 9
        assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:]))
        iso = xavier.isolated_latency_ms(load_model('resnet18'), 'dla0')
        assert all(r.info['emulated_ms'] == pytest.approx(iso) for r in out)
