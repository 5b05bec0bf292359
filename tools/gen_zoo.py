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
from hetero_infer.models.dla_rules import dla_support  # noqa: E402
from hetero_infer.models.zoo import ZOO_DIR, Layer, ModelSpec  # noqa: E402

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
DETECTORS = ('ssdlite320_mobilenet_v3_large', 'ssd300_vgg16',
             'fasterrcnn_mobilenet_v3_large_320_fpn', 'retinanet_resnet50_fpn')

# ----------------------------------------------------------------------------------------------
# Detectors: the network torchvision runs between its transform (normalise, resize: done by
# serving's preprocessing) and its post-processing (score activation, box decoding, top-k, NMS:
# done on the host by hetero_infer.serving.detection). What each table assumes:
#
# - ssdlite320_mobilenet_v3_large, ssd300_vgg16: fixed 320x320 / 300x300 inputs (torchvision
#   resizes every image to them); backbone + SSD head, outputs ``bbox_regression`` (1, A, 4) and
#   ``cls_logits`` (1, A, 91) over the default boxes.
# - retinanet_resnet50_fpn: min side 800, max 1333, as torchvision's transform makes a 640x480
#   camera frame: 800x1067, padded to a multiple of 32 = 800x1088 (H x W); backbone + FPN
#   (P3-P7) + heads. Single stage: its top-1000-per-level and NMS are host post-processing.
# - fasterrcnn_mobilenet_v3_large_320_fpn: min side 320, max 640: a 640x480 frame becomes
#   320x427, padded to 320x448. Two stages inside the engine: backbone + FPN + RPN head, then the
#   RPN's proposal step (anchor decoding, top-k, NMS: one 'other' layer, GPU, as FACTS says NMS
#   and box decoding are no DLA layers), RoIAlign (one 'other' layer over the proposals), the
#   two-layer box head and the predictor for ``rpn_post_nms_top_n_test`` = 150 proposals (the
#   model's own test setting; the fc layers' MACs scale with it). The final per-class decoding
#   and NMS are host post-processing.
# ----------------------------------------------------------------------------------------------

#: Input (H, W) each detector's table assumes (see above).
DETECTOR_INPUT = {'ssdlite320_mobilenet_v3_large': (320, 320), 'ssd300_vgg16': (300, 300),
                  'fasterrcnn_mobilenet_v3_large_320_fpn': (320, 448),
                  'retinanet_resnet50_fpn': (800, 1088)}
#: Proposals the two-stage table assumes (torchvision's rpn_post_nms_top_n_test for the model).
RCNN_PROPOSALS = 150
#: The SSDs' default-box settings (torchvision's ssd.py / ssdlite.py builders).
_DEFAULT_BOXES = {
    'ssdlite320_mobilenet_v3_large': {'aspect_ratios': [[2, 3]] * 6, 'min_ratio': 0.2,
                                      'max_ratio': 0.95},
    'ssd300_vgg16': {'aspect_ratios': [[2], [2, 3], [2, 3], [2, 3], [2], [2]],
                     'scales': [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05]},
}
_ACTIVE = []   # the tracer of the running trace (explicit layers from detector wrappers)


class _SingleStage(nn.Module):
    """Backbone + head of a torchvision SSD / RetinaNet: (bbox_regression, cls_logits)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.head = model.head

    def forward(self, x):
        feats = self.backbone(x)
        out = self.head(list(feats.values()))
        return out['bbox_regression'], out['cls_logits']


def _random_boxes(n: int, h: int, w: int):
    """``n`` boxes (x0, y0, x1, y1) inside an h x w image: stand-ins for the proposals."""
    xy = torch.rand(n, 2) * torch.tensor([w * 0.75, h * 0.75])
    return torch.cat([xy, xy + torch.rand(n, 2) * torch.tensor([w / 4.0, h / 4.0]) + 8], 1)


class _TwoStage(nn.Module):
    """Faster R-CNN inside its engine: backbone + FPN, RPN head, proposals (explicit layer),
    RoIAlign (explicit layer, the real op run untraced), box head and predictor."""

    def __init__(self, model: nn.Module, proposals: int) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.rpn_head = model.rpn.head
        self.box_roi_pool = model.roi_heads.box_roi_pool
        self.box_head = model.roi_heads.box_head
        self.box_predictor = model.roi_heads.box_predictor
        self.proposals = proposals

    def forward(self, x):
        tracer = _ACTIVE[-1]
        feats = self.backbone(x)
        objectness, deltas = self.rpn_head(list(feats.values()))
        h, w = x.shape[2:]
        p = self.proposals
        # The RPN's anchor decoding, top-k and NMS: one GPU layer reading every level's scores
        # and deltas, writing P boxes.
        rpn_in = list(objectness) + list(deltas)
        boxes = tracer.untraced(_random_boxes, p, h, w)
        tracer.explicit('rpn.proposals', 'other', rpn_in, boxes, op='rpn_proposals')
        pooled = tracer.untraced(self.box_roi_pool, feats, [boxes], [(h, w)])
        # bilinear sampling reads 4 feature elements per sample (sampling_ratio 2: 2x2 a bin)
        tracer.explicit('roi_heads.box_roi_pool', 'other', [feats['0']], pooled,
                        op='roi_align', in_elems=pooled.numel() * 4 * 4)
        return self.box_predictor(self.box_head(pooled))


def _build(name: str) -> Tuple[nn.Module, Tuple[int, ...], str, int]:
    if name in DETECTORS:
        import torchvision.models.detection as tvd
        model = getattr(tvd, name)(weights=None, weights_backbone=None)
        h, w = DETECTOR_INPUT[name]
        net = _TwoStage(model, RCNN_PROPOSALS) if name.startswith('fasterrcnn') \
            else _SingleStage(model)
        return net, (1, 3, h, w), 'vision', 91
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
        self.rank = len(self.out_shape)
        self.fused_act = False

    def to_layer(self, image: bool = True) -> Layer:
        ok, reason = dla_support(self.kind, op=self.op, kernel=self.kernel, stride=self.stride,
                                 padding=self.padding, dilation=self.dilation,
                                 groups=self.groups, axis=self.axis,
                                 rank=self.rank if image and self.kind == 'concat' else None)
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
        self.paused = False

    # -- explicit layers (detector wrappers) --------------------------------------------------
    def untraced(self, fn, *args):
        """Run ``fn`` without recording its torch calls (an op recorded by :meth:`explicit`)."""
        self.paused = True
        try:
            return fn(*args)
        finally:
            self.paused = False

    def explicit(self, name: str, kind: str, inputs, out, *, op: str,
                 in_elems: Optional[int] = None) -> None:
        """Record one layer for a step the tracer does not translate op by op."""
        x = inputs[0]
        self._add(_Rec(name, kind, x.shape, out.shape,
                       sum(t.numel() for t in inputs) if in_elems is None else in_elems,
                       op=op), out)

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
        if self.paused:
            return out
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

    def _op_permute(self, x, tensors, args, kwargs, out):   # detection heads: NCHW -> NHWC
        self._op_transpose(x, tensors, args, kwargs, out)

    def _op_interpolate(self, x, tensors, args, kwargs, out):   # FPN top-down upsampling
        mode = _arg(args, kwargs, 4, 'mode', 'nearest')
        self._add(_Rec(self._name('resize'), 'other', x.shape, out.shape, x.numel(),
                       op='resize_' + str(mode)), out)

    def _op_normalize(self, x, tensors, args, kwargs, out):   # SSD300's L2Norm of conv4_3
        self._add(_Rec(self._name('l2norm'), 'other', x.shape, out.shape, x.numel(),
                       op='l2norm'), out)

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
    _ACTIVE.append(tracer)
    try:
        with torch.no_grad(), tracer:
            out = model(x)
    finally:
        _ACTIVE.pop()
    for h in handles:
        h.remove()
    if isinstance(out, (tuple, list)):   # a detector: its head's outputs, decoded on the host
        return tracer.layers, tracer.unknown
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
    layers = tuple(r.to_layer(image=domain == 'vision') for r in recs)
    params = sum(r.params for r in recs)
    true_params = sum(p.numel() for p in model.parameters())
    extra = {'params': int(params), 'torch_params': int(true_params),
             'gmacs': round(sum(r.macs for r in recs) / 1e9, 6), 'labels': labels}
    if name in DETECTORS:
        extra['detector'] = _detector_extra(name, model, shape)
    spec = ModelSpec(name=name, layers=layers, input_name='input', input_shape=shape,
                     domain=domain,
                     source='tools/gen_zoo.py (torch %s, %s)' % (
                         torch.__version__.split('+')[0],
                         'torchvision ' + __import__('torchvision').__version__.split('+')[0]
                         if domain == 'vision' else 'defined after the paper'),
                     extra=extra)
    return spec


def _detector_extra(name: str, net: nn.Module, shape: Tuple[int, ...]) -> Dict[str, object]:
    """What the host post-processing of a detector table works on (its outputs' sizes)."""
    with torch.no_grad():
        if isinstance(net, _TwoStage):
            return {'family': 'faster_rcnn', 'classes': 91, 'background': True,
                    'proposals': net.proposals, 'input_hw': list(shape[2:]),
                    'assumes': 'a 640x480 frame through torchvision\'s transform (min side '
                               '320, max 640), padded to a multiple of 32; %d proposals '
                               '(rpn_post_nms_top_n_test)' % net.proposals}
        boxes, logits = net(torch.zeros(*shape))
    family = 'ssd' if name.startswith('ssd') else 'retinanet'
    out = {'family': family, 'classes': int(logits.shape[-1]), 'anchors': int(boxes.shape[1]),
           'background': family == 'ssd', 'input_hw': list(shape[2:])}
    if family == 'ssd':   # the default boxes' generator (torchvision's DefaultBoxGenerator)
        with torch.no_grad():
            feats = net.backbone(torch.zeros(*shape))
        gen = _DEFAULT_BOXES[name]
        out.update(feature_sizes=[list(f.shape[2:]) for f in feats.values()], **gen)
    if family == 'retinanet':
        out['assumes'] = ('a 640x480 frame through torchvision\'s transform (min side 800, '
                          'max 1333), padded to a multiple of 32')
    return out


def write_spec(spec: ModelSpec, path: str) -> None:
    """Write a zoo file with one layer per line (compact, diffable, still plain JSON); the
    measured host post-processing cost of a detector (tools/measure_postprocess.py) is kept."""
    if os.path.exists(path) and 'detector' in spec.extra:
        with open(path) as f:
            old = json.load(f).get('extra', {})
        for key in ('postprocess_ms', 'postprocess_source'):
            if key in old:
                spec.extra[key] = old[key]
    spec.save(path, one_layer_per_line=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('models', nargs='*', help='models to generate (default: all)')
    parser.add_argument('--out-dir', default=ZOO_DIR)
    args = parser.parse_args(argv)
    names = args.models or list(EVAL_MODELS + EXTRA_VISION + SPEECH + DETECTORS)
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
