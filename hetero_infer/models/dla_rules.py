"""Which layers a Xavier DLA (NVDLA v1 under TensorRT) can run.

The rules are the documented TensorRT-on-DLA limits copied into FACTS.md ("TensorRT on DLA"):

- convolution / fully connected: kernel 1-32, stride 1-8, padding 0-31 and smaller than the kernel,
  dilation 1-32, groups <= 8192;
- deconvolution: stride 1-32, padding 0, groups 1;
- pooling: max and average only, window 1-8, stride 1-16, padding 0-7;
- activations: ReLU, Sigmoid, TanH, Clip (ReLU6 is a Clip);
- element-wise: sum, prod, max, min, sub;
- concatenation: channel axis only (of NCHW tensors: a concat of the flattened (N, boxes, K)
  outputs of a detection head is not a channel concat);
- softmax, shuffle / transpose / gather and the other unary ops: not on Xavier's DLA.

Fused layers carry their fused activation in ``op`` (``'conv+bn+relu'``); the activation part is
checked against the activation list too. Every refusal returns a reason naming the rule and the
offending value, e.g. ``'conv kernel 87 > 32'``.
"""

from typing import Optional, Sequence, Tuple

#: Activations Xavier's DLA runs. ``relu6`` is TensorRT's Clip(0, 6); ``identity`` is free.
DLA_ACTIVATIONS = ('relu', 'relu6', 'sigmoid', 'tanh', 'clip', 'identity')
#: Element-wise operations Xavier's DLA runs, under the names the importers use.
DLA_ELTWISE = {'sum': 'sum', 'add': 'sum', 'prod': 'prod', 'mul': 'prod', 'max': 'max',
               'min': 'min', 'sub': 'sub'}
#: Parts of a fused ``op`` string that are not activations (they fold into the conv weights).
#: A standalone ``bn`` / ``scale`` becomes TensorRT's per-channel IScaleLayer, which DLA runs.
_FOLDED = ('conv', 'dwconv', 'fc', 'gemm', 'matmul', 'bn', 'scale', 'bias', 'deconv')

_CONV_KINDS = ('conv', 'dwconv', 'fc')


def _check_range(what: str, values: Sequence[int], low: int, high: int) -> Optional[str]:
    for v in values:
        if v < low:
            return '%s %d < %d' % (what, v, low)
        if v > high:
            return '%s %d > %d' % (what, v, high)
    return None


def _activation_parts(op: str) -> Tuple[str, ...]:
    parts = [p.strip().lower() for p in op.split('+') if p.strip()]
    return tuple(p for p in parts if p not in _FOLDED)


def dla_support(kind: str, *, op: str = '', kernel: Sequence[int] = (),
                stride: Sequence[int] = (), padding: Sequence[int] = (),
                dilation: Sequence[int] = (), groups: int = 1,
                axis: Optional[int] = None, rank: Optional[int] = None) -> Tuple[bool, str]:
    """Whether a Xavier DLA can run a layer, and why not.

    :param kind: one of :data:`hetero_infer.models.zoo.LAYER_KINDS`.
    :param op: finer operation; for conv/fc the fused chain (``'conv+bn+relu'``), for pools
        ``'max'`` / ``'avg'``, for activations and element-wise ops their name.
    :param kernel: kernel or pooling window per spatial dimension (empty for fc).
    :param padding: padding per spatial dimension (symmetric; the larger side when asymmetric).
    :param axis: concatenation axis (NCHW); ``None`` means the channel axis.
    :param rank: rank of the concatenated tensors of an image model (its feature maps are 4-D,
        NCHW) when known; a concat of tensors of another rank (the flattened (N, boxes, K)
        outputs of a detection head) is not a channel concat.
    :returns: ``(True, '')`` or ``(False, reason)`` with the violated rule and value.
    """
    kind = kind.lower()
    op_l = op.lower()
    kernel = tuple(int(k) for k in kernel)
    stride = tuple(int(s) for s in stride)
    padding = tuple(int(p) for p in padding)
    dilation = tuple(int(d) for d in dilation)

    if kind in _CONV_KINDS:
        name = 'fc' if kind == 'fc' else 'conv'
        deconv = 'deconv' in op_l
        if deconv:
            bad = (_check_range('deconv kernel', kernel, 1, 32)
                   or _check_range('deconv stride', stride, 1, 32)
                   or _check_range('deconv padding', padding, 0, 0))
            if bad is None and groups != 1:
                bad = 'deconv groups %d != 1' % groups
        else:
            bad = (_check_range(name + ' kernel', kernel, 1, 32)
                   or _check_range(name + ' stride', stride, 1, 8)
                   or _check_range(name + ' padding', padding, 0, 31)
                   or _check_range(name + ' dilation', dilation, 1, 32))
            if bad is None:
                for k, p in zip(kernel, padding):
                    if p >= k:
                        bad = '%s padding %d >= kernel %d' % (name, p, k)
                        break
        if bad is None and not 1 <= groups <= 8192:
            bad = '%s groups %d outside 1-8192' % (name, groups)
        if bad is None:
            for act in _activation_parts(op_l):
                if act not in DLA_ACTIVATIONS:
                    bad = 'fused activation %r not on DLA (relu/sigmoid/tanh/clip only)' % act
                    break
        return (False, bad) if bad else (True, '')

    if kind == 'pool':
        ptype = op_l.replace('global', '').replace('adaptive', '').strip(' _-+') or 'max'
        if ptype not in ('max', 'avg', 'average', 'mean'):
            return False, 'pool type %r not on DLA (max/avg only)' % op
        bad = (_check_range('pool window', kernel, 1, 8)
               or _check_range('pool stride', stride, 1, 16)
               or _check_range('pool padding', padding, 0, 7))
        return (False, bad) if bad else (True, '')

    if kind == 'act':
        for act in _activation_parts(op_l):
            if act not in DLA_ACTIVATIONS:
                return False, 'activation %r not on DLA (relu/sigmoid/tanh/clip only)' % act
        return True, ''

    if kind == 'eltwise':
        parts = [p.strip() for p in op_l.split('+') if p.strip()] or ['sum']
        if parts[0] not in DLA_ELTWISE:
            return False, 'eltwise %r not on DLA (sum/prod/max/min/sub only)' % parts[0]
        for act in parts[1:]:
            if act not in DLA_ACTIVATIONS:
                return False, 'fused activation %r not on DLA (relu/sigmoid/tanh/clip only)' % act
        return True, ''

    if kind == 'concat':
        if rank is not None and rank != 4:
            return False, 'concat of rank-%d tensors not on DLA (NCHW channel axis only)' % rank
        if axis is None or axis == 1:
            return True, ''
        return False, 'concat axis %d not on DLA (channel axis 1 only)' % axis

    if kind == 'softmax':
        return False, 'softmax not on Xavier DLA'
    if kind == 'shuffle':
        return False, 'shuffle/transpose %r not on Xavier DLA' % (op or kind)
    return False, '%s %r not on Xavier DLA' % (kind, op or kind)
