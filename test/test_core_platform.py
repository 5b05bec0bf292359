"""Platform files: loading, power modes, validation errors that name the bad key and value."""

import pytest
import yaml

from hetero_infer.core.calibration import calibration_checks
from hetero_infer.core.model import load_model
from hetero_infer.core.platform import PLATFORM_DIR, Platform, available_platforms
from hetero_infer.errors import ConfigError


def _doc(name='xavier'):
    with open('%s/%s.yaml' % (PLATFORM_DIR, name)) as f:
        return yaml.safe_load(f)


def test_known_platforms_load():
    assert {'xavier', 'orin', 'cpu2'} <= set(available_platforms())
    assert Platform.load('cpu2').processor_ids == ('cpu0', 'cpu1')
    x = Platform.load('xavier')
    assert x.processor_ids == ('gpu', 'dla0', 'dla1')
    assert x.dram_gbps == pytest.approx(110.6)


def test_lower_power_mode_is_slower():
    m = load_model('resnet50')
    fast = Platform.load('xavier').isolated_latency_ms(m, 'gpu')
    slow = Platform.load('xavier', power_mode='15w').isolated_latency_ms(m, 'gpu')
    assert slow > fast * 1.5
    with pytest.raises(ConfigError, match="unknown power mode 'turbo'"):
        Platform.load('xavier', power_mode='turbo')


@pytest.mark.parametrize('mutate, message', [
    (lambda d: d['processors']['gpu'].update(peak_gmacs='fast'), 'processors.gpu.peak_gmacs'),
    (lambda d: d['processors']['gpu'].update(kind='npu'), "'npu'"),
    (lambda d: d['processors']['gpu']['efficiency'].pop('conv'),
     "efficiency: missing required key 'conv'"),
    (lambda d: d['processors']['gpu']['efficiency'].update(conv=1.7), 'efficiency.conv'),
    (lambda d: d['processors']['dla0']['contention'].update(threshold=-1), 'threshold'),
    (lambda d: d.pop('dram'), "missing required key 'dram'"),
])
def test_bad_platform_file_names_key_and_value(tmp_path, mutate, message):
    doc = _doc()
    mutate(doc)
    path = tmp_path / 'bad.yaml'
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as exc:
        Platform.load(str(path))
    assert message in str(exc.value) and str(path) in str(exc.value)


def test_unknown_platform_lists_known():
    with pytest.raises(ConfigError, match='known: .*xavier'):
        Platform.load('jetson_nano_9000')


def test_calibration_bands_hold_for_xavier():
    checks = calibration_checks(Platform.load('xavier'), seed=0)
    failed = [c for c in checks if not c['pass']]
    assert not failed, failed
    names = {c['check'] for c in checks}
    assert 'gpu_latency_spearman' in names and len(checks) >= 19
    for c in checks:
        assert set(c) >= {'check', 'simulated', 'reference', 'low', 'high', 'pass'}
