"""`hetero-infer`: subcommands listed, JSON outputs others rely on, clear errors."""

import json

import pytest

from hetero_infer.cli import SUBCOMMANDS, main


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exc:
        main(['--help'])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name, _module, _help in SUBCOMMANDS:
        assert name in out


def test_calibrate_writes_checks_as_json(tmp_path, capsys):
    out = tmp_path / 'cal.json'
    code = main(['calibrate', '--platform', 'orin', '--out', str(out)])
    checks = json.loads(out.read_text())
    assert len(checks) >= 19
    for c in checks:
        assert {'check', 'simulated', 'reference', 'low', 'high', 'pass', 'gate', 'source',
                'note'} <= set(c)
    failed = [c for c in checks if c['gate'] and not c['pass']]
    # the exit status says whether every gated check passed
    assert code == (1 if failed else 0)
    text = capsys.readouterr().out
    assert '%d failed' % len(failed) in text and 'reported' in text
    by_name = {c['check']: c for c in checks}
    assert set(by_name) >= {'talk_median_gpu_pct', 'pccs_dla:x20', 'gpu_slowdown_pct:vgg19+1dla'}
    # Orin has no published talk distribution: reported as unreferenced, not a gate
    assert not by_name['talk_median_gpu_pct']['gate']
    assert 'unreferenced' in by_name['talk_median_gpu_pct']['note']
    assert 'TensorRT issue 2745' in by_name['gpu_slowdown_pct:vgg19+1dla']['source']


def test_simulate_serves_the_demo_and_accounts_for_every_request(tmp_path):
    out = tmp_path / 'sim.json'
    assert main(['simulate', '--scheduler', 'least_finish_time', '--duration-s', '3',
                 '--warmup-s', '1', '--out', str(out)]) == 0
    doc = json.loads(out.read_text())
    apps = doc['metrics']['apps']
    assert [a['name'] for a in apps] == ['camera_classifier', 'camera_detector',
                                         'audio_keywords']
    for a in apps:
        assert a['offered'] == a['finished'] + sum(a['dropped'].values())
        assert a['offered'] > 0


def test_simulate_with_a_fault_reports_goodput_before_during_and_after(tmp_path, capsys):
    out = tmp_path / 'sim.json'
    assert main(['simulate', '--scheduler', 'base', '--duration-s', '8', '--warmup-s', '1',
                 '--fault', 'dla1:error@3+2', '--out', str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc['faults'] == ['dla1:error@3+2']
    for a in doc['metrics']['apps']:
        assert a['offered'] == a['finished'] + sum(a['dropped'].values())
    before, during, after, health = doc['phases']
    assert [p['phase'] for p in (before, during, after)] == ['before', 'during', 'after']
    assert (before['from_s'], during['from_s'], after['from_s'], after['to_s']) == (1, 3, 5, 8)
    assert before['per_processor'].get('dla1') and after['per_processor'].get('dla1')
    assert not during['per_processor'].get('dla1')
    assert all(p['goodput'] > 0 and p['goodput_no_fault'] > 0 for p in (before, during, after))
    assert [(e['processor'], e['healthy']) for e in health['health_events']] == [
        ('dla1', False), ('dla1', True)]
    assert [r['processors'] for r in health['replans']] == [['gpu', 'dla0']]
    text = capsys.readouterr().out
    assert 'dla1 unhealthy' in text and 'no fault' in text
    assert main(['simulate', '--fault', 'dla1:error']) == 1
    assert "fault 'dla1:error'" in capsys.readouterr().err


def test_bad_arguments_are_reported_not_raised(capsys):
    assert main(['calibrate', '--platform', 'no_such_board']) == 1
    assert "unknown platform 'no_such_board'" in capsys.readouterr().err
    assert main(['simulate', '--scheduler', 'no_such_scheduler', '--duration-s', '3']) == 1
    assert 'no_such_scheduler' in capsys.readouterr().err


def test_evaluate_refuses_bad_replications_loads_and_clusters(capsys):
    with pytest.raises(SystemExit) as exc:
        main(['evaluate', '--only', 'mix_r1', '--replications', '0'])
    assert exc.value.code == 2
    assert "--replications: must be an integer in [1, 1000], got '0'" in capsys.readouterr().err
    assert main(['evaluate', '--only', 'mix_r1', '--load-sweep', '0.5,lots']) == 1
    assert "'0.5,lots'" in capsys.readouterr().err
    assert main(['evaluate', '--only', 'mix_r1', '--load-sweep', '0.5',
                 '--sweep-scenarios', 'light_r1']) == 1
    assert "'light_r1'" in capsys.readouterr().err
    assert main(['evaluate', '--only', 'mix_r1', '--schedulers', 'base',
                 '--cluster', 'local:zero', '--no-slo99', '--replications', '1']) == 1
    assert "'local:zero'" in capsys.readouterr().err


def test_profile_offers_no_legacy_protocol(tmp_path, capsys):
    """The protocol before issue 17 is the noise bench's (a library argument), not a choice a
    user of ``hetero-infer profile`` should find."""
    with pytest.raises(SystemExit):
        main(['profile', '--help'])
    assert 'legacy' not in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(['profile', '--backend', 'onnxruntime', '--protocol', 'legacy',
              '--out', str(tmp_path / 'prof')])
    assert exc.value.code == 2
    assert 'unrecognized arguments: --protocol legacy' in capsys.readouterr().err


def test_evaluate_checks_the_interference_model_of_every_scheduler_needing_one(
        tmp_path, monkeypatch, capsys):
    # the check is the schedulers' own fact (needs_interference_model), asked before any work
    from hetero_infer.evaluation import runner

    def never(*args, **kwargs):
        pytest.fail('evaluated before the interference model was checked')

    monkeypatch.setattr(runner, 'run_evaluation', never)
    missing = str(tmp_path / 'no_model.json')
    for scheduler in ('talk_exact', 'interference_aware'):
        assert main(['evaluate', '--only', 'mix_r1', '--schedulers', 'base,' + scheduler,
                     '--interference-model', missing, '--replications', '1', '--no-slo99',
                     '--out', str(tmp_path / 'out')]) == 1
        assert 'no_model.json' in capsys.readouterr().err


def test_profile_then_train_reports_test_retest_and_the_selected_regressor(tmp_path, capsys):
    data, out = tmp_path / 'prof', tmp_path / 'model'
    assert main(['profile', '--platform', 'xavier', '--samples', '80', '--zoo-samples', '0',
                 '--configs', 'gpu|dla', '--retest-fraction', '0.25', '--out', str(data)]) == 0
    printed = capsys.readouterr().out
    assert 'test-retest' in printed and '| gpu|dla | 20 |' in printed
    assert main(['train', '--data', str(data), '--out', str(out), '--regressors', 'mlp',
                 '--candidates', 'knn,random_forest', '--search-iter', '1', '--cv', '2',
                 '--pairs', '0', '--triples', '0']) == 0
    acc = json.loads((out / 'accuracy.json').read_text())
    assert set(acc['test_retest']) == {'gpu|dla'} and acc['test_retest']['gpu|dla'] > 90
    sel = acc['selected']['gpu|dla']
    assert sel['regressor'] in ('knn', 'random_forest') and 'cross-validated' in sel['why']
    assert sel['accuracy'] == acc['tuned'][sel['regressor']]['gpu|dla']
    # The twin's slowdowns vary: a model beats predicting one slowdown for every layer.
    assert sel['accuracy'] > acc['baselines']['median_slowdown']['gpu|dla']
    assert (out / 'accuracy.png').stat().st_size > 0
    assert 'test-retest' in (out / 'accuracy.md').read_text()
    # The shipped model is the selected kind, with the choice recorded in the file.
    from hetero_infer.interference.slowdown_model import SlowdownPredictor
    model = SlowdownPredictor.load(str(out / 'xavier.json'))
    assert type(model.models['gpu|dla']).kind == sel['regressor']
    assert model.meta['selection']['gpu|dla']['regressor'] == sel['regressor']
    assert main(['train', '--data', str(data), '--out', str(out), '--candidates', 'lasso']) == 1
