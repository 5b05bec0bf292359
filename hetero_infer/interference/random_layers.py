"""Seeded generator of random layers, the training inputs of the interference model.

The talk trains its MLP on randomly generated layers rather than on the models it later serves,
so the model has to generalise to real networks. The generator covers the layer kinds of the zoo
(:data:`hetero_infer.models.zoo.LAYER_KINDS` minus ``other``):

- ``conv``: kernel 1/3/5/7, stride 1/2, dense or grouped, 8-1024 channels, 7-224 pixels;
- ``dwconv``: depthwise (groups == channels), same kernels and sizes;
- ``fc``: 64-25088 inputs, 10-4096 outputs;
- ``pool``: max/avg windows 2-3 with stride 2, or a global average pool;
- ``eltwise``: sum/prod/max of two tensors; ``concat`` of 2-4 tensors on the channel axis;
- ``act``: standalone relu/sigmoid/tanh/clip/hardswish; ``softmax`` and ``shuffle`` (rare).

Sizes are drawn log-uniformly; a draw whose MACs or tensors exceed what any zoo layer has
(:data:`MAX_MACS`, :data:`MAX_TENSOR_BYTES`) is redrawn, so the data stays in the range the
planner will query. Each layer's DLA eligibility comes from :func:`dla_support` (FACTS.md rules).
Byte counts are FP16, like the zoo's layer tables.
"""

import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from hetero_infer.errors import ConfigError
from hetero_infer.models.dla_rules import dla_support
from hetero_infer.models.zoo import BYTES_PER_ELEMENT, LAYER_KINDS, Layer

#: Relative frequency of each kind among generated layers (convolutions dominate real networks).
KIND_WEIGHTS = (
    ('conv', 0.38), ('dwconv', 0.12), ('fc', 0.10), ('pool', 0.10), ('eltwise', 0.10),
    ('concat', 0.06), ('act', 0.08), ('softmax', 0.03), ('shuffle', 0.03),
)
#: Largest layer drawn: about VGG-16's biggest convolution (1.85 GMACs) with headroom.
MAX_MACS = 4 * 10 ** 9
#: Largest single tensor drawn (FP16 bytes): 256 channels of 224x224 is 25.7 MB.
MAX_TENSOR_BYTES = 32 * 2 ** 20
_ACTS = ('relu', 'relu', 'sigmoid', 'tanh', 'clip', 'hardswish')
_CONV_ACTS = ('conv+bn+relu', 'conv+bn+relu', 'conv+bn', 'conv+bn+relu6', 'conv+bn+hardswish')


def _log_int(rng: np.random.Generator, low: int, high: int) -> int:
    return int(round(math.exp(rng.uniform(math.log(low), math.log(high)))))


def _channels(rng: np.random.Generator) -> int:
    # Real networks use multiples of 8 almost everywhere.
    return max(8, min(1024, 8 * int(round(_log_int(rng, 8, 1024) / 8.0))))


def _pixels(rng: np.random.Generator) -> int:
    return _log_int(rng, 7, 224)


def _out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def _make(name: str, kind: str, in_shape: Tuple[int, ...], out_shape: Tuple[int, ...], *,
          macs: int, weight_bytes: int, in_bytes: Optional[int] = None,
          kernel: Tuple[int, ...] = (), stride: Tuple[int, ...] = (),
          padding: Tuple[int, ...] = (), groups: int = 1, op: str = '') -> Layer:
    if in_bytes is None:
        in_bytes = int(np.prod(in_shape)) * BYTES_PER_ELEMENT
    ok, reason = dla_support(kind, op=op, kernel=kernel, stride=stride, padding=padding,
                             groups=groups)
    return Layer(name=name, kind=kind, in_shape=tuple(in_shape), out_shape=tuple(out_shape),
                 macs=int(macs), weight_bytes=int(weight_bytes), in_bytes=int(in_bytes),
                 out_bytes=int(np.prod(out_shape)) * BYTES_PER_ELEMENT, kernel=tuple(kernel),
                 stride=tuple(stride), padding=tuple(padding), groups=int(groups), op=op,
                 dla=ok, dla_reason=reason)


def _conv(rng: np.random.Generator, name: str, depthwise: bool) -> Layer:
    k = int(rng.choice((1, 3, 3, 5, 7))) if not depthwise else int(rng.choice((3, 3, 5, 7)))
    s = int(rng.choice((1, 1, 2)))
    p = k // 2
    hw = max(_pixels(rng), k)
    cin = _channels(rng)
    if depthwise:
        cout, groups, kind = cin, cin, 'dwconv'
    else:
        cout = _channels(rng)
        groups = 1
        if rng.random() < 0.2:
            divisors = [g for g in (2, 4, 8, 16, 32) if cin % g == 0 and cout % g == 0]
            if divisors:
                groups = int(rng.choice(divisors))
        kind = 'conv'
    ho = _out_size(hw, k, s, p)
    macs = cout * ho * ho * (cin // groups) * k * k
    weights = (cout * (cin // groups) * k * k + cout) * BYTES_PER_ELEMENT
    op = str(rng.choice(_CONV_ACTS)).replace('conv', 'dwconv' if depthwise else 'conv')
    return _make(name, kind, (1, cin, hw, hw), (1, cout, ho, ho), macs=macs,
                 weight_bytes=weights, kernel=(k, k), stride=(s, s), padding=(p, p),
                 groups=groups, op=op)


def _fc(rng: np.random.Generator, name: str) -> Layer:
    fin = _log_int(rng, 64, 25088)
    fout = _log_int(rng, 10, 4096)
    return _make(name, 'fc', (1, fin), (1, fout), macs=fin * fout,
                 weight_bytes=(fin * fout + fout) * BYTES_PER_ELEMENT,
                 op=str(rng.choice(('fc', 'fc+relu'))))


def _pool(rng: np.random.Generator, name: str) -> Layer:
    c, hw = _channels(rng), _pixels(rng)
    if rng.random() < 0.25:
        # Global average pooling: the window is the whole feature map.
        return _make(name, 'pool', (1, c, hw, hw), (1, c, 1, 1), macs=c * hw * hw,
                     weight_bytes=0, kernel=(hw, hw), stride=(1, 1), padding=(0, 0), op='avg')
    k = int(rng.choice((2, 3)))
    s = 2
    p = int(k == 3 and rng.random() < 0.5)
    hw = max(hw, k)
    ho = _out_size(hw, k, s, p)
    return _make(name, 'pool', (1, c, hw, hw), (1, c, ho, ho), macs=c * ho * ho * k * k,
                 weight_bytes=0, kernel=(k, k), stride=(s, s), padding=(p, p),
                 op=str(rng.choice(('max', 'avg'))))


def _eltwise(rng: np.random.Generator, name: str) -> Layer:
    c, hw = _channels(rng), _pixels(rng)
    elems = c * hw * hw
    return _make(name, 'eltwise', (1, c, hw, hw), (1, c, hw, hw), macs=elems, weight_bytes=0,
                 in_bytes=2 * elems * BYTES_PER_ELEMENT,
                 op=str(rng.choice(('add', 'add', 'mul', 'max'))))


def _concat(rng: np.random.Generator, name: str) -> Layer:
    n = int(rng.integers(2, 5))
    hw = _pixels(rng)
    parts = [max(8, _channels(rng) // n) for _ in range(n)]
    c = sum(parts)
    return _make(name, 'concat', (1, parts[0], hw, hw), (1, c, hw, hw), macs=0, weight_bytes=0,
                 in_bytes=c * hw * hw * BYTES_PER_ELEMENT, op='concat')


def _elementwise_kind(rng: np.random.Generator, name: str, kind: str) -> Layer:
    c, hw = _channels(rng), _pixels(rng)
    if kind == 'softmax' or (kind == 'shuffle' and rng.random() < 0.3):
        # Classifier heads and flattens work on vectors.
        shape: Tuple[int, ...] = (1, _log_int(rng, 10, 25088))
    else:
        shape = (1, c, hw, hw)
    elems = int(np.prod(shape))
    if kind == 'act':
        op = str(rng.choice(_ACTS))
    elif kind == 'softmax':
        op = 'softmax'
    else:
        op = str(rng.choice(('transpose', 'channel_shuffle', 'flatten')))
    return _make(name, kind, shape, shape, macs=elems if kind != 'shuffle' else 0,
                 weight_bytes=0, op=op)


def random_layer(rng: np.random.Generator, *, kind: Optional[str] = None,
                 name: str = 'rand', dla_only: bool = False, max_tries: int = 200,
                 max_macs: int = MAX_MACS, max_tensor_bytes: int = MAX_TENSOR_BYTES) -> Layer:
    """Draw one random layer.

    :param rng: numpy generator (the caller owns the seed).
    :param kind: force a kind; ``None`` draws one from :data:`KIND_WEIGHTS`.
    :param dla_only: redraw until the layer can run on a Xavier DLA (for DLA targets and
        DLA co-runners: layers a DLA cannot run would fall back to the GPU).
    :param max_macs: redraw layers with more MACs (a CPU profiler wants smaller layers).
    :param max_tensor_bytes: redraw layers with a larger input or output tensor.
    :raises ConfigError: unknown kind, or no acceptable layer in ``max_tries`` draws.
    """
    kinds = [k for k, _ in KIND_WEIGHTS]
    if kind is not None and kind not in kinds:
        raise ConfigError('random_layer: unknown kind %r (choose from %s)'
                          % (kind, ', '.join(kinds)))
    weights = np.array([w for k, w in KIND_WEIGHTS
                        if not dla_only or k not in ('softmax', 'shuffle')], dtype=float)
    pool = [k for k, _ in KIND_WEIGHTS if not dla_only or k not in ('softmax', 'shuffle')]
    for _ in range(max_tries):
        k = kind if kind is not None else str(rng.choice(pool, p=weights / weights.sum()))
        if k in ('conv', 'dwconv'):
            layer = _conv(rng, name, k == 'dwconv')
        elif k == 'fc':
            layer = _fc(rng, name)
        elif k == 'pool':
            layer = _pool(rng, name)
        elif k == 'eltwise':
            layer = _eltwise(rng, name)
        elif k == 'concat':
            layer = _concat(rng, name)
        else:
            layer = _elementwise_kind(rng, name, k)
        if layer.macs > max_macs or max(layer.in_bytes, layer.out_bytes) > max_tensor_bytes:
            continue
        if dla_only and not layer.dla:
            continue
        return layer
    raise ConfigError('random_layer: no acceptable %s layer in %d draws (dla_only=%s)'
                      % (kind or 'random', max_tries, dla_only))


def random_layers(n: int, *, seed: int = 0, dla_only: bool = False,
                  kinds: Optional[Sequence[str]] = None,
                  prefix: str = 'rand') -> Tuple[Layer, ...]:
    """``n`` random layers, deterministic for ``seed``; names ``<prefix><i>``.

    :param kinds: restrict to these kinds (drawn uniformly among them), default all.
    """
    if n < 0:
        raise ConfigError('random_layers: n must be >= 0, got %r' % (n,))
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = str(rng.choice(list(kinds))) if kinds else None
        out.append(random_layer(rng, kind=kind, name='%s%d' % (prefix, i), dla_only=dla_only))
    return tuple(out)


def kind_histogram(layers: Sequence[Layer]) -> Dict[str, int]:
    """Count of layers per kind (every kind of LAYER_KINDS present as a key)."""
    counts = {k: 0 for k in LAYER_KINDS}
    for layer in layers:
        counts[layer.kind] += 1
    return counts
