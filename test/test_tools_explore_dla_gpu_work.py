"""tools/explore_dla_gpu_work.py, the experiment behind docs/twin.md's "Serial GPU-side work of
DLA inference": its event loop must be the twin's when the serial work is zero, or the numbers
it reports say nothing about the twin."""

import os
import sys

import pytest

from hetero_infer.models.zoo import load_model
from hetero_infer.platform.spec import Platform
from hetero_infer.twin.simulator import Twin

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'tools'))
import explore_dla_gpu_work as explore  # noqa: E402


@pytest.fixture
def serial_twin(monkeypatch):
    def make(platform, w_ms, weight=1.0, **kw):
        monkeypatch.setattr(explore.SerialWorkTwin, 'w_ms', w_ms)
        monkeypatch.setattr(explore.SerialWorkTwin, 'weight', weight)
        return explore.SerialWorkTwin(platform, **kw)
    return make


@pytest.mark.parametrize('mapping', [('googlenet', 'googlenet', None),
                                     ('resnet50', 'googlenet', 'alexnet')])
def test_without_serial_work_the_experiment_is_the_twin(serial_twin, mapping):
    plat = Platform.load('xavier')
    jobs = {p: load_model(m) for p, m in zip(('gpu', 'dla0', 'dla1'), mapping) if m}
    want = Twin(plat, seed=3).corun(jobs, iterations=3)
    got = serial_twin(plat, 0.0, seed=3).corun(jobs, iterations=3)
    assert got == pytest.approx(want, rel=1e-9)


def test_serial_work_lengthens_the_dla_inference_and_costs_the_gpu(serial_twin):
    plat = Platform.load('xavier')
    net = load_model('googlenet')
    alone = plat.isolated_latency_ms(net, 'dla0')
    twin = serial_twin(plat, 0.2, noise_pct=0.0)
    assert twin.corun({'dla0': net}, iterations=2)['dla0'] == pytest.approx(alone + 0.4)
    base = Twin(plat, noise_pct=0.0).corun({'gpu': net, 'dla0': net}, iterations=3)
    both = twin.corun({'gpu': net, 'dla0': net}, iterations=3)
    assert both['gpu'] > base['gpu']
    # a priority weight moves the waiting from the DLA to the GPU layer
    first = serial_twin(plat, 0.2, 8.0, noise_pct=0.0).corun({'gpu': net, 'dla0': net},
                                                             iterations=3)
    assert first['dla0'] < both['dla0'] and first['gpu'] > both['gpu']
