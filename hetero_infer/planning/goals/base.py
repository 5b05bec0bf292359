"""Goals: what the planner maximises. Every goal has ONE signature, ``goal(metrics) -> float``.

``metrics`` is what a simulation measured: a :class:`hetero_infer.planning.metrics.Metrics` or any
object / mapping with the same names (``goodput``, ``throughput``, ``fairness``,
``slo99_throughput``, ``weighted_goodput``, ...). :func:`metric_value` reads a name from either.
The planner's metrics also carry, per application by name, ``attainment``, ``weights`` and
``floors`` (mappings; :data:`hetero_infer.planning.metrics.PER_APP_METRICS`) for user goals.

Goals are kept in one registry keyed by the name a user types (:mod:`.registry`); registering a
name twice is an error. A goal may say which metrics it needs (``needs``): the planner computes
the expensive ``slo99_throughput`` (a bisection over the load) only for goals that ask for it.
"""

import math
from typing import Callable, FrozenSet, Iterable

from hetero_infer.errors import ConfigError
from hetero_infer.planning.metrics import OBJECTIVES, PLANNER_METRICS

#: Metric names goals may use (what the planner's simulator fills in).
METRIC_NAMES = tuple(OBJECTIVES) + PLANNER_METRICS


def metric_value(metrics, name: str) -> float:
    """Read metric ``name`` from an object (attribute) or a mapping (key).

    :raises ConfigError: the metrics carry no such value (the message lists what they have).
    """
    if isinstance(metrics, dict):
        if name in metrics:
            return float(metrics[name])
        have = sorted(metrics)
    else:
        value = getattr(metrics, name, None)
        if value is not None:
            return float(value)
        have = sorted(k for k in dir(metrics) if not k.startswith('_'))
    raise ConfigError('metric %r is not available (metrics have: %s)' % (name, ', '.join(have)))


class Goal:
    """A function from metrics to a number to maximise, with a name and the metrics it needs."""

    def __init__(self, name: str, fn: Callable[[object], float], *,
                 needs: Iterable[str] = (), description: str = '') -> None:
        self.name = name
        self._fn = fn
        self.needs: FrozenSet[str] = frozenset(needs)
        self.description = description

    def __call__(self, metrics) -> float:
        value = float(self._fn(metrics))
        return value if not math.isnan(value) else float('-inf')

    def __repr__(self) -> str:
        return 'Goal(%r)' % self.name
