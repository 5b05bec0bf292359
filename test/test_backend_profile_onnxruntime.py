"""The interference profiler unchanged on a real backend: onnxruntime on two CPU cores
(cpu0 target, cpu1 co-runner), a tiny dataset, saved, trained and loaded.

Timing on this shared machine is whatever the other processes leave, so these tests assert what
the protocol does (where runs happen, what is recorded, that pausing pauses), never how long
layers take or how large the slowdowns are."""

import os
import time

import numpy as np
import pytest

ort = pytest.importorskip('onnxruntime')

from hetero_infer.backends import create_backend  # noqa: E402
from hetero_infer.backends.onnxruntime_backend import available_cores  # noqa: E402
from hetero_infer.backends.profiling_targets import (  # noqa: E402
    ExecutorProfilingTarget,
    _PausableLoop,
)
from hetero_infer.errors import ConfigError  # noqa: E402
from hetero_infer.interference.profiling import Dataset, profile_random  # noqa: E402
from hetero_infer.interference.random_layers import random_layer  # noqa: E402
from hetero_infer.interference.regressor_comparison import compare  # noqa: E402
from hetero_infer.interference.slowdown_model import SlowdownPredictor  # noqa: E402

pytestmark = pytest.mark.skipif(len(available_cores()) < 2, reason='needs two CPU cores')
LIMITS = {'max_macs': 10 ** 7, 'max_tensor_bytes': 2 ** 20}


@pytest.fixture(scope='module')
def backend():
    with create_backend('onnxruntime', num_processors=2) as b:
        yield b


def test_profile_train_on_onnxruntime_cpus(backend, tmp_path):
    with ExecutorProfilingTarget(backend, platform_name='cpu-host') as target:
        assert target.processor_kinds() == {'cpu0': 'cpu', 'cpu1': 'cpu'}
        # The worker threads run on their processor's core, read on those threads.
        if hasattr(os, 'sched_getaffinity'):
            assert target.affinity == {p: list(c) for p, c in backend.core_sets.items()}
        ds = profile_random(target, ['cpu0|cpu1'], 24, seed=0, repeats=4,
                            max_corunner_layers=2, layer_limits=LIMITS, aggregate='trimmed',
                            blocks=2, retest_fraction=0.25)
        # Every measured layer's sessions were closed: memory does not grow with samples.
        assert target._executors == {}
    obs = ds.observations
    assert len(obs) == 24
    assert all(o.iso_ms > 0 and o.corun_ms > 0 and np.isfinite(o.slowdown) for o in obs)
    assert all(o.target_proc == 'cpu0' and list(o.corunners) == ['cpu1'] for o in obs)
    assert all(o.iso_cv is not None and o.corun_cv is not None for o in obs)
    # 25% of 24 samples re-measured, and the quality report covers the configuration.
    assert len(ds.meta['retest']) == 6
    q = ds.meta['quality']
    assert q['retest_samples'] == {'cpu0|cpu1': 6}
    assert set(q['test_retest']) == {'cpu0|cpu1'} and np.isfinite(q['test_retest']['cpu0|cpu1'])
    assert ds.meta['protocol']['aggregate'] == 'trimmed' and ds.meta['protocol']['blocks'] == 2
    ds.save(str(tmp_path / 'data'))
    back = Dataset.load(str(tmp_path / 'data'))
    assert back.meta['backend'] == 'onnxruntime'
    assert 'onnxruntime' in back.meta['versions'] and back.meta['versions']['protocol'] == 'robust'
    assert [o.corun_cv for o in back.observations] == [o.corun_cv for o in obs]
    table, mlps = compare(back, regressors=['mlp', 'knn'], seed=0)
    assert np.isfinite(table['mlp']['cpu0|cpu1'])  # accuracy on 24 samples is not the point
    pred = SlowdownPredictor(mlps, back.processor_kinds, platform_name='cpu-host')
    pred.save(str(tmp_path / 'cpu.json'))
    loaded = SlowdownPredictor.load(str(tmp_path / 'cpu.json'))
    assert loaded.config_for('cpu1', ['cpu0']) == 'cpu0|cpu1'


def test_interleaved_blocks_give_every_run(backend):
    rng = np.random.default_rng(3)
    layer = random_layer(rng, name='t', kind='conv', **LIMITS)
    cor = [random_layer(rng, name='c%d' % i, kind='conv', **LIMITS) for i in range(2)]
    with ExecutorProfilingTarget(backend) as target:
        iso, corun = target.measure_pair('cpu0', layer, {'cpu1': cor}, repeats=7,
                                         corun_repeats=9, blocks=3, seed=0)
        assert len(iso) == 7 and len(corun) == 9 and min(iso + corun) > 0
        with pytest.raises(ConfigError, match='blocks'):
            target.measure_pair('cpu0', layer, {'cpu1': cor}, repeats=1, corun_repeats=1,
                                blocks=0, seed=0)
        with pytest.raises(ConfigError, match='cpu0'):
            target.measure_pair('cpu0', layer, {'cpu0': cor}, repeats=1, corun_repeats=1,
                                blocks=1, seed=0)
    with pytest.raises(ConfigError, match='protocol'):
        ExecutorProfilingTarget(backend, protocol='fast')


def test_paused_corunner_runs_nothing(backend):
    rng = np.random.default_rng(4)
    with ExecutorProfilingTarget(backend) as target:
        pairs = [target._executor(random_layer(rng, name='p', kind='conv', **LIMITS), 'cpu1')]
        loop = _PausableLoop([p[0] for p in pairs], [p[1] for p in pairs])
        try:
            loop.resume()
            deadline = time.monotonic() + 30.0
            while loop.iterations < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert loop.iterations >= 2
            loop.pause()
            frozen = loop.iterations
            time.sleep(0.05)
            assert loop.iterations == frozen  # paused: the co-runner's core is idle
        finally:
            loop.close()


def test_legacy_protocol_and_budget(backend):
    with ExecutorProfilingTarget(backend, protocol='legacy') as target:
        ds = profile_random(target, ['cpu0|cpu1'], 6, seed=1, repeats=2, layer_limits=LIMITS)
        assert len(ds.observations) == 6 and ds.meta['versions']['protocol'] == 'legacy'
        # A budget already spent stops before the first sample is drawn.
        ticks = iter([0.0] + [100.0] * 100)
        ds = profile_random(target, ['cpu0|cpu1'], 6, seed=1, repeats=2, layer_limits=LIMITS,
                            budget_s=1.0, clock=lambda: next(ticks))
        assert ds.observations == [] and ds.meta['stopped_by_budget'] is True


def test_on_cpu_timing_needs_the_layer_on_the_calling_thread(backend):
    rng = np.random.default_rng(5)
    layer = random_layer(rng, name='t', kind='conv', **LIMITS)
    cor = [random_layer(rng, name='c', kind='conv', **LIMITS)]
    with ExecutorProfilingTarget(backend, on_cpu=True, min_duty=0.5) as target:
        iso, corun = target.measure_pair('cpu0', layer, {'cpu1': cor}, repeats=4,
                                         corun_repeats=4, blocks=2, seed=0)
        assert len(iso) == 4 and len(corun) == 4 and min(iso + corun) > 0
        assert target.redone_blocks >= 0 and target.versions()['on_cpu_timing'] == 'True'
    with pytest.raises(ConfigError, match='on_cpu'):
        ExecutorProfilingTarget(backend, protocol='legacy', on_cpu=True)
    with pytest.raises(ConfigError, match='min_duty'):
        ExecutorProfilingTarget(backend, min_duty=1.5)
    with create_backend('onnxruntime', num_processors=1) as both_cores:
        with ExecutorProfilingTarget(both_cores, on_cpu=True) as target:
            with pytest.raises(ConfigError, match='intra-op'):
                target.measure_runs('cpu0', layer, {}, repeats=2, seed=0)
