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


def test_bad_arguments_are_reported_not_raised(capsys):
    assert main(['calibrate', '--platform', 'no_such_board']) == 1
    assert "unknown platform 'no_such_board'" in capsys.readouterr().err
    assert main(['simulate', '--scheduler', 'no_such_scheduler', '--duration-s', '3']) == 1
    assert 'no_such_scheduler' in capsys.readouterr().err
