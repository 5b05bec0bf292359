#!/usr/bin/env python3
"""Measure each zoo detector's host post-processing on this CPU and record it in its table.

The cost a request of a detector pays after its inference (``ModelSpec.postprocess_ms``, which
the twin and the planner add to its latency): :func:`hetero_infer.serving.detection.detect` on
outputs of the model's sizes, one thread, the fastest of ``--repeats`` runs after a warm-up
(the development machine is shared: the fastest run is the uncontended cost; the median is
printed beside it). Outputs
are seeded random (box deltas N(0, 0.5), logits N(0, 1.5), as the project's tiny SSD gives;
sigmoid heads' logits centred on RetinaNet's prior, -log 99), so the score threshold (0.3)
keeps hundreds to thousands of candidates for NMS (at most 1000 go in).

What is measured per family (the sizes are the table's, ``extra['detector']``):

- ``ssd``: the real SSD decoding: softmax over (anchors, classes), default boxes from the
  model's generator settings, threshold, top 1000, class-aware NMS, resize undone.
- ``retinanet``: the same steps over its (anchors, classes) outputs with a sigmoid instead of
  the softmax, as torchvision's RetinaNet (thresholded on the logits).
- ``faster_rcnn``: the same steps over (proposals, classes): the final per-class decoding and
  NMS after the box predictor.

Run with the project's environment (no torch)::

    .venv/bin/python tools/measure_postprocess.py            # all detectors; writes the tables
    .venv/bin/python tools/measure_postprocess.py --dry-run  # print only
"""

import argparse
import math
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from hetero_infer.models.zoo import ZOO_DIR, ModelSpec, list_models, load_model  # noqa: E402
from hetero_infer.serving import detection  # noqa: E402


def head_and_outputs(spec: ModelSpec, seed: int = 0):
    """A decoding head and seeded outputs of ``spec``'s detector sizes."""
    d = spec.extra['detector']
    hw = tuple(d['input_hw'])
    classes = int(d['classes'])
    if d['family'] == 'ssd':
        anchors = detection.ssd_default_boxes(
            hw, d['feature_sizes'], d['aspect_ratios'], min_ratio=d.get('min_ratio', 0.2),
            max_ratio=d.get('max_ratio', 0.95), scales=d.get('scales'))
    else:   # retinanet: anchors; faster_rcnn: proposals (see the module docstring)
        n = int(d['anchors'] if d['family'] == 'retinanet' else d['proposals'])
        rng = np.random.default_rng(seed + 1)
        anchors = np.concatenate([rng.uniform(0.05, 0.95, (n, 2)),
                                  rng.uniform(0.02, 0.5, (n, 2))], 1).astype(np.float32)
    act = 'sigmoid' if d['family'] == 'retinanet' else 'softmax'
    head = detection.DetectorHead('ssd', classes, hw, anchors=anchors, score_activation=act)
    rng = np.random.default_rng(seed)
    a = anchors.shape[0]
    # a sigmoid head is initialised to the prior 0.01 (RetinaNet's bias -log(99)); its logits
    # sit around it, so a threshold keeps a small share of them, as on a real image
    mean = -math.log(99.0) if act == 'sigmoid' else 0.0
    outputs = {'boxes': (0.5 * rng.standard_normal((1, a, 4))).astype(np.float32),
               'scores': (mean + 1.5 * rng.standard_normal((1, a, classes))).astype(np.float32)}
    return head, outputs


def measure(spec: ModelSpec, repeats: int) -> dict:
    head, outputs = head_and_outputs(spec)
    image_hw = (480, 640)
    dets = detection.detect(head, outputs, image_hw)   # warm-up (imports, caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        detection.detect(head, outputs, image_hw)
        times.append((time.perf_counter() - t0) * 1e3)
    return {'median_ms': statistics.median(times), 'min_ms': min(times),
            'max_ms': max(times), 'detections': len(dets),
            'score_elements': int(outputs['scores'].size)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('models', nargs='*', help='detectors (default: every zoo detector)')
    parser.add_argument('--repeats', type=int, default=30)
    parser.add_argument('--dry-run', action='store_true', help='print, do not write tables')
    args = parser.parse_args(argv)
    try:
        import cv2
        cv2.setNumThreads(1)
    except ImportError:
        pass
    names = args.models or [m for m in list_models() if 'detector' in load_model(m).extra]
    where = '%s, Python %s, numpy %s' % (platform.machine(), platform.python_version(),
                                         np.__version__)
    print('%-40s %12s %9s %9s %9s %6s' % ('model', 'scores', 'median ms', 'min ms', 'max ms',
                                          'dets'))
    for name in names:
        spec = load_model(name)
        r = measure(spec, args.repeats)
        print('%-40s %12d %9.2f %9.2f %9.2f %6d' % (name, r['score_elements'], r['median_ms'],
                                                    r['min_ms'], r['max_ms'],
                                                    r['detections']))
        if args.dry_run:
            continue
        spec.extra['postprocess_ms'] = round(r['min_ms'], 3)
        spec.extra['postprocess_source'] = (
            'tools/measure_postprocess.py: fastest of %d runs on one core of the development '
            'machine (%s; median %.3f ms)' % (args.repeats, where, r['median_ms']))
        spec.save(os.path.join(ZOO_DIR, name + '.json'), one_layer_per_line=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
