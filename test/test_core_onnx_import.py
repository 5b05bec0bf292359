"""ONNX import: committed models give the expected tables; bad files name the file and node."""

import json
import os

import pytest

from hetero_infer.errors import ModelError
from hetero_infer.models.onnx_import import model_from_onnx
from hetero_infer.models.zoo import load_model

ONNX_DIR = os.path.join(os.path.dirname(__file__), '..', 'hetero_infer', 'data', 'onnx')


def _path(name):
    return os.path.join(ONNX_DIR, name)


def test_tiny_cnn_layers_and_hand_counted_macs():
    spec = model_from_onnx(_path('tiny_cnn.onnx'))
    assert spec.input_name == 'input' and spec.input_shape == (1, 3, 32, 32)
    assert [(layer.kind, layer.op) for layer in spec.layers] == [
        ('conv', 'conv+bn+relu'), ('pool', 'max'), ('conv', 'conv+relu'), ('pool', 'max'),
        ('pool', 'avg'), ('fc', 'fc'), ('softmax', 'softmax')]
    conv1 = 16 * 32 * 32 * 3 * 3 * 3      # out elements x in channels x 3x3
    conv2 = 32 * 16 * 16 * 16 * 3 * 3
    fc = 32 * 10
    assert [layer.macs for layer in spec.layers] == [conv1, 0, conv2, 0, 0, fc, 0]
    # Parameters: conv1 432 + 16 bias (BN folds into the bias), conv2 4608 + 32, fc 320 + 10.
    assert spec.weight_bytes == 2 * (432 + 16 + 4608 + 32 + 320 + 10)
    assert spec.layers[0].out_shape == (1, 16, 32, 32)
    assert spec.layers[4].kernel == (8, 8) and spec.layers[4].out_shape == (1, 32, 1, 1)
    assert spec.layers[0].in_bytes == 2 * 3 * 32 * 32
    assert [layer.dla for layer in spec.layers] == [True] * 6 + [False]
    assert spec.extra['labels'] == 10


def test_kws_import_matches_the_zoo_table():
    onnx_spec = model_from_onnx(_path('kws_matchboxnet.onnx'))
    zoo = load_model('matchboxnet_kws')
    assert onnx_spec.domain == 'audio' and onnx_spec.input_name == 'mfcc'
    assert onnx_spec.input_shape == (1, 64, 101)
    assert onnx_spec.macs == zoo.macs
    assert onnx_spec.weight_bytes == zoo.weight_bytes
    assert [layer.kind for layer in onnx_spec.layers] == [layer.kind for layer in zoo.layers]
    assert [layer.kernel for layer in onnx_spec.layers] == [layer.kernel for layer in zoo.layers]
    pool = [layer for layer in onnx_spec.layers if layer.kind == 'pool'][0]
    assert not pool.dla and pool.dla_reason == 'pool window 101 > 8'


def test_mobilenet_import_and_model_index():
    spec = load_model(_path('mobilenet_v2_035.onnx'))
    kinds = [layer.kind for layer in spec.layers]
    assert kinds.count('dwconv') == 17 and kinds.count('eltwise') == 10
    assert kinds[-2:] == ['fc', 'softmax']
    assert spec.layers[0].op == 'conv+relu6'   # BN folded by the exporter, Clip(0, 6) fused
    assert all(layer.dla for layer in spec.layers[:-1])
    with open(_path('models.json')) as f:
        index = json.load(f)
    for entry in index.values():
        imported = model_from_onnx(_path(entry['file']))
        assert imported.input_name == entry['input_name']
        assert list(imported.input_shape) == entry['input_shape']
        assert imported.extra['labels'] == entry['labels'] == imported.layers[-1].out_shape[-1]


def test_truncated_file_names_the_file(tmp_path):
    with open(_path('tiny_cnn.onnx'), 'rb') as f:
        data = f.read()
    bad = tmp_path / 'truncated.onnx'
    bad.write_bytes(data[:len(data) // 3])
    with pytest.raises(ModelError, match='truncated.onnx'):
        model_from_onnx(str(bad))


def test_non_onnx_and_missing_files(tmp_path):
    bad = tmp_path / 'notes.onnx'
    bad.write_text('this is not a protobuf at all\n' * 10)
    with pytest.raises(ModelError, match='notes.onnx'):
        model_from_onnx(str(bad))
    with pytest.raises(ModelError, match='missing.onnx'):
        load_model(str(tmp_path / 'missing.onnx'))


def _graph(tmp_path, node, name):
    import onnx
    from onnx import TensorProto, helper
    nodes = [helper.make_node('Relu', ['input'], ['r'], name='relu'), node]
    graph = helper.make_graph(
        nodes, 'g', [helper.make_tensor_value_info('input', TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    path = str(tmp_path / name)
    onnx.save(model, path)
    return path


def test_unsupported_op_names_file_and_node(tmp_path):
    from onnx import helper
    path = _graph(tmp_path, helper.make_node('NonZero', ['r'], ['y'], name='nz_1'),
                  'nonzero.onnx')
    with pytest.raises(ModelError) as err:
        model_from_onnx(path)
    assert 'nonzero.onnx' in str(err.value) and 'nz_1' in str(err.value)
    assert 'NonZero' in str(err.value)
    path = _graph(tmp_path, helper.make_node('FancyOp', ['r'], ['y'], name='fancy',
                                             domain='com.example'), 'custom.onnx')
    with pytest.raises(ModelError, match=r"custom\.onnx: node 'fancy' \(op FancyOp\)"):
        model_from_onnx(path)


def test_missing_shape_names_the_node(tmp_path):
    import onnx
    from onnx import TensorProto, helper
    # A Reshape whose target shape is a graph input: its output shape cannot be inferred.
    nodes = [helper.make_node('Reshape', ['input', 'shape'], ['x'], name='reshape'),
             helper.make_node('Relu', ['x'], ['y'], name='relu_after')]
    graph = helper.make_graph(
        nodes, 'g', [helper.make_tensor_value_info('input', TensorProto.FLOAT, [1, 4, 8, 8]),
                     helper.make_tensor_value_info('shape', TensorProto.INT64, [4])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, None)])
    path = str(tmp_path / 'dyn.onnx')
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)]), path)
    with pytest.raises(ModelError, match=r"dyn\.onnx: node 'relu_after' \(op Relu\)"):
        model_from_onnx(path)


def test_shape_arithmetic_is_folded_and_layout_ops_map(tmp_path):
    """A channel split written as Shape -> Gather -> Div -> Slice (how exporters write
    ``chunk``) gets static shapes; Transpose is a shuffle; a spatial ReduceMean is a pool."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    inits = [numpy_helper.from_array(np.array([1], np.int64), 'one'),
             numpy_helper.from_array(np.array([2], np.int64), 'two'),
             numpy_helper.from_array(np.array([0], np.int64), 'zero'),
             numpy_helper.from_array(np.array([1], np.int64), 'axis1'),
             numpy_helper.from_array(np.random.default_rng(0).standard_normal(
                 (8, 4, 3, 3)).astype(np.float32), 'w')]
    nodes = [
        helper.make_node('Shape', ['input'], ['shp'], name='shape'),
        helper.make_node('Gather', ['shp', 'one'], ['c'], name='gather_c', axis=0),
        helper.make_node('Div', ['c', 'two'], ['half'], name='half'),
        helper.make_node('Slice', ['input', 'zero', 'half', 'axis1'], ['x1'], name='slice'),
        helper.make_node('Conv', ['x1', 'w'], ['c1'], name='conv', kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node('Transpose', ['c1'], ['t'], name='transpose', perm=[0, 1, 3, 2]),
        helper.make_node('ReduceMean', ['t'], ['m'], name='gap', axes=[2, 3], keepdims=1),
        helper.make_node('Softmax', ['m'], ['probs'], name='softmax', axis=1),
    ]
    graph = helper.make_graph(
        nodes, 'g', [helper.make_tensor_value_info('input', TensorProto.FLOAT, [1, 8, 6, 6])],
        [helper.make_tensor_value_info('probs', TensorProto.FLOAT, None)], initializer=inits)
    path = str(tmp_path / 'split.onnx')
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)]), path)
    spec = model_from_onnx(path)
    assert [layer.kind for layer in spec.layers] == ['conv', 'shuffle', 'pool', 'softmax']
    conv = spec.layers[0]
    assert conv.in_shape == (1, 4, 6, 6) and conv.out_shape == (1, 8, 6, 6)
    assert conv.macs == 8 * 6 * 6 * 4 * 9 and conv.weight_bytes == 2 * 8 * 4 * 9
    assert not spec.layers[1].dla and spec.layers[2].kernel == (6, 6) and spec.layers[2].dla
    assert spec.layers[1].weight_bytes == 0
