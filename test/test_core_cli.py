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
    assert main(['calibrate', '--platform', 'xavier', '--out', str(out)]) == 0
    checks = json.loads(out.read_text())
    assert len(checks) >= 19
    for c in checks:
        assert {'check', 'simulated', 'reference', 'low', 'high', 'pass'} <= set(c)
        assert c['pass'] is True
    assert 'passed, 0 failed' in capsys.readouterr().out


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


def test_bad_arguments_are_reported_not_raised(capsys):
    assert main(['calibrate', '--platform', 'no_such_board']) == 1
    assert "unknown platform 'no_such_board'" in capsys.readouterr().err
    assert main(['simulate', '--scheduler', 'no_such_scheduler', '--duration-s', '3']) == 1
    assert 'no_such_scheduler' in capsys.readouterr().err


def test_evaluate_refuses_bad_replications_loads_and_clusters(capsys):
    assert main(['evaluate', '--only', 'mix_r1', '--replications', '0']) == 1
    assert 'replications must be >= 1, got 0' in capsys.readouterr().err
    assert main(['evaluate', '--only', 'mix_r1', '--load-sweep', '0.5,lots']) == 1
    assert "'0.5,lots'" in capsys.readouterr().err
    assert main(['evaluate', '--only', 'mix_r1', '--load-sweep', '0.5',
                 '--sweep-scenarios', 'light_r1']) == 1
    assert "'light_r1'" in capsys.readouterr().err
    assert main(['evaluate', '--only', 'mix_r1', '--schedulers', 'base',
                 '--cluster', 'local:zero', '--no-slo99', '--replications', '1']) == 1
    assert "'local:zero'" in capsys.readouterr().err
