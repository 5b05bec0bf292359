#!/usr/bin/env python3
"""Generate ``hetero_infer/data/onnx/tiny_ssd.onnx``: a small SSDlite-style detector.

A project-made detector whose outputs are decoded and NMS'd for real by
:mod:`hetero_infer.serving.detection` (tests, the demo's ``detect`` application; its timing comes
from the zoo's ``ssdlite320_mobilenet_v3_large`` table). Fixed random weights (seed 0), so the
boxes mean nothing, but every step of the post-processing runs on real outputs. Built with
``onnx.helper`` only (no torch)::

    .venv/bin/python tools/gen_tiny_ssd.py

Network (input 1x3x320x320, normalised RGB): a 3x3 stride-2 conv then five depthwise-separable
stride-2 blocks (ReLU) down to 5x5; SSDlite heads (3x3 depthwise + 1x1) on the 20x20, 10x10 and
5x5 maps with 4, 6, 6 default boxes a cell (aspect ratios [2], [2, 3], [2, 3]); outputs
``boxes`` (1, 2350, 4) (SSD deltas) and ``scores`` (1, 2350, 21) (logits, class 0 background,
the 20 Pascal VOC classes). The score head's weights are scaled so that softmax scores spread
(logit standard deviation about 1.5): some boxes pass a 0.3 threshold on any image.
The decoding it needs is in the file's metadata (``detector``, JSON).
"""

import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

CLASSES = 21
FEATURES = ((20, 20), (10, 10), (5, 5))
ASPECTS = ([2], [2, 3], [2, 3])
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'hetero_infer', 'data',
                   'onnx', 'tiny_ssd.onnx')
#: Pascal VOC's classes after the background (class ids 1..20).
VOC = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
       'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa',
       'train', 'tvmonitor')


class _Graph:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []
        self.n = 0

    def _name(self, base: str) -> str:
        self.n += 1
        return '%s_%d' % (base, self.n)

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
             relu: bool = True, gain: float = 1.0) -> str:
        name = self._name('conv')
        fan_in = cin // groups * k * k
        w = self.rng.normal(0.0, gain * np.sqrt(2.0 / fan_in), (cout, cin // groups, k, k))
        b = self.rng.normal(0.0, 0.1, cout)
        self.inits += [numpy_helper.from_array(w.astype(np.float32), name + '.w'),
                       numpy_helper.from_array(b.astype(np.float32), name + '.b')]
        y = name + '.y'
        self.nodes.append(helper.make_node(
            'Conv', [x, name + '.w', name + '.b'], [y], name=name, kernel_shape=[k, k],
            strides=[stride, stride], pads=[k // 2] * 4, group=groups))
        if not relu:
            return y
        self.nodes.append(helper.make_node('Relu', [y], [y + '.relu'], name=name + '.relu'))
        return y + '.relu'

    def separable(self, x: str, cin: int, cout: int, stride: int) -> str:
        return self.conv(self.conv(x, cin, cin, 3, stride, groups=cin), cin, cout, 1)

    def flat(self, x: str, k: int) -> str:
        """(1, A*k, H, W) -> (1, H*W*A, k), the SSD head layout."""
        name = self._name('flat')
        self.nodes.append(helper.make_node('Transpose', [x], [name + '.t'], name=name + '.t',
                                           perm=[0, 2, 3, 1]))
        self.inits.append(numpy_helper.from_array(np.array([1, -1, k], np.int64),
                                                  name + '.shape'))
        self.nodes.append(helper.make_node('Reshape', [name + '.t', name + '.shape'],
                                           [name + '.y'], name=name))
        return name + '.y'


def build(seed: int = 0) -> onnx.ModelProto:
    g = _Graph(seed)
    x = g.conv('input', 3, 16, 3, 2)                 # 160
    x = g.separable(x, 16, 32, 2)                    # 80
    x = g.separable(x, 32, 64, 2)                    # 40
    f20 = g.separable(x, 64, 96, 2)                  # 20
    f10 = g.separable(f20, 96, 128, 2)               # 10
    f5 = g.separable(f10, 128, 128, 2)               # 5
    boxes, scores = [], []
    for feat, cin, ratios in zip((f20, f10, f5), (96, 128, 128), ASPECTS):
        a = 2 + 2 * len(ratios)
        for k, out, gain in ((4, boxes, 0.5), (CLASSES, scores, 1.5)):
            dw = g.conv(feat, cin, cin, 3, groups=cin)
            out.append(g.flat(g.conv(dw, cin, a * k, 1, relu=False, gain=gain), k))
    g.nodes.append(helper.make_node('Concat', boxes, ['boxes'], name='boxes', axis=1))
    g.nodes.append(helper.make_node('Concat', scores, ['scores'], name='scores', axis=1))
    n = sum(h * w * (2 + 2 * len(r)) for (h, w), r in zip(FEATURES, ASPECTS))
    graph = helper.make_graph(
        g.nodes, 'tiny_ssd',
        [helper.make_tensor_value_info('input', TensorProto.FLOAT, [1, 3, 320, 320])],
        [helper.make_tensor_value_info('boxes', TensorProto.FLOAT, [1, n, 4]),
         helper.make_tensor_value_info('scores', TensorProto.FLOAT, [1, n, CLASSES])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)],
                              producer_name='hetero_infer tools/gen_tiny_ssd.py')
    model.ir_version = 8
    meta = {'domain': 'vision', 'labels': str(CLASSES),
            'detector': json.dumps({'family': 'ssd', 'classes': CLASSES,
                                    'feature_sizes': [list(f) for f in FEATURES],
                                    'aspect_ratios': [list(r) for r in ASPECTS],
                                    'boxes_output': 'boxes', 'scores_output': 'scores'})}
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    return model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=OUT)
    args = parser.parse_args(argv)
    model = build()
    onnx.save(model, args.out)
    print('%s: %d bytes, %d parameters' % (
        os.path.normpath(args.out), os.path.getsize(args.out),
        sum(int(np.prod(t.dims)) for t in model.graph.initializer)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
