"""The committed model zoo: every table loads, matches FACTS.md and respects the DLA rules."""

import json
import os

import pytest

from hetero_infer.models.dla_rules import dla_support
from hetero_infer.models.zoo import BYTES_PER_ELEMENT, ZOO_DIR, ModelSpec, list_models, load_model

# FACTS.md, "torchvision classifiers": model -> (params M, GMACs, activations M).
FACTS = {
    'alexnet': (61.10, 0.714, 0.49),
    'vgg16': (138.36, 15.47, 13.56),
    'vgg19': (143.67, 19.63, 14.86),
    'resnet18': (11.69, 1.814, 2.48),
    'resnet34': (21.80, 3.664, 3.74),
    'resnet50': (25.56, 4.089, 11.11),
    'resnet101': (44.55, 7.801, 16.23),
    'resnet152': (60.19, 11.514, 22.56),
    'densenet121': (7.98, 2.834, 6.90),
    'googlenet': (6.62, 1.498, 3.23),
    # 27.16 M includes the 3.34 M AuxLogits head, which only runs in training.
    'inception_v3': (27.16 - 3.34, 5.713, 8.97),
    'mobilenet_v2': (3.50, 0.301, 6.68),
    'squeezenet1_1': (1.24, 0.349, 2.59),
    'shufflenet_v2_x1_0': (2.28, 0.145, 1.95),
    'mobilenet_v3_large': (5.48, 0.217, 4.41),
    'efficientnet_b0': (5.29, 0.386, 6.75),
    'mnasnet1_0': (4.38, 0.314, 5.46),
    'regnet_y_400mf': (4.34, 0.402, 3.89),
    'wide_resnet50_2': (68.88, 11.398, 14.40),
    'resnext50_32x4d': (25.03, 4.23, 14.40),
}
EVAL_MODELS = ('alexnet', 'vgg16', 'vgg19', 'resnet18', 'resnet34', 'resnet50', 'resnet101',
               'resnet152', 'densenet121', 'googlenet', 'inception_v3', 'mobilenet_v2',
               'squeezenet1_1', 'shufflenet_v2_x1_0')
SPEECH = ('matchboxnet_kws', 'quartznet15x5')


def _prod(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def test_every_evaluation_and_speech_model_is_in_the_zoo():
    names = set(list_models())
    assert set(EVAL_MODELS) <= names
    assert set(SPEECH) <= names


@pytest.mark.parametrize('name', sorted(FACTS))
def test_macs_params_and_activations_match_facts(name):
    model = load_model(name)
    params_m, gmacs, act_m = FACTS[name]
    assert model.macs / 1e9 == pytest.approx(gmacs, rel=0.01)
    assert model.weight_bytes / BYTES_PER_ELEMENT / 1e6 == pytest.approx(params_m, rel=0.03)
    assert model.activation_elements / 1e6 == pytest.approx(act_m, rel=0.03)
    assert model.extra['labels'] == 1000
    assert model.extra['gmacs'] == pytest.approx(model.macs / 1e9, rel=1e-5)


def test_speech_models_match_the_published_sizes():
    kws = load_model('matchboxnet_kws')
    assert kws.domain == 'audio' and kws.input_shape == (1, 64, 101)
    assert kws.weight_bytes / 2 == pytest.approx(78e3, rel=0.05)
    qn = load_model('quartznet15x5')
    assert qn.domain == 'audio' and qn.input_shape == (1, 64, 128)
    assert qn.weight_bytes / 2 == pytest.approx(18.9e6, rel=0.02)
    # OpenVINO: 2.42 GFLOPs for a 64x128 mel input = 1.21 GMACs.
    assert 2 * qn.macs / 1e9 == pytest.approx(2.42, rel=0.01)
    for layer in kws.layers + qn.layers:
        if layer.kind in ('conv', 'dwconv'):
            assert len(layer.kernel) == 1 and len(layer.out_shape) == 3


@pytest.mark.parametrize('name', list_models())
def test_shapes_chain_and_bytes_are_consistent(name):
    model = load_model(name)
    assert model.layers[0].in_shape == model.input_shape
    seen = {_prod(model.input_shape)}
    for layer in model.layers:
        # Every layer reads a tensor an earlier layer (or the input) produced, up to free
        # reshapes (flatten, view) that keep the element count.
        assert _prod(layer.in_shape) in seen, layer.name
        seen.add(_prod(layer.out_shape))
        assert layer.out_bytes == _prod(layer.out_shape) * BYTES_PER_ELEMENT
        assert layer.in_bytes >= _prod(layer.in_shape) * BYTES_PER_ELEMENT
        assert layer.macs >= 0 and layer.weight_bytes >= 0
        if layer.kind in ('conv', 'dwconv'):
            cin = layer.in_shape[1]
            expect = _prod(layer.out_shape) * (cin // layer.groups) * _prod(layer.kernel)
            assert layer.macs == expect, layer.name
            assert (layer.kind == 'dwconv') == (layer.groups == cin and cin > 1)
        elif layer.kind != 'fc':
            assert layer.macs == 0
        # The stored flag is exactly what the rules say.
        ok, reason = dla_support(layer.kind, op=layer.op, kernel=layer.kernel,
                                 stride=layer.stride, padding=layer.padding,
                                 groups=layer.groups)
        if layer.kind != 'concat':
            assert (ok, reason) == (layer.dla, layer.dla_reason), layer.name
        assert layer.dla or layer.dla_reason
    if 'detector' in model.extra:
        # a detector's table ends at its head's outputs: scores, decoding and NMS are the
        # host's (hetero_infer.serving.detection)
        assert model.layers[-1].kind in ('concat', 'fc')
    else:
        assert model.layers[-1].kind == 'softmax'
    assert len({layer.name for layer in model.layers}) == len(model.layers)


def test_dla_flags_name_the_broken_rule():
    for name in list_models():
        for layer in load_model(name).layers:
            if layer.kind == 'softmax':
                assert not layer.dla and 'softmax' in layer.dla_reason
    qn = load_model('quartznet15x5')
    long_k = [layer for layer in qn.layers if layer.kind == 'dwconv' and layer.kernel[0] > 32]
    assert len(long_k) == 77
    assert all(not layer.dla and ('kernel %d > 32' % layer.kernel[0]) in layer.dla_reason
               for layer in long_k)
    assert 0.5 < qn.dla_fraction < 1.0
    # squeezenet's global average pool covers 13x13 > the 8x8 DLA window.
    pool = [layer for layer in load_model('squeezenet1_1').layers if layer.kind == 'pool'][-1]
    assert pool.kernel == (13, 13) and not pool.dla and 'pool window 13 > 8' == pool.dla_reason
    # inception_v3's last pool (8x8 at 299x299) sits exactly on the limit: allowed.
    pool = [layer for layer in load_model('inception_v3').layers if layer.kind == 'pool'][-1]
    assert pool.kernel == (8, 8) and pool.dla
    shuffles = [layer for layer in load_model('shufflenet_v2_x1_0').layers
                if layer.kind == 'shuffle']
    assert len(shuffles) == 16 and not any(layer.dla for layer in shuffles)
    mnv3 = load_model('mobilenet_v3_large')
    assert any(layer.op == 'hardswish' and not layer.dla for layer in mnv3.layers)


def test_fusions_follow_tensorrt():
    r50 = load_model('resnet50')
    ops = [layer.op for layer in r50.layers]
    assert ops[0] == 'conv+bn+relu'
    assert ops.count('sum+relu') == 16
    assert not any(layer.kind == 'act' for layer in r50.layers)
    dn = load_model('densenet121')  # pre-activation: BN+ReLU after a concat cannot fold
    assert sum(1 for layer in dn.layers if layer.op == 'bn+relu') == 62
    assert sum(1 for layer in dn.layers if layer.kind == 'concat') == 58


@pytest.mark.parametrize('name', list_models())
def test_zoo_json_round_trips(name, tmp_path):
    path = os.path.join(ZOO_DIR, name + '.json')
    with open(path) as f:
        raw = json.load(f)
    spec = ModelSpec.from_dict(raw, where=path)
    assert spec.to_dict() == raw
    out = str(tmp_path / 'copy.json')
    spec.save(out)
    again = ModelSpec.load(out)
    assert again == spec and again.extra == spec.extra


def test_dla_rules_edges():
    assert dla_support('conv', op='conv+bn+relu', kernel=(32, 32), stride=(8, 8),
                       padding=(31, 31)) == (True, '')
    assert dla_support('conv', kernel=(3, 3), padding=(3, 3)) == \
        (False, 'conv padding 3 >= kernel 3')
    assert dla_support('conv', kernel=(3, 3), stride=(9, 1))[1] == 'conv stride 9 > 8'
    assert dla_support('dwconv', kernel=(87,), dilation=(2,))[1] == 'conv kernel 87 > 32'
    assert dla_support('conv', op='conv+hardswish', kernel=(1, 1))[0] is False
    assert dla_support('pool', op='max', kernel=(3, 3), stride=(2, 2), padding=(8, 8))[1] == \
        'pool padding 8 > 7'
    assert dla_support('pool', op='avg', kernel=(8, 8), stride=(16, 16)) == (True, '')
    assert dla_support('pool', op='lp', kernel=(2, 2))[0] is False
    assert dla_support('act', op='clip') == (True, '')
    assert dla_support('act', op='bn+relu') == (True, '')
    assert dla_support('eltwise', op='sum+relu') == (True, '')
    assert dla_support('eltwise', op='div')[1].startswith("eltwise 'div'")
    assert dla_support('concat', axis=1) == (True, '')
    assert dla_support('concat', axis=2)[1] == 'concat axis 2 not on DLA (channel axis 1 only)'
    assert dla_support('conv', op='deconv', kernel=(4, 4), stride=(2, 2), padding=(1, 1))[1] \
        == 'deconv padding 1 > 0'
    assert dla_support('shuffle', op='gather')[0] is False
    assert dla_support('other', op='lrn')[0] is False
