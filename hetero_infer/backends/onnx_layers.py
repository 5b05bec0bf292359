"""Single-layer ONNX graphs built from layer-table rows, for profiling layers on real backends.

The interference profiler times random :class:`~hetero_infer.models.zoo.Layer` rows on each
processor, alone and while other processors loop other layers. On a real backend a layer has to
be a model, so :func:`layer_to_onnx` turns one row into a one-node (or few-node) ONNX graph with
seeded random weights, and :func:`save_layer_onnx` writes it (TensorRT builds from files)::

    from hetero_infer.backends import create_backend
    from hetero_infer.backends.onnx_layers import layer_to_onnx

    be = create_backend('onnxruntime')                 # cpu0, cpu1
    target = be.load(layer_to_onnx(layer_a), 'cpu0')   # ModelProto is accepted directly
    other = be.load(layer_to_onnx(layer_b, seed=1), 'cpu1')
    with BackgroundLoop(other):                        # cpu1 loops layer_b
        ms = target.run(target.random_inputs()).execute_ms

Mapping (shapes include the batch; 1-D convs when the input has one spatial dim):
``conv``/``dwconv`` -> Conv (+ the activation named in ``op``), ``fc`` -> Gemm (Flatten first
when the input has more than 2 dims, MatMul on the last axis when the leading dims are kept),
``pool`` -> MaxPool/AveragePool (global pools when no kernel is given), ``eltwise`` -> Add/Mul/
Max/Min/Sub of two inputs, ``concat`` -> Concat of two inputs on the channel axis, ``act`` ->
the named activation, ``softmax`` -> Softmax, ``shuffle`` -> channel shuffle / Reshape,
``other`` -> LRN / Pad / Resize by ``op``, else Identity. Weights are float32, seeded.
Opset 13 and IR version 8, which onnxruntime >= 1.10 and TensorRT 8.5+ both read.
"""

from typing import List, Optional, Sequence, Tuple

import numpy as np

from hetero_infer.errors import ModelError

OPSET = 14  # HardSwish needs opset 14
IR_VERSION = 8

_ACTS = {'relu': 'Relu', 'sigmoid': 'Sigmoid', 'tanh': 'Tanh', 'hardswish': 'HardSwish',
         'hard_swish': 'HardSwish', 'leaky_relu': 'LeakyRelu', 'relu6': 'Clip', 'clip': 'Clip',
         'elu': 'Elu', 'softplus': 'Softplus', 'hardsigmoid': 'HardSigmoid'}
_ELTWISE = {'add': 'Add', 'sum': 'Add', 'mul': 'Mul', 'prod': 'Mul', 'max': 'Max', 'min': 'Min',
            'sub': 'Sub'}


class _Graph:
    def __init__(self, name: str, seed: int) -> None:
        import onnx.helper  # noqa: F401  (imported here: core code must not need onnx at import)
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes: List = []
        self.inits: List = []
        self.inputs: List = []
        self.n = 0

    def fresh(self, base: str) -> str:
        self.n += 1
        return '%s_%d' % (base, self.n)

    def input(self, name: str, shape: Sequence[int]) -> str:
        from onnx import TensorProto, helper
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                         [int(d) for d in shape]))
        return name

    def weight(self, base: str, shape: Sequence[int], scale: Optional[float] = None) -> str:
        from onnx import numpy_helper
        shape = tuple(int(d) for d in shape)
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        s = scale if scale is not None else 1.0 / np.sqrt(max(fan_in, 1))
        name = self.fresh(base)
        arr = (self.rng.standard_normal(shape) * s).astype(np.float32)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def const(self, base: str, values: Sequence, dtype: type = np.int64) -> str:
        from onnx import numpy_helper
        name = self.fresh(base)
        self.inits.append(numpy_helper.from_array(np.asarray(values, dtype=dtype), name))
        return name

    def node(self, op: str, inputs: Sequence[str], **attrs: object) -> str:
        from onnx import helper
        out = self.fresh(op.lower())
        self.nodes.append(helper.make_node(op, list(inputs), [out], **attrs))
        return out

    def model(self, output: str) -> 'onnx.ModelProto':  # noqa: F821
        import onnx
        from onnx import TensorProto, helper
        # rename the last node's output to 'output' so every layer model has the same output name
        self.nodes[-1].output[0] = 'output'
        del output
        graph = helper.make_graph(self.nodes, self.name, self.inputs,
                                  [helper.make_tensor_value_info('output', TensorProto.FLOAT,
                                                                 None)],
                                  initializer=self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET)],
                              producer_name='hetero_infer.onnx_layers')
        m.ir_version = IR_VERSION
        # the output's shape is whatever the op computes: let ONNX's shape inference fill it in
        m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
        onnx.checker.check_model(m)
        return m


def _activation(g: _Graph, x: str, op: str) -> str:
    for part in (p.strip().lower() for p in op.split('+')):
        if part in _ACTS:
            onnx_op = _ACTS[part]
            if onnx_op == 'Clip':
                lo, hi = (0.0, 6.0)
                return g.node('Clip', [x, g.const('lo', lo, np.float32),
                                       g.const('hi', hi, np.float32)])
            return g.node(onnx_op, [x])
    return x


def _pads(padding: Sequence[int], nd: int) -> List[int]:
    p = list(padding) if padding else [0] * nd
    if len(p) == 1 and nd > 1:
        p = p * nd
    return [int(v) for v in p[:nd]] * 2


def _spatial(values: Sequence[int], nd: int, default: int) -> List[int]:
    v = list(values) if values else [default] * nd
    if len(v) == 1 and nd > 1:
        v = v * nd
    return [int(x) for x in v[:nd]]


def layer_to_onnx(layer: 'Layer', *, seed: int = 0) -> 'onnx.ModelProto':  # noqa: F821
    """A small ONNX model computing ``layer`` on inputs named ``input`` (and ``input2`` for
    two-input layers), output named ``output``.

    :raises ModelError: the layer's shapes cannot form a valid graph (the layer is named).
    """
    try:
        return _layer_to_onnx(layer, seed)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - onnx.checker / shape errors: name the layer
        raise ModelError('cannot build an ONNX graph for layer %r (%s %s -> %s): %s'
                         % (layer.name, layer.kind, layer.in_shape, layer.out_shape,
                            exc)) from None


def _layer_to_onnx(layer: 'Layer', seed: int) -> 'onnx.ModelProto':  # noqa: F821
    g = _Graph('layer_' + (layer.name or layer.kind), seed)
    ins, outs = tuple(layer.in_shape), tuple(layer.out_shape)
    op = (layer.op or '').lower()
    if not ins or any(d < 1 for d in ins):
        raise ModelError('layer %r: bad input shape %s' % (layer.name, ins))
    x = g.input('input', ins)
    kind = layer.kind
    nd = len(ins) - 2
    if kind in ('conv', 'dwconv') and nd < 1:
        kind = 'fc'

    if kind in ('conv', 'dwconv'):
        c_in, c_out = ins[1], outs[1]
        groups = c_in if kind == 'dwconv' else max(1, int(layer.groups))
        if c_in % groups or c_out % groups:
            raise ModelError('layer %r: groups %d do not divide channels %d -> %d'
                             % (layer.name, groups, c_in, c_out))
        kernel = _spatial(layer.kernel, nd, 1)
        w = g.weight('w', (c_out, c_in // groups) + tuple(kernel))
        b = g.weight('b', (c_out,), 0.1)
        y = g.node('Conv', [x, w, b], kernel_shape=kernel, strides=_spatial(layer.stride, nd, 1),
                   pads=_pads(layer.padding, nd), group=groups)
        y = _activation(g, y, op)
    elif kind == 'fc':
        f_out = outs[-1]
        if len(ins) > 2 and tuple(outs[:-1]) == ins[:-1]:
            w = g.weight('w', (ins[-1], f_out))
            y = g.node('Add', [g.node('MatMul', [x, w]), g.weight('b', (f_out,), 0.1)])
        else:
            if len(ins) > 2:
                x = g.node('Flatten', [x], axis=1)
            f_in = int(np.prod(ins[1:]))
            w = g.weight('w', (f_out, f_in))
            y = g.node('Gemm', [x, w, g.weight('b', (f_out,), 0.1)], transB=1)
        y = _activation(g, y, op)
    elif kind == 'pool':
        is_max = 'max' in op
        if not layer.kernel or (nd >= 1 and all(d == 1 for d in outs[2:]) and not layer.stride):
            y = g.node('GlobalMaxPool' if is_max else 'GlobalAveragePool', [x])
        else:
            y = g.node('MaxPool' if is_max else 'AveragePool', [x],
                       kernel_shape=_spatial(layer.kernel, nd, 1),
                       strides=_spatial(layer.stride, nd, 1), pads=_pads(layer.padding, nd))
    elif kind == 'eltwise':
        onnx_op = next((v for k, v in _ELTWISE.items() if k in op), 'Add')
        y = g.node(onnx_op, [x, g.input('input2', ins)])
    elif kind == 'concat':
        extra = outs[1] - ins[1] if len(outs) == len(ins) and outs[1] > ins[1] else ins[1]
        y = g.node('Concat', [x, g.input('input2', (ins[0], extra) + ins[2:])], axis=1)
    elif kind == 'act':
        y = _activation(g, x, op or 'relu')
        if y == x:
            y = g.node('Relu', [x])
    elif kind == 'softmax':
        y = g.node('Softmax', [x], axis=1 if len(ins) == 2 else -1)
    elif kind == 'shuffle':
        if ins == outs and len(ins) == 4 and ins[1] % 2 == 0:
            n, c, h, w_ = ins
            y = g.node('Reshape', [x, g.const('s', (n, 2, c // 2, h, w_))])
            y = g.node('Transpose', [y], perm=[0, 2, 1, 3, 4])
            y = g.node('Reshape', [y, g.const('s', ins)])
        elif int(np.prod(ins)) == int(np.prod(outs)):
            y = g.node('Reshape', [x, g.const('s', outs)])
        else:
            y = g.node('Flatten', [x], axis=1)
    else:  # other
        if 'lrn' in op and len(ins) == 4:
            y = g.node('LRN', [x], size=5)
        elif 'pad' in op and len(ins) == len(outs) and nd >= 1:
            extra = [max(0, o - i) for i, o in zip(ins[2:], outs[2:])]
            pads = [0, 0] + [e // 2 for e in extra] + [0, 0] + [e - e // 2 for e in extra]
            y = g.node('Pad', [x, g.const('p', pads)])
        elif ('resize' in op or 'upsample' in op) and len(ins) == len(outs) and nd >= 1:
            scales = [1.0, 1.0] + [o / float(i) for i, o in zip(ins[2:], outs[2:])]
            y = g.node('Resize', [x, g.const('roi', [], np.float32),
                                  g.const('scales', scales, np.float32)], mode='nearest')
        else:
            y = g.node('Identity', [x])
    return g.model(y)


def save_layer_onnx(layer: 'Layer', path: str, *, seed: int = 0) -> str:  # noqa: F821
    """Write :func:`layer_to_onnx` to ``path``; returns ``path``."""
    import onnx
    onnx.save(layer_to_onnx(layer, seed=seed), path)
    return path


def layer_input_shapes(layer: 'Layer') -> Tuple[Tuple[int, ...], ...]:  # noqa: F821
    """Shapes of the inputs :func:`layer_to_onnx` declares, in order (``input``, ``input2``)."""
    model = layer_to_onnx(layer)
    return tuple(tuple(d.dim_value for d in i.type.tensor_type.shape.dim)
                 for i in model.graph.input)
