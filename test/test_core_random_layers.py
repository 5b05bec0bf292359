"""Random layer generator: seeded, covers the zoo's kinds, consistent shapes and byte counts."""

import pytest

from hetero_infer.errors import ConfigError
from hetero_infer.interference.random_layers import (
    MAX_MACS,
    kind_histogram,
    random_layer,
    random_layers,
)
from hetero_infer.models.zoo import BYTES_PER_ELEMENT


def test_seeded_and_deterministic():
    assert random_layers(50, seed=3) == random_layers(50, seed=3)
    assert random_layers(50, seed=3) != random_layers(50, seed=4)


def test_covers_kinds_and_ranges():
    layers = random_layers(1500, seed=0)
    hist = kind_histogram(layers)
    for kind in ('conv', 'dwconv', 'fc', 'pool', 'eltwise', 'concat', 'act', 'softmax',
                 'shuffle'):
        assert hist[kind] > 10, kind
    convs = [lay for lay in layers if lay.kind in ('conv', 'dwconv')]
    assert {lay.kernel[0] for lay in convs} == {1, 3, 5, 7}
    assert {lay.stride[0] for lay in convs} == {1, 2}
    assert any(1 < lay.groups < lay.in_shape[1] for lay in convs)  # grouped
    assert all(lay.groups == lay.in_shape[1] for lay in convs if lay.kind == 'dwconv')
    chans = [lay.in_shape[1] for lay in convs]
    assert min(chans) == 8 and max(chans) >= 512
    pixels = [lay.in_shape[2] for lay in convs]
    assert min(pixels) <= 10 and max(pixels) >= 150
    for lay in layers:
        assert lay.macs <= MAX_MACS
        assert lay.out_bytes == BYTES_PER_ELEMENT * _prod(lay.out_shape)
        assert lay.bytes_total > 0


def test_conv_macs_and_weights():
    for lay in random_layers(300, seed=1, kinds=['conv']):
        cin, cout = lay.in_shape[1], lay.out_shape[1]
        k = lay.kernel[0]
        ho = lay.out_shape[2]
        assert ho == (lay.in_shape[2] + 2 * lay.padding[0] - k) // lay.stride[0] + 1
        assert lay.macs == cout * ho * ho * (cin // lay.groups) * k * k
        assert lay.weight_bytes == (cout * (cin // lay.groups) * k * k + cout) * 2


def test_dla_only_layers_follow_dla_rules():
    layers = random_layers(400, seed=2, dla_only=True)
    assert all(lay.dla for lay in layers)
    assert not any(lay.kind in ('softmax', 'shuffle') for lay in layers)
    mixed = random_layers(400, seed=2)
    refused = [lay for lay in mixed if not lay.dla]
    assert refused and all(lay.dla_reason for lay in refused)


def test_bad_arguments():
    import numpy as np
    with pytest.raises(ConfigError, match='nope'):
        random_layer(np.random.default_rng(0), kind='nope')
    with pytest.raises(ConfigError, match='-1'):
        random_layers(-1)


def _prod(shape):
    out = 1
    for d in shape:
        out *= d
    return out
