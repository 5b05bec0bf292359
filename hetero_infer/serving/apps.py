"""An application of the serving core: a model, the processors that run it, its SLO, and how its
inputs and outputs are made.

One :class:`ServedApp` per configured application (``apps.<name>.*``). It turns decoded arrays into
the function that computes the model inputs (:meth:`ServedApp.preprocessor`, run later on the
processor's worker) and an outcome into the result document (:meth:`ServedApp.document`). The
request
path reads in one direction::

    arrays --ServedApp.preprocessor--> Request --engine--> worker: preprocess, run --> Outcome
      --ServedApp.document: post-process--> result document --> published by the caller
"""

import dataclasses
import json
import os
import tempfile
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from hetero_infer.backends.base import LoadRequest, TensorSpec
from hetero_infer.errors import ConfigError, HeteroInferError
from hetero_infer.models.zoo import load_model
from hetero_infer.platform.spec import Platform
from hetero_infer.serving import detection, postprocess, preprocess, results
from hetero_infer.serving.config import AppConfig, ServeConfig, app_param
from hetero_infer.serving.engine import Outcome

Log = Callable[[str], None]


class ServedApp:
    """Everything the service keeps per application (fixed after start-up, but ``cfg`` and
    ``slo_ms``, which live parameter changes replace).

    :param iso_ms: isolated latency (ms) per processor that can run the model.
    """

    def __init__(self, index: int, cfg: AppConfig, model: Any, input_spec: TensorSpec,
                 labels: Optional[List[str]], iso_ms: Dict[str, float], slo_scale: float,
                 detector: Optional[detection.DetectorHead] = None) -> None:
        self.index = index
        #: how to decode a detector's outputs (None: not a detector, or outputs not decodable)
        self.detector = detector
        self.cfg = cfg
        self.model = model
        self.input_spec = input_spec
        self.labels = labels
        self.iso_ms = dict(iso_ms)
        self.is_audio = cfg.input_type.startswith('audio')
        self.slo_ms = self.slo_for(cfg, slo_scale)

    @property
    def name(self) -> str:
        return self.cfg.name

    def slo_for(self, cfg: AppConfig, slo_scale: float) -> float:
        """``apps.<name>.slo_ms``, or ``slo_scale`` x the isolated latency on the fastest
        processor the application may use (with the host post-processing of a detector)."""
        if cfg.slo_ms > 0:
            return cfg.slo_ms
        return slo_scale * (min(self.iso_ms.values()) + self.model.postprocess_ms)

    @property
    def audio_features(self) -> str:
        """NeMo's features for this audio model: a keyword classifier (labels, MatchboxNet)
        takes MFCC, a CTC speech recogniser (QuartzNet) log-mel features."""
        return 'mfcc' if self.labels is not None else 'mel'

    def reconfigure(self, cfg: AppConfig, slo_scale: float) -> None:
        self.cfg = cfg
        self.slo_ms = self.slo_for(cfg, slo_scale)

    # -- in ---------------------------------------------------------------------------------
    def preprocessor(self, data: Any, order: str = '') -> Callable[[], Dict[str, np.ndarray]]:
        """The function that makes this application's model inputs from decoded ``data``: an
        HxWxC image in channel ``order``, or float PCM samples (audio applications)."""
        name, shape = self.input_spec.name, self.input_spec.shape
        if self.is_audio:
            rate = self.cfg.sample_rate_hz
            features = self.audio_features
            return lambda: {name: preprocess.preprocess_audio(data, rate, shape,
                                                              features=features)}
        return _ImageInputs(name, data, order, shape)

    def warm_up_inputs(self) -> Dict[str, np.ndarray]:
        """Model inputs of a blank input, preprocessed as a real one (warm-up)."""
        if self.is_audio:
            return self.preprocessor(np.zeros(1600, np.float32))()
        return self.preprocessor(np.zeros((48, 64, 3), np.uint8), 'rgb')()

    # -- out --------------------------------------------------------------------------------
    def document(self, o: Outcome, total_ms: float) -> Dict[str, Any]:
        """The result document (schema ``hetero_infer.result/1``) of one outcome."""
        req = o.request
        top_k = transcript = detections = None
        if o.ok and o.outputs:
            out = next(iter(o.outputs.values()))
            image_hw = getattr(req.prepare, 'image_hw', None)
            if self.detector is not None and image_hw is not None:
                c = self.cfg
                detections = detection.detect(
                    self.detector, o.outputs, image_hw, score_threshold=c.score_threshold,
                    iou_threshold=c.nms_iou, top_n=c.max_detections)
            elif self.detector is not None or self.model.extra.get('detector'):
                pass   # a detector's raw outputs are no class scores (nothing decodable)
            elif self.is_audio and self.labels is None:
                transcript = postprocess.ctc_greedy_decode(out)
            else:
                top_k = postprocess.top_k(out, self.cfg.top_k, self.labels)
        return results.result_document(
            stamp=req.stamp, frame_id=req.frame_id, application=self.cfg.name,
            model=self.model.name, processor=o.proc, request_id=req.request_id,
            policy_version=req.policy_version, queue_ms=o.queue_ms, execute_ms=o.execute_ms,
            total_ms=total_ms, slo_ms=self.slo_ms, outcome='result' if o.ok else 'dropped',
            drop_reason=o.drop_reason, detail=o.detail, top_k=top_k, transcript=transcript,
            detections=detections)


class _ImageInputs:
    """Model inputs of one image, made when called; ``image_hw`` is the image's size (what
    a detector's boxes are scaled back to)."""

    __slots__ = ('name', 'data', 'order', 'shape', 'image_hw')

    def __init__(self, name: str, data: Any, order: str, shape) -> None:
        self.name, self.data, self.order, self.shape = name, data, order, shape
        self.image_hw = (int(data.shape[0]), int(data.shape[1]))

    def __call__(self) -> Dict[str, np.ndarray]:
        return {self.name: preprocess.preprocess_image(self.data, self.order, self.shape)}


def load_app(index: int, a: AppConfig, cfg: ServeConfig, platform: Platform, backend: Any, *,
             where: str, warn: Log, error: Log) -> Tuple[ServedApp, Dict[str, Any]]:
    """Load application ``a`` on every processor it may use: ``(ServedApp, {processor:
    executor})``.

    A processor that fails to load is reported through ``error`` and left out.

    :param where: who is loading (``node /scheduler``), for the messages.
    :raises ConfigError: unknown model or processor, a model no processor can run or load
        (parameter and value named).
    """
    try:
        model = load_model(a.model)
    except HeteroInferError as exc:
        raise ConfigError('%s: parameter %s=%r: %s'
                          % (where, app_param(a.name, 'model'), a.model, exc)) from None
    known = platform.processor_ids
    wanted = a.processors or known
    unknown = [p for p in wanted if p not in known]
    if unknown:
        raise ConfigError('%s: parameter %s: unknown processors %s (platform %s has %s)'
                          % (where, app_param(a.name, 'processors'), unknown, platform.name,
                             list(known)))
    runnable = [p for p in wanted if platform.can_run(model, p)]
    if not runnable:
        raise ConfigError('%s: model %s of application %s can run on none of %s'
                          % (where, model.name, a.name, list(wanted)))
    iso = {p: platform.isolated_latency_ms(model, p) for p in runnable}
    a, nms = _without_nms(a, where)
    execs: Dict[str, Any] = {}
    path = a.model_file_path or a.model
    provided = set(backend.processor_ids)
    for p in runnable:
        if p not in provided:
            warn('application %s: backend %s has no processor %s' % (a.name, cfg.backend, p))
            continue
        try:
            execs[p] = backend.load(load_request(cfg, a, p))
        except HeteroInferError as exc:
            error('application %s: cannot load %s on %s: %s' % (a.name, path, p, exc))
    if not execs:
        raise ConfigError('%s: application %s: no processor could load %s'
                          % (where, a.name, path))
    first = next(iter(execs.values()))
    input_spec = first.inputs[0] if getattr(first, 'inputs', None) else TensorSpec(
        model.input_name, model.input_shape)
    labels = _labels(a, model, where)
    head = detector_head(a, model, input_spec, where, nms)
    return ServedApp(index, a, model, input_spec, labels, iso, cfg.slo_scale, head), execs


#: Where the NMS-less copies of users' detector files go (one per file version).
NMS_CUT_DIR = os.path.join(tempfile.gettempdir(), 'hetero_infer_nms_cut')


def _without_nms(a: AppConfig, where: str) -> Tuple[AppConfig, Optional[Dict[str, Any]]]:
    """A detector file exported with its NMS is run without it (the host post-processing
    does it): the application with ``model_file_path`` on the cut copy, and what was cut."""
    path = a.model_file_path or (a.model if a.model.endswith('.onnx') else '')
    if not path or not os.path.isfile(path):
        return a, None
    from hetero_infer.models.onnx_import import cut_nms_file
    try:
        cut = cut_nms_file(path, NMS_CUT_DIR)
    except HeteroInferError as exc:
        raise ConfigError('%s: application %s: %s' % (where, a.name, exc)) from None
    if cut is None:
        return a, None
    return dataclasses.replace(a, model_file_path=cut[0]), cut[1]


def detector_head(a: AppConfig, model: Any, input_spec: TensorSpec, where: str,
                  nms: Optional[Dict[str, Any]] = None) -> Optional[detection.DetectorHead]:
    """The decoding of a detector application's outputs: the ``detector`` metadata of the
    ONNX file that computes them (``model_file_path``, else an ``.onnx`` model); for a file
    whose NMS was cut off (``nms``: :func:`~hetero_infer.models.onnx_import.cut_nms_file`'s
    report) the NMS's own inputs (family ``onnx_nms``); else None.

    :raises ConfigError: malformed metadata (the file named).
    """
    path = a.model_file_path or (a.model if a.model.endswith('.onnx') else '')
    if not path or not os.path.isfile(path):
        return None
    import onnx
    try:
        meta = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    except Exception as exc:  # noqa: BLE001 - protobuf's own errors; the backend names them too
        raise ConfigError('%s: cannot read %s: %s' % (where, path, exc)) from None
    shape = tuple(input_spec.shape)
    if 'detector' not in meta and nms is not None:
        boxes, scores = (list(nms['outputs']) + ['', ''])[:2]
        if not scores:
            raise ConfigError('%s: application %s: %s: its NonMaxSuppression has no scores '
                              'input' % (where, a.name, path))
        return detection.DetectorHead(
            'onnx_nms', 0, (int(shape[-2]), int(shape[-1])), boxes_output=boxes,
            scores_output=scores, center_point_box=int(nms.get('center_point_box', 0)))
    if 'detector' not in meta:
        return None
    try:
        return detection.DetectorHead.from_metadata(json.loads(meta['detector']), shape[-2:])
    except (ValueError, ConfigError) as exc:
        raise ConfigError('%s: application %s: %s: detector metadata: %s'
                          % (where, a.name, path, exc)) from None



def load_request(cfg: ServeConfig, a: AppConfig, proc: str) -> LoadRequest:
    """What every backend is asked to load for application ``a`` on ``proc`` (each uses the
    fields that apply to it: :class:`~hetero_infer.backends.base.LoadRequest`)."""
    return LoadRequest(a.model, proc, model_file=a.model_file_path,
                       engine_file=a.engine_file_path,
                       precision='fp16' if cfg.enable_fp16 else 'fp32',
                       rebuild=cfg.force_engine_update)


def _labels(a: AppConfig, model: Any, where: str) -> Optional[List[str]]:
    if a.labels_file:
        try:
            with open(a.labels_file) as f:
                return [line.strip() for line in f if line.strip()]
        except OSError as exc:
            raise ConfigError('%s: parameter %s=%r: %s'
                              % (where, app_param(a.name, 'labels_file'), a.labels_file, exc)
                              ) from None
    n_out = int(np.prod(model.layers[-1].out_shape))
    # the configured input type says what the model hears, not a guess from the file
    if a.input_type.startswith('audio') and n_out == len(postprocess.SPEECH_COMMANDS):
        return list(postprocess.SPEECH_COMMANDS)
    return None
