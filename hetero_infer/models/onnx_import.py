"""Build a layer table (:class:`~hetero_infer.models.zoo.ModelSpec`) from a user's ONNX file.

``onnx`` is imported lazily: only this function needs it. Shapes come from
``onnx.shape_inference.infer_shapes``; a symbolic batch dimension is taken as 1, any other
unknown dimension is an error. The table follows the zoo's conventions (see tools/gen_zoo.py):

- MACs: Conv = output elements x (in_channels / group) x kernel volume; ConvTranspose = input
  elements x (out_channels / group) x kernel volume; Gemm/MatMul = output elements x the
  reduced dimension; Einsum (two or more operands) = the product of every index's size in its
  equation x (operands - 1); every other node 0.
- Recurrent layers (LSTM, GRU, RNN) become one ``fc`` layer per time step (op ``'lstm'``, ...):
  a step is ``directions x batch x gates x hidden x (input + hidden)`` MACs (gates 4, 3, 1) and
  reads every weight (``W``, ``R``, ``B``) again, the step's input and the previous state, and
  writes the new state. They are GPU-only (TensorRT has no DLA recurrent layer), as is Einsum.
- The opset must be one onnx (and the installed onnxruntime) knows: see :func:`max_opset`.
- TensorRT fusions: a BatchNormalization whose input is the output of the layer just before it
  (a Conv/ConvTranspose/Gemm/MatMul) is folded into it, and a Relu or Clip(0, 6) following a
  conv/fc/eltwise/BN layer is folded into that layer (``op`` like ``'conv+bn+relu'``).
- Parameters (``weight_bytes`` = 2 x count, FP16) are the initializer elements a layer reads.
- Free nodes that only re-label or select data (Reshape, Flatten, Squeeze, Unsqueeze, Identity,
  Dropout, Cast, Slice, Split: the zoo treats ``chunk`` the same way) are not layers, nor are
  nodes computed from constants only (Shape arithmetic, which TensorRT folds).
- Add/Mul/Sub/Div with an initializer operand is a per-channel ``act`` layer (op ``'scale'``,
  TensorRT's IScaleLayer); with two data operands it is an ``eltwise`` layer.
- Known ops with no DLA meaning (Pad, Resize, LRN, Slice, Split, reductions, ...) map to
  ``'other'`` (never on DLA); Transpose/Gather/DepthToSpace/SpaceToDepth to ``'shuffle'``.
- A ``NonMaxSuppression`` (the end of a detector exported with its NMS, YOLO / SSD style) and
  every node computed from its output are cut off: that part is the host post-processing
  (:mod:`hetero_infer.serving.detection`); the table ends at the NMS's inputs (boxes and scores),
  recorded in ``extra['nms_cut']``.
- Anything else (control flow, custom domains, ...) is refused with a
  :class:`~hetero_infer.errors.ModelError` naming the file, the node and its op type.
"""

import os
from typing import Dict, List, Optional, Sequence, Tuple

from hetero_infer.errors import ModelError
from hetero_infer.models.dla_rules import dla_support
from hetero_infer.models.layers import BYTES_PER_ELEMENT, Layer, ModelSpec

_FREE = frozenset(('Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity', 'Dropout',
                   'Constant', 'Shape', 'Cast', 'ConstantOfShape', 'Size', 'Slice', 'Split'))
_ACTS = {'Relu': 'relu', 'Sigmoid': 'sigmoid', 'Tanh': 'tanh', 'Clip': 'clip',
         'LeakyRelu': 'leaky_relu', 'HardSwish': 'hardswish', 'HardSigmoid': 'hardsigmoid',
         'Elu': 'elu', 'Selu': 'selu', 'Softplus': 'softplus', 'Gelu': 'gelu', 'Erf': 'erf',
         'Exp': 'exp', 'Log': 'log', 'Sqrt': 'sqrt', 'Neg': 'neg', 'Abs': 'abs',
         'Reciprocal': 'reciprocal', 'PRelu': 'prelu', 'Mish': 'mish', 'Pow': 'pow'}
_ELTWISE = {'Add': 'sum', 'Sum': 'sum', 'Mul': 'prod', 'Sub': 'sub', 'Max': 'max',
            'Min': 'min', 'Div': 'div'}
_SHUFFLE = frozenset(('Transpose', 'Gather', 'GatherElements', 'DepthToSpace', 'SpaceToDepth'))
_OTHER = frozenset(('Pad', 'Resize', 'Upsample', 'LRN', 'Tile', 'Expand',
                    'ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceSum', 'ReduceL2',
                    'InstanceNormalization', 'LayerNormalization', 'GroupNormalization',
                    'LpNormalization', 'ArgMax', 'TopK', 'Where', 'Equal', 'Less', 'Greater',
                    'Not', 'And', 'Or', 'Floor', 'Ceil', 'Round', 'CumSum'))
#: Recurrent ops: gates per cell.
_RECURRENT = {'LSTM': 4, 'GRU': 3, 'RNN': 1}
#: Longest sequence a recurrent layer may unroll to (one table layer per step).
MAX_STEPS = 10000
#: Largest opset each onnxruntime minor release runs (its compatibility table); a newer release
#: is bounded by the opset the installed onnx knows.
ORT_MAX_OPSET = {'1.10': 15, '1.11': 16, '1.12': 17, '1.13': 17, '1.14': 18, '1.15': 19,
                 '1.16': 19, '1.17': 20, '1.18': 21, '1.19': 21, '1.20': 21}
_FUSABLE_ACTS = ('relu', 'relu6')
_FOLDABLE = frozenset(('Constant', 'Gather', 'Div', 'Mul', 'Add', 'Sub', 'Unsqueeze', 'Concat',
                       'Cast', 'Squeeze', 'Slice', 'Reshape'))
_CONV_KINDS = ('conv', 'dwconv', 'fc')


def _prod(values: Sequence[int]) -> int:
    n = 1
    for v in values:
        n *= int(v)
    return n


class _Builder(object):
    """Walks the graph in node order and emits layers (mutable dicts until the end)."""

    def __init__(self, path: str, graph, numpy_helper) -> None:
        self.path = path
        self.numpy_helper = numpy_helper
        self.inits = {t.name: t for t in graph.initializer}
        self.consts: Dict[str, object] = {}
        self.shapes: Dict[str, Tuple[Optional[int], ...]] = {}
        for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
            dims = vi.type.tensor_type.shape.dim if vi.type.HasField('tensor_type') else []
            if vi.type.HasField('tensor_type') and vi.type.tensor_type.HasField('shape'):
                self.shapes[vi.name] = tuple(d.dim_value if d.HasField('dim_value') else None
                                             for d in dims)
        for name, t in self.inits.items():
            self.shapes[name] = tuple(int(d) for d in t.dims)
        self.layers: List[dict] = []
        self.reread_params = 0   # weights counted again by every time step after the first
        self.producer: Dict[str, Optional[int]] = {}
        self.fused_act: Dict[int, bool] = {}
        self.image = False   # the input is an image (NCHW): a concat of another rank is no
        #                      channel concat (a detection head's flattened outputs)

    # -- helpers ---------------------------------------------------------------------------
    def where(self, node, idx: int) -> str:
        return '%s: node %r (op %s)' % (self.path, node.name or '#%d' % idx, node.op_type)

    def shape(self, name: str, node, idx: int) -> Tuple[int, ...]:
        dims = self.shapes.get(name)
        if dims is None:
            raise ModelError('%s: no inferred shape for tensor %r' % (self.where(node, idx),
                                                                      name))
        out = []
        for i, d in enumerate(dims):
            if d is None or d <= 0:
                if i == 0:
                    d = 1  # symbolic batch: tables are batch 1
                else:
                    raise ModelError('%s: tensor %r has an unknown dimension %d (shape %s)'
                                     % (self.where(node, idx), name, i, list(dims)))
            out.append(int(d))
        return tuple(out)

    def is_const(self, name: str) -> bool:
        return name in self.inits or name in self.consts

    def const_value(self, name: str):
        if name in self.inits:
            return self.numpy_helper.to_array(self.inits[name])
        return self.consts.get(name)

    def data_inputs(self, node) -> List[str]:
        return [i for i in node.input if i and not self.is_const(i)]

    def param_count(self, node) -> int:
        return sum(_prod(self.shapes.get(i, ())) for i in node.input
                   if i and self.is_const(i) and i in self.shapes)

    def add(self, node, idx: int, kind: str, in_name: str, out_name: str, *, macs: int = 0,
            params: int = 0, in_elems: Optional[int] = None, **kw) -> None:
        in_shape = self.shape(in_name, node, idx)
        out_shape = self.shape(out_name, node, idx)
        layer = dict(name=node.name or '%s_%d' % (node.op_type, idx), kind=kind,
                     in_shape=in_shape, out_shape=out_shape, macs=int(macs),
                     params=int(params), in_elems=_prod(in_shape) if in_elems is None
                     else int(in_elems), kernel=(), stride=(), padding=(), dilation=(),
                     groups=1, op='', axis=None, has_bias=True)
        layer.update(kw)
        self.layers.append(layer)
        for o in node.output:
            if o:
                self.producer[o] = len(self.layers) - 1

    def last_if_producer(self, name: str) -> Optional[dict]:
        idx = self.producer.get(name)
        if idx is not None and idx == len(self.layers) - 1:
            return self.layers[idx]
        return None

    def alias(self, node, src: Optional[str]) -> None:
        for o in node.output:
            if o:
                self.producer[o] = self.producer.get(src) if src else None

    # -- node handlers ----------------------------------------------------------------------
    def node(self, node, idx: int) -> None:
        op = node.op_type
        if node.domain not in ('', 'ai.onnx'):
            raise ModelError('%s: unsupported op domain %r' % (self.where(node, idx),
                                                               node.domain))
        attrs = {a.name: _attr_value(a) for a in node.attribute}
        if op == 'Constant':
            value = attrs.get('value')
            if value is not None:
                self.consts[node.output[0]] = self.numpy_helper.to_array(value)
                self.shapes.setdefault(node.output[0], tuple(int(d) for d in value.dims))
            else:
                self.consts[node.output[0]] = None
            return
        data = self.data_inputs(node)
        if op in ('Shape', 'Size') or not data:
            # Shape arithmetic (or anything computed from constants only) is folded away by
            # TensorRT: its outputs are constants, not layers.
            for o in node.output:
                if o:
                    self.consts.setdefault(o, None)
            return
        if op in _FREE:
            self.alias(node, data[0])
            return
        x, y = data[0], node.output[0]
        if op in ('Conv', 'ConvTranspose'):
            self.conv(node, idx, attrs, x, y, transpose=op == 'ConvTranspose')
        elif op in ('Gemm', 'MatMul'):
            self.fc(node, idx, attrs, data, y)
        elif op in ('MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool'):
            self.pool(node, idx, attrs, x, y)
        elif op == 'BatchNormalization':
            prev = self.last_if_producer(x)
            if prev is not None and prev['kind'] in _CONV_KINDS and '+' not in prev['op']:
                prev['op'] += '+bn'
                if not prev['has_bias']:  # the folded shift becomes the bias
                    prev['params'] += self.shape(x, node, idx)[1]
                    prev['has_bias'] = True
                self.producer[y] = len(self.layers) - 1
                return
            c = self.shape(x, node, idx)[1]
            self.add(node, idx, 'act', x, y, params=2 * c, op='bn')
        elif op in _ACTS:
            self.act(node, idx, attrs, x, y)
        elif op in _ELTWISE:
            ew = _ELTWISE[op]
            if len(data) < 2:
                self.add(node, idx, 'act', x, y, params=self.param_count(node), op='scale')
            else:
                shapes = [self.shape(d, node, idx) for d in data]
                big = max(range(len(data)), key=lambda i: _prod(shapes[i]))
                self.add(node, idx, 'eltwise', data[big], y, op=ew,
                         in_elems=sum(_prod(s) for s in shapes))
        elif op == 'ReduceMean' and self.spatial_mean(node, idx, attrs, x):
            self.add(node, idx, 'pool', x, y, kernel=self.shape(x, node, idx)[2:],
                     stride=self.shape(x, node, idx)[2:], op='avg',
                     padding=(0,) * (len(self.shape(x, node, idx)) - 2))
        elif op == 'Concat' and len([i for i in node.input if i]) == 1:
            self.alias(node, x)  # a one-input concat is a no-op
        elif op == 'Concat':
            rank = len(self.shape(y, node, idx))
            axis = int(attrs.get('axis', 1))
            axis = axis + rank if axis < 0 else axis
            elems = sum(_prod(self.shape(i, node, idx)) for i in node.input if i)
            self.add(node, idx, 'concat', x, y, op='concat', axis=axis, in_elems=elems)
        elif op in ('Softmax', 'LogSoftmax'):
            self.add(node, idx, 'softmax', x, y, op=op.lower())
        elif op in _SHUFFLE:  # constant inputs here are indices, not weights
            self.add(node, idx, 'shuffle', x, y, op=op.lower())
        elif op == 'Einsum':
            self.einsum(node, idx, attrs, y)
        elif op in _RECURRENT:
            self.recurrent(node, idx, attrs)
        elif op in _OTHER:
            params = self.param_count(node) if op.endswith('Normalization') else 0
            self.add(node, idx, 'other', x, y, op=op.lower(), params=params)
        else:
            raise ModelError(_unsupported(self.where(node, idx)))

    def spatial_mean(self, node, idx, attrs, x) -> bool:
        """Whether a ReduceMean averages exactly the spatial axes (a global average pool)."""
        rank = len(self.shape(x, node, idx))
        axes = attrs.get('axes')
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self.const_value(node.input[1])
        if axes is None:
            return False
        axes = sorted(int(a) % rank for a in list(axes))
        return rank > 2 and axes == list(range(2, rank))

    def conv(self, node, idx, attrs, x, y, *, transpose: bool) -> None:
        if len(node.input) < 2 or node.input[1] not in self.shapes:
            raise ModelError('%s: convolution weight has no known shape' % self.where(node, idx))
        w = self.shapes[node.input[1]]
        in_shape = self.shape(x, node, idx)
        out_shape = self.shape(y, node, idx)
        nd = len(in_shape) - 2
        kernel = tuple(int(k) for k in (attrs.get('kernel_shape') or w[2:]))
        stride = tuple(attrs.get('strides') or (1,) * nd)
        dilation = tuple(attrs.get('dilations') or (1,) * nd)
        group = int(attrs.get('group', 1))
        pads = attrs.get('pads')
        auto_pad = attrs.get('auto_pad', b'NOTSET')
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
        if pads:
            padding = tuple(max(pads[i], pads[i + nd]) for i in range(nd))
        elif auto_pad in ('SAME_UPPER', 'SAME_LOWER') and not transpose:
            padding = tuple(
                (max((o - 1) * s + (k - 1) * d + 1 - i, 0) + 1) // 2
                for i, o, k, s, d in zip(in_shape[2:], out_shape[2:], kernel, stride, dilation))
        else:
            padding = (0,) * nd
        cin = in_shape[1]
        if transpose:
            macs = _prod(in_shape) * (w[1]) * _prod(kernel)
            kind, op = 'conv', 'deconv'
        else:
            macs = _prod(out_shape) * (cin // group) * _prod(kernel)
            kind = 'dwconv' if group == cin and group > 1 else 'conv'
            op = kind
        self.add(node, idx, kind, x, y, macs=macs, params=self.param_count(node),
                 kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                 groups=group, op=op, has_bias=len(node.input) > 2 and bool(node.input[2]))

    def fc(self, node, idx, attrs, data, y) -> None:
        a = data[0]
        a_shape = self.shape(a, node, idx)
        out_shape = self.shape(y, node, idx)
        if node.op_type == 'Gemm':
            k = a_shape[0] if attrs.get('transA', 0) else a_shape[-1]
        else:
            k = a_shape[-1]
        elems = sum(_prod(self.shape(d, node, idx)) for d in data)
        self.add(node, idx, 'fc', a, y, macs=_prod(out_shape) * k,
                 params=self.param_count(node), in_elems=elems,
                 op='matmul' if node.op_type == 'MatMul' else 'fc',
                 has_bias=len(node.input) > 2 and bool(node.input[2]))

    def pool(self, node, idx, attrs, x, y) -> None:
        in_shape = self.shape(x, node, idx)
        nd = len(in_shape) - 2
        ptype = 'max' if 'Max' in node.op_type else 'avg'
        if node.op_type.startswith('Global'):
            kernel = tuple(in_shape[2:])
            stride = kernel
            padding = (0,) * nd
        else:
            if 'kernel_shape' not in attrs:
                raise ModelError('%s: pooling without kernel_shape' % self.where(node, idx))
            kernel = tuple(int(k) for k in attrs['kernel_shape'])
            stride = tuple(attrs.get('strides') or (1,) * nd)
            pads = attrs.get('pads')
            auto_pad = attrs.get('auto_pad', b'NOTSET')
            auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
            if pads:
                padding = tuple(max(pads[i], pads[i + nd]) for i in range(nd))
            elif auto_pad in ('SAME_UPPER', 'SAME_LOWER'):
                out_shape = self.shape(y, node, idx)
                padding = tuple((max((o - 1) * s + k - i, 0) + 1) // 2 for i, o, k, s in
                                zip(in_shape[2:], out_shape[2:], kernel, stride))
            else:
                padding = (0,) * nd
        self.add(node, idx, 'pool', x, y, kernel=kernel, stride=stride, padding=padding,
                 op=ptype)

    def act(self, node, idx, attrs, x, y) -> None:
        name = _ACTS[node.op_type]
        if name == 'clip':
            lo, hi = attrs.get('min'), attrs.get('max')
            if len(node.input) > 1 and node.input[1]:
                lo = self.const_value(node.input[1])
            if len(node.input) > 2 and node.input[2]:
                hi = self.const_value(node.input[2])
            try:
                if float(lo) == 0.0 and float(hi) == 6.0:
                    name = 'relu6'
            except (TypeError, ValueError):
                pass
        prev = self.last_if_producer(x)
        if name in _FUSABLE_ACTS and prev is not None and \
                not self.fused_act.get(len(self.layers) - 1) and (
                    prev['kind'] in _CONV_KINDS + ('eltwise',)
                    or (prev['kind'] == 'act' and prev['op'] == 'bn')):
            prev['op'] += '+' + name
            self.fused_act[len(self.layers) - 1] = True
            self.producer[y] = len(self.layers) - 1
            return
        self.add(node, idx, 'act', x, y, op=name,
                 params=self.param_count(node) if name == 'prelu' else 0)

    def einsum(self, node, idx, attrs, y) -> None:
        eq = attrs.get('equation', b'')
        eq = (eq.decode() if isinstance(eq, bytes) else str(eq)).replace(' ', '')
        operands = [i for i in node.input if i]
        shapes = [self.shape(i, node, idx) for i in operands]
        macs = einsum_macs(eq, shapes, self.where(node, idx))
        data = self.data_inputs(node)
        biggest = max(data, key=lambda i: _prod(self.shape(i, node, idx)))
        elems = sum(_prod(self.shape(d, node, idx)) for d in data)
        if len(operands) < 2:  # a transpose, trace or sum of one tensor
            self.add(node, idx, 'shuffle' if macs == 0 else 'other', biggest, y, op='einsum',
                     in_elems=elems, gpu_only='Einsum')
            return
        self.add(node, idx, 'fc', biggest, y, macs=macs, params=self.param_count(node),
                 in_elems=elems, op='einsum', gpu_only='Einsum')

    def recurrent(self, node, idx, attrs) -> None:
        """One ``fc`` layer per time step (see the module docstring)."""
        op = node.op_type
        where = self.where(node, idx)
        x = node.input[0]
        raw = self.shapes.get(x)
        if raw is None or len(raw) != 3:
            raise ModelError('%s: input %r needs a known 3-D shape, got %s' % (where, x, raw))
        layout = int(attrs.get('layout', 0))
        seq_axis, batch_axis = (1, 0) if layout else (0, 1)
        steps, batch, width = raw[seq_axis], raw[batch_axis] or 1, raw[2]
        if not steps or not width:
            raise ModelError('%s: sequence length and input size must be fixed, got shape %s '
                             '(export with a fixed sequence length)' % (where, list(raw)))
        if steps > MAX_STEPS:
            raise ModelError('%s: %d time steps, at most %d' % (where, steps, MAX_STEPS))
        for i in node.input[1:3]:
            if not i or not self.is_const(i) or i not in self.shapes:
                raise ModelError('%s: weights %r must be initializers' % (where, i))
        w = self.shapes[node.input[1]]
        dirs = 2 if attrs.get('direction', b'forward') in (b'bidirectional', 'bidirectional') \
            else 1
        hidden = int(attrs.get('hidden_size') or w[1] // _RECURRENT[op])
        gates = _RECURRENT[op]
        per_step = dirs * batch * gates * hidden * (width + hidden)
        params = self.param_count(node)
        state = 2 if op == 'LSTM' else 1      # LSTM carries h and c
        name = node.name or '%s_%d' % (op, idx)
        self.reread_params += params * (steps - 1)
        for t in range(steps):
            self.layers.append(dict(
                name='%s/t%d' % (name, t), kind='fc', in_shape=(batch, width + hidden),
                out_shape=(dirs, batch, hidden), macs=per_step, params=params,
                in_elems=dirs * batch * (width + state * hidden),
                out_elems=dirs * batch * state * hidden, kernel=(), stride=(), padding=(),
                dilation=(), groups=1, op=op.lower(), axis=None, has_bias=True,
                gpu_only=op))
        for o in node.output:
            if o:
                self.producer[o] = len(self.layers) - 1

    def finish(self) -> Tuple[Layer, ...]:
        out = []
        for d in self.layers:
            if d.get('gpu_only'):
                ok, reason = False, '%s is not a DLA layer (GPU only)' % d['gpu_only']
            else:
                rank = len(d['out_shape']) if d['kind'] == 'concat' and self.image else None
                ok, reason = dla_support(d['kind'], op=d['op'], kernel=d['kernel'],
                                         stride=d['stride'], padding=d['padding'],
                                         dilation=d['dilation'], groups=d['groups'],
                                         axis=d['axis'], rank=rank)
            out.append(Layer(
                name=d['name'], kind=d['kind'], in_shape=d['in_shape'],
                out_shape=d['out_shape'], macs=d['macs'],
                weight_bytes=d['params'] * BYTES_PER_ELEMENT,
                in_bytes=d['in_elems'] * BYTES_PER_ELEMENT,
                out_bytes=d.get('out_elems', _prod(d['out_shape'])) * BYTES_PER_ELEMENT,
                kernel=tuple(int(k) for k in d['kernel']),
                stride=tuple(int(s) for s in d['stride']),
                padding=tuple(int(p) for p in d['padding']), groups=int(d['groups']),
                op=d['op'], dla=ok, dla_reason=reason))
        return tuple(out)


_KNOWN = (_FREE | frozenset(_ACTS) | frozenset(_ELTWISE) | _SHUFFLE | _OTHER | _FOLDABLE
          | frozenset(('Conv', 'ConvTranspose', 'Gemm', 'MatMul', 'MaxPool', 'AveragePool',
                       'GlobalAveragePool', 'GlobalMaxPool', 'BatchNormalization', 'Concat',
                       'Softmax', 'LogSoftmax', 'Einsum')) | frozenset(_RECURRENT))


def _unsupported(where: str) -> str:
    return ('%s: unsupported op type (supported: Conv, ConvTranspose, Gemm, MatMul, Einsum, '
            'LSTM, GRU, RNN, pools, BatchNormalization, element-wise, Concat, activations, '
            'Softmax, layout ops)'
            % where)


def einsum_macs(equation: str, shapes: Sequence[Tuple[int, ...]], where: str) -> int:
    """MACs of an Einsum: the product of every index's size x (operands - 1); 0 for one operand.

    ``'...'`` (broadcast dimensions) is supported; a missing ``'->'`` is the implicit output.

    :raises ModelError: the equation does not match the operands (``where`` names the node).
    """
    lhs = equation.split('->')[0]
    terms = lhs.split(',')
    if len(terms) != len(shapes) or not all(c.isalpha() or c in '.,->' for c in equation):
        raise ModelError('%s: einsum equation %r does not fit %d operands'
                         % (where, equation, len(shapes)))
    sizes: Dict[str, int] = {}
    for term, shape in zip(terms, shapes):
        letters = list(term.replace('...', ''))
        if '...' in term:
            n_ell = len(shape) - len(letters)
            if n_ell < 0:
                raise ModelError('%s: einsum term %r has more indices than dimensions %s'
                                 % (where, term, list(shape)))
            head, _, tail = term.partition('...')
            # broadcast dimensions align from the right: name them by distance from the end
            letters = list(head) + ['.%d' % (n_ell - k) for k in range(n_ell)] + list(tail)
        if len(letters) != len(shape):
            raise ModelError('%s: einsum term %r does not match shape %s'
                             % (where, term, list(shape)))
        for letter, dim in zip(letters, shape):
            sizes[letter] = max(sizes.get(letter, 1), int(dim))
    if len(shapes) < 2:
        return 0
    return _prod(sizes.values()) * (len(shapes) - 1)


def max_opset() -> int:
    """Highest default-domain opset this machine can import and run.

    The opset the installed onnx knows (its shape inference knows no later one), lowered to the
    installed onnxruntime's limit (:data:`ORT_MAX_OPSET`, read from the package metadata:
    onnxruntime itself is not imported here).
    """
    import onnx
    bound = int(onnx.defs.onnx_opset_version())
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python < 3.8
        return bound
    try:
        ort = version('onnxruntime')
    except PackageNotFoundError:
        try:
            ort = version('onnxruntime-gpu')
        except PackageNotFoundError:
            return bound
    return min(bound, ORT_MAX_OPSET.get('.'.join(ort.split('.')[:2]), bound))


def _check_opset(path: str, model) -> None:
    top = max_opset()
    for imp in model.opset_import:
        if imp.domain in ('', 'ai.onnx') and not 1 <= imp.version <= top:
            raise ModelError('ONNX file %s: opset %d is not supported (this machine runs '
                             'opsets 1 to %d); re-export with a supported opset'
                             % (path, imp.version, top))


def _cut_nms(model) -> Optional[Dict[str, object]]:
    """Remove the first ``NonMaxSuppression`` and every node downstream of it; the graph's
    outputs become the NMS's boxes and scores. Returns what was cut (None: no NMS)."""
    from onnx import helper
    graph = model.graph
    nodes = list(graph.node)
    first = next((i for i, n in enumerate(nodes) if n.op_type == 'NonMaxSuppression'), None)
    if first is None:
        return None
    nms = nodes[first]
    tainted = {o for o in nms.output if o}
    removed = [nms]
    for node in nodes[first + 1:]:
        if any(i in tainted for i in node.input) or node.op_type == 'NonMaxSuppression':
            tainted.update(o for o in node.output if o)
            removed.append(node)
    keep = [n for n in nodes if all(n is not r for r in removed)]
    outs = [i for i in nms.input[:2] if i]
    del graph.node[:]
    graph.node.extend(keep)
    kept_outputs = [o for o in graph.output if o.name not in tainted and o.name not in outs]
    del graph.output[:]
    graph.output.extend(kept_outputs)
    graph.output.extend(helper.make_empty_tensor_value_info(o) for o in outs)
    center = 0
    for a in nms.attribute:
        if a.name == 'center_point_box':
            center = int(helper.get_attribute_value(a))
    return {'node': nms.name or 'NonMaxSuppression', 'nodes_cut': len(removed),
            'outputs': outs, 'center_point_box': center}


def cut_nms_file(path: str, out_dir: str) -> Optional[Tuple[str, Dict[str, object]]]:
    """Write ``path`` without its trailing ``NonMaxSuppression`` (and what follows it) as
    ``<out_dir>/<name>.<size>-<mtime>.nms_cut.onnx``, what the backends run so that the host
    post-processing sees the boxes and scores the NMS took. Returns ``(new path, what was
    cut)``, or None when the file has no NMS.

    :raises ModelError: an unreadable file (named).
    """
    import onnx
    try:
        model = onnx.load(path)
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own DecodeError and friends
        raise ModelError('cannot read ONNX file %s: %s' % (path, exc)) from None
    cut = _cut_nms(model)
    if cut is None:
        return None
    st = os.stat(path)
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, '%s.%d-%d.nms_cut.onnx' % (
        os.path.splitext(os.path.basename(path))[0], st.st_size, int(st.st_mtime)))
    if not os.path.exists(out):
        tmp = out + '.%d.tmp' % os.getpid()
        onnx.save(model, tmp)
        os.replace(tmp, out)
    return out, cut


def _check_ops(path: str, graph) -> None:
    """Refuse unknown ops before shape inference, whose own error would not name them well."""
    for idx, node in enumerate(graph.node):
        where = '%s: node %r (op %s)' % (path, node.name or '#%d' % idx, node.op_type)
        if node.domain not in ('', 'ai.onnx'):
            raise ModelError('%s: unsupported op domain %r' % (where, node.domain))
        if node.op_type not in _KNOWN:
            raise ModelError(_unsupported(where))


def _attr_value(attr):
    from onnx import helper
    return helper.get_attribute_value(attr)


def _fold_shape_arithmetic(model):
    """Evaluate constant-only subgraphs (``Shape`` -> ``Gather`` -> ``Div`` ... as exporters
    write for ``chunk`` or ``view``) into initializers and infer shapes again, so tensors whose
    shape depends on them (a dynamic ``Slice``) get a static shape."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    try:
        from onnx.reference import ReferenceEvaluator
    except ImportError:  # onnx < 1.13 (old JetPack wheels): dynamic slices stay unresolved
        return model
    graph = model.graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    shapes = {}
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        if vi.type.HasField('tensor_type') and vi.type.tensor_type.HasField('shape'):
            dims = vi.type.tensor_type.shape.dim
            if all(d.HasField('dim_value') for d in dims):
                shapes[vi.name] = [int(d.dim_value) for d in dims]
    folded = []
    for node in graph.node:
        if node.op_type == 'Shape' and node.input[0] in shapes and not node.attribute:
            values[node.output[0]] = np.array(shapes[node.input[0]], dtype=np.int64)
        elif node.domain in ('', 'ai.onnx') and node.op_type in _FOLDABLE and \
                all(i in values for i in node.input if i):
            try:
                outs = ReferenceEvaluator(node).run(
                    None, {i: values[i] for i in node.input if i})
            except Exception:  # noqa: BLE001 - leave it to the normal path (which names the node)
                continue
            for name, val in zip(node.output, outs):
                values[name] = np.asarray(val)
        else:
            continue
        folded.append(node)
    if not any(n.op_type == 'Shape' for n in folded):
        return model
    produced = {o for n in folded for o in n.output}
    keep = [n for n in graph.node if n not in folded]
    used = {i for n in keep for i in n.input} | {o.name for o in graph.output}
    del graph.node[:]
    graph.node.extend(keep)
    have = {t.name for t in graph.initializer}
    for name in sorted(produced & used - have):
        graph.initializer.append(numpy_helper.from_array(values[name], name))
    return onnx.shape_inference.infer_shapes(model, data_prop=True)


def model_from_onnx(path: str, *, name: Optional[str] = None,
                    domain: Optional[str] = None) -> ModelSpec:
    """Read an ONNX file into a layer table.

    :param path: the ``.onnx`` file.
    :param name: model name (default: the file name without extension).
    :param domain: ``'vision'`` or ``'audio'`` as the configuration says (an application's
        input type, a model index entry); without it, the file's ``domain`` metadata, else a
        guess from the input rank (3-D: audio features), recorded as ``extra['domain_guessed']``.
    :raises ModelError: missing, unreadable or malformed file (the message names the file);
        an unsupported op or a tensor without an inferable shape (it names the file and the node).
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:  # pragma: no cover - onnx is a hard dependency
        raise ModelError('cannot import ONNX file %s: the onnx package is missing (%s)'
                         % (path, exc)) from None
    if not os.path.isfile(path):
        raise ModelError('ONNX file not found: %s' % path)
    try:
        model = onnx.load(path)
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own DecodeError and friends
        raise ModelError('cannot read ONNX file %s: %s' % (path, exc)) from None
    graph = model.graph
    if not graph.node:
        raise ModelError('ONNX file %s has no nodes (not an ONNX model?)' % path)
    _check_opset(path, model)
    cut = _cut_nms(model)
    _check_ops(path, graph)
    try:
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
        model = _fold_shape_arithmetic(model)
    except Exception as exc:  # noqa: BLE001 - onnx raises its own error types
        raise ModelError('shape inference failed for ONNX file %s: %s' % (path, exc)) from None
    graph = model.graph
    builder = _Builder(path, graph, numpy_helper)
    inputs = [i for i in graph.input if i.name not in builder.inits]
    if not inputs:
        raise ModelError('ONNX file %s has no graph input' % path)
    for i in inputs:
        builder.producer[i.name] = None
    builder.image = len(builder.shapes.get(inputs[0].name) or ()) == 4
    for idx, node in enumerate(graph.node):
        try:
            builder.node(node, idx)
        except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError) as exc:
            if isinstance(exc, ModelError):
                raise
            # An attribute or input the op requires is missing or of the wrong type: the file
            # is malformed (onnx's checker is not run, so such files reach here).
            raise ModelError('%s: malformed node: %s: %s'
                             % (builder.where(node, idx), type(exc).__name__, exc)) from None
    layers = builder.finish()
    if not layers:
        raise ModelError('ONNX file %s has no compute layers' % path)
    inp = inputs[0]
    in_shape = builder.shapes.get(inp.name) or ()
    in_shape = tuple(1 if (d is None or d <= 0) and i == 0 else int(d or 0)
                     for i, d in enumerate(in_shape))
    meta = {p.key: p.value for p in model.metadata_props}
    guessed = not (domain or meta.get('domain'))
    domain = domain or meta.get('domain') or ('audio' if len(in_shape) == 3 else 'vision')
    if domain not in ('vision', 'audio'):
        raise ModelError('ONNX file %s: domain %r is not vision or audio' % (path, domain))
    labels = layers[-1].out_shape[-1] if layers[-1].out_shape else 0
    params = sum(layer.weight_bytes for layer in layers) // BYTES_PER_ELEMENT \
        - builder.reread_params
    extra = {'params': int(params), 'gmacs': round(sum(layer.macs for layer in layers) / 1e9, 6),
             'labels': int(meta['labels']) if meta.get('labels', '').isdigit() else int(labels)}
    if guessed:
        extra['domain_guessed'] = True
    if cut is not None:
        extra['nms_cut'] = cut
    if meta.get('detector'):
        extra['detector'] = meta['detector']
    return ModelSpec(name=name or os.path.splitext(os.path.basename(path))[0], layers=layers,
                     input_name=inp.name, input_shape=in_shape, domain=domain,
                     source='onnx:%s' % os.path.basename(path), extra=extra)
