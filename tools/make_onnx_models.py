#!/usr/bin/env python3
"""Build the small ONNX models committed under ``hetero_infer/data/onnx/`` for tests and the demo.

All weights are random (seeded); the models exist to exercise the importer and the ONNX Runtime
backend with real graphs, not to classify anything. Outputs are probabilities (the graphs end
with Softmax). Stable file names (other parts of the project use them):

- ``tiny_cnn.onnx``: built with ``onnx.helper`` only (no torch). Input ``input`` float32
  (1, 3, 32, 32), NCHW. Conv3x3(16)+BN+ReLU, MaxPool2, Conv3x3(32)+ReLU, MaxPool2,
  GlobalAveragePool, Flatten, Gemm(10), Softmax -> ``probs`` (1, 10).
- ``mobilenet_v2_035.onnx``: torchvision MobileNetV2 with width 0.35, random weights, input
  ``input`` float32 (1, 3, 160, 160) NCHW, ImageNet-style normalised RGB; ``probs`` (1, 1000).
- ``kws_matchboxnet.onnx``: the MatchboxNet 3x1x64 keyword spotter of ``tools/gen_zoo.py``.
  Input ``mfcc`` float32 (1, 64, 101): 64 MFCC coefficients x 101 frames = 1 s of 16 kHz audio
  at a 25 ms window / 10 ms hop; ``probs`` (1, 35) over the Speech Commands v2 words.

The input contract is also written into each file's ``metadata_props`` and into
``models.json`` (name -> file, input name/shape/layout, labels, domain, description).

``tiny_cnn.onnx`` needs only the ``onnx`` package (``--only tiny_cnn``); the other two need
torch/torchvision (see tools/gen_zoo.py for the throwaway venv)::

    PYTHONPATH=. /tmp/torchvenv/bin/python tools/make_onnx_models.py
"""

import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
OUT_DIR = os.path.join(ROOT, 'hetero_infer', 'data', 'onnx')
OPSET = 17

SPEECH_COMMANDS_V2 = (
    'backward', 'bed', 'bird', 'cat', 'dog', 'down', 'eight', 'five', 'follow', 'forward', 'four',
    'go', 'happy', 'house', 'learn', 'left', 'marvin', 'nine', 'no', 'off', 'on', 'one', 'right',
    'seven', 'sheila', 'six', 'stop', 'three', 'tree', 'two', 'up', 'visual', 'wow', 'yes',
    'zero')


def _set_meta(model, meta: dict) -> None:
    import onnx
    del model.metadata_props[:]
    for key, value in sorted(meta.items()):
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value)
    onnx.checker.check_model(model)


def make_tiny_cnn(path: str) -> dict:
    return make_cnn(path, 'tiny_cnn', size=32, c1=16, c2=32,
                    description='2-conv CNN (onnx.helper, seeded random weights), 32x32 RGB')


def make_cnn(path: str, name: str, *, size: int, c1: int, c2: int, description: str) -> dict:
    """tiny_cnn's graph with input ``size`` x ``size`` and ``c1`` / ``c2`` channels."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)

    def init(name, *shape, scale=0.1):
        arr = (rng.standard_normal(shape) * scale).astype(np.float32)
        return numpy_helper.from_array(arr, name)

    inits = [
        init('conv1.w', c1, 3, 3, 3), init('conv1.b', c1),
        numpy_helper.from_array(np.ones(c1, np.float32), 'bn1.scale'),
        init('bn1.bias', c1),
        numpy_helper.from_array(np.zeros(c1, np.float32), 'bn1.mean'),
        numpy_helper.from_array(np.ones(c1, np.float32), 'bn1.var'),
        init('conv2.w', c2, c1, 3, 3), init('conv2.b', c2),
        init('fc.w', 10, c2), init('fc.b', 10),
    ]
    nodes = [
        helper.make_node('Conv', ['input', 'conv1.w', 'conv1.b'], ['c1'], name='conv1',
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node('BatchNormalization', ['c1', 'bn1.scale', 'bn1.bias', 'bn1.mean',
                                                'bn1.var'], ['b1'], name='bn1', epsilon=1e-5),
        helper.make_node('Relu', ['b1'], ['r1'], name='relu1'),
        helper.make_node('MaxPool', ['r1'], ['p1'], name='pool1', kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node('Conv', ['p1', 'conv2.w', 'conv2.b'], ['c2'], name='conv2',
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node('Relu', ['c2'], ['r2'], name='relu2'),
        helper.make_node('MaxPool', ['r2'], ['p2'], name='pool2', kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node('GlobalAveragePool', ['p2'], ['gap'], name='gap'),
        helper.make_node('Flatten', ['gap'], ['flat'], name='flatten', axis=1),
        helper.make_node('Gemm', ['flat', 'fc.w', 'fc.b'], ['logits'], name='fc', transB=1),
        helper.make_node('Softmax', ['logits'], ['probs'], name='softmax', axis=1),
    ]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info('input', TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info('probs', TensorProto.FLOAT, [1, 10])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET)],
                              producer_name='hetero_infer tools/make_onnx_models.py')
    model.ir_version = 8  # readable by onnxruntime >= 1.11 (JetPack 5 wheels)
    entry = {'file': name + '.onnx', 'input_name': 'input', 'input_shape': [1, 3, size, size],
             'input_layout': 'NCHW float32', 'output_name': 'probs', 'labels': 10,
             'domain': 'vision', 'description': description}
    _set_meta(model, entry)
    onnx.save(model, path)
    return entry


def _export(module, example, path, input_name, meta):
    import onnx
    import torch
    module.eval()
    kwargs = dict(input_names=[input_name], output_names=['probs'], opset_version=OPSET,
                  do_constant_folding=True)
    try:
        torch.onnx.export(module, (example,), path, dynamo=False, **kwargs)
    except TypeError:  # older torch without the ``dynamo`` switch
        torch.onnx.export(module, (example,), path, **kwargs)
    model = onnx.load(path)
    model.ir_version = min(model.ir_version, 8)
    _set_meta(model, meta)
    onnx.save(model, path)


def make_mobilenet(path: str) -> dict:
    import torch
    import torchvision
    torch.manual_seed(0)
    net = torchvision.models.mobilenet_v2(weights=None, width_mult=0.35)
    module = torch.nn.Sequential(net, torch.nn.Softmax(dim=1))
    entry = {'file': 'mobilenet_v2_035.onnx', 'input_name': 'input',
             'input_shape': [1, 3, 160, 160], 'input_layout': 'NCHW float32, normalised RGB',
             'output_name': 'probs', 'labels': 1000, 'domain': 'vision',
             'description': 'torchvision mobilenet_v2 width 0.35, random weights, 160x160'}
    _export(module, torch.randn(1, 3, 160, 160), path, 'input', entry)
    return entry


def make_kws(path: str) -> dict:
    import torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from gen_zoo import MatchboxNet
    torch.manual_seed(0)
    module = torch.nn.Sequential(MatchboxNet(n_mfcc=64, classes=35), torch.nn.Softmax(dim=1))
    entry = {'file': 'kws_matchboxnet.onnx', 'input_name': 'mfcc', 'input_shape': [1, 64, 101],
             'input_layout': 'N x 64 MFCC x 101 frames float32 (1 s of 16 kHz audio, 25 ms '
                             'window, 10 ms hop)',
             'output_name': 'probs', 'labels': len(SPEECH_COMMANDS_V2), 'domain': 'audio',
             'label_names': list(SPEECH_COMMANDS_V2),
             'description': 'MatchboxNet 3x1x64 keyword spotter, random weights'}
    _export(module, torch.randn(1, 64, 101), path, 'mfcc', entry)
    return entry


BUILDERS = {'tiny_cnn': make_tiny_cnn, 'mobilenet_v2_035': make_mobilenet,
            'kws_matchboxnet': make_kws}


def _bringup_cnn(size: int, c1: int, c2: int):
    name = 'cnn%d_%d' % (size, c2)
    return name, lambda path: make_cnn(
        path, name, size=size, c1=c1, c2=c2,
        description='tiny_cnn widened to %d/%d channels at %dx%d (onnx.helper, seeded random '
                    'weights): 4-20 ms per inference on one CPU core'
                    % (c1, c2, size, size))


#: Heavier CNNs for ``hetero-infer bringup --backend onnxruntime`` (docs/bringup/): at the
#: package models' 0.06-1 ms the served rates reach thousands per second, where the serving
#: engine's per-request Python cost, not the cores, limits goodput. Built only with --only.
EXTRA_BUILDERS = dict(_bringup_cnn(*a) for a in ((192, 32, 64), (256, 48, 96), (224, 64, 128)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='Build the small ONNX models for tests/demo.')
    parser.add_argument('--only', nargs='*', choices=sorted(BUILDERS) + sorted(EXTRA_BUILDERS),
                        default=None)
    parser.add_argument('--out-dir', default=OUT_DIR)
    args = parser.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    index_path = os.path.join(args.out_dir, 'models.json')
    index = {}
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
    for name in args.only or list(BUILDERS):
        path = os.path.join(args.out_dir, name + '.onnx')
        entry = dict(BUILDERS, **EXTRA_BUILDERS)[name](path)
        index[name] = entry
        print('%-18s %8.1f KB  input %s %s  labels %d' % (
            name, os.path.getsize(path) / 1024.0, entry['input_name'], entry['input_shape'],
            entry['labels']))
    with open(index_path, 'w') as f:
        json.dump(index, f, indent=1, sort_keys=True)
        f.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
