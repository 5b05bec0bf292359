"""The one registry type of every plug-in family: goals, schedulers, predictors, backends and the
interference model's regressors.

A :class:`Registry` maps the name a user types to a plug-in:

- ``register(name, obj)`` adds one; a name registered twice is refused (:class:`ConfigError`
  naming both), whether the second comes from code or from an installed package;
- ``obj`` may be a ``'module:Attr'`` string: the module is imported on the first ``get`` (so a
  backend's library, or a scheduler's dependencies, load only when that plug-in is used);
- ``get(name)`` returns it, or fails naming the unknown name and the known ones;
- ``names()`` lists them in registration order (built-in ones first); ``names_where(fact)``
  selects by a fact the plug-ins declare about themselves (class attributes), which is how the
  rest of the code asks "which schedulers search?" instead of keeping its own list;
- ``unregister(name)`` removes one;
- each family has an entry-point group (``hetero_infer.goals``, ``hetero_infer.schedulers``,
  ``hetero_infer.predictors``, ``hetero_infer.backends``, ``hetero_infer.regressors``): installed
  packages declare plug-ins there (``name = module:Attr``). The group is read when a name is
  listed or not found (so a package installed while running is seen), and an entry point's code
  is imported only when its plug-in is first got. An entry point whose name is already taken by
  another plug-in is an error, never skipped.

Each family passes ``adapt(name, obj)``, which checks what a lazy entry or entry point loaded
(and may wrap it, e.g. a goal function into a ``Goal``) and raises :class:`ConfigError` when it
is not a plug-in of that family.
"""

import importlib
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from hetero_infer.errors import ConfigError

#: ``adapt(name, loaded object) -> plug-in``; raises ConfigError for a wrong object.
Adapter = Callable[[str, Any], Any]
#: ``load_error(name, what, exception)``: the exception to raise for an entry whose import
#: fails, or None for the default ConfigError.
LoadError = Callable[[str, str, BaseException], Optional[BaseException]]


def installed_entry_points(group: str) -> list:
    """The entry points installed packages declare in ``group`` (read now, not cached)."""
    from importlib import metadata
    eps = metadata.entry_points()
    if hasattr(eps, 'select'):  # Python >= 3.10
        return list(eps.select(group=group))
    return list(eps.get(group, ()))  # Python 3.8, 3.9: a dict of groups


def _import_attr(spec: str) -> Any:
    module_name, _, attr = spec.partition(':')
    obj = importlib.import_module(module_name)
    for part in attr.split('.'):
        obj = getattr(obj, part)
    return obj


class _Entry:
    """One registered name: the plug-in once loaded, else what loads it."""

    __slots__ = ('obj', 'spec', 'entry_point', 'origin')

    def __init__(self, obj: Any = None, spec: str = '', entry_point: Any = None,
                 origin: str = '') -> None:
        self.obj = obj
        self.spec = spec
        self.entry_point = entry_point
        self.origin = origin

    @property
    def loaded(self) -> bool:
        return not self.spec and self.entry_point is None


def _is_lazy_spec(obj: Any) -> bool:
    if not isinstance(obj, str):
        return False
    module_name, sep, attr = obj.partition(':')
    return bool(sep and module_name and attr)


class Registry:
    """Plug-ins of one family keyed by name (see the module docstring).

    :param family: what a plug-in is called in messages (``'scheduler'``).
    :param group: the entry-point group installed packages register in; None: none.
    :param adapt: checks (and may wrap) every plug-in as it is registered or loaded.
    :param load_error: the exception for an entry whose import fails (default: a ConfigError
        naming the plug-in and the failure).
    :param hint: appended to the list of known names in "unknown name" errors.
    """

    def __init__(self, family: str, *, group: Optional[str] = None,
                 adapt: Optional[Adapter] = None, load_error: Optional[LoadError] = None,
                 hint: str = '') -> None:
        self.family = family
        self.group = group
        self._adapt = adapt
        self._load_error = load_error
        self._hint = hint
        self._entries: Dict[str, _Entry] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return 'Registry(%r, group=%r, %d entries)' % (self.family, self.group,
                                                       len(self._entries))

    # -- adding and removing -----------------------------------------------------------------
    def register(self, name: str, obj: Any) -> Any:
        """Register ``obj`` (or a lazy ``'module:Attr'`` string) as ``name``; returns ``obj``.

        :raises ConfigError: ``name`` is not a non-empty string, is already registered, or
            ``obj`` is not a plug-in of this family.
        """
        if not isinstance(name, str) or not name.strip():
            raise ConfigError('%s name must be a non-empty string, got %r' % (self.family, name))
        if _is_lazy_spec(obj):
            entry = _Entry(spec=obj, origin=obj)
        else:
            entry = _Entry(obj=self._adapted(name, obj), origin=_describe(obj))
        with self._lock:
            self._refuse_duplicate(name, entry.origin)
            self._entries[name] = entry
        return obj

    def unregister(self, name: str) -> None:
        """Remove ``name`` (an entry point still installed comes back on the next scan).

        :raises ConfigError: ``name`` is not registered.
        """
        with self._lock:
            if name not in self._entries:
                raise self._unknown(name)
            del self._entries[name]

    def _refuse_duplicate(self, name: str, origin: str) -> None:
        old = self._entries.get(name)
        if old is not None:
            raise ConfigError('%s %r is already registered (%s); cannot register %s under '
                              'the same name' % (self.family, name, old.origin, origin))

    # -- entry points --------------------------------------------------------------------------
    def scan_entry_points(self) -> List[str]:
        """Add the entry points of :attr:`group` not seen yet (their code is not imported);
        returns the names the group declares.

        :raises ConfigError: an entry point takes a name another plug-in already has.
        """
        if not self.group:
            return []
        names = []
        seen: Dict[str, Tuple[str, str]] = {}
        for ep in installed_entry_points(self.group):
            # the same distribution may be found twice on sys.path: same name and target
            if seen.get(ep.name) == (ep.name, ep.value):
                continue
            seen[ep.name] = (ep.name, ep.value)
            names.append(ep.name)
            origin = 'entry point %s = %s in group %s%s' % (ep.name, ep.value, self.group,
                                                             _distribution(ep))
            with self._lock:
                old = self._entries.get(ep.name)
                if old is not None:
                    if old.origin == origin or _same_entry_point(old.entry_point, ep):
                        continue
                    raise ConfigError('%s %r is already registered (%s); the installed %s '
                                      'cannot take the same name: rename or uninstall one'
                                      % (self.family, ep.name, old.origin, origin))
                self._entries[ep.name] = _Entry(entry_point=ep, origin=origin)
        return names

    # -- reading -------------------------------------------------------------------------------
    def names(self) -> List[str]:
        """Every registered name, entry points included, in registration order."""
        self.scan_entry_points()
        with self._lock:
            return list(self._entries)

    def __contains__(self, name: str) -> bool:
        with self._lock:
            if name in self._entries:
                return True
        return name in self.names()

    def get(self, name: str) -> Any:
        """The plug-in registered as ``name``, loading it on first use.

        :raises ConfigError: unknown name (the message lists the known ones), or its entry
            cannot be loaded or is not a plug-in of this family.
        """
        with self._lock:
            entry = self._entries.get(name)
        if entry is None:
            self.scan_entry_points()
            with self._lock:
                entry = self._entries.get(name)
            if entry is None:
                raise self._unknown(name)
        if entry.loaded:
            return entry.obj
        obj = self._load(name, entry)
        with self._lock:
            if self._entries.get(name) is entry:  # not replaced meanwhile
                entry.obj, entry.spec, entry.entry_point = obj, '', None
        return obj

    def items(self) -> List[Tuple[str, Any]]:
        """``(name, plug-in)`` of every registered name, each loaded."""
        return [(n, self.get(n)) for n in self.names()]

    def names_where(self, fact: Callable[[Any], bool]) -> List[str]:
        """Names (in registration order) of the plug-ins for which ``fact(plug-in)`` holds."""
        return [n for n, obj in self.items() if fact(obj)]

    # -- helpers -------------------------------------------------------------------------------
    def _unknown(self, name: str) -> ConfigError:
        with self._lock:
            known = list(self._entries)
        return ConfigError('unknown %s %r (known %ss: %s%s)'
                           % (self.family, name, self.family, ', '.join(known) or 'none',
                              self._hint))

    def _adapted(self, name: str, obj: Any) -> Any:
        return self._adapt(name, obj) if self._adapt is not None else obj

    def _load(self, name: str, entry: _Entry) -> Any:
        what = entry.spec or entry.origin
        try:
            if entry.entry_point is not None:
                obj = entry.entry_point.load()
            else:
                obj = _import_attr(entry.spec)
        except Exception as exc:  # noqa: BLE001 - the plug-in's code: any failure is reported
            err = self._load_error(name, what, exc) if self._load_error is not None else None
            if err is not None:
                raise err from None
            raise ConfigError('%s %r (%s): cannot load it: %s: %s'
                              % (self.family, name, what, type(exc).__name__, exc)) from None
        return self._adapted(name, obj)


def _describe(obj: Any) -> str:
    module = getattr(obj, '__module__', None) or type(obj).__module__
    qual = getattr(obj, '__qualname__', None) or type(obj).__qualname__
    return '%s:%s' % (module, qual)


def _distribution(ep: Any) -> str:
    dist = getattr(ep, 'dist', None)  # Python >= 3.10
    name = getattr(dist, 'name', None) if dist is not None else None
    return ' of distribution %s' % name if name else ''


def _same_entry_point(a: Any, b: Any) -> bool:
    return a is not None and (a.name, a.value, a.group) == (b.name, b.value, b.group)
