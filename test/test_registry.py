"""The one registry type every plug-in family uses (hetero_infer.registry.Registry)."""

import sys
import textwrap

import pytest

from hetero_infer.errors import BackendError, ConfigError
from hetero_infer.registry import Registry

GROUP = 'hetero_infer.test_registry'


def _positive(name, obj):
    if not isinstance(obj, int) or obj <= 0:
        raise ConfigError('thing %r is %r, not a positive int' % (name, obj))
    return obj


def _install(tmp_path, monkeypatch, dist, module, source, entries):
    """A distribution ``dist`` on sys.path whose module ``module`` holds ``source`` and whose
    entry points (``[(name, 'module:attr')]``) are in GROUP."""
    (tmp_path / (module + '.py')).write_text(textwrap.dedent(source))
    info = tmp_path / ('%s-0.1.dist-info' % dist)
    info.mkdir()
    (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: %s\nVersion: 0.1\n' % dist)
    (info / 'entry_points.txt').write_text(
        '[%s]\n' % GROUP + ''.join('%s = %s\n' % e for e in entries))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)


def test_register_get_names_unregister():
    reg = Registry('thing', adapt=_positive)
    assert reg.register('b', 2) == 2
    reg.register('a', 1)
    assert reg.get('a') == 1 and reg.names() == ['b', 'a']  # registration order
    assert 'a' in reg and 'c' not in reg
    reg.unregister('a')
    assert reg.names() == ['b']
    with pytest.raises(ConfigError, match=r"unknown thing 'a' \(known things: b\)"):
        reg.get('a')
    with pytest.raises(ConfigError, match="unknown thing 'zz'"):
        reg.unregister('zz')


def test_duplicates_and_bad_plug_ins_are_refused():
    reg = Registry('thing', adapt=_positive, hint='; or a number')
    reg.register('a', 1)
    with pytest.raises(ConfigError, match="thing 'a' is already registered"):
        reg.register('a', 1)
    with pytest.raises(ConfigError, match="thing 'a' is already registered"):
        reg.register('a', 'os:getcwd')  # a lazy entry too
    with pytest.raises(ConfigError, match="thing 'b' is -1, not a positive int"):
        reg.register('b', -1)
    with pytest.raises(ConfigError, match='non-empty string'):
        reg.register('', 3)
    assert reg.names() == ['a']
    with pytest.raises(ConfigError, match='known things: a; or a number'):
        reg.get('c')


def test_lazy_entries_load_on_first_get(tmp_path, monkeypatch):
    (tmp_path / 'hi_lazy_mod.py').write_text('VALUE = 7\nBAD = -7\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, 'hi_lazy_mod', raising=False)
    reg = Registry('thing', adapt=_positive)
    reg.register('seven', 'hi_lazy_mod:VALUE')
    reg.register('bad', 'hi_lazy_mod:BAD')
    reg.register('gone', 'hi_no_such_module:X')
    assert 'hi_lazy_mod' not in sys.modules  # registering imports nothing
    assert reg.names() == ['seven', 'bad', 'gone']
    assert reg.get('seven') == 7 and 'hi_lazy_mod' in sys.modules
    with pytest.raises(ConfigError, match="thing 'bad' is -7, not a positive int"):
        reg.get('bad')
    with pytest.raises(ConfigError, match=r"thing 'gone' \(hi_no_such_module:X\): cannot load "
                                          r"it: ModuleNotFoundError"):
        reg.get('gone')
    with pytest.raises(ConfigError, match='gone'):  # a failure is not cached as a success
        reg.get('gone')


def test_load_error_maps_a_missing_library():
    def missing(name, what, exc):
        return BackendError('%s needs a library: %s' % (name, exc)) \
            if isinstance(exc, ImportError) else None

    reg = Registry('backend', load_error=missing)
    reg.register('x', 'hi_no_such_library:Backend')
    reg.register('y', 'os:no_such_attribute')
    with pytest.raises(BackendError, match='x needs a library'):
        reg.get('x')
    with pytest.raises(ConfigError, match="backend 'y'.*AttributeError"):
        reg.get('y')


def test_entry_points_are_listed_lazily_and_loaded_on_get(tmp_path, monkeypatch):
    reg = Registry('thing', group=GROUP, adapt=_positive)
    reg.register('builtin', 1)
    assert reg.names() == ['builtin']
    # installed after the registry was first read: found on the next scan
    _install(tmp_path, monkeypatch, 'hi_reg_plugins', 'hi_reg_plugins',
             'LOADED = True\nFIVE = 5\nSIX = 6\n',
             [('five', 'hi_reg_plugins:FIVE'), ('six', 'hi_reg_plugins:SIX')])
    assert reg.names() == ['builtin', 'five', 'six']
    assert 'hi_reg_plugins' not in sys.modules  # listed, not imported
    assert reg.get('six') == 6 and 'hi_reg_plugins' in sys.modules
    assert reg.names() == ['builtin', 'five', 'six']  # a rescan adds nothing twice
    reg.unregister('five')
    assert reg.get('five') == 5  # still installed: back on the next scan


def test_entry_point_clash_is_an_error_not_a_skip(tmp_path, monkeypatch):
    reg = Registry('thing', group=GROUP, adapt=_positive)
    reg.register('five', 1)
    _install(tmp_path, monkeypatch, 'hi_reg_clash', 'hi_reg_clash', 'FIVE = 5\n',
             [('five', 'hi_reg_clash:FIVE')])
    with pytest.raises(ConfigError) as exc:
        reg.names()
    msg = str(exc.value)
    assert "thing 'five' is already registered" in msg
    assert 'entry point five = hi_reg_clash:FIVE' in msg and 'rename or uninstall' in msg
    assert reg.get('five') == 1  # the registered one is untouched


def test_two_entry_points_of_one_name_clash(tmp_path, monkeypatch):
    reg = Registry('thing', group=GROUP, adapt=_positive)
    for d, value in (('a', 1), ('b', 2)):
        (tmp_path / d).mkdir()
        _install(tmp_path / d, monkeypatch, 'hi_reg_' + d, 'hi_reg_' + d, 'X = %d\n' % value,
                 [('x', 'hi_reg_%s:X' % d)])
    with pytest.raises(ConfigError, match="thing 'x' is already registered"):
        reg.get('x')


def test_a_registry_without_group_never_scans():
    reg = Registry('thing')
    assert reg.scan_entry_points() == [] and reg.names() == []
