"""Engine cache: keys, invalidation, corrupt files never deserialized. Runs without TensorRT."""

import json
import os

import pytest

from hetero_infer.backends.engine_cache import (
    EngineCache,
    EngineKey,
    file_sha256,
    get_or_build,
    sidecar_path,
)
from hetero_infer.backends.tensorrt_backend import (
    dla_core_of,
    processor_for_dla_core,
    resolve_precision,
)
from hetero_infer.errors import BackendError, ConfigError, ModelError


class FakeBuilder:
    """Stands in for TensorRT: an 'engine' is a tagged byte string; deserialization checks it."""

    def __init__(self, tag=b'engine-v1'):
        self.tag = tag
        self.builds = 0
        self.deserialized = []

    def build(self):
        self.builds += 1
        return self.tag + b':' + bytes([self.builds]) * 64, {'gpu_fallback_layers': ['softmax']}

    def deserialize(self, data):
        self.deserialized.append(data)
        return ('ENGINE', data) if data.startswith(self.tag) else None


def _key(**kw):
    base = dict(model_sha256='a' * 64, processor='dla0', precision='fp16', trt_version='8.5.2.2')
    base.update(kw)
    return EngineKey(**base)


def test_key_changes_with_every_field():
    k = _key()
    assert k.digest() == _key().digest()
    variants = [_key(model_sha256='b' * 64), _key(processor='dla1'), _key(processor='gpu'),
                _key(precision='int8'), _key(trt_version='10.3.0'), _key(gpu_fallback=False),
                _key(calibration_sha256='c' * 64), _key(workspace_mb=512),
                _key(device_name='Xavier')]
    digests = {v.digest() for v in variants}
    assert k.digest() not in digests and len(digests) == len(variants)
    with pytest.raises(BackendError, match="'fp8'"):
        _key(precision='fp8')


def test_model_hash_follows_file_bytes(tmp_path):
    p = tmp_path / 'm.onnx'
    p.write_bytes(b'model-1')
    h1 = file_sha256(str(p))
    p.write_bytes(b'model-2')
    assert file_sha256(str(p)) != h1
    with pytest.raises(ModelError, match='missing.onnx'):
        file_sha256(str(tmp_path / 'missing.onnx'))


def test_build_then_hit_then_force(tmp_path):
    cache, fb = EngineCache(str(tmp_path)), FakeBuilder()
    key = _key()
    path = cache.path_for(key, 'tiny cnn')
    assert os.path.basename(path).startswith('tiny_cnn-dla0-fp16-')
    first = get_or_build(cache, key, path, build=fb.build, deserialize=fb.deserialize)
    assert first.status == 'built' and first.reason.startswith('missing') and fb.builds == 1
    assert first.info['gpu_fallback_layers'] == ['softmax']
    second = get_or_build(cache, key, path, build=fb.build, deserialize=fb.deserialize)
    assert second.status == 'hit' and fb.builds == 1 and second.engine == first.engine
    assert second.info['gpu_fallback_layers'] == ['softmax']  # cached engines still report it
    forced = get_or_build(cache, key, path, build=fb.build, deserialize=fb.deserialize,
                          force=True)
    assert forced.status == 'built' and forced.reason == 'force_engine_update'
    assert fb.builds == 2


def test_new_key_at_same_path_is_stale(tmp_path):
    """An explicit engine_file_path reused after the model or TensorRT changed is rebuilt."""
    cache, fb = EngineCache(str(tmp_path)), FakeBuilder()
    path = str(tmp_path / 'explicit.engine')
    get_or_build(cache, _key(), path, build=fb.build, deserialize=fb.deserialize)
    for changed in (_key(model_sha256='f' * 64), _key(trt_version='10.3.0'),
                    _key(precision='int8'), _key(processor='dla1')):
        found = cache.lookup(changed, path)
        assert found.status == 'stale' and found.engine is None
        out = get_or_build(cache, changed, path, build=fb.build, deserialize=fb.deserialize)
        assert out.status == 'built' and out.reason.startswith('stale')
        assert cache.lookup(changed, path).status == 'hit'


@pytest.mark.parametrize('damage', ['flip', 'truncate', 'no_sidecar', 'bad_sidecar'])
def test_corrupt_engine_is_rebuilt_and_never_deserialized(tmp_path, damage):
    cache, fb = EngineCache(str(tmp_path)), FakeBuilder()
    key = _key()
    path = cache.path_for(key)
    get_or_build(cache, key, path, build=fb.build, deserialize=fb.deserialize)
    good = open(path, 'rb').read()
    if damage == 'flip':
        open(path, 'wb').write(good[:-1] + bytes([good[-1] ^ 0xFF]))
    elif damage == 'truncate':
        open(path, 'wb').write(good[:10])
    elif damage == 'no_sidecar':
        os.unlink(sidecar_path(path))
    else:
        open(sidecar_path(path), 'w').write('{not json')
    bad = open(path, 'rb').read()
    assert cache.lookup(key, path).status == 'corrupt'
    fb.deserialized.clear()
    out = get_or_build(cache, key, path, build=fb.build, deserialize=fb.deserialize)
    assert out.status == 'built' and out.reason.startswith('corrupt')
    assert bad not in fb.deserialized
    assert fb.deserialized == [open(path, 'rb').read()]  # only the rebuilt engine was loaded
    assert cache.lookup(key, path).status == 'hit'


def test_checksum_ok_but_deserialize_fails_rebuilds(tmp_path):
    """An engine with a valid sidecar that the runtime still rejects is rebuilt once."""
    cache, fb = EngineCache(str(tmp_path)), FakeBuilder(tag=b'v2')
    key = _key()
    path = cache.path_for(key)
    cache.store(key, path, b'engine-from-another-build', {})
    out = get_or_build(cache, key, path, build=fb.build, deserialize=fb.deserialize)
    assert out.status == 'built' and 'failed to deserialize' in out.reason
    assert fb.builds == 1
    meta = json.load(open(sidecar_path(path)))
    assert meta['key'] == key.to_dict() and meta['engine_bytes'] == os.path.getsize(path)


def test_fresh_build_that_does_not_deserialize_raises(tmp_path):
    cache = EngineCache(str(tmp_path))
    with pytest.raises(BackendError, match='does not deserialize'):
        get_or_build(cache, _key(), cache.path_for(_key()), build=lambda: (b'x', {}),
                     deserialize=lambda data: None)


def test_isaac_parameter_mapping():
    assert processor_for_dla_core(-1) == 'gpu' and processor_for_dla_core(1) == 'dla1'
    assert dla_core_of('gpu') == -1 and dla_core_of('dla0') == 0
    with pytest.raises(ConfigError, match='dla_core=-2'):
        processor_for_dla_core(-2)
    with pytest.raises(ConfigError, match="'cpu0'"):
        dla_core_of('cpu0')
    assert resolve_precision(None, None) == 'fp16'
    assert resolve_precision(None, False) == 'fp32'
    assert resolve_precision('INT8', True) == 'int8'
    with pytest.raises(ConfigError, match="'bf16'"):
        resolve_precision('bf16', None)
