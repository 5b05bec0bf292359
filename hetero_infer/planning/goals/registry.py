"""Resolve what a user typed (or wrote in config) into a :class:`Goal`.

Accepted forms:

- a built-in name: ``goodput``, ``slo99_throughput``, ``throughput``, ``fairness``,
  ``weighted_goodput``;
- the name of a goal an installed package registers as a Python entry point in the group
  ``hetero_infer.goals`` (``name = module:function``, the function as below, or a
  :class:`Goal`); :func:`known_goals` lists them with the built-in ones (:data:`GOALS`, the
  family's :class:`~hetero_infer.registry.Registry`; a name taken twice is an error);
- a Python entry point ``module:function``; the function receives the metrics and returns a float
  to maximise (give it an attribute ``needs = ('slo99_throughput',)`` if it reads that metric);
- a weighted sum of metric names, as text ``'0.7*goodput + 0.3*fairness'`` or as a mapping
  ``{'goodput': 0.7, 'fairness': 0.3}`` (e.g. ``goal: {weighted: {...}}`` in YAML).

Anything else is refused with the list of known names.
"""

import importlib
import re
from typing import Any, Dict, List, Mapping, Union

from hetero_infer.errors import ConfigError
from hetero_infer.planning.goals.base import METRIC_NAMES, Goal, metric_value
from hetero_infer.registry import Registry

#: Entry-point group of user goals (``[project.entry-points."hetero_infer.goals"]``).
ENTRY_POINT_GROUP = 'hetero_infer.goals'


def _adapt(name: str, obj: Any) -> Goal:
    """A registered or installed goal as a :class:`Goal` named ``name``: a Goal, or a function
    of the metrics (its ``needs`` attribute and first docstring line are kept)."""
    if isinstance(obj, Goal):
        if obj.name == name:
            return obj
        return Goal(name, obj, needs=obj.needs, description=obj.description)
    if callable(obj):
        doc = (getattr(obj, '__doc__', None) or '').strip().split('\n')[0]
        return Goal(name, _UserGoal(name, obj), needs=getattr(obj, 'needs', ()),
                    description=doc or 'user goal %s' % name)
    raise ConfigError('goal %r is %r, not a goal function or Goal' % (name, obj))


GOALS = Registry('goal', group=ENTRY_POINT_GROUP, adapt=_adapt,
                 hint='; or "module:function", or a weighted sum like '
                      '"0.7*goodput+0.3*fairness"')
for _name in ('goodput', 'slo99_throughput', 'throughput', 'fairness', 'weighted_goodput'):
    GOALS.register(_name, 'hetero_infer.planning.goals.%s:GOAL' % _name)


def register_goal(goal: Goal) -> Goal:
    """Add a goal to the registry.

    :raises ConfigError: a goal of that name is already registered.
    """
    GOALS.register(goal.name, goal)
    return goal


def known_goals() -> List[str]:
    """Every goal a name selects: the built-in ones and the installed entry points' (sorted)."""
    return sorted(GOALS.names())


_NUMBER = r'[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?'
_TERM = re.compile(r'^\s*(?:(' + _NUMBER + r')\s*\*\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*$')


def weighted_goal(weights: Mapping[str, float]) -> Goal:
    """A goal that maximises ``sum(weight * metric)``.

    :raises ConfigError: an unknown metric name (the message lists the known ones) or a
        non-numeric weight.
    """
    if not weights:
        raise ConfigError('weighted goal needs at least one metric (known: %s)'
                          % ', '.join(METRIC_NAMES))
    clean: Dict[str, float] = {}
    for name, w in weights.items():
        if name not in METRIC_NAMES:
            raise ConfigError('unknown metric %r in weighted goal (known metrics: %s)'
                              % (name, ', '.join(METRIC_NAMES)))
        try:
            clean[name] = float(w)
        except (TypeError, ValueError):
            raise ConfigError('weight of %r must be a number, got %r' % (name, w)) from None
    label = ' + '.join('%g*%s' % (w, n) for n, w in clean.items())

    def fn(metrics) -> float:
        return sum(w * metric_value(metrics, n) for n, w in clean.items())

    return Goal(label, fn, needs=clean.keys(), description='weighted sum ' + label)


def entry_point_goal(spec: str) -> Goal:
    """Load ``module:function`` as a goal.

    :raises ConfigError: the module cannot be imported or has no such callable.
    """
    module_name, _, attr = spec.partition(':')
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - the user's module: any failure is theirs
        raise ConfigError('goal %r: cannot import module %r: %s: %s'
                          % (spec, module_name, type(exc).__name__, exc)) from None
    fn = module
    for part in attr.split('.'):
        fn = getattr(fn, part, None)
    if not callable(fn):
        raise ConfigError('goal %r: %r has no callable %r' % (spec, module_name, attr))
    return Goal(spec, _UserGoal(spec, fn), needs=getattr(fn, 'needs', ()),
                description='user goal ' + spec)


class _UserGoal(object):
    """A user's goal function: its exceptions and non-numbers are the goal's errors, named as
    such (a ConfigError), not the planner's. Picklable when the function is (search workers)."""

    def __init__(self, spec: str, fn) -> None:
        self.spec = spec
        self.fn = fn

    def __call__(self, metrics) -> float:
        try:
            value = self.fn(metrics)
        except Exception as exc:  # noqa: BLE001 - the user's code
            raise ConfigError('goal %r raised %s: %s' % (self.spec, type(exc).__name__, exc)
                              ) from None
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ConfigError('goal %r returned %r, not a number' % (self.spec, value)) from None
        if value != value:
            raise ConfigError('goal %r returned NaN' % self.spec)
        return value


def get_goal(spec: Union[str, Mapping, Goal]) -> Goal:
    """The goal for a name, an entry point, a weighted sum, or a Goal (returned as is).

    :raises ConfigError: nothing matches; the message lists the known goals.
    """
    if isinstance(spec, Goal):
        return spec
    if isinstance(spec, Mapping):
        weights = spec.get('weighted', spec)
        if not isinstance(weights, Mapping):
            raise ConfigError('goal mapping must be {metric: weight}, got %r' % (spec,))
        return weighted_goal(weights)
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError('goal must be a name, "module:function" or a weighted sum, got %r '
                          '(known goals: %s)' % (spec, ', '.join(known_goals())))
    spec = spec.strip()
    if ':' in spec:
        return entry_point_goal(spec)
    if '*' in spec or '+' in spec:
        weights: Dict[str, float] = {}
        for term in spec.split('+'):
            m = _TERM.match(term)
            if not m:
                raise ConfigError('cannot parse goal term %r in %r (write e.g. '
                                  '"0.7*goodput + 0.3*fairness"; known metrics: %s)'
                                  % (term, spec, ', '.join(METRIC_NAMES)))
            weights[m.group(2)] = weights.get(m.group(2), 0.0) + float(m.group(1) or 1.0)
        return weighted_goal(weights)
    return GOALS.get(spec)
