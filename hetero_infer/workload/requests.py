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

    def __post_init__(self):
        if not (self.rate_hz >= 0.0):
            raise ConfigError('application %s: rate_hz must be >= 0, got %r'
                              % (self.name, self.rate_hz))
        if not (self.slo_ms > 0.0):
            raise ConfigError('application %s: slo_ms must be > 0, got %r'
                              % (self.name, self.slo_ms))

    def scaled(self, factor: float) -> 'App':
        return App(self.name, self.model, self.rate_hz * factor, self.slo_ms, self.processors)


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
