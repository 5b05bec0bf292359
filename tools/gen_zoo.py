#!/usr/bin/env python3
"""Generate the model zoo's layer tables (``hetero_infer/data/zoo/<name>.json``).

Runs the REAL architectures (torchvision classifiers with random weights, ``weights=None``; two
speech models defined below after their papers) once on a batch-1 input and records every
operation in execution order. Needs torch and torchvision, which the project itself never
depends on: the generated JSON is committed. Typical use::

    python3.11 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch torchvision numpy pyyaml
    PYTHONPATH=. /tmp/torchvenv/bin/python tools/gen_zoo.py            # all models
    PYTHONPATH=. /tmp/torchvenv/bin/python tools/gen_zoo.py resnet50   # one

How operations are captured: a ``torch.overrides.TorchFunctionMode`` sees every torch call the
forward pass makes (module ones such as ``F.conv2d`` and functional ones such as ``torch.cat``,
``out += identity``, ``x.mean([2, 3])``, the transpose of a channel shuffle), which forward
hooks alone would miss; module pre/post hooks only supply the layer names. Nested calls are not
seen twice because the mode is switched off while a call it intercepted runs.

Table conventions (what the simulators rely on):

- TensorRT fusions: a BatchNorm directly consuming a conv/fc output is folded into it (its shift
  becomes the conv bias), and a ReLU/ReLU6 directly following is folded too (``op`` like
  ``'conv+bn+relu'``). A ReLU directly after a residual add or a standalone BatchNorm is fused
  into that layer as well (TensorRT's element-wise/scale + activation fusion). Other
  activations (hardswish, SiLU, sigmoid, ...) stay standalone ``act`` layers.
- MACs: conv = output elements x (in_channels / groups) x kernel volume, fc = in x out features,
  every other layer 0 (memory-bound; its cost is its bytes). This is how torchvision's
  "GFLOPS" (really GMACs) are counted, so model totals match FACTS.md.
- Parameters: conv/fc weights and biases with BatchNorm folded into the bias, plus 2 per channel
  of a standalone BatchNorm (scale and shift). ``weight_bytes`` = 2 x parameters (FP16).
- Bytes: FP16, 2 bytes an element; ``in_bytes`` sums all tensor inputs (weights excluded).
- Free operations (view/flatten/reshape/contiguous/chunk/dropout/identity pools) are not layers.
- Classifiers end with a ``softmax`` layer: serving returns probabilities.
- ``in_shape`` is the first tensor input's shape; the element count equals that of an earlier
  layer's output (or the model input), which the zoo test checks.
"""

import argparse
import json
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from hetero_infer.core.dla_rules import dla_support  # noqa: E402
from hetero_infer.core.model import ZOO_DIR, Layer, ModelSpec  # noqa: E402

BPE = 2

# ----------------------------------------------------------------------------------------------
# Speech models, after the papers.
# MatchboxNet (Majumdar & Ginsburg 2020, Table 1 and NeMo's matchboxnet_3x1x64 config): prologue
# C1 (128 ch, k 11), B blocks of R=1 separable sub-blocks (64 ch, k 13/15/17) with a 1x1-conv+BN
# residual, C2 (128, k 29, dilation 2), C3 (128, k 1), global average pool and a linear layer
# over the 35 Speech Commands v2 classes. Input: 64 MFCC x 101 frames (1 s at 10 ms hop).
# QuartzNet 15x5 (Kriman et al. 2020, Table 1): C1 (256, k 33, stride 2), B1..B5 = 3 blocks each
# of 5 separable sub-blocks (256/k33, 256/k39, 512/k51, 512/k63, 512/k75) with 1x1-conv+BN
# residuals, C2 (512, k 87, dilation 2), C3 (1024, k 1), C4 (1x1 conv to 29 characters).
# Input: 64 mel x 128 frames (OpenVINO's quartznet-15x5-en figure).
# ----------------------------------------------------------------------------------------------


class _SepConvBN(nn.Module):
    """Time-channel separable 1-D conv: depthwise (k) -> pointwise (1x1) -> BN [-> ReLU]."""

    def __init__(self, cin: int, cout: int, k: int, *, stride: int = 1, dilation: int = 1,
                 relu: bool = True) -> None:
        super().__init__()
        pad = dilation * (k - 1) // 2
        self.dw = nn.Conv1d(cin, cin, k, stride=stride, padding=pad, dilation=dilation,
                            groups=cin, bias=False)
        self.pw = nn.Conv1d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm1d(cout)
        self.relu = nn.ReLU(inplace=True) if relu else None

    def forward(self, x):
        x = self.bn(self.pw(self.dw(x)))
        return self.relu(x) if self.relu is not None else x


class _JasperBlock(nn.Module):
    """R separable sub-blocks; a 1x1-conv+BN residual is added before the last ReLU."""

    def __init__(self, cin: int, cout: int, k: int, repeat: int) -> None:
        super().__init__()
        subs = []
        for i in range(repeat):
            subs.append(_SepConvBN(cin if i == 0 else cout, cout, k, relu=i < repeat - 1))
        self.subs = nn.Sequential(*subs)
        self.res = nn.Sequential(nn.Conv1d(cin, cout, 1, bias=False), nn.BatchNorm1d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.subs(x)
        out = out + self.res(x)
        return self.relu(out)


class MatchboxNet(nn.Module):
    def __init__(self, n_mfcc: int = 64, classes: int = 35) -> None:
        super().__init__()
        self.prologue = _SepConvBN(n_mfcc, 128, 11)
        self.b1 = _JasperBlock(128, 64, 13, 1)
        self.b2 = _JasperBlock(64, 64, 15, 1)
        self.b3 = _JasperBlock(64, 64, 17, 1)
        self.c2 = _SepConvBN(64, 128, 29, dilation=2)
        self.c3 = nn.Sequential(nn.Conv1d(128, 128, 1, bias=False), nn.BatchNorm1d(128),
                                nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(128, classes)

    def forward(self, x):
        x = self.c3(self.c2(self.b3(self.b2(self.b1(self.prologue(x))))))
        return self.fc(torch.flatten(self.pool(x), 1))


class QuartzNet(nn.Module):
    def __init__(self, n_mels: int = 64, vocab: int = 29, repeat: int = 5) -> None:
        super().__init__()
        self.c1 = _SepConvBN(n_mels, 256, 33, stride=2)
        blocks = []
        cin = 256
        for cout, k in ((256, 33), (256, 39), (512, 51), (512, 63), (512, 75)):
            for _ in range(3):
                blocks.append(_JasperBlock(cin, cout, k, repeat))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.c2 = _SepConvBN(512, 512, 87, dilation=2)
        self.c3 = nn.Sequential(nn.Conv1d(512, 1024, 1, bias=False), nn.BatchNorm1d(1024),
                                nn.ReLU(inplace=True))
        self.c4 = nn.Conv1d(1024, vocab, 1, bias=True)

    def forward(self, x):
        return self.c4(self.c3(self.c2(self.blocks(self.c1(x)))))


# ----------------------------------------------------------------------------------------------
# Model list: name -> (builder, input shape, domain, number of labels, softmax axis)
# ----------------------------------------------------------------------------------------------

EVAL_MODELS = ('alexnet', 'vgg16', 'vgg19', 'resnet18', 'resnet34', 'resnet50', 'resnet101',
               'resnet152', 'densenet121', 'googlenet', 'inception_v3', 'mobilenet_v2',
               'squeezenet1_1', 'shufflenet_v2_x1_0')
EXTRA_VISION = ('squeezenet1_0', 'mobilenet_v3_large', 'efficientnet_b0', 'mnasnet1_0',
                'regnet_y_400mf', 'wide_resnet50_2', 'resnext50_32x4d')
SPEECH = ('matchboxnet_kws', 'quartznet15x5')


def _build(name: str) -> Tuple[nn.Module, Tuple[int, ...], str, int]:
    if name == 'matchboxnet_kws':
        return MatchboxNet(), (1, 64, 101), 'audio', 35
    if name == 'quartznet15x5':
        return QuartzNet(), (1, 64, 128), 'audio', 29
    import torchvision.models as tvm
    kwargs = {'weights': None}
    if name in ('googlenet', 'inception_v3'):
        kwargs.update(aux_logits=False, init_weights=False)
    model = getattr(tvm, name)(**kwargs)
    size = 299 if name == 'inception_v3' else 224
    return model, (1, 3, size, size), 'vision', 1000


# ----------------------------------------------------------------------------------------------
# Tracing
# ----------------------------------------------------------------------------------------------

_FREE = {'view', 'reshape', 'flatten', 'contiguous', 'dropout', 'chunk', 'split', 'squeeze',
         'unsqueeze', '__getitem__', 'clone', 'detach', 'alpha_dropout', 'feature_dropout',
         'dropout1d', 'dropout2d', 'identity', 'to', 'float', 'type_as'}
_IGNORE = {'size', 'dim', 'shape', '__get__', 'numel', '__len__', '__format__',
           'is_floating_point', 'get_device', '__bool__', '__iter__', 'requires_grad_', 'device',
           'dtype'}
_ELTWISE = {'add': 'sum', 'add_': 'sum', '__add__': 'sum', '__iadd__': 'sum', '__radd__': 'sum',
            'mul': 'prod', 'mul_': 'prod', '__mul__': 'prod', '__imul__': 'prod',
            '__rmul__': 'prod', 'sub': 'sub', '__sub__': 'sub', 'maximum': 'max',
            'minimum': 'min'}
_ACTS = {'relu': 'relu', 'relu_': 'relu', 'relu6': 'relu6', 'hardtanh': 'clip',
         'hardtanh_': 'clip', 'sigmoid': 'sigmoid', 'tanh': 'tanh', 'hardswish': 'hardswish',
         'hardsigmoid': 'hardsigmoid', 'silu': 'silu', 'gelu': 'gelu', 'elu': 'elu',
         'leaky_relu': 'leaky_relu', 'sigmoid_': 'sigmoid', 'hardswish_': 'hardswish',
         'silu_': 'silu', 'hardsigmoid_': 'hardsigmoid', 'clamp': 'clip'}
_FUSABLE_ACTS = ('relu', 'relu6')


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _tup(v, n: int) -> Tuple[int, ...]:
    if v is None:
        return ()
    if isinstance(v, (list, tuple)):
        if len(v) == 1 and n > 1:
            return tuple(int(v[0]) for _ in range(n))
        return tuple(int(x) for x in v)
    return tuple(int(v) for _ in range(n))


def _arg(args, kwargs, pos: int, name: str, default=None):
    if name in kwargs:
        return kwargs[name]
    if len(args) > pos:
        return args[pos]
    return default


class _Rec(object):
    """A layer under construction (mutable until the trace ends)."""

    def __init__(self, name, kind, in_shape, out_shape, in_elems, **kw):
        self.name = name
        self.kind = kind
        self.in_shape = tuple(in_shape)
        self.out_shape = tuple(out_shape)
        self.in_elems = in_elems
        self.macs = kw.get('macs', 0)
        self.params = kw.get('params', 0)
        self.has_bias = kw.get('has_bias', True)
        self.kernel = kw.get('kernel', ())
        self.stride = kw.get('stride', ())
        self.padding = kw.get('padding', ())
        self.dilation = kw.get('dilation', ())
        self.groups = kw.get('groups', 1)
        self.op = kw.get('op', '')
        self.axis = kw.get('axis', None)
        self.fused_act = False

    def to_layer(self) -> Layer:
        ok, reason = dla_support(self.kind, op=self.op, kernel=self.kernel, stride=self.stride,
                                 padding=self.padding, dilation=self.dilation,
                                 groups=self.groups, axis=self.axis)
        return Layer(name=self.name, kind=self.kind, in_shape=self.in_shape,
                     out_shape=self.out_shape, macs=int(self.macs),
                     weight_bytes=int(self.params) * BPE, in_bytes=int(self.in_elems) * BPE,
                     out_bytes=_numel(self.out_shape) * BPE, kernel=tuple(self.kernel),
                     stride=tuple(self.stride), padding=tuple(self.padding),
                     groups=int(self.groups), op=self.op, dla=ok, dla_reason=reason)


class _Tracer(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.layers: List[_Rec] = []
        self.producer: Dict[int, Optional[int]] = {}   # id(tensor) -> layer index (None: input)
        self.keep: List[torch.Tensor] = []            # keeps ids unique during the trace
        self.scope: List[Tuple[str, bool]] = [('', False)]
        self.names: Dict[str, int] = {}
        self.unknown: Dict[str, int] = {}

    # -- helpers --------------------------------------------------------------------------
    def _name(self, suffix: str = '') -> str:
        base, leaf = self.scope[-1]
        # A leaf module's own op takes the module's name; ops of a composite get a suffix.
        name = (base or 'model') if (leaf and base) else \
            ('%s.%s' % (base, suffix) if base else suffix or 'model')
        n = self.names.get(name, 0)
        self.names[name] = n + 1
        return name if n == 0 else '%s_%d' % (name, n)

    def _mark(self, out, idx: Optional[int]) -> None:
        outs = out if isinstance(out, (list, tuple)) else [out]
        for t in outs:
            if isinstance(t, torch.Tensor):
                self.keep.append(t)
                self.producer[id(t)] = idx

    def _src(self, t) -> Optional[int]:
        return self.producer.get(id(t), None)

    def _add(self, rec: _Rec, out) -> None:
        self.layers.append(rec)
        self._mark(out, len(self.layers) - 1)

    def _fuse_target(self, t) -> Optional[_Rec]:
        """The last layer, when ``t`` is its output (so a pointwise op can fuse into it)."""
        idx = self._src(t)
        if idx is not None and idx == len(self.layers) - 1 and id(t) in self.producer:
            return self.layers[idx]
        return None

    # -- the mode ----------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        fname = getattr(func, '__name__', str(func))
        if fname == '__get__':
            fname = getattr(getattr(func, '__self__', None), '__name__', fname)
        name = fname.lstrip('_') if fname.startswith('_') and not fname.startswith('__') else fname
        if name.startswith('max_pool') or name.startswith('avg_pool') or \
                name.startswith('adaptive_'):
            name = name.replace('_with_indices', '')
        if not isinstance(out, (torch.Tensor, list, tuple)) or name in _IGNORE:
            return out
        if isinstance(out, (list, tuple)) and not any(isinstance(o, torch.Tensor) for o in out):
            return out
        tensors = [a for a in args if isinstance(a, torch.Tensor)
                   and not isinstance(a, nn.Parameter)]
        if name == 'cat':
            tensors = list(args[0]) if args else list(kwargs.get('tensors'))
        x = tensors[0] if tensors else None
        handler = getattr(self, '_op_' + name, None)
        if handler is not None:
            handler(x, tensors, args, kwargs, out)
        elif name in _FREE:
            self._mark(out, self._src(x) if x is not None else None)
        elif name in _ELTWISE:
            self._eltwise(_ELTWISE[name], tensors, out)
        elif name in _ACTS:
            self._act(_ACTS[name], x, args, kwargs, out)
        else:
            self.unknown[name] = self.unknown.get(name, 0) + 1
            self._add(_Rec(self._name(name), 'other', x.shape if x is not None else (),
                           out.shape, sum(t.numel() for t in tensors), op=name), out)
        return out

    def _conv(self, x, args, kwargs, out, nd):
        w = _arg(args, kwargs, 1, 'weight')
        b = _arg(args, kwargs, 2, 'bias')
        groups = int(_arg(args, kwargs, 6, 'groups', 1))
        cin = x.shape[1]
        ksize = tuple(w.shape[2:])
        kind = 'dwconv' if groups == cin and groups > 1 else 'conv'
        macs = out.numel() * (cin // groups) * _numel(ksize)
        params = w.numel() + (b.numel() if b is not None else 0)
        self._add(_Rec(self._name(), kind, x.shape, out.shape, x.numel(), macs=macs,
                       params=params, has_bias=b is not None, kernel=ksize,
                       stride=_tup(_arg(args, kwargs, 3, 'stride', 1), nd),
                       padding=_tup(_arg(args, kwargs, 4, 'padding', 0), nd),
                       dilation=_tup(_arg(args, kwargs, 5, 'dilation', 1), nd),
                       groups=groups, op=kind), out)

    def _op_conv2d(self, x, tensors, args, kwargs, out):
        self._conv(x, args, kwargs, out, 2)

    def _op_conv1d(self, x, tensors, args, kwargs, out):
        self._conv(x, args, kwargs, out, 1)

    def _op_linear(self, x, tensors, args, kwargs, out):
        w = _arg(args, kwargs, 1, 'weight')
        b = _arg(args, kwargs, 2, 'bias')
        macs = out.numel() * w.shape[1]
        params = w.numel() + (b.numel() if b is not None else 0)
        self._add(_Rec(self._name(), 'fc', x.shape, out.shape, x.numel(), macs=macs,
                       params=params, has_bias=b is not None, op='fc'), out)

    def _op_batch_norm(self, x, tensors, args, kwargs, out):
        c = x.shape[1]
        prev = self._fuse_target(x)
        if prev is not None and prev.kind in ('conv', 'dwconv', 'fc') and '+' not in prev.op:
            prev.op += '+bn'
            if not prev.has_bias:
                prev.params += c
                prev.has_bias = True
            self._mark(out, len(self.layers) - 1)
            return
        self._add(_Rec(self._name('bn'), 'act', x.shape, out.shape, x.numel(), params=2 * c,
                       op='bn'), out)

    def _act(self, act, x, args, kwargs, out):
        if act == 'clip':
            lo = _arg(args, kwargs, 1, 'min_val', -1.0)
            hi = _arg(args, kwargs, 2, 'max_val', 1.0)
            if act == 'clip' and float(lo) == 0.0 and float(hi) == 6.0:
                act = 'relu6'
        prev = self._fuse_target(x)
        if act in _FUSABLE_ACTS and prev is not None and not prev.fused_act and (
                prev.kind in ('conv', 'dwconv', 'fc', 'eltwise')
                or (prev.kind == 'act' and prev.op == 'bn')):
            prev.op += '+' + act
            prev.fused_act = True
            self._mark(out, len(self.layers) - 1)
            return
        self._add(_Rec(self._name(act), 'act', x.shape, out.shape, x.numel(), op=act), out)

    def _eltwise(self, op, tensors, out):
        if len(tensors) < 2:  # tensor (+|x) scalar: a per-tensor scale
            x = tensors[0]
            self._add(_Rec(self._name('scale'), 'act', x.shape, out.shape, x.numel(),
                           op='scale'), out)
            return
        big = max(tensors, key=lambda t: t.numel())  # the broadcast-to operand
        self._add(_Rec(self._name(op), 'eltwise', big.shape, out.shape,
                       sum(t.numel() for t in tensors), op=op), out)

    def _op_cat(self, x, tensors, args, kwargs, out):
        if len(tensors) == 1:  # concatenating one tensor is a no-op TensorRT removes
            self._mark(out, self._src(x))
            return
        axis = int(_arg(args, kwargs, 1, 'dim', 0))
        if axis < 0:
            axis += out.dim()
        self._add(_Rec(self._name('cat'), 'concat', x.shape, out.shape,
                       sum(t.numel() for t in tensors), op='concat', axis=axis), out)

    def _op_transpose(self, x, tensors, args, kwargs, out):
        self._add(_Rec(self._name('shuffle'), 'shuffle', x.shape, out.shape, x.numel(),
                       op='transpose'), out)

    def _pool(self, op, x, kernel, stride, padding, out):
        if tuple(x.shape) == tuple(out.shape) and all(k == 1 for k in kernel):
            self._mark(out, self._src(x))   # an identity adaptive pool is free
            return
        self._add(_Rec(self._name(op + 'pool'), 'pool', x.shape, out.shape, x.numel(),
                       kernel=kernel, stride=stride, padding=padding, op=op), out)

    def _op_max_pool2d(self, x, tensors, args, kwargs, out):
        if isinstance(out, (tuple, list)):
            out = out[0]
        k = _tup(_arg(args, kwargs, 1, 'kernel_size'), 2)
        s = _tup(_arg(args, kwargs, 2, 'stride', None), 2) or k
        self._pool('max', x, k, s, _tup(_arg(args, kwargs, 3, 'padding', 0), 2), out)

    def _op_avg_pool2d(self, x, tensors, args, kwargs, out):
        k = _tup(_arg(args, kwargs, 1, 'kernel_size'), 2)
        s = _tup(_arg(args, kwargs, 2, 'stride', None), 2) or k
        self._pool('avg', x, k, s, _tup(_arg(args, kwargs, 3, 'padding', 0), 2), out)

    def _adaptive(self, op, x, out):
        ins = tuple(x.shape[2:])
        outs = tuple(out.shape[2:])
        stride = tuple(i // o for i, o in zip(ins, outs))
        kernel = tuple(i - (o - 1) * s for i, o, s in zip(ins, outs, stride))
        self._pool(op, x, kernel, stride, tuple(0 for _ in ins), out)

    def _op_adaptive_avg_pool2d(self, x, tensors, args, kwargs, out):
        self._adaptive('avg', x, out)

    def _op_adaptive_avg_pool1d(self, x, tensors, args, kwargs, out):
        self._adaptive('avg', x, out)

    def _op_adaptive_max_pool2d(self, x, tensors, args, kwargs, out):
        self._adaptive('max', x, out[0] if isinstance(out, (tuple, list)) else out)

    def _op_mean(self, x, tensors, args, kwargs, out):
        dims = _arg(args, kwargs, 1, 'dim')
        dims = [d % x.dim() for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
        if sorted(dims) == list(range(2, x.dim())):
            kernel = tuple(x.shape[2:])
            self._add(_Rec(self._name('avgpool'), 'pool', x.shape, out.shape, x.numel(),
                           kernel=kernel, stride=kernel, padding=tuple(0 for _ in kernel),
                           op='avg'), out)
        else:
            self._add(_Rec(self._name('mean'), 'other', x.shape, out.shape, x.numel(),
                           op='mean'), out)

    def _op_softmax(self, x, tensors, args, kwargs, out):
        self._add(_Rec(self._name('softmax'), 'softmax', x.shape, out.shape, x.numel(),
                       op='softmax'), out)


def trace(model: nn.Module, input_shape: Tuple[int, ...]) -> Tuple[List[_Rec], Dict[str, int]]:
    """Run ``model`` once and return its layer records in execution order."""
    model.eval()
    tracer = _Tracer()
    handles = []
    for mname, module in model.named_modules():
        def pre(mod, inp, _n=mname, _leaf=not any(True for _ in module.children())):  # noqa: B008
            tracer.scope.append((_n, _leaf))

        def post(mod, inp, outp):
            tracer.scope.pop()
        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    x = torch.randn(*input_shape)
    tracer.producer[id(x)] = None
    with torch.no_grad(), tracer:
        out = model(x)
    for h in handles:
        h.remove()
    # The serving output is a probability vector: softmax over the class axis.
    last = out
    tracer.scope = [('', False)]
    tracer._add(_Rec('softmax', 'softmax', last.shape, last.shape, last.numel(),
                     op='softmax', axis=1), last)
    return tracer.layers, tracer.unknown


def generate(name: str) -> ModelSpec:
    torch.manual_seed(0)
    model, shape, domain, labels = _build(name)
    recs, unknown = trace(model, shape)
    if unknown:
        raise SystemExit('%s: untranslated torch ops %s' % (name, unknown))
    layers = tuple(r.to_layer() for r in recs)
    params = sum(r.params for r in recs)
    true_params = sum(p.numel() for p in model.parameters())
    spec = ModelSpec(name=name, layers=layers, input_name='input', input_shape=shape,
                     domain=domain,
                     source='tools/gen_zoo.py (torch %s, %s)' % (
                         torch.__version__.split('+')[0],
                         'torchvision ' + __import__('torchvision').__version__.split('+')[0]
                         if domain == 'vision' else 'defined after the paper'),
                     extra={'params': int(params), 'torch_params': int(true_params),
                            'gmacs': round(sum(r.macs for r in recs) / 1e9, 6),
                            'labels': labels})
    return spec


def write_spec(spec: ModelSpec, path: str) -> None:
    """Write a zoo file with one layer per line (compact, diffable, still plain JSON)."""
    d = spec.to_dict()
    layers = d.pop('layers')
    head = json.dumps(d, separators=(',', ':'))[:-1]
    with open(path, 'w') as f:
        f.write(head + ',"layers":[\n')
        f.write(',\n'.join(json.dumps(layer, separators=(',', ':')) for layer in layers))
        f.write('\n]}\n')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('models', nargs='*', help='models to generate (default: all)')
    parser.add_argument('--out-dir', default=ZOO_DIR)
    args = parser.parse_args(argv)
    names = args.models or list(EVAL_MODELS + EXTRA_VISION + SPEECH)
    os.makedirs(args.out_dir, exist_ok=True)
    print('%-20s %9s %9s %9s %9s %6s %7s' % ('model', 'GMACs', 'params M', 'torch M',
                                             'act M', 'layers', 'DLA %'))
    for name in names:
        spec = generate(name)
        path = os.path.join(args.out_dir, name + '.json')
        write_spec(spec, path)
        print('%-20s %9.4f %9.3f %9.3f %9.3f %6d %7.1f' % (
            name, spec.macs / 1e9, spec.extra['params'] / 1e6, spec.extra['torch_params'] / 1e6,
            spec.activation_elements / 1e6, len(spec.layers), 100 * spec.dla_fraction))
    return 0


if __name__ == '__main__':
    sys.exit(main())
