"""Applications, requests and their outcomes, and the dispatcher protocol schedulers implement."""

import heapq
import random
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from hetero_infer.errors import ConfigError
from hetero_infer.models.zoo import ModelSpec


@dataclass(frozen=True)
class App:
    """One application: a model fed by a request stream with a latency objective."""

    name: str
    model: ModelSpec
    rate_hz: float
    slo_ms: float
    processors: Tuple[str, ...] = ()   # empty = every processor that can run the model
    #: how much one of its requests served within the SLO counts in goodput-type goals
    weight: float = 1.0
    #: the share of its requests that must meet the SLO (the planner's floor)
    min_attainment: float = 0.0

    def __post_init__(self):
        check_criticality(self.name, self.weight, self.min_attainment)
        if not (self.rate_hz >= 0.0):
            raise ConfigError('application %s: rate_hz must be >= 0, got %r'
                              % (self.name, self.rate_hz))
        if not (self.slo_ms > 0.0):
            raise ConfigError('application %s: slo_ms must be > 0, got %r'
                              % (self.name, self.slo_ms))

    def scaled(self, factor: float) -> 'App':
        return App(self.name, self.model, self.rate_hz * factor, self.slo_ms, self.processors,
                   self.weight, self.min_attainment)


#: the largest weight an application may have (the serving node's parameter range too)
MAX_WEIGHT = 100.0


def check_criticality(name: str, weight, min_attainment) -> None:
    """Check an application's weight (0 < weight <= :data:`MAX_WEIGHT`) and its floor
    (0 <= min_attainment <= 1).

    :raises ConfigError: either is out of range or not a number (naming the application).
    """
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
            or not 0.0 < weight <= MAX_WEIGHT:
        raise ConfigError('application %s: weight must be a number in (0, %g], got %r'
                          % (name, MAX_WEIGHT, weight))
    if isinstance(min_attainment, bool) or not isinstance(min_attainment, (int, float)) \
            or not 0.0 <= min_attainment <= 1.0:
        raise ConfigError('application %s: min_attainment must be a number in [0, 1], got %r'
                          % (name, min_attainment))


def has_floors(apps: Sequence[App]) -> bool:
    """True when some application has a floor above 0 (the search then ranks by floors)."""
    return any(getattr(a, 'min_attainment', 0.0) > 0.0 for a in apps)


def weights_differ(apps: Sequence[App]) -> bool:
    """True when the applications' weights are not all equal (the router then sheds by them)."""
    return len({float(getattr(a, 'weight', 1.0)) for a in apps}) > 1


def floor_shortfall(apps: Sequence[App], attainment: Sequence[float]) -> float:
    """Weighted shortfall below the floors: ``sum(weight * max(0, floor - attainment))``;
    0 when every floor is met."""
    return sum(a.weight * max(0.0, a.min_attainment - x)
               for a, x in zip(apps, attainment) if a.min_attainment > 0.0)


def with_criticality(apps: Sequence[App], *, weights=None, floors=None) -> List[App]:
    """``apps`` with the weights and floors given by application name replaced.

    :raises ConfigError: a name that is no application (the message lists them), or a bad value.
    """
    import dataclasses
    names = [a.name for a in apps]
    for label, given in (('--weight', weights or {}), ('--floor', floors or {})):
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise ConfigError('%s: unknown application(s) %s (applications: %s)'
                              % (label, ', '.join(unknown), ', '.join(names)))
    out = []
    for a in apps:
        kw = {}
        if weights and a.name in weights:
            kw['weight'] = weights[a.name]
        if floors and a.name in floors:
            kw['min_attainment'] = floors[a.name]
        out.append(dataclasses.replace(a, **kw) if kw else a)
    return out


#: The simulators' default queue limit per processor (the twin's and the planner's ``max_queue``):
#: a request routed to a full queue is dropped with reason ``queue_full``.
DEFAULT_MAX_QUEUE = 64

#: Reasons a request can be dropped instead of producing a result.
DROP_REASONS = ('rejected', 'queue_full', 'no_processor', 'processor_failed', 'bad_input',
                'shutdown')


@dataclass
class RequestRecord:
    """The one outcome of one request: finished (``finish_ms`` set) or dropped (reason set)."""

    app: int
    arrival_ms: float
    proc: Optional[str] = None
    start_ms: Optional[float] = None
    finish_ms: Optional[float] = None
    dropped_reason: Optional[str] = None

    @property
    def latency_ms(self) -> Optional[float]:
        if self.finish_ms is None:
            return None
        return self.finish_ms - self.arrival_ms

    @property
    def done(self) -> bool:
        return self.finish_ms is not None


def poisson_arrivals(apps: Sequence[App], duration_s: float, seed: int
                     ) -> List[Tuple[float, int, int]]:
    """Merged Poisson arrivals ``(time_ms, seq, app_index)`` sorted by ``(time, seq)``.

    Each application draws from its own seeded stream, so adding an application does not
    change the others' arrival times.
    """
    streams = []
    horizon_ms = duration_s * 1000.0
    for i, app in enumerate(apps):
        times = []
        if app.rate_hz > 0:
            rng = random.Random((seed * 1000003 + i * 7919) & 0xFFFFFFFF)
            mean_ms = 1000.0 / app.rate_hz
            t = rng.expovariate(1.0 / mean_ms)
            while t < horizon_ms:
                times.append((t, i))
                t += rng.expovariate(1.0 / mean_ms)
        streams.append(times)
    merged = heapq.merge(*streams)
    return [(t, seq, i) for seq, (t, i) in enumerate(merged)]


class DispatchView:
    """What a dispatcher may look at when it places a request (read-only)."""

    now_ms = 0.0

    def queue_len(self, proc: str) -> int:
        """Requests waiting for or running on ``proc``."""
        raise NotImplementedError

    def expected_free_ms(self, proc: str) -> float:
        """When ``proc`` is expected to be free, from isolated latencies (absolute ms)."""
        raise NotImplementedError

    def queue_full(self, proc: str) -> bool:
        """True when a request placed on ``proc`` now would be dropped for a full queue."""
        return False


class Dispatcher:
    """Places each request on a processor. Schedulers and the priority router implement this.

    One signature for every implementation; what a dispatcher needs to know about the set-up it
    receives in :meth:`reset`.
    """

    name = 'dispatcher'

    def reset(self, apps: Sequence[App], platform) -> None:
        """Called before a run with the applications and the platform."""

    def dispatch(self, app_index: int, now_ms: float, view: DispatchView) -> Optional[str]:
        """Return the processor id for this request, or None to drop it (reason 'rejected')."""
        raise NotImplementedError

    def completed(self, app_index: int, proc: str, latency_ms: float) -> None:
        """Feedback when a request finishes."""


class FixedDispatcher(Dispatcher):
    """Every request of application i goes to ``procs[i]`` (used by calibration and tests)."""

    name = 'fixed'

    def __init__(self, procs: Sequence[str]):
        self.procs = list(procs)

    def dispatch(self, app_index, now_ms, view):
        return self.procs[app_index]
