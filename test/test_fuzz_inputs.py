"""Property-based fuzzing (Hypothesis) of everything that reads a user's input.

For any input, each reader returns a result or raises the project's own error type
(:class:`~hetero_infer.errors.HeteroInferError`), never another exception, and within a bounded
time (Hypothesis' ``deadline``). The readers: the YAML loader and the platform / scenario
validators, the layer-table reader, the interference-model reader, the ONNX importer, and the
Image / CompressedImage / audio conversions of the scheduler node. The whole file runs in well
under 30 s (``max_examples`` per reader below; no example database is written).
"""

import copy
import json
import math
import os
import types

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hetero_infer.errors import HeteroInferError

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FUZZ = settings(max_examples=150, deadline=2000, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEW = settings(max_examples=40, deadline=5000, database=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.function_scoped_fixture])

scalars = (st.none() | st.booleans() | st.integers(-10 ** 12, 10 ** 12)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
json_like = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8) | st.integers(0, 3), inner, max_size=4),
    max_leaves=25)


def _own_error_or_result(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except HeteroInferError:
        return None


def _mutations(doc):
    """Strategy: ``doc`` with one value somewhere replaced by an arbitrary JSON-like value."""
    paths = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node[:3]):
                walk(v, path + (i,))
    walk(doc, ())

    def apply(path, value):
        out = copy.deepcopy(doc)
        if not path:
            return value
        node = out
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
        return out
    return st.builds(apply, st.sampled_from(paths[1:]), json_like)


# ---- YAML loader and the platform / scenario validators ---------------------------------------
yaml_chars = st.text(alphabet=st.sampled_from(list('ab:-[]{}&*!|>,.#\'" \n01e5\t%@`?')),
                     max_size=120)


@FUZZ
@given(st.one_of(yaml_chars, st.text(max_size=80)))
def test_yaml_text_parses_or_is_refused(text):
    from hetero_infer.io.yaml_file import parse_yaml
    _own_error_or_result(parse_yaml, text, 'fuzz')


def _platform_doc():
    from hetero_infer.io.yaml_file import read_yaml
    return read_yaml(os.path.join(ROOT, 'config', 'platforms', 'xavier.yaml'), 'platform')


@FUZZ
@given(st.data())
def test_platform_documents_load_or_are_refused(data):
    from hetero_infer.platform.spec import Platform
    doc = data.draw(_mutations(_platform_doc()) | json_like)
    p = _own_error_or_result(Platform.from_dict, doc, where='fuzz')
    if p is not None:
        for proc in p.processors.values():
            assert math.isfinite(proc.peak_gmacs) and proc.peak_gmacs > 0


SCENARIO = {'format': 'hetero_infer.scenarios/1', 'platform': 'xavier',
            'defaults': {'load': 0.8, 'slo_scale': 5},
            'scenarios': [{'name': 's', 'load': 0.5, 'applications': [
                {'name': 'a', 'model': 'resnet50', 'ratio': 1, 'processors': ['gpu']},
                {'model': 'googlenet', 'ratio': 2, 'slo_ms': 20}]}]}


@FUZZ
@given(st.data())
def test_scenario_documents_parse_or_are_refused(data):
    from hetero_infer.evaluation.scenarios import parse_scenarios
    doc = data.draw(_mutations(SCENARIO) | json_like)
    out = _own_error_or_result(parse_scenarios, doc, where='fuzz')
    for s in out or ():
        names = [a.name for a in s.applications]
        assert len(set(names)) == len(names)  # never renamed, never duplicated


# ---- layer tables ---------------------------------------------------------------------------
def _zoo_doc():
    with open(os.path.join(ROOT, 'hetero_infer', 'data', 'zoo', 'googlenet.json')) as f:
        doc = json.load(f)
    doc['layers'] = doc['layers'][:4]
    return doc


@FUZZ
@given(st.data())
def test_layer_tables_load_or_are_refused(data):
    from hetero_infer.models.zoo import ModelSpec
    spec = _own_error_or_result(ModelSpec.from_dict, data.draw(_mutations(_zoo_doc())
                                                               | json_like), where='fuzz')
    if spec is not None:
        assert all(layer.macs >= 0 and layer.bytes_total >= 0 for layer in spec.layers)


# ---- interference models --------------------------------------------------------------------
def _small_interference_doc():
    from hetero_infer.interference.slowdown_model import DATA_DIR
    with open(os.path.join(DATA_DIR, 'xavier.json')) as f:
        doc = json.load(f)
    keep = sorted(doc['models'])[:1]
    doc['models'] = {k: doc['models'][k] for k in keep}
    doc['config_order'] = keep
    return doc


_IM_DOC = None


@FEW
@given(st.data(), st.booleans())
def test_interference_models_load_or_are_refused(data, resign):
    from hetero_infer.interference.slowdown_model import SlowdownPredictor, _digest
    global _IM_DOC
    if _IM_DOC is None:
        _IM_DOC = _small_interference_doc()
    doc = data.draw(_mutations(_IM_DOC) | json_like)
    if resign and isinstance(doc, dict):  # an edit that keeps the checksum valid
        try:
            doc['sha256'] = _digest({k: v for k, v in doc.items() if k != 'sha256'})
        except TypeError:  # keys JSON cannot sort: no file could hold this document
            pass
    pred = _own_error_or_result(SlowdownPredictor.from_dict, doc, where='fuzz')
    if pred is not None:
        for model in pred.models.values():
            x = np.zeros((1, model.n_features_in_))
            y = _own_error_or_result(model.predict, x)
            assert y is None or np.all(np.isfinite(y))


# ---- ONNX importer --------------------------------------------------------------------------
_ONNX = os.path.join(ROOT, 'hetero_infer', 'data', 'onnx', 'tiny_cnn.onnx')


@FEW
@given(st.one_of(st.binary(max_size=300),
                 st.tuples(st.integers(0, 10 ** 6), st.binary(min_size=1, max_size=8))))
def test_onnx_files_import_or_are_refused(tmp_path, blob):
    from hetero_infer.models.onnx_import import model_from_onnx
    if isinstance(blob, tuple):  # the committed model with a few bytes overwritten
        with open(_ONNX, 'rb') as f:
            data = bytearray(f.read())
        at, patch = blob
        at %= len(data)
        data[at:at + len(patch)] = patch
        blob = bytes(data)
    path = tmp_path / 'fuzz.onnx'
    path.write_bytes(blob)
    spec = _own_error_or_result(model_from_onnx, str(path))
    if spec is not None:
        assert all(layer.macs >= 0 for layer in spec.layers)


@FEW
@given(st.sampled_from(['ij,jk->ik', 'bij,bjk->bik', '...ij,jk', 'ii->i', 'ij->ji', 'i,i',
                        'abc', 'ij,jk->', 'a...,b...->ab...']),
       st.lists(st.lists(st.integers(1, 6), min_size=0, max_size=4), min_size=1, max_size=3))
def test_einsum_macs_count_or_refuse(equation, shapes):
    from hetero_infer.models.onnx_import import einsum_macs
    macs = _own_error_or_result(einsum_macs, equation, [tuple(s) for s in shapes], 'fuzz')
    assert macs is None or macs >= 0


# ---- message conversions of the scheduler node ----------------------------------------------
conversions = pytest.importorskip('hetero_infer.ros.conversions')
preprocess = pytest.importorskip('hetero_infer.serving.preprocess')
uint32 = st.integers(0, 2 ** 32 - 1)
small = st.integers(0, 64)


@FUZZ
@given(st.sampled_from(sorted(conversions.IMAGE_ENCODINGS) + ['yuv422', '', 'rgb8 ']),
       st.one_of(small, uint32), st.one_of(small, uint32), st.one_of(st.integers(0, 400), uint32),
       st.binary(max_size=4096), st.booleans())
def test_images_convert_or_are_refused(encoding, height, width, step, data, bigendian):
    msg = types.SimpleNamespace(encoding=encoding, height=height, width=width, step=step,
                                data=data, is_bigendian=bigendian)
    out = _own_error_or_result(conversions.image_to_array, msg)
    if out is not None:
        img, _order = out
        assert img.shape[:2] == (height, width)


@FEW
@given(st.one_of(st.binary(max_size=2000), st.sampled_from(['png', 'jpg']).map(
    lambda ext: __import__('cv2').imencode('.' + ext, np.zeros((4, 5, 3), np.uint8))[1]
    .tobytes())), st.text(max_size=10))
def test_compressed_images_decode_or_are_refused(data, fmt):
    msg = types.SimpleNamespace(format=fmt, data=data)
    out = _own_error_or_result(conversions.compressed_to_array, msg)
    if out is not None:
        assert out[0].ndim == 3


@FUZZ
@given(st.sampled_from(['audio_f32', 'audio_i16', 'audio_data', 'audio_x']),
       st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), max_size=200),
       st.lists(st.integers(-2 ** 15, 2 ** 15 - 1), max_size=200), st.binary(max_size=400))
def test_audio_converts_or_is_refused(kind, floats, ints, raw):
    data = {'audio_f32': floats, 'audio_i16': ints}.get(kind, raw)
    x = _own_error_or_result(conversions.audio_to_array, types.SimpleNamespace(data=data),
                             kind=kind)
    if x is not None:
        assert x.size > 0 and np.all(np.isfinite(x))
        spec = _own_error_or_result(preprocess.preprocess_audio, x, 16000.0, (1, 64, 101))
        assert spec is None or np.all(np.isfinite(spec))
