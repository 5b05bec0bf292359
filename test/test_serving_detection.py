"""Object detection: the zoo's detectors, their host post-processing (decoding, OpenCV NMS,
resize undone), its cost in the twin and the planner, the importer on detector graphs, and the
robot scenarios."""

import dataclasses
import json
import os

import numpy as np
import pytest

from hetero_infer.errors import ConfigError, ModelError
from hetero_infer.evaluation.scenarios import load_scenarios
from hetero_infer.interference.predictors import LatencyTable
from hetero_infer.interference.predictors.isolated import IsolatedPredictor
from hetero_infer.models.onnx_import import model_from_onnx
from hetero_infer.models.zoo import ModelSpec, load_model
from hetero_infer.planning.plansim import PlanSimulator
from hetero_infer.platform.spec import Platform
from hetero_infer.serving import detection
from hetero_infer.twin.simulator import Twin
from hetero_infer.workload.requests import App, FixedDispatcher

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_SSD = os.path.join(ROOT, 'hetero_infer', 'data', 'onnx', 'tiny_ssd.onnx')
# FACTS.md, "torchvision detectors": model -> (num_params, _ops GMACs)
FACTS = {'ssdlite320_mobilenet_v3_large': (3440060, 0.583), 'ssd300_vgg16': (35641826, 34.858),
         'fasterrcnn_mobilenet_v3_large_320_fpn': (19386354, 0.719),
         'retinanet_resnet50_fpn': (34014999, 151.54)}


# -- the zoo --------------------------------------------------------------------------------------

@pytest.mark.parametrize('name', sorted(FACTS))
def test_detectors_are_in_the_zoo_with_their_assumptions(name):
    m = load_model(name)
    d = m.extra['detector']
    params, ops = FACTS[name]
    if name.startswith('ssd'):   # fixed inputs: the MACs are torchvision's
        assert m.macs / 1e9 == pytest.approx(ops, rel=0.02)
        assert m.input_shape[2:] == tuple(d['input_hw'])
    else:                        # FPN models: the input size (and proposals) are stated
        assert 'assumes' in d and tuple(d['input_hw']) == m.input_shape[2:]
    # torch counts trainable BatchNorm parameters (random init) that the pretrained weights
    # freeze into buffers: within 0.3%
    assert m.extra['torch_params'] == pytest.approx(params, rel=0.003)
    assert m.postprocess_ms > 0 and 'measure_postprocess' in m.extra['postprocess_source']
    # decoding and NMS are not in the table: no layer named for them on the host side
    assert not any('nms' in layer.op for layer in m.layers)


def test_fpn_detectors_macs_beside_torchvision():
    # RetinaNet at 800x1088 (a 640x480 frame through its transform) is 800x1088 / 800x800 x the
    # figure torchvision quotes (which matches an 800x800 input)
    r = load_model('retinanet_resnet50_fpn')
    assert r.macs / 1e9 == pytest.approx(151.54 * 1088 / 800, rel=0.01)
    # Faster R-CNN: backbone + FPN + RPN at 320x448 plus the box head for 150 proposals
    f = load_model('fasterrcnn_mobilenet_v3_large_320_fpn')
    head = sum(layer.macs for layer in f.layers if layer.kind == 'fc')
    assert head == 150 * (12544 * 1024 + 1024 * 1024 + 1024 * 91 + 1024 * 364)
    ops = {layer.op for layer in f.layers if layer.kind == 'other'}
    assert {'rpn_proposals', 'roi_align'} <= ops


def test_detection_head_layers_follow_the_dla_rules():
    m = load_model('ssdlite320_mobilenet_v3_large')
    cats = [layer for layer in m.layers if layer.kind == 'concat']
    assert cats and all(not c.dla and 'rank-3' in c.dla_reason for c in cats)
    perms = [layer for layer in m.layers if layer.kind == 'shuffle']
    assert len(perms) == 12 and not any(p.dla for p in perms)
    assert 0.99 < m.dla_fraction <= 1.0   # every conv MAC may run on a DLA
    ssd = load_model('ssd300_vgg16')
    fc6 = [layer for layer in ssd.layers if layer.dla_reason == 'conv padding 6 >= kernel 3']
    assert len(fc6) == 1   # VGG's dilated fc6 (padding 6, 3x3) falls back to the GPU


def test_postprocess_ms_is_validated():
    d = load_model('ssdlite320_mobilenet_v3_large').to_dict()
    d['extra']['postprocess_ms'] = -1
    with pytest.raises(ModelError, match='postprocess_ms.*-1'):
        ModelSpec.from_dict(d, where='t.json')


# -- decoding, NMS, image pixels ------------------------------------------------------------------

def test_default_boxes_match_torchvision_counts_and_order():
    for name in ('ssdlite320_mobilenet_v3_large', 'ssd300_vgg16'):
        d = load_model(name).extra['detector']
        a = detection.ssd_default_boxes(d['input_hw'], d['feature_sizes'], d['aspect_ratios'],
                                        min_ratio=d.get('min_ratio', 0.2),
                                        max_ratio=d.get('max_ratio', 0.95),
                                        scales=d.get('scales'))
        assert a.shape == (d['anchors'], 4)
        assert a.min() >= 0.0 and a.max() <= 1.0
    a = detection.ssd_default_boxes((300, 300), [(2, 2)], [[2]], scales=[0.5, 1.0])
    # cell (0, 0) first, its 4 boxes: (s, s), (sqrt(s s'), ...), (s sqrt2, s / sqrt2), transpose
    assert np.allclose(a[0], [0.25, 0.25, 0.5, 0.5])
    assert np.allclose(a[1, 2:], [np.sqrt(0.5)] * 2)
    assert np.allclose(a[2, 2:], [0.5 * np.sqrt(2), 0.5 / np.sqrt(2)])
    assert np.allclose(a[4, :2], [0.75, 0.25])   # next cell: column 1 of row 0
    with pytest.raises(ConfigError, match='2 scales for 2 feature maps'):
        detection.ssd_default_boxes((300, 300), [(2, 2), (1, 1)], [[2], [2]], scales=[1, 2])


def _ssd_head(anchors, classes=3):
    return detection.DetectorHead('ssd', classes, (100, 200), anchors=np.asarray(
        anchors, np.float32))


def test_ssd_decoding_class_aware_nms_and_image_pixels():
    # three default boxes: two overlapping ones and a separate one
    head = _ssd_head([[0.25, 0.5, 0.2, 0.4], [0.26, 0.5, 0.2, 0.4], [0.75, 0.5, 0.2, 0.4]])
    deltas = np.zeros((1, 3, 4), np.float32)
    deltas[0, 2] = [1.0, 0.0, np.log(2.0) / 0.2, 0.0]   # moved right 0.1 x width, twice as wide
    logits = np.full((1, 3, 3), -10.0, np.float32)
    logits[0, 0, 1] = logits[0, 1, 1] = 10.0   # the overlapping pair: class 1 twice
    logits[0, 1, 2] = 9.0                      # and the second also class 2 (another class)
    logits[0, 2, 2] = 10.0
    dets = detection.detect(head, {'boxes': deltas, 'scores': logits}, (400, 400),
                            score_threshold=0.2, iou_threshold=0.5)
    got = sorted((d.class_id, round(d.bbox[0], 1)) for d in dets)
    # class 1: the pair collapses to one; class 2 keeps the box the class-1 one overlaps
    assert got == [(1, 100.0), (2, 104.0), (2, 308.0)]
    by = {(d.class_id, round(d.bbox[0])): d for d in dets}
    # input 200 wide x 100 high stretched from a 400x400 image: x scales by 2, y by 4
    assert by[(1, 100)].bbox == pytest.approx((100.0, 200.0, 80.0, 160.0), abs=1e-3)
    assert by[(2, 308)].bbox == pytest.approx((308.0, 200.0, 160.0, 160.0), abs=1e-3)
    assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
    # thresholds and top-N are the application's
    assert len(detection.detect(head, {'boxes': deltas, 'scores': logits}, (400, 400),
                                score_threshold=0.2, top_n=1)) == 1
    # the second box's class 2 scores softmax(9 vs 10) = 0.27: a 0.5 threshold drops it
    high = detection.detect(head, {'boxes': deltas, 'scores': logits}, (400, 400),
                            score_threshold=0.5)
    assert sorted((d.class_id, round(d.bbox[0])) for d in high) == [(1, 100), (2, 308)]


def test_nms_without_batched_opencv_gives_the_same(monkeypatch):
    import cv2
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 200, (300, 2))
    boxes = np.concatenate([xy, rng.uniform(10, 60, (300, 2))], 1)
    scores = rng.uniform(0.3, 1.0, 300)
    classes = rng.integers(0, 4, 300)
    batched = detection.nms(boxes, scores, classes, iou_threshold=0.4, top_n=1000)
    if hasattr(cv2.dnn, 'NMSBoxesBatched'):
        monkeypatch.delattr(cv2.dnn, 'NMSBoxesBatched')
    per_class = detection.nms(boxes, scores, classes, iou_threshold=0.4, top_n=1000)
    assert sorted(batched.tolist()) == sorted(per_class.tolist())
    assert 0 < len(batched) < 300


def test_anchor_free_outputs_and_letterbox():
    # YOLOv8 layout (1, 4 + C, N): boxes in input pixels, sigmoid scores
    out = np.zeros((1, 4 + 2, 2), np.float32)
    out[0, :4, 0] = [320, 320, 64, 32]
    out[0, 5, 0] = 0.9       # class 1
    out[0, :4, 1] = [100, 100, 10, 10]
    out[0, 4, 1] = 0.1       # below the threshold
    head = detection.DetectorHead('anchor_free', 2, (640, 640))
    dets = detection.detect(head, {'output0': out}, (480, 640), letterbox=True)
    assert len(dets) == 1 and dets[0].class_id == 1
    # 640x480 letterboxed into 640x640: scale 1, 80 px padding on top and bottom
    assert dets[0].bbox == pytest.approx((320.0, 240.0, 64.0, 32.0))
    with pytest.raises(ConfigError, match='no axis of 4 \\+ 3'):
        detection.DetectorHead('anchor_free', 3, (640, 640)).decode({'o': out})
    with pytest.raises(ConfigError, match="family 'yolo'"):
        detection.DetectorHead('yolo', 2, (640, 640))


def test_boxes_are_clipped_to_the_image():
    b = detection.to_image_pixels(np.array([[0.0, 0.0, 40.0, 40.0]]), (100, 100), (200, 300))
    # x scales by 3, y by 2: (0, 0, 120, 80), whose left and top halves are cut off
    assert b[0] == pytest.approx((30.0, 20.0, 60.0, 40.0))


def test_tiny_ssd_on_onnxruntime_gives_boxes_inside_the_frame():
    ort = pytest.importorskip('onnxruntime')
    import onnx
    meta = {p.key: p.value for p in onnx.load(TINY_SSD).metadata_props}
    head = detection.DetectorHead.from_metadata(json.loads(meta['detector']), (320, 320))
    sess = ort.InferenceSession(TINY_SSD, providers=['CPUExecutionProvider'])
    x = np.random.default_rng(0).normal(size=(1, 3, 320, 320)).astype(np.float32)
    outputs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {'input': x})))
    assert outputs['boxes'].shape == (1, 2350, 4) and outputs['scores'].shape == (1, 2350, 21)
    dets = detection.detect(head, outputs, (480, 640), top_n=50)
    assert 0 < len(dets) <= 50
    for d in dets:
        cx, cy, w, h = d.bbox
        assert 0 <= cx - w / 2 and cx + w / 2 <= 640 and 0 <= cy - h / 2 and cy + h / 2 <= 480
        assert 1 <= d.class_id <= 20 and d.score >= 0.3
    assert os.path.getsize(TINY_SSD) < 600000


def test_malformed_detector_metadata_is_named():
    with pytest.raises(ConfigError, match='feature_sizes'):
        detection.DetectorHead.from_metadata({'family': 'ssd', 'classes': 3}, (320, 320))


# -- the twin and the planner add the host post-processing ----------------------------------------

def _with_post(name, ms):
    m = load_model(name)
    return dataclasses.replace(m, extra=dict(m.extra, postprocess_ms=ms))


def test_twin_adds_post_processing_to_latency_without_occupying_the_processor():
    xavier = Platform.load('xavier')
    runs = {}
    for ms in (0.0, 7.5):
        apps = [App('det', _with_post('ssdlite320_mobilenet_v3_large', ms), 60.0, 100.0)]
        runs[ms] = Twin(xavier, seed=4).serve(apps, FixedDispatcher(['gpu']), duration_s=0.5)
    a, b = runs[0.0], runs[7.5]
    assert len(a) == len(b) > 10
    for ra, rb in zip(a, b):
        # same processor schedule (it is free as soon as the inference ends) ...
        assert rb.start_ms == pytest.approx(ra.start_ms)
        # ... and every request 7.5 ms later
        assert rb.latency_ms == pytest.approx(ra.latency_ms + 7.5)


def test_planner_simulation_and_slos_add_post_processing():
    xavier = Platform.load('xavier')
    procs = xavier.processor_ids
    lat = {}
    for ms in (0.0, 4.0):
        apps = [App('det', _with_post('ssdlite320_mobilenet_v3_large', ms), 50.0, 1000.0)]
        table = LatencyTable(IsolatedPredictor(xavier), [a.model for a in apps], procs)
        iso = [[xavier.isolated_latency_ms(a.model, p) for p in procs] for a in apps]
        sim = PlanSimulator(apps, procs, table, iso, duration_s=1.0, warmup_s=0.1)
        res = sim.run(FixedDispatcher(['gpu']), keep_latencies=True)
        lat[ms] = res.latencies[0]
    assert len(lat[0.0]) == len(lat[4.0]) > 10
    assert np.allclose(np.asarray(lat[4.0]) - np.asarray(lat[0.0]), 4.0)


def test_robot_scenarios_build_with_detector_slos_including_post_processing():
    xavier = Platform.load('xavier')
    scenarios = load_scenarios(os.path.join(ROOT, 'config', 'scenarios_robot.yaml'))
    assert len(scenarios) >= 4
    models = set()
    for sc in scenarios:
        for app in sc.build(xavier):
            models.add(app.model.name)
            iso = min(xavier.isolated_latency_ms(app.model, p) for p in xavier.processor_ids)
            assert app.slo_ms == pytest.approx(5.0 * (iso + app.model.postprocess_ms))
            assert app.rate_hz > 0
    assert {'ssdlite320_mobilenet_v3_large', 'ssd300_vgg16', 'matchboxnet_kws'} <= models
    # the talk's 40 stay as they were: no detector among them
    talk = load_scenarios(os.path.join(ROOT, 'config', 'scenarios.yaml'))
    assert len(talk) == 40
    assert not any('detector' in load_model(a.model).extra
                   for sc in talk for a in sc.applications)


# -- users' single-stage detectors through the importer -------------------------------------------

def _yolo_like(path, with_nms=True):
    """A YOLO-style graph: Conv + SiLU (Sigmoid, Mul), an upsampled (Resize) branch
    concatenated back, a Split head, Reshape / Transpose / Concat of two scales, Softmax scores,
    and a NonMaxSuppression with a Gather after it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    inits = []
    nodes = []

    def w(name, shape):
        inits.append(numpy_helper.from_array(rng.normal(0, 0.1, shape).astype(np.float32),
                                             name))
        return name

    def conv_silu(x, cin, cout, stride, name):
        nodes.append(helper.make_node('Conv', [x, w(name + '.w', (cout, cin, 3, 3))],
                                      [name + '.c'], name=name, kernel_shape=[3, 3],
                                      strides=[stride, stride], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node('Sigmoid', [name + '.c'], [name + '.s'],
                                      name=name + '.sig'))
        nodes.append(helper.make_node('Mul', [name + '.c', name + '.s'], [name + '.y'],
                                      name=name + '.mul'))
        return name + '.y'

    def const(name, values, dtype=np.int64):
        inits.append(numpy_helper.from_array(np.asarray(values, dtype), name))
        return name

    a = conv_silu('images', 3, 16, 2, 'stem')           # 32x32
    b = conv_silu(a, 16, 32, 2, 'down')                 # 16x16
    nodes.append(helper.make_node('Resize', [b, '', const('scales', [1, 1, 2, 2], np.float32)],
                                  ['up'], name='upsample', mode='nearest'))
    nodes.append(helper.make_node('Concat', ['up', a], ['fused'], name='fuse', axis=1))
    p3 = conv_silu('fused', 48, 24, 1, 'p3')            # 32x32, 4 box + 20 class channels
    p4 = conv_silu(b, 32, 24, 1, 'p4')                  # 16x16
    flat = []
    for p, n in ((p3, 1024), (p4, 256)):
        nodes.append(helper.make_node('Reshape', [p, const(p + '.shape', [1, 24, n])],
                                      [p + '.r'], name=p + '.reshape'))
        flat.append(p + '.r')
    nodes.append(helper.make_node('Concat', flat, ['pred'], name='cat_scales', axis=2))
    nodes.append(helper.make_node('Split', ['pred', const('split', [4, 20])],
                                  ['box', 'cls'], name='split', axis=1))
    nodes.append(helper.make_node('Softmax', ['cls'], ['prob'], name='softmax', axis=1))
    nodes.append(helper.make_node('Transpose', ['box'], ['boxes'], name='box_t',
                                  perm=[0, 2, 1]))
    outputs = [helper.make_tensor_value_info('boxes', TensorProto.FLOAT, [1, 1280, 4]),
               helper.make_tensor_value_info('prob', TensorProto.FLOAT, [1, 20, 1280])]
    if with_nms:
        nodes.append(helper.make_node(
            'NonMaxSuppression', ['boxes', 'prob', const('max_out', [100]),
                                  const('iou', [0.5], np.float32),
                                  const('score', [0.25], np.float32)],
            ['selected'], name='nms'))
        nodes.append(helper.make_node('Gather', ['selected', const('col', 2)], ['box_index'],
                                      name='pick', axis=1))
        outputs = [helper.make_tensor_value_info('box_index', TensorProto.INT64, [None])]
    graph = helper.make_graph(
        nodes, 'yolo_like',
        [helper.make_tensor_value_info('images', TensorProto.FLOAT, [1, 3, 64, 64])],
        outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    onnx.save(model, path)
    return path


def test_importer_plans_a_single_stage_detector_and_cuts_its_nms(tmp_path):
    spec = model_from_onnx(_yolo_like(str(tmp_path / 'yolo.onnx')))
    assert spec.extra['nms_cut'] == {'node': 'nms', 'nodes_cut': 2, 'outputs': ['boxes', 'prob'],
                                     'center_point_box': 0}
    ops = [(layer.name, layer.kind, layer.op) for layer in spec.layers]
    assert ('upsample', 'other', 'resize') in ops
    assert ('stem.sig', 'act', 'sigmoid') in ops and ('stem.mul', 'eltwise', 'prod') in ops
    assert ('softmax', 'softmax', 'softmax') in ops and ('box_t', 'shuffle', 'transpose') in ops
    assert not any(name in ('nms', 'pick', 'split') for name, _, _ in ops)   # cut / free
    by = {layer.name: layer for layer in spec.layers}
    assert by['fuse'].dla                                   # a channel concat of feature maps
    assert not by['cat_scales'].dla and 'rank-3' in by['cat_scales'].dla_reason
    assert spec.layers[-1].out_shape in ((1, 1280, 4), (1, 20, 1280))
    # the same graph without its NMS gives the same table
    plain = model_from_onnx(_yolo_like(str(tmp_path / 'plain.onnx'), with_nms=False))
    assert [layer.name for layer in plain.layers] == [layer.name for layer in spec.layers]
    assert plain.macs == spec.macs
    # and it plans: every processor of the Xavier can run it, the DLAs with GPU fallback
    xavier = Platform.load('xavier')
    for p in xavier.processor_ids:
        assert xavier.can_run(spec, p) and xavier.isolated_latency_ms(spec, p) > 0


def test_a_users_detector_with_its_nms_is_served_without_it(tmp_path):
    pytest.importorskip('onnxruntime')
    import time

    from hetero_infer.serving.apps import NMS_CUT_DIR
    from hetero_infer.serving.config import build_config
    from hetero_infer.serving.service import Service

    path = _yolo_like(str(tmp_path / 'user_yolo.onnx'))
    docs = []
    cfg = build_config({
        'platform': 'cpu2', 'backend': 'onnxruntime', 'plan_samples': 4,
        'plan_duration_s': 0.3, 'admission_control': False, 'applications': ['det'],
        'apps.det.input_topic': 'cam', 'apps.det.model': path,
        'apps.det.score_threshold': 0.06, 'apps.det.max_detections': 10})
    svc = Service(cfg, publish=lambda app, doc: docs.append(doc), plan_in_process=True,
                  name='test')
    svc.start()
    det = svc.apps[0]
    try:
        # the backend runs a copy without the NMS; the host does the NMS on its inputs
        assert det.detector.family == 'onnx_nms'
        assert det.cfg.model_file_path.startswith(NMS_CUT_DIR)
        frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3)).astype(np.uint8)
        svc.submit(det, det.preprocessor(frame, 'rgb'), received_s=time.perf_counter(),
                   stamp=(5, 0), frame_id='cam')
        end = time.monotonic() + 20.0
        while not docs and time.monotonic() < end:
            time.sleep(0.02)
    finally:
        svc.close()
    assert len(docs) == 1 and docs[0]['outcome'] == 'result', docs
    dets = docs[0]['detections']
    assert 0 < len(dets) <= 10 and docs[0]['processor'] in ('cpu0', 'cpu1')
    for d in dets:
        cx, cy, w, h = d['bbox']   # rounded to 0.01 px in the document
        assert -0.01 <= cx - w / 2 and cx + w / 2 <= 640.01
        assert -0.01 <= cy - h / 2 and cy + h / 2 <= 480.01
        assert 0 <= d['class_id'] < 20 and d['score'] >= 0.06


def test_onnx_nms_inputs_decode_in_both_box_layouts():
    boxes = np.array([[[10.0, 20.0, 50.0, 80.0]]], np.float32)   # y1, x1, y2, x2
    scores = np.array([[[0.1], [0.8]]], np.float32)               # (1, C=2, N=1)
    head = detection.DetectorHead('onnx_nms', 0, (100, 100), boxes_output='b',
                                  scores_output='s')
    dets = detection.detect(head, {'b': boxes, 's': scores}, (100, 100))
    assert [(d.class_id, d.bbox) for d in dets] == [(1, pytest.approx((50.0, 30.0, 60.0, 40.0)))]
    centre = dataclasses.replace(head, center_point_box=1)
    boxes = np.array([[[50.0, 40.0, 20.0, 10.0]]], np.float32)     # cx, cy, w, h
    dets = detection.detect(centre, {'b': boxes, 's': scores}, (200, 100))
    assert dets[0].bbox == pytest.approx((50.0, 80.0, 20.0, 20.0))   # y doubles: 200 high
