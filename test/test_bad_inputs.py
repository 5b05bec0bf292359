"""The bad-input corpus (issue 14): what a new user may feed ``hetero-infer``, and what it gets.

Two parts, each run through the real CLI (``hetero_infer.cli.main``) in a few child processes
(``bad_inputs_runner.py``; one per group so each group's peak memory is measured alone):

- **must refuse:** the exit code is 2 (usage) or 1 (bad input), stderr is exactly one line that
  names the offending value, and there is no traceback;
- **must accept:** exit code 0 and the value used as written.

Every group's process stays under 150 MB of peak resident memory (``VmHWM``), so no case
of it ran away (measured: 47 MB for the flags and files, 125 MB for the interference-model
cases, which load scikit-learn, 60 MB for the ONNX case; a plain ``hetero-infer simulate``
with the interference-aware scheduler peaked at about 130 MB before the twin's compiled event
loop). A group that runs the digital twin loads numba for that loop (LLVM and the compiled
kernel: a process that only imports numpy peaks at 30 MB, one that also loads the kernel at
205 MB), so its bound is ``NUMBA_MB`` higher (measured: 286 MB for the accepted cases, 144 MB
with ``HETERO_INFER_TWIN_KERNEL=python``).

The corpus files are in ``test/data/bad_inputs/``; ONNX models and interference-model variants
(which need a valid checksum) are generated here.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(HERE, 'data', 'bad_inputs')
MAX_RSS_MB = 150
NUMBA_MB = 200    # numba's footprint once the twin's compiled loop is loaded (142-175 MB seen)
SIM = ['simulate', '--scheduler', 'least_finish_time', '--duration-s', '1', '--warmup-s', '0.2']


def _d(name):
    return os.path.join('test', 'data', 'bad_inputs', name)


def _onnx_models(tmp):
    """opset 99, LSTM, GRU and Einsum models, and a scenario serving the last three."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def save(name, node, x_shape, y_shape, inits, opset=17):
        graph = helper.make_graph(
            [node], name, [helper.make_tensor_value_info('x', TensorProto.FLOAT, x_shape)],
            [helper.make_tensor_value_info(node.output[-1], TensorProto.FLOAT, y_shape)],
            [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', opset)])
        path = os.path.join(tmp, name + '.onnx')
        onnx.save(model, path)
        return path

    t, i, h = 20, 40, 64
    paths = {
        'opset99': save('opset99', helper.make_node('Relu', ['x'], ['y']), [1, 8], [1, 8], {},
                        opset=99),
        'lstm': save('lstm', helper.make_node('LSTM', ['x', 'W', 'R', 'B'], ['y', 'yh'],
                                              hidden_size=h), [t, 1, i], [1, 1, h],
                     {'W': np.zeros((1, 4 * h, i)), 'R': np.zeros((1, 4 * h, h)),
                      'B': np.zeros((1, 8 * h))}),
        'gru': save('gru', helper.make_node('GRU', ['x', 'W', 'R'], ['y', 'yh'], hidden_size=h),
                    [t, 1, i], [1, 1, h],
                    {'W': np.zeros((1, 3 * h, i)), 'R': np.zeros((1, 3 * h, h))}),
        'einsum': save('einsum', helper.make_node('Einsum', ['x', 'w'], ['y'],
                                                  equation='bij,jk->bik'),
                       [2, 5, 7], [2, 5, 3], {'w': np.ones((7, 3))}),
    }
    macs = {'lstm': t * 4 * h * (i + h), 'gru': t * 3 * h * (i + h), 'einsum': 2 * 5 * 7 * 3}
    scen = os.path.join(tmp, 'scenario_users_models.yaml')
    with open(scen, 'w') as f:
        f.write('format: hetero_infer.scenarios/1\nscenarios:\n  - name: s\n    applications:\n'
                + ''.join('      - {model: %s, rate_hz: 20, processors: [gpu]}\n' % paths[k]
                          for k in ('lstm', 'gru', 'einsum')))
    return paths, macs, scen


def _interference_variants(tmp):
    """The committed Xavier model re-signed with one thing wrong each (so the checksum holds)."""
    from hetero_infer.interference.slowdown_model import DATA_DIR, _digest

    def write(name, mutate):
        with open(os.path.join(DATA_DIR, 'xavier.json')) as f:
            doc = json.load(f)
        mutate(doc)
        doc['sha256'] = _digest({k: v for k, v in doc.items() if k != 'sha256'})
        path = os.path.join(tmp, name + '.json')
        with open(path, 'w') as f:
            json.dump(doc, f)
        return path

    def first_coefs(doc):
        return doc['models'][sorted(doc['models'])[0]]['coefs'][0][0]

    return {
        'orin': write('trained_on_orin', lambda d: d.update(platform='orin')),
        'extreme': write('extreme_weights', lambda d: first_coefs(d).__setitem__(0, 1e300)),
        'nan': write('nan_weight', lambda d: first_coefs(d).__setitem__(0, float('nan'))),
    }


def _run_group(cases, tmp_path, name):
    path = tmp_path / ('%s.json' % name)
    path.write_text(json.dumps([argv for argv, *_ in cases]))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([DATA, ROOT]))
    proc = subprocess.run([sys.executable, os.path.join(HERE, 'bad_inputs_runner.py'),
                           str(path)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.splitlines()[-1])
    peak_mb = results[-1]['maxrss_kb'] / 1024.0
    limit = MAX_RSS_MB + (NUMBA_MB if results[-1]['numba'] else 0)
    assert peak_mb < limit, '%s group peaked at %.0f MB (numba loaded: %s)' % (
        name, peak_mb, results[-1]['numba'])
    return results


def _check_refused(cases, results):
    for (argv, code, needle), res in zip(cases, results):
        err = res['stderr']
        lines = err.strip().splitlines()
        assert res['rc'] == code, (argv, res)
        assert 'Traceback' not in err and 'internal error' not in err, (argv, err)
        assert len(lines) == 1, (argv, err)
        assert needle in lines[0], (argv, needle, lines[0])


def _flag_and_file_cases(tmp):
    blocker = os.path.join(tmp, 'a_file')
    with open(blocker, 'w') as f:
        f.write('x')
    big = os.path.join(tmp, 'platform_too_big.yaml')
    with open(big, 'w') as f:
        f.write('name: big\ndescription: "%s"\n' % ('x' * (1 << 20)))
    return [
        # command-line flags: usage errors, exit 2, the flag and the value named
        (SIM + ['--duration-s', 'nan'], 2, '--duration-s: must be a finite number'),
        (SIM + ['--duration-s', 'inf'], 2, "got 'inf'"),
        (SIM + ['--warmup-s', '-1'], 2, "--warmup-s: must be a finite number >= 0.0, got '-1'"),
        (SIM + ['--seed', '-1'], 2, '--seed: must be an integer'),
        (['evaluate', '--duration-s', '-1'], 2, "got '-1'"),
        (['evaluate', '--duration-s', '0'], 2, '--duration-s: must be a finite number in (0.0'),
        (['evaluate', '--workers', '500'], 2, "--workers: must be an integer in [1, 64], got "
                                             "'500'"),
        (['evaluate', '--workers', '-1'], 2, "got '-1'"),
        (['plan', '--scenario', 'mix_r1', '--top-fraction', '1e-9'], 2,
         "--top-fraction: must be a finite number in [0.001, 0.5], got '1e-9'"),
        (['train', '--data', tmp, '--out', tmp, '--pairs', '-3'], 2, '--pairs'),
        (['build-engines', 'tiny_cnn', '--workspace-mb', '-5'], 2, '--workspace-mb'),
        (['calibrate', '--no-such-flag'], 2, '--no-such-flag'),
        # output paths, checked before the run
        (SIM + ['--out', os.path.join(blocker, 'sim.json')], 1, 'a_file is not a directory'),
        (SIM + ['--out', tmp], 1, 'is a directory, expected a file path'),
        (['calibrate', '--out', tmp], 1, 'is a directory'),
        (['evaluate', '--out', blocker], 1, 'a_file: is not a directory'),
        # platform files
        (['calibrate', '--platform', _d('platform_inf.yaml')], 1,
         'dram.peak_gbps = inf is not a finite number'),
        (['calibrate', '--platform', _d('platform_misspelt_key.yaml')], 1,
         "unknown key 'peak_gmac' (did you mean 'peak_gmacs'?)"),
        (['calibrate', '--platform', _d('platform_duplicate_key.yaml')], 1,
         "duplicate key 'kind'"),
        (['calibrate', '--platform', _d('platform_peak_below_achievable.yaml')], 1,
         'dram.peak_gbps = 36.5 is below'),
        (['calibrate', '--platform', _d('platform_string_number.yaml')], 1,
         "peak_gmacs must be a number, got 'fast'"),
        (['calibrate', '--platform', _d('platform_python_tag.yaml')], 1, 'python/object'),
        (['calibrate', '--platform', _d('platform_billion_laughs.yaml')], 1,
         'expands to more than'),
        (['calibrate', '--platform', _d('platform_recursive_alias.yaml')], 1,
         'expands to more than'),
        (['calibrate', '--platform', _d('platform_deep_nesting.yaml')], 1, 'nesting deeper'),
        (['calibrate', '--platform', big], 1, 'larger than'),
        (['calibrate', '--platform', 'xavier', '--power-mode', '15W'], 1,
         "unknown power mode '15W'"),
        # scenario files (and the layer tables they name)
        (SIM + ['--scenarios', _d('scenario_duplicate_app_names.yaml'), '--scenario', 's'], 1,
         "duplicate application name 'cam'"),
        (SIM + ['--scenarios', _d('scenario_every_rate_zero.yaml'), '--scenario', 's'], 1,
         'every rate_hz is 0'),
        (SIM + ['--scenarios', _d('scenario_duplicate_processor.yaml'), '--scenario', 's'], 1,
         "'dla0' appears twice"),
        (SIM + ['--scenarios', _d('scenario_misspelt_key.yaml'), '--scenario', 's'], 1,
         "unknown key 'slo_msec' (did you mean 'slo_ms'?)"),
        (SIM + ['--scenarios', _d('scenario_unbounded_rate.yaml'), '--scenario', 's'], 1,
         'rate_hz = 1000000000.0 is out of range'),
        (SIM + ['--scenarios', _d('scenario_nan_load.yaml'), '--scenario', 's'], 1,
         'load = nan is not a finite number'),
        (SIM + ['--scenarios', _d('scenario_billion_laughs.yaml'), '--scenario', 's'], 1,
         'expands to more than'),
        (SIM + ['--scenarios', _d('scenario_negative_macs_layer.yaml'), '--scenario', 's'], 1,
         "layer 'maxpool': macs = -5 is out of range"),
        (SIM + ['--scenarios', _d('scenario_negative_bytes_layer.yaml'), '--scenario', 's'], 1,
         'in_bytes = -100 is out of range'),
        # a user goal that raises
        (SIM + ['--scheduler', 'no_interference', '--goal', 'bad_goal:broken'], 1,
         "goal 'bad_goal:broken' raised AttributeError"),
    ]


def test_flags_outputs_platform_and_scenario_files_are_refused(tmp_path):
    cases = _flag_and_file_cases(str(tmp_path))
    _check_refused(cases, _run_group(cases, tmp_path, 'files'))
    assert not (tmp_path / 'a_file').is_dir()  # nothing was created in a file's place


def test_interference_models_and_onnx_files_are_refused(tmp_path):
    im = _interference_variants(str(tmp_path))
    paths, _macs, _scen = _onnx_models(str(tmp_path))
    deep = os.path.join(tmp_path, 'deep.yaml')
    with open(deep, 'w') as f:
        f.write('format: hetero_infer.scenarios/1\nscenarios:\n  - name: s\n'
                '    applications:\n      - {model: %s, rate_hz: 20}\n' % paths['opset99'])
    plan = ['plan', '--scenario', 'mix_r1', '--workers', '1', '--out',
            str(tmp_path / 'p.json'), '--interference-model']
    cases = [
        (plan + [_d('interference_deep_nesting.json')], 1, 'nested too deeply'),
        (plan + [im['orin']], 1, "was trained on platform 'orin', not 'xavier'"),
        (plan + [im['extreme']], 1, 'weights value 1e+300 exceeds'),
        (plan + [im['nan']], 1, 'non-finite values in the model arrays'),
    ]
    _check_refused(cases, _run_group(cases, tmp_path, 'interference'))
    # its own process: scikit-learn (interference) and onnx together are not one case's cost
    cases = [(SIM + ['--scenarios', deep, '--scenario', 's'], 1, 'opset 99 is not supported')]
    _check_refused(cases, _run_group(cases, tmp_path, 'onnx'))


def test_accepted_inputs_run_as_written(tmp_path):
    paths, macs, scen = _onnx_models(str(tmp_path))
    out = tmp_path / 'missing_dir' / 'sim.json'
    cases = [
        (SIM + ['--scenarios', _d('scenario_scientific_notation.yaml'), '--scenario', 's',
                '--out', str(out)],),
        (SIM + ['--scenarios', _d('scenario_on_orin.yaml'), '--scenario', 's'],),
        (SIM + ['--scenarios', _d('scenario_on_orin.yaml'), '--scenario', 's',
                '--platform', 'xavier'],),
        (SIM + ['--scenarios', _d('scenario_aliases_within_bounds.yaml'), '--scenario', 's'],),
        (SIM + ['--scenarios', scen, '--scenario', 's'],),
        (['calibrate', '--platform', os.path.join('config', 'platforms', 'orin.yaml')],),
    ]
    res = _run_group(cases, tmp_path, 'accepted')
    for (argv,), r in zip(cases, res):
        assert r['rc'] == 0 and 'Traceback' not in r['stderr'], (argv, r)
    # 5.5e3 is the SLO, 2e1 the rate (numbers, not strings), and --out made its directory
    doc = json.loads(out.read_text())
    assert doc['metrics']['apps'][0]['offered'] == pytest.approx(20.0 * 0.8, abs=3)
    assert doc['metrics']['apps'][0]['slo_attainment'] == 1.0  # a 5.5 s SLO is always met
    assert ' 20.0  5500.00 ' in res[0]['stdout']
    # the scenario's platform is honoured, and --platform overrides it with a warning
    assert 'platform orin' in res[1]['stdout'] or 'orin' in res[1]['stdout']
    assert res[1]['stderr'] == ''
    assert '--platform xavier overrides the scenario file\'s platform orin' in res[2]['stderr']
    assert 'cam_b' in res[3]['stdout']
    # users' LSTM / GRU / Einsum models are served, with their MACs
    from hetero_infer.models.zoo import load_model
    for key in ('lstm', 'gru', 'einsum'):
        spec = load_model(paths[key])
        assert spec.macs == macs[key]
        assert not any(layer.dla for layer in spec.layers)
    assert len(load_model(paths['lstm']).layers) == 20  # one layer per time step


def test_serve_parameter_out_of_range_is_one_line(tmp_path):
    pytest.importorskip('rclpy')
    proc = subprocess.run([sys.executable, '-m', 'hetero_infer.cli', 'serve', '--set',
                           'queue_limit=-5', '--duration', '1', '--localhost'], cwd=ROOT,
                          env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and 'queue_limit' in lines[0] and '-5' in lines[0], proc.stderr


@pytest.mark.parametrize('text, value', [
    ('x: 5.5e3', 5500.0), ('x: 1e-3', 0.001), ('x: 010', 10), ('x: 0x1f', 31),
    ('x: 0o17', 15), ('x: 1:20', '1:20'), ('x: .inf', float('inf')), ('x: -2', -2)])
def test_yaml_numbers_follow_yaml_1_2(text, value):
    from hetero_infer.io.yaml_file import parse_yaml
    assert parse_yaml(text, 'test') == {'x': value}


def test_engine_cache_directory_entry_and_unwritable_cache_are_named(tmp_path):
    from hetero_infer.backends.engine_cache import EngineCache, EngineKey, get_or_build
    from hetero_infer.errors import BackendError
    cache = EngineCache(str(tmp_path / 'cache'))
    key = EngineKey(model_sha256='0' * 64, processor='gpu', precision='fp16', trt_version='10')
    path = cache.path_for(key, 'm')
    os.makedirs(path)  # a directory where the engine file goes
    built = []
    with pytest.raises(BackendError, match='is a directory'):
        get_or_build(cache, key, path, build=lambda: built.append(1) or (b'e', {}),
                     deserialize=lambda b: b)
    assert built == [] and os.path.isdir(path)  # refused before the build, never removed
    blocked = EngineCache(str(tmp_path / 'cache' / 'm.txt'))
    (tmp_path / 'cache' / 'm.txt').write_text('x')  # the cache "directory" is a file
    with pytest.raises(BackendError, match='cannot be created'):
        get_or_build(blocked, key, blocked.path_for(key, 'm'), build=lambda: (b'e', {}),
                     deserialize=lambda b: b)


def test_internal_errors_are_reported_as_bugs_with_traceback_behind_debug(monkeypatch, capsys):
    from hetero_infer import cli
    from hetero_infer.commands import calibrate

    def broken(args):
        raise ZeroDivisionError('division by zero')
    monkeypatch.setattr(calibrate, 'run', broken)
    assert cli.main(['calibrate']) == cli.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert 'internal error (a bug in hetero-infer, not in your input)' in err
    assert 'ZeroDivisionError' in err and 'Traceback' not in err
    with pytest.raises(ZeroDivisionError):
        cli.main(['calibrate', '--debug'])


def test_interference_model_of_another_platform_is_refused_unless_forced(tmp_path):
    from hetero_infer.errors import ModelError
    from hetero_infer.interference.predictors import load_latency_predictor
    from hetero_infer.platform.spec import Platform
    other = _interference_variants(str(tmp_path))['orin']
    xavier = Platform.load('xavier')
    with pytest.raises(ModelError, match="trained on platform 'orin', not 'xavier'"):
        load_latency_predictor(xavier, other)
    forced = load_latency_predictor(xavier, other, force=True)
    assert forced.interference.platform_name == 'orin'
    assert load_latency_predictor(xavier).interference.platform_name == 'xavier'


def test_scenarios_on_different_platforms_need_a_choice():
    from hetero_infer.errors import ConfigError
    from hetero_infer.evaluation.scenarios import choose_platform, parse_scenarios
    doc = {'platform': 'xavier', 'scenarios': [
        {'name': 'a', 'applications': [{'model': 'resnet50', 'rate_hz': 1}]},
        {'name': 'b', 'platform': 'orin', 'applications': [{'model': 'resnet50', 'rate_hz': 1}]}]}
    a, b = parse_scenarios(doc)
    assert choose_platform(None, [a]) == ('xavier', None)
    assert choose_platform(None, [b]) == ('orin', None)
    with pytest.raises(ConfigError, match='different platforms'):
        choose_platform(None, [a, b])
    name, warning = choose_platform('orin', [a, b])
    assert name == 'orin' and 'overrides' in warning and 'xavier' in warning
    (c,) = parse_scenarios({'scenarios': [{'name': 'c', 'applications': [
        {'model': 'resnet50', 'rate_hz': 1}]}]})
    assert choose_platform(None, [c]) == ('xavier', None)  # no platform written: the default
    assert choose_platform('orin', [c]) == ('orin', None)  # nothing overridden, no warning
