"""Detector outputs -> boxes in the input image's pixels: decoding per family, class-aware NMS.

What a library such as torchvision or OpenCV's dnn samples do after a detector's network, on the
host, inside the request (the twin and the planner add its measured cost,
``ModelSpec.postprocess_ms``):

1. **Decode** the head's outputs into boxes and per-class scores:

   - ``ssd`` (SSD, SSDlite): ``boxes`` (1, A, 4) regression deltas over A default boxes
     (:func:`ssd_default_boxes`, torchvision's ``DefaultBoxGenerator``) and ``scores`` (1, A, C)
     logits, class 0 the background; softmax over the classes, deltas decoded with the
     variances (0.1, 0.2) (torchvision's ``BoxCoder`` weights 10, 10, 5, 5). With
     ``score_activation='sigmoid'`` (RetinaNet-style heads: no background column) every logit
     goes through a sigmoid instead, and the threshold is applied to the logits (the sigmoid is
     monotonic), so only the kept ones are exponentiated.
   - ``anchor_free`` (YOLOv8-style exports): one output (1, 4 + C, N) (or (1, N, 4 + C)) of
     boxes ``cx, cy, w, h`` in model-input pixels and per-class scores already through a sigmoid.
   - ``onnx_nms``: a file exported with its ``NonMaxSuppression``, which the importer cut off
     (:func:`hetero_infer.models.onnx_import.cut_nms_file`): the NMS's own inputs, boxes
     (1, N, 4) in model-input pixels as its ``center_point_box`` says (0: ``y1, x1, y2, x2``;
     1: ``cx, cy, w, h``) and scores (1, C, N), already activated.

2. Keep (box, class) pairs scoring at least ``score_threshold``, at most ``pre_nms_top`` of
   them by score, then **class-aware NMS** with OpenCV: ``cv2.dnn.NMSBoxesBatched`` where the
   installed OpenCV has it (4.7+), else ``cv2.dnn.NMSBoxes`` once per class (JetPack 5's 4.5);
   the best ``top_n`` survivors are kept.

3. **Undo the resize**: serving's preprocessing stretches the image to the model input
   (:func:`hetero_infer.serving.preprocess.preprocess_image`), so boxes scale back by the image
   over the input size per axis (:func:`to_image_pixels`; a letterboxed input is undone too).

Boxes are reported as ``[cx, cy, w, h]`` in image pixels (``vision_msgs/BoundingBox2D``'s
centre and size), clipped to the image.
"""

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from hetero_infer.errors import ConfigError

FAMILIES = ('ssd', 'anchor_free', 'onnx_nms')
#: Pairs kept for NMS at most (torchvision's SSD keeps 400 a class, RetinaNet 1000 a level).
DEFAULT_PRE_NMS_TOP = 1000
#: SSD box-coder variances (centre, size).
SSD_VARIANCES = (0.1, 0.2)


@dataclass(frozen=True)
class Detection:
    class_id: int
    score: float
    bbox: Tuple[float, float, float, float]   # cx, cy, w, h in image pixels


def ssd_default_boxes(input_hw: Sequence[int], feature_sizes: Sequence[Sequence[int]],
                      aspect_ratios: Sequence[Sequence[int]], *, min_ratio: float = 0.2,
                      max_ratio: float = 0.95,
                      scales: Optional[Sequence[float]] = None) -> np.ndarray:
    """SSD default boxes ``(A, 4)`` as ``cx, cy, w, h`` relative to the input (0..1), in the
    order an SSD head emits them (level, row, column, box), as torchvision's
    ``DefaultBoxGenerator`` makes them (clipped to 0..1).

    Per level k of m: scale ``s_k = min + (max - min) k / (m - 1)`` (``s_m = 1``), or the
    m + 1 given ``scales``; boxes ``(s_k, s_k)``, ``(sqrt(s_k s_k+1), ...)`` and for every
    aspect ratio r ``(s_k sqrt(r), s_k / sqrt(r))`` and its transpose.
    """
    m = len(feature_sizes)
    if m == 0 or len(aspect_ratios) != m:
        raise ConfigError('ssd_default_boxes: %d feature maps but %d aspect-ratio lists'
                          % (m, len(aspect_ratios)))
    if scales is not None:
        if len(scales) != m + 1:
            raise ConfigError('ssd_default_boxes: %d scales for %d feature maps (need %d)'
                              % (len(scales), m, m + 1))
        scales = [float(v) for v in scales]
    else:
        scales = [min_ratio + (max_ratio - min_ratio) * k / max(m - 1.0, 1.0)
                  for k in range(m)] + [1.0]
    out = []
    for k, (fh, fw) in enumerate(feature_sizes):
        sk, sk1 = scales[k], math.sqrt(scales[k] * scales[k + 1])
        wh = [(sk, sk), (sk1, sk1)]
        for r in aspect_ratios[k]:
            q = math.sqrt(float(r))
            wh += [(sk * q, sk / q), (sk / q, sk * q)]
        wh_arr = np.clip(np.asarray(wh, dtype=np.float32), 0.0, 1.0)
        cy, cx = np.meshgrid((np.arange(fh, dtype=np.float32) + 0.5) / fh,
                             (np.arange(fw, dtype=np.float32) + 0.5) / fw, indexing='ij')
        centres = np.stack([cx.reshape(-1), cy.reshape(-1)], 1)
        n, a = centres.shape[0], wh_arr.shape[0]
        boxes = np.concatenate([np.repeat(centres, a, 0), np.tile(wh_arr, (n, 1))], 1)
        out.append(boxes)
    return np.concatenate(out, 0).astype(np.float32)


@dataclass(frozen=True)
class DetectorHead:
    """How to decode one detector's outputs.

    :param family: one of :data:`FAMILIES`.
    :param classes: score columns (SSD: including the background, column 0).
    :param input_hw: model input (height, width) in pixels.
    :param anchors: SSD default boxes (``ssd_default_boxes``), relative to the input.
    :param boxes_output / scores_output: output names (SSD); anchor-free models have one output.
    """

    family: str
    classes: int
    input_hw: Tuple[int, int]
    anchors: Optional[np.ndarray] = None
    boxes_output: str = 'boxes'
    scores_output: str = 'scores'
    score_activation: str = 'softmax'
    center_point_box: int = 0     # onnx_nms: the cut NMS's box layout

    def __post_init__(self):
        if self.score_activation not in ('softmax', 'sigmoid'):
            raise ConfigError('detector score_activation %r is not softmax or sigmoid'
                              % (self.score_activation,))
        if self.family not in FAMILIES:
            raise ConfigError('detector family %r is not one of %s'
                              % (self.family, ', '.join(FAMILIES)))
        if self.family == 'ssd' and self.anchors is None:
            raise ConfigError('an ssd detector head needs its default boxes (anchors)')

    @classmethod
    def from_metadata(cls, meta: Dict[str, object], input_hw: Sequence[int]) -> 'DetectorHead':
        """From a model's ``detector`` description (an ONNX file's metadata, JSON): ``family``,
        ``classes`` and for SSD ``feature_sizes``, ``aspect_ratios``, optionally ``min_ratio``,
        ``max_ratio`` or ``scales``, ``boxes_output``, ``scores_output``.

        :raises ConfigError: a missing or malformed field, named.
        """
        try:
            family = str(meta['family'])
            classes = int(meta['classes'])
            anchors = None
            if family == 'ssd':
                anchors = ssd_default_boxes(
                    input_hw, meta['feature_sizes'], meta['aspect_ratios'],
                    min_ratio=float(meta.get('min_ratio', 0.2)),
                    max_ratio=float(meta.get('max_ratio', 0.95)), scales=meta.get('scales'))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError('detector metadata %r: missing or malformed field: %s'
                              % (meta, exc)) from None
        return cls(family=family, classes=classes,
                   input_hw=(int(input_hw[0]), int(input_hw[1])), anchors=anchors,
                   boxes_output=str(meta.get('boxes_output', 'boxes')),
                   scores_output=str(meta.get('scores_output', 'scores')),
                   score_activation=str(meta.get('score_activation', 'softmax')))

    # -- decoding ---------------------------------------------------------------------------
    def decode(self, outputs: Dict[str, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
        """``(boxes (N, 4) cx, cy, w, h in input pixels, scores (N, K))`` over the object
        classes (SSD with softmax: the background column removed, so column j is class j + 1;
        with ``score_activation='sigmoid'`` the scores are still logits)."""
        h, w = self.input_hw
        if self.family == 'ssd':
            try:
                deltas = np.asarray(outputs[self.boxes_output], np.float32).reshape(-1, 4)
                logits = np.asarray(outputs[self.scores_output], np.float32)
            except KeyError as exc:
                raise ConfigError('ssd detector: no output %s (outputs: %s)'
                                  % (exc, sorted(outputs))) from None
            logits = logits.reshape(-1, self.classes)
            a = self.anchors
            if deltas.shape[0] != a.shape[0] or logits.shape[0] != a.shape[0]:
                raise ConfigError('ssd detector: %d box deltas and %d score rows for %d default '
                                  'boxes' % (deltas.shape[0], logits.shape[0], a.shape[0]))
            vc, vs = SSD_VARIANCES
            cx = a[:, 0] + deltas[:, 0] * vc * a[:, 2]
            cy = a[:, 1] + deltas[:, 1] * vc * a[:, 3]
            bw = a[:, 2] * np.exp(np.minimum(deltas[:, 2] * vs, 4.0))
            bh = a[:, 3] * np.exp(np.minimum(deltas[:, 3] * vs, 4.0))
            boxes = np.stack([cx * w, cy * h, bw * w, bh * h], 1)
            if self.score_activation == 'sigmoid':
                return boxes, logits
            z = logits - logits.max(axis=1, keepdims=True)
            e = np.exp(z)
            probs = e / e.sum(axis=1, keepdims=True)
            return boxes, probs[:, 1:]
        if self.family == 'onnx_nms':
            try:
                b = np.asarray(outputs[self.boxes_output], np.float32).reshape(-1, 4)
                sc = np.asarray(outputs[self.scores_output], np.float32)
            except KeyError as exc:
                raise ConfigError('onnx_nms detector: no output %s (outputs: %s)'
                                  % (exc, sorted(outputs))) from None
            sc = sc.reshape(-1, sc.shape[-1]).T   # (1, C, N) -> (N, C)
            if sc.shape[0] != b.shape[0]:
                raise ConfigError('onnx_nms detector: %d boxes but scores for %d'
                                  % (b.shape[0], sc.shape[0]))
            if not self.center_point_box:   # y1, x1, y2, x2 (either corner order)
                y0, y1 = np.minimum(b[:, 0], b[:, 2]), np.maximum(b[:, 0], b[:, 2])
                x0, x1 = np.minimum(b[:, 1], b[:, 3]), np.maximum(b[:, 1], b[:, 3])
                b = np.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], 1)
            return b, sc
        out = np.asarray(next(iter(outputs.values())), np.float32)
        out = out.reshape(out.shape[-2], out.shape[-1])
        if out.shape[0] == 4 + self.classes and out.shape[1] != 4 + self.classes:
            out = out.T
        if out.shape[1] != 4 + self.classes:
            raise ConfigError('anchor_free detector: output shape %s has no axis of 4 + %d '
                              'classes' % (list(out.shape), self.classes))
        return out[:, :4], out[:, 4:]

    def class_offset(self) -> int:
        """Class id of score column 0 (SSD with softmax: 1, the background is 0)."""
        return 1 if self.family == 'ssd' and self.score_activation == 'softmax' else 0


def nms(boxes_xywh: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, *,
        iou_threshold: float, top_n: int) -> np.ndarray:
    """Indices kept by class-aware NMS (OpenCV), best score first, at most ``top_n``.

    :param boxes_xywh: (N, 4) top-left x, y, width, height.
    """
    import cv2
    if len(scores) == 0:
        return np.zeros(0, np.int64)
    rects = boxes_xywh.astype(np.float64).tolist()
    sc = scores.astype(np.float64).tolist()
    batched = getattr(cv2.dnn, 'NMSBoxesBatched', None)
    if batched is not None:
        keep = np.asarray(batched(rects, sc, class_ids.astype(np.int64).tolist(), 0.0,
                                  float(iou_threshold)), np.int64).reshape(-1)
    else:  # OpenCV < 4.7 (JetPack 5): one NMS a class
        parts = []
        for c in np.unique(class_ids):
            idx = np.flatnonzero(class_ids == c)
            k = cv2.dnn.NMSBoxes([rects[i] for i in idx], [sc[i] for i in idx], 0.0,
                                 float(iou_threshold))
            parts.append(idx[np.asarray(k, np.int64).reshape(-1)])
        keep = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    keep = keep[np.argsort(-scores[keep], kind='stable')]
    return keep[:max(0, int(top_n))]


def to_image_pixels(boxes: np.ndarray, input_hw: Sequence[int], image_hw: Sequence[int], *,
                    letterbox: bool = False) -> np.ndarray:
    """Boxes ``cx, cy, w, h`` in model-input pixels -> image pixels, clipped to the image.

    ``letterbox=False``: the image was stretched to the input (serving's preprocessing);
    ``True``: scaled by one factor to fit and centred with padding (YOLO-style inputs).
    """
    ih, iw = float(input_hw[0]), float(input_hw[1])
    h, w = float(image_hw[0]), float(image_hw[1])
    b = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
    if letterbox:
        s = min(iw / w, ih / h)
        px, py = (iw - s * w) / 2.0, (ih - s * h) / 2.0
        b[:, 0] = (b[:, 0] - px) / s
        b[:, 1] = (b[:, 1] - py) / s
        b[:, 2:] /= s
    else:
        sx, sy = w / iw, h / ih
        b[:, 0] *= sx
        b[:, 2] *= sx
        b[:, 1] *= sy
        b[:, 3] *= sy
    x0 = np.clip(b[:, 0] - b[:, 2] / 2, 0.0, w)
    x1 = np.clip(b[:, 0] + b[:, 2] / 2, 0.0, w)
    y0 = np.clip(b[:, 1] - b[:, 3] / 2, 0.0, h)
    y1 = np.clip(b[:, 1] + b[:, 3] / 2, 0.0, h)
    return np.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], 1)


def detect(head: DetectorHead, outputs: Dict[str, np.ndarray], image_hw: Sequence[int], *,
           score_threshold: float = 0.3, iou_threshold: float = 0.5, top_n: int = 100,
           pre_nms_top: int = DEFAULT_PRE_NMS_TOP, letterbox: bool = False
           ) -> List[Detection]:
    """Decode, threshold, class-aware NMS, undo the resize: the detections of one image."""
    boxes, scores = head.decode(outputs)
    sigmoid = head.family == 'ssd' and head.score_activation == 'sigmoid'
    if sigmoid:   # threshold the logits: only the kept ones go through the sigmoid
        t = min(max(float(score_threshold), 1e-7), 1.0 - 1e-7)
        rows, cols = np.nonzero(scores >= np.float32(math.log(t / (1.0 - t))))
    else:
        rows, cols = np.nonzero(scores >= score_threshold)
    if rows.size == 0:
        return []
    vals = scores[rows, cols]
    if sigmoid:
        vals = 1.0 / (1.0 + np.exp(-vals))
    if vals.size > pre_nms_top:
        sel = np.argpartition(-vals, pre_nms_top - 1)[:pre_nms_top]
        rows, cols, vals = rows[sel], cols[sel], vals[sel]
    cand = boxes[rows]
    xywh = np.stack([cand[:, 0] - cand[:, 2] / 2, cand[:, 1] - cand[:, 3] / 2, cand[:, 2],
                     cand[:, 3]], 1)
    keep = nms(xywh, vals, cols, iou_threshold=iou_threshold, top_n=top_n)
    img = to_image_pixels(cand[keep], head.input_hw, image_hw, letterbox=letterbox)
    off = head.class_offset()
    return [Detection(int(cols[k]) + off, float(vals[k]), tuple(float(v) for v in box))
            for k, box in zip(keep.tolist(), img)]
