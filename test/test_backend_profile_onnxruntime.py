"""The interference profiler unchanged on a real backend: onnxruntime on two CPU cores
(cpu0 target, cpu1 co-runner), a tiny dataset, saved, trained and loaded."""

import numpy as np
import pytest

ort = pytest.importorskip('onnxruntime')

from hetero_infer.backends import create_backend  # noqa: E402
from hetero_infer.backends.onnxruntime_backend import available_cores  # noqa: E402
from hetero_infer.backends.profiling_targets import ExecutorProfilingTarget  # noqa: E402
from hetero_infer.core.interference import InterferencePredictor  # noqa: E402
from hetero_infer.core.profiling import Dataset, profile_random  # noqa: E402
from hetero_infer.core.regressors import compare  # noqa: E402

pytestmark = pytest.mark.skipif(len(available_cores()) < 2, reason='needs two CPU cores')


def test_profile_train_on_onnxruntime_cpus(tmp_path):
    with create_backend('onnxruntime', num_processors=2) as backend:
        with ExecutorProfilingTarget(backend, platform_name='cpu-host') as target:
            assert target.processor_kinds() == {'cpu0': 'cpu', 'cpu1': 'cpu'}
            ds = profile_random(target, ['cpu0|cpu1'], 24, seed=0, repeats=3,
                                max_corunner_layers=2,
                                layer_limits={'max_macs': 10 ** 7, 'max_tensor_bytes': 2 ** 20})
    slow = np.array([o.slowdown for o in ds.observations])
    assert len(slow) == 24 and np.all(np.isfinite(slow))
    # Noisy on a shared machine; co-running must not make layers systematically faster.
    assert np.median(slow) >= 0.85 and slow.min() > 0.3
    assert all(o.target_proc == 'cpu0' and list(o.corunners) == ['cpu1']
               for o in ds.observations)
    ds.save(str(tmp_path / 'data'))
    back = Dataset.load(str(tmp_path / 'data'))
    assert back.meta['backend'] == 'onnxruntime'
    assert 'onnxruntime' in back.meta['versions']
    table, mlps = compare(back, regressors=['mlp', 'knn'], seed=0)
    assert np.isfinite(table['mlp']['cpu0|cpu1'])  # accuracy on 24 samples is not the point
    pred = InterferencePredictor(mlps, back.processor_kinds, platform_name='cpu-host')
    pred.save(str(tmp_path / 'cpu.json'))
    loaded = InterferencePredictor.load(str(tmp_path / 'cpu.json'))
    assert loaded.config_for('cpu1', ['cpu0']) == 'cpu0|cpu1'
