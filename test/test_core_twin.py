"""The digital twin: invariants of serving, determinism, contention and fallback behaviour."""

import math

import pytest
from twin_helpers import Spread

from hetero_infer.errors import ConfigError
from hetero_infer.models.zoo import load_model
from hetero_infer.platform.spec import Platform
from hetero_infer.twin.contention import contention_factors
from hetero_infer.twin.simulator import Twin
from hetero_infer.workload.requests import App, FixedDispatcher


@pytest.fixture(scope='module')
def xavier():
    return Platform.load('xavier')


def _apps():
    return [App('cam', load_model('resnet50'), 120.0, 40.0),
            App('det', load_model('googlenet'), 150.0, 30.0),
            App('kws', load_model('matchboxnet_kws'), 100.0, 10.0)]


def test_every_request_has_exactly_one_outcome_and_time_is_consistent(xavier):
    twin = Twin(xavier, seed=3)
    records = twin.serve(_apps(), Spread(), duration_s=3.0, max_queue=8)
    assert records, 'no arrivals'
    reasons = set()
    for r in records:
        done = r.finish_ms is not None
        assert done != (r.dropped_reason is not None), r
        if done:
            assert r.arrival_ms <= r.start_ms <= r.finish_ms
        else:
            reasons.add(r.dropped_reason)
    assert 'rejected' in reasons
    arrivals = [r.arrival_ms for r in records]
    assert arrivals == sorted(arrivals)


def test_processors_run_one_inference_at_a_time_fifo(xavier):
    twin = Twin(xavier, seed=5)
    records = twin.serve(_apps(), Spread(), duration_s=3.0)
    by_proc = {}
    for r in records:
        if r.finish_ms is not None:
            by_proc.setdefault(r.proc, []).append(r)
    assert len(by_proc) == 3
    for proc, rs in by_proc.items():
        rs.sort(key=lambda r: r.start_ms)
        for a, b in zip(rs, rs[1:]):
            assert b.start_ms >= a.finish_ms - 1e-9, (proc, a, b)   # non-preemptive
            assert b.arrival_ms >= a.arrival_ms                       # FIFO


def test_same_seed_same_trace_other_seed_other_trace(xavier):
    def trace(seed):
        recs = Twin(xavier, seed=seed).serve(_apps(), FixedDispatcher(['gpu', 'dla0', 'dla1']),
                                             duration_s=1.0)
        return [(r.arrival_ms, r.proc, r.finish_ms) for r in recs]
    assert trace(1) == trace(1)
    assert trace(1) != trace(2)


def test_queue_limit_drops_with_reason_under_overload(xavier):
    apps = [App('flood', load_model('vgg19'), 2000.0, 50.0)]
    recs = Twin(xavier, seed=0).serve(apps, FixedDispatcher(['gpu']), duration_s=0.5,
                                      max_queue=4)
    dropped = [r for r in recs if r.dropped_reason]
    assert dropped and all(r.dropped_reason == 'queue_full' for r in dropped)
    assert all(r.finish_ms is not None for r in recs if not r.dropped_reason)


def test_corun_slows_memory_heavy_work_and_not_isolated(xavier):
    twin = Twin(xavier, seed=0, noise_pct=0.0)
    vgg, r50 = load_model('vgg19'), load_model('resnet50')
    alone = twin.corun({'gpu': vgg})['gpu']
    assert alone == pytest.approx(xavier.isolated_latency_ms(vgg, 'gpu'), rel=1e-9)
    co = twin.corun({'gpu': vgg, 'dla0': r50, 'dla1': r50})
    assert co['gpu'] > alone * 1.1
    assert co['dla0'] > xavier.isolated_latency_ms(r50, 'dla0')


def test_dla_fallback_runs_on_gpu_and_costs_transitions(xavier):
    qn = load_model('quartznet15x5')
    segs = xavier.segments(qn, 'dla0')
    fallback = [layer for proc, layer in segs if proc == 'gpu']
    assert fallback and all(not layer.dla for layer in fallback)
    # Fallback layers make the DLA inference slower than the sum of its parts on the DLA alone.
    pure = sum(xavier.layer_time_ms(lay, p) for p, lay in segs)
    assert xavier.isolated_latency_ms(qn, 'dla0') > pure
    # ... and a GPU busy with its own model delays the DLA inference's fallback layers.
    twin = Twin(xavier, seed=0, noise_pct=0.0)
    busy = twin.corun({'dla0': qn, 'gpu': load_model('resnet152')})['dla0']
    assert busy > twin.corun({'dla0': qn})['dla0']


def test_profile_layer_alone_matches_roofline_and_corunners_slow_it(xavier):
    twin = Twin(xavier, seed=0, noise_pct=0.0)
    vgg = load_model('vgg16')
    fc = [lay for lay in vgg.layers if lay.kind == 'fc'][0]
    alone = twin.profile_layer(fc, 'gpu', repeats=3)
    assert alone == pytest.approx(xavier.layer_time_ms(fc, 'gpu'), rel=1e-9)
    heavy = [lay for lay in vgg.layers if lay.kind == 'fc']  # bandwidth-bound on a DLA
    co = twin.profile_layer(fc, 'gpu', {'dla0': heavy, 'dla1': heavy}, repeats=3)
    assert co > alone
    with pytest.raises(ConfigError, match='target processor'):
        twin.profile_layer(fc, 'gpu', {'gpu': heavy})


def test_contention_factors_agree_with_the_twin(xavier):
    vgg = load_model('vgg16')
    fc = [lay for lay in vgg.layers if lay.kind == 'fc'][0]
    running = [('gpu',) + xavier.layer_components_ms(fc, 'gpu')
               + (xavier.processors['gpu'].dram_bytes(fc),)]
    alone = contention_factors(xavier, running)[0]
    assert alone == pytest.approx(xavier.layer_time_ms(fc, 'gpu'))
    running.append(('dla0',) + xavier.layer_components_ms(fc, 'dla0')
                   + (xavier.processors['dla0'].dram_bytes(fc),))
    both = contention_factors(xavier, running)
    assert both[0] > alone and all(math.isfinite(d) for d in both)


def test_inlined_contention_curve_matches_the_platform_curve(xavier):
    # The twin evaluates Contention.slowdown written out in extra_ms (for speed) and skips its
    # fixed point where a curve is flat: both must agree with the platform's curve.
    from hetero_infer.twin.contention import curve_params, extra_ms
    ids = xavier.processor_ids
    for proc, curve in zip(ids, curve_params(xavier, ids)):
        cont = xavier.processors[proc].contention
        for i in range(0, 100):
            x = i / 100.0
            extra = extra_ms(x, 2.0, curve)
            assert extra == pytest.approx(2.0 * (cont.slowdown(x) - 1.0), rel=1e-12, abs=1e-15)
            if x <= cont.flat_below:
                assert extra == 0.0 and cont.slowdown(x) == 1.0
    # Through the fixed point: a target with no demand of its own next to a co-runner pulling
    # x x DRAM settles at its duration alone x S(x). Both are memory-only layers, so the GPU-side
    # work of DLA inference (it stretches compute and fixed cost) leaves them alone, and the
    # co-runner sees x = 0 from the target (S(0) = 1 on both curves).
    dram = xavier.dram_gbps * 1e6
    for proc, other in (('gpu', 'dla0'), ('dla0', 'gpu')):
        cont = xavier.processors[proc].contention
        for x in (0.1, 0.35, 0.6, 0.95):
            running = [(proc, 0.0, 0.0, 1.0, 0.0), (other, 0.0, 0.0, 1.0, x * dram)]
            durs = contention_factors(xavier, running, iterations=60)
            assert durs[0] == pytest.approx(cont.slowdown(x), rel=1e-3)
            assert durs[1] == 1.0


def test_give_up_ends_the_run_and_every_request_still_has_one_outcome(xavier):
    apps = _apps()
    fixed = ['gpu', 'dla0', 'dla1']
    full = Twin(xavier, seed=3).serve(apps, FixedDispatcher(fixed), duration_s=1.0)
    seen = []

    def give_up(rec):
        assert rec.finish_ms is not None or rec.dropped_reason is not None
        seen.append(rec)
        return len(seen) == 40

    part = Twin(xavier, seed=3).serve(apps, FixedDispatcher(fixed), duration_s=1.0,
                                      give_up=give_up)
    assert len(seen) == 40
    assert [(r.app, r.arrival_ms) for r in part] == [(r.app, r.arrival_ms) for r in full]
    shut = [r for r in part if r.dropped_reason == 'shutdown']
    assert shut and all(r.finish_ms is None for r in shut)
    for p, f in zip(part, full):
        assert (p.finish_ms is not None) != (p.dropped_reason is not None)
        if p.finish_ms is not None:          # up to the stop it is the same run
            assert p.finish_ms == f.finish_ms and p.proc == f.proc


def test_dla_curve_rises_from_zero_and_gpu_curve_has_a_knee(xavier):
    # PCCS (FACTS): the Xavier DLA slows from low co-runner throughput on, the GPU not below
    # ~38% and steeply above it.
    dla = xavier.processors['dla0'].contention
    gpu = xavier.processors['gpu'].contention
    assert dla.slowdown(0.05) > 1.0 and dla.slowdown(0.2) > dla.slowdown(0.05)
    assert gpu.slowdown(0.2) == 1.0 and gpu.slowdown(0.3) == 1.0
    assert gpu.slowdown(0.6) > dla.slowdown(0.6) > 1.0
    assert dla.slowdown(0.2) > gpu.slowdown(0.2)  # the DLA is the more sensitive at low x


def _compute_only(name, macs):
    """A compute-bound layer (no DRAM traffic): only time-sharing can slow it."""
    from hetero_infer.models.zoo import Layer
    return Layer(name=name, kind='conv', in_shape=(1, 1, 1, 1), out_shape=(1, 1, 1, 1),
                 macs=int(macs), weight_bytes=0, in_bytes=2, out_bytes=2)


def test_dla_inference_puts_work_on_the_gpu(xavier):
    import dataclasses
    twin = Twin(xavier, noise_pct=0.0)
    gpu_layer = _compute_only('g', 2e8)
    dla_layer = _compute_only('d', 2e8)
    assert xavier.processors['gpu'].dram_bytes(gpu_layer) < 1e3  # no memory contention
    alone = twin.profile_layer(gpu_layer, 'gpu', repeats=3)
    one = twin.profile_layer(gpu_layer, 'gpu', {'dla0': [dla_layer]}, repeats=3)
    two = twin.profile_layer(gpu_layer, 'gpu', {'dla0': [dla_layer], 'dla1': [dla_layer]},
                             repeats=3)
    assert alone < one < two
    # the GPU runs the work of each running DLA inference for a fixed share of its time:
    # one DLA stretches a compute-bound GPU layer by 1 / (1 - b), two by 1 / (1 - b)^2
    b = xavier.dla_gpu_busy_share
    assert 0.0 < b < 0.4  # GR3D: at most 30-40% busy with DLA-only load (FACTS)
    assert one == pytest.approx(alone / (1.0 - b), rel=1e-6)
    assert two == pytest.approx(alone / (1.0 - b) ** 2, rel=1e-6)
    # without the GPU-side work the GPU layer is not slowed at all
    off = Twin(dataclasses.replace(xavier, dla_gpu_busy_share=0.0), noise_pct=0.0)
    assert off.profile_layer(gpu_layer, 'gpu', {'dla0': [dla_layer]},
                             repeats=3) == pytest.approx(alone)
    # ... and it never delays the DLA itself: isolated DLA latency is the roofline's
    g = load_model('googlenet')
    assert twin.corun({'dla0': g}, iterations=2)['dla0'] == pytest.approx(
        xavier.isolated_latency_ms(g, 'dla0'), rel=1e-9)


def test_contention_factors_apply_the_gpu_side_work_of_dla_inference(xavier):
    # the emulated backend's contention function agrees with the twin's event loop
    layer = _compute_only('g', 2e8)
    ov, c, m = xavier.layer_components_ms(layer, 'gpu')
    alone = contention_factors(xavier, [('gpu', ov, c, m, 0.0)])[0]
    one = contention_factors(xavier, [('gpu', ov, c, m, 0.0), ('dla0', 0.0, 1.0, 0.0, 0.0)])[0]
    two = contention_factors(xavier, [('gpu', ov, c, m, 0.0), ('dla0', 0.0, 1.0, 0.0, 0.0),
                                      ('dla1', 0.0, 1.0, 0.0, 0.0)])[0]
    b = xavier.dla_gpu_busy_share
    assert alone == pytest.approx(ov + c)
    assert one == pytest.approx((ov + c) / (1.0 - b))
    assert two == pytest.approx((ov + c) / (1.0 - b) ** 2)


def test_event_loop_choice_is_checked(xavier, monkeypatch):
    from hetero_infer.twin.simulator import KERNEL_ENV, _EventLoop
    monkeypatch.setenv(KERNEL_ENV, 'python')
    assert type(Twin(xavier)._engine(None)) is _EventLoop
    monkeypatch.setenv(KERNEL_ENV, 'cython')
    with pytest.raises(ConfigError, match="HETERO_INFER_TWIN_KERNEL.*'cython'"):
        Twin(xavier).serve(_apps(), FixedDispatcher(['gpu']), duration_s=0.1)


def test_without_numba_the_python_loop_runs(xavier, monkeypatch):
    import sys

    from hetero_infer.twin import simulator as twin_mod
    monkeypatch.setitem(sys.modules, 'hetero_infer.twin.kernel', None)  # import fails
    monkeypatch.setattr(twin_mod, '_kernel_engine', None)
    monkeypatch.delenv(twin_mod.KERNEL_ENV, raising=False)
    assert type(Twin(xavier)._engine(None)) is twin_mod._EventLoop
    recs = Twin(xavier).serve(_apps(), FixedDispatcher(['gpu', 'dla0', 'dla1']), duration_s=0.2)
    assert recs and all(r.done for r in recs)
    monkeypatch.setenv(twin_mod.KERNEL_ENV, 'numba')
    with pytest.raises(ConfigError, match='HETERO_INFER_TWIN_KERNEL=numba but numba cannot'):
        Twin(xavier)._engine(None)
