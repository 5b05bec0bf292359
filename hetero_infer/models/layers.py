"""The layer-table types: :class:`Layer`, :class:`ModelSpec` and their format.

A model is a sequence of layers in execution order. Each layer records what a profiler could read
off the graph: its kind, shapes, MACs, bytes moved (FP16, 2 bytes an element) and whether a Xavier
DLA can run it under the rules in FACTS.md. :mod:`hetero_infer.models.zoo` loads them (zoo names,
layer-table files, ONNX files through :mod:`hetero_infer.models.onnx_import`, which builds them
from these types without importing the loader).
"""

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Dict, Tuple

from hetero_infer.errors import ModelError
from hetero_infer.io.json_file import read_json

ZOO_FORMAT = 'hetero_infer.zoo/1'

#: Layer kinds. Batch-norm and activations that TensorRT fuses into the preceding conv/fc are
#: folded into that layer; a standalone ``act`` is one that could not be fused.
LAYER_KINDS = (
    'conv',      # dense or grouped convolution (groups < in_channels)
    'dwconv',    # depthwise convolution (groups == in_channels)
    'fc',        # fully connected / matmul / gemm
    'pool',      # max or average pooling, including global average pooling
    'eltwise',   # element-wise sum / product / max of tensors
    'concat',    # concatenation (channel axis on DLA)
    'act',       # standalone activation (relu, sigmoid, tanh, clip, hardswish, ...)
    'softmax',   # softmax (never on Xavier's DLA)
    'shuffle',   # reshape / transpose / channel shuffle / flatten that moves data
    'other',     # anything else (LRN, resize, pad, ...)
)

#: What a model serves: camera frames or audio chunks.
DOMAINS = ('vision', 'audio')

BYTES_PER_ELEMENT = 2  # FP16, the precision the twin and the talk's engines use
#: Largest count (MACs, bytes, dimension) a layer table may hold: 10^15 MACs is a thousand times
#: the largest zoo model; beyond it a value is a typo or garbage.
MAX_COUNT = 10 ** 15
#: Most layers a table may hold (the largest zoo model has a few hundred).
MAX_LAYERS = 100000
#: Largest layer-table file read.
MAX_TABLE_BYTES = 64 << 20


def _count(value, where: str, layer, key: str) -> int:
    """A non-negative integer count (an integral float such as ``1e9`` is accepted)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (isinstance(value, float) and not value.is_integer()):
        raise ModelError('%s: layer %r: %s must be a non-negative integer, got %r'
                         % (where, layer, key, value))
    if not 0 <= value <= MAX_COUNT:
        raise ModelError('%s: layer %r: %s = %r is out of range [0, %d]'
                         % (where, layer, key, value, MAX_COUNT))
    return int(value)


@dataclass(frozen=True)
class Layer:
    """One layer of a model's layer table.

    Shapes include the batch dimension. Byte counts are FP16 (2 bytes per element).
    """

    name: str
    kind: str
    in_shape: Tuple[int, ...]
    out_shape: Tuple[int, ...]
    macs: int
    weight_bytes: int
    in_bytes: int
    out_bytes: int
    kernel: Tuple[int, ...] = ()
    stride: Tuple[int, ...] = ()
    padding: Tuple[int, ...] = ()
    groups: int = 1
    op: str = ''            # finer kind: 'max', 'avg', 'relu', 'add', ... (free text)
    dla: bool = True         # a Xavier DLA can run it (FACTS.md rules)
    dla_reason: str = ''     # why not, when ``dla`` is False

    @property
    def bytes_total(self) -> int:
        """Bytes one execution moves to or from DRAM at least: weights, input and output."""
        return self.weight_bytes + self.in_bytes + self.out_bytes

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ('in_shape', 'out_shape', 'kernel', 'stride', 'padding'):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict, *, where: str = '') -> 'Layer':
        """A layer from its table entry.

        :raises ModelError: a missing key, an unknown kind, a count (MACs, bytes, shape
            dimension) that is not an integer, negative or beyond :data:`MAX_COUNT`.
        """
        try:
            kind = d['kind']
            if kind not in LAYER_KINDS:
                raise ModelError('%s: layer %r has unknown kind %r (known: %s)'
                                 % (where, d.get('name'), kind, ', '.join(LAYER_KINDS)))
            for key in ('macs', 'weight_bytes', 'in_bytes', 'out_bytes'):
                _count(d[key], where, d.get('name'), key)
            for key in ('in_shape', 'out_shape', 'kernel', 'stride', 'padding'):
                dims = d.get(key, ())
                if not isinstance(dims, (list, tuple)) or len(dims) > 8:
                    raise ModelError('%s: layer %r: %s must be a list of at most 8 integers, '
                                     'got %r' % (where, d.get('name'), key, dims))
                for x in dims:
                    _count(x, where, d.get('name'), key)
            _count(d.get('groups', 1), where, d.get('name'), 'groups')
            return cls(
                name=str(d['name']), kind=kind,
                in_shape=tuple(int(x) for x in d['in_shape']),
                out_shape=tuple(int(x) for x in d['out_shape']),
                macs=int(d['macs']), weight_bytes=int(d['weight_bytes']),
                in_bytes=int(d['in_bytes']), out_bytes=int(d['out_bytes']),
                kernel=tuple(int(x) for x in d.get('kernel', ())),
                stride=tuple(int(x) for x in d.get('stride', ())),
                padding=tuple(int(x) for x in d.get('padding', ())),
                groups=int(d.get('groups', 1)), op=str(d.get('op', '')),
                dla=bool(d.get('dla', True)), dla_reason=str(d.get('dla_reason', '')),
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            if isinstance(exc, ModelError):
                raise
            raise ModelError('%s: malformed layer %r: %s: %s'
                             % (where, d.get('name', '?') if isinstance(d, dict) else d,
                                type(exc).__name__, exc)) from None


@dataclass(frozen=True)
class ModelSpec:
    """A model as a layer table plus the metadata serving needs."""

    name: str
    layers: Tuple[Layer, ...]
    input_name: str = 'input'
    input_shape: Tuple[int, ...] = ()
    domain: str = 'vision'        # 'vision' or 'audio'
    source: str = ''              # where the table came from (generator, ONNX file)
    extra: Dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def weight_bytes(self) -> int:
        return sum(layer.weight_bytes for layer in self.layers)

    @property
    def activation_elements(self) -> int:
        """Output elements of conv and fc layers (FACTS.md's 'activations' column)."""
        return sum(layer.out_bytes // BYTES_PER_ELEMENT for layer in self.layers
                   if layer.kind in ('conv', 'dwconv', 'fc'))

    @property
    def postprocess_ms(self) -> float:
        """Host post-processing one request costs after its inference (detectors: box
        decoding and NMS, ``extra['postprocess_ms']`` measured by
        ``tools/measure_postprocess.py``); 0 for models without. It runs on the host CPU, not on
        a scheduled processor: the twin and the planner add it to the request's latency."""
        return float(self.extra.get('postprocess_ms', 0.0))

    @property
    def dla_fraction(self) -> float:
        """Share of MACs a DLA can run."""
        total = self.macs
        if total == 0:
            return 1.0
        return sum(layer.macs for layer in self.layers if layer.dla) / total

    def to_dict(self) -> dict:
        return {
            'format': ZOO_FORMAT, 'name': self.name, 'domain': self.domain,
            'source': self.source,
            'input': {'name': self.input_name, 'shape': list(self.input_shape)},
            'extra': dict(self.extra),
            'layers': [layer.to_dict() for layer in self.layers],
        }

    @classmethod
    def from_dict(cls, d: dict, *, where: str = '<dict>') -> 'ModelSpec':
        if not isinstance(d, dict):
            raise ModelError('%s: expected a JSON object, got %s' % (where, type(d).__name__))
        fmt = d.get('format')
        if fmt != ZOO_FORMAT:
            raise ModelError('%s: unsupported format %r (expected %r)' % (where, fmt, ZOO_FORMAT))
        layers = d.get('layers')
        if not isinstance(layers, list) or not layers:
            raise ModelError('%s: "layers" must be a non-empty list' % where)
        if len(layers) > MAX_LAYERS:
            raise ModelError('%s: %d layers, at most %d allowed' % (where, len(layers),
                                                                    MAX_LAYERS))
        domain = d.get('domain', 'vision')
        if domain not in DOMAINS:
            raise ModelError('%s: domain %r is not one of %s' % (where, domain,
                                                                 ', '.join(DOMAINS)))
        inp = d.get('input') or {}
        if not isinstance(inp, dict) or not isinstance(inp.get('shape', []), list) or \
                not isinstance(d.get('extra') or {}, dict):
            raise ModelError('%s: "input" must be an object with a "shape" list and "extra" an '
                             'object' % where)
        for x in inp.get('shape', ()):
            _count(x, where, 'input', 'shape')
        post = (d.get('extra') or {}).get('postprocess_ms', 0.0)
        if isinstance(post, bool) or not isinstance(post, (int, float)) or \
                not 0.0 <= post < 1e6:
            raise ModelError('%s: extra.postprocess_ms must be a number of ms >= 0, got %r'
                             % (where, post))
        return cls(
            name=str(d.get('name') or os.path.basename(where)),
            layers=tuple(Layer.from_dict(layer, where=where) for layer in layers),
            input_name=str(inp.get('name', 'input')),
            input_shape=tuple(int(x) for x in inp.get('shape', ())),
            domain=domain, source=str(d.get('source', '')),
            extra=dict(d.get('extra') or {}),
        )

    def save(self, path: str, *, one_layer_per_line: bool = False) -> None:
        """Write the table as JSON; ``one_layer_per_line`` is the zoo's compact, diffable
        layout (still plain JSON)."""
        d = self.to_dict()
        with open(path, 'w') as f:
            if not one_layer_per_line:
                json.dump(d, f, indent=1)
                f.write('\n')
                return
            layers = d.pop('layers')
            f.write(json.dumps(d, separators=(',', ':'))[:-1] + ',"layers":[\n')
            f.write(',\n'.join(json.dumps(layer, separators=(',', ':')) for layer in layers))
            f.write('\n]}\n')

    @classmethod
    def load(cls, path: str) -> 'ModelSpec':
        d = read_json(path, 'model', max_bytes=MAX_TABLE_BYTES)
        return cls.from_dict(d, where=path)
