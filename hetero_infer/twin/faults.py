"""Processor faults: how they are written and when they are active, and how health is judged.

Injected faults (tests, demos, the twin's serving simulation) are written
``PROC:KIND@SECONDS[+DURATION]``: from ``SECONDS`` after serving starts, for ``DURATION`` seconds
(for ever without it), processor ``PROC``

- ``error``: every inference raises (a cuDLA / TensorRT runtime error);
- ``hang``: an inference that starts does not return until the fault ends.

:class:`HealthTracker` is the rule that serving applies to every processor, injected fault or
real one (the serving engine and the twin share it):

- a processor becomes **unhealthy** after ``failure_threshold`` consecutive failed inferences,
  or at once when an inference runs longer than its watchdog,
  ``max(watchdog_factor x expected latency, watchdog_min_ms)``;
- while unhealthy it is probed every ``probe_period_s`` with a real inference; after
  ``recovery_successes`` probes in a row succeed it is **healthy** again (a failed probe starts
  the count over).

Nothing here knows about ROS or threads of a node; times come from the caller's clock.
"""

import math
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from hetero_infer.errors import ConfigError

FAULT_KINDS = ('error', 'hang')
FAULT_SYNTAX = 'PROC:KIND@SECONDS[+DURATION] (KIND error or hang), e.g. dla1:error@10+5'


@dataclass(frozen=True)
class Fault:
    """One injected fault: ``proc`` fails as ``kind`` says over [at_s, at_s + duration_s)."""

    proc: str
    kind: str
    at_s: float
    duration_s: float = math.inf

    @property
    def end_s(self) -> float:
        return self.at_s + self.duration_s

    def active(self, t_s: float) -> bool:
        return self.at_s <= t_s < self.end_s

    def __str__(self) -> str:
        text = '%s:%s@%g' % (self.proc, self.kind, self.at_s)
        return text if math.isinf(self.duration_s) else text + '+%g' % self.duration_s


def parse_fault(text: str) -> Fault:
    """``'dla1:error@10+5'`` -> ``Fault('dla1', 'error', 10.0, 5.0)``.

    :raises ConfigError: the text does not follow the syntax (the text and the rule named).
    """
    if not isinstance(text, str):
        raise ConfigError('fault %r: expected a string %s' % (text, FAULT_SYNTAX))
    spec = text.strip()
    proc, sep, rest = spec.partition(':')
    kind, sep2, when = rest.partition('@')
    if not (sep and sep2 and proc.strip() and kind.strip() and when.strip()):
        raise ConfigError('fault %r: expected %s' % (text, FAULT_SYNTAX))
    kind = kind.strip()
    if kind not in FAULT_KINDS:
        raise ConfigError('fault %r: kind %r is not one of %s' % (text, kind,
                                                                  ', '.join(FAULT_KINDS)))
    at, plus, dur = when.partition('+')
    at_s = _seconds(text, 'start', at)
    duration_s = _seconds(text, 'duration', dur) if plus else math.inf
    if plus and duration_s <= 0:
        raise ConfigError('fault %r: duration must be > 0 s, got %s' % (text, dur.strip()))
    return Fault(proc.strip(), kind, at_s, duration_s)


def _seconds(text: str, what: str, value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise ConfigError('fault %r: %s %r is not a number of seconds (%s)'
                          % (text, what, value.strip(), FAULT_SYNTAX)) from None
    if not math.isfinite(x) or x < 0:
        raise ConfigError('fault %r: %s must be a finite number >= 0, got %s'
                          % (text, what, value.strip()))
    return x


def parse_faults(items: Union[None, str, Fault, Iterable[Union[str, Fault]]]
                 ) -> Tuple[Fault, ...]:
    """Faults from a string, a list of strings (empty strings ignored) or :class:`Fault` objects.

    :raises ConfigError: one of them is malformed.
    """
    if items is None:
        return ()
    if isinstance(items, (str, Fault)):
        items = [items]
    out = []
    for item in items:
        if isinstance(item, Fault):
            out.append(item)
        elif isinstance(item, str) and not item.strip():
            continue
        else:
            out.append(parse_fault(item))
    return tuple(out)


def check_processors(faults: Sequence[Fault], known: Sequence[str], where: str) -> None:
    """:raises ConfigError: a fault names a processor not in ``known``."""
    for f in faults:
        if f.proc not in known:
            raise ConfigError('%s: fault %s names processor %r, which is not one of %s'
                              % (where, f, f.proc, ', '.join(known)))


class FaultSchedule:
    """The injected faults on a time line that starts at 0 (serving start)."""

    def __init__(self, faults: Sequence[Fault]) -> None:
        self.faults = tuple(faults)

    def __bool__(self) -> bool:
        return bool(self.faults)

    def kind_at(self, proc: str, t_s: float) -> Optional[str]:
        """The kind of fault ``proc`` has at ``t_s`` (``hang`` wins over ``error``), or None."""
        kinds = [f.kind for f in self.faults if f.proc == proc and f.active(t_s)]
        if 'hang' in kinds:
            return 'hang'
        return kinds[0] if kinds else None

    def hang_end_s(self, proc: str, t_s: float) -> float:
        """When the hang ``proc`` has at ``t_s`` ends (inf: never; t_s: no hang)."""
        ends = [f.end_s for f in self.faults
                if f.proc == proc and f.kind == 'hang' and f.active(t_s)]
        return max(ends) if ends else t_s


@dataclass(frozen=True)
class HealthSettings:
    """How failures are detected and recovery confirmed (see the module docstring).

    The watchdog floor keeps a fast model's watchdog above the scheduling jitter of a busy host
    (a 2 ms inference with ``watchdog_factor`` 10 would otherwise be declared hung after 20 ms).
    """

    failure_threshold: int = 3
    watchdog_factor: float = 10.0
    watchdog_min_ms: float = 100.0
    probe_period_s: float = 1.0
    recovery_successes: int = 3

    #: (low, high) of every setting; the node's parameters declare the same ranges.
    RANGES = {'failure_threshold': (1, 100), 'watchdog_factor': (2.0, 1000.0),
              'watchdog_min_ms': (1.0, 60000.0), 'probe_period_s': (0.05, 60.0),
              'recovery_successes': (1, 100)}

    def __post_init__(self) -> None:
        for name, (low, high) in self.RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not low <= value <= high:
                raise ConfigError('health setting %s = %r is outside [%g, %g]'
                                  % (name, value, low, high))

    def watchdog_ms(self, expected_ms: float) -> float:
        return max(self.watchdog_factor * expected_ms, self.watchdog_min_ms)


@dataclass
class HealthEvent:
    """``proc`` became healthy or unhealthy at ``t_s``; ``results_before``: results it had
    delivered by then (the caller fills it in, to tell use after recovery)."""

    t_s: float
    proc: str
    healthy: bool
    reason: str
    results_before: int = 0


class _ProcHealth:
    __slots__ = ('healthy', 'failures', 'successes', 'reason', 'since_s', 'last_error')

    def __init__(self) -> None:
        self.healthy = True
        self.failures = 0       # consecutive failed inferences (healthy)
        self.successes = 0      # consecutive successful probes (unhealthy)
        self.reason = ''
        self.since_s = 0.0
        self.last_error = ''


class HealthTracker:
    """Health of each processor under :class:`HealthSettings` (thread-safe).

    The methods that change the state return True exactly when the processor changed state,
    so the caller acts (leaves or rejoins routing) once per transition.

    :param procs: processor ids.
    :param clock: seconds since serving started (the engine's wall clock, the twin's virtual
        one).
    """

    def __init__(self, procs: Sequence[str], settings: Optional[HealthSettings] = None, *,
                 clock: Callable[[], float]) -> None:
        self.settings = settings or HealthSettings()
        self._clock = clock
        self._lock = threading.Lock()
        self._procs: Dict[str, _ProcHealth] = {p: _ProcHealth() for p in procs}
        self.events: List[HealthEvent] = []

    def is_healthy(self, proc: str) -> bool:
        h = self._procs.get(proc)
        return h is None or h.healthy

    def unhealthy(self) -> Dict[str, str]:
        """Unhealthy processor -> why."""
        with self._lock:
            return {p: h.reason for p, h in self._procs.items() if not h.healthy}

    def success(self, proc: str) -> None:
        """An inference on ``proc`` succeeded (a healthy processor's failure count restarts)."""
        h = self._procs[proc]
        if h.failures:
            with self._lock:
                h.failures = 0

    def failure(self, proc: str, error: str) -> bool:
        """An inference on ``proc`` raised ``error``; True when that makes it unhealthy."""
        with self._lock:
            h = self._procs[proc]
            h.last_error = error
            if not h.healthy:
                return False
            h.failures += 1
            if h.failures < self.settings.failure_threshold:
                return False
            return self._set(proc, h, False, '%d consecutive failures, last: %s'
                             % (h.failures, error))

    def hung(self, proc: str, why: str) -> bool:
        """An inference on ``proc`` overran its watchdog; True when that makes it unhealthy."""
        with self._lock:
            h = self._procs[proc]
            h.last_error = why
            if not h.healthy:
                h.successes = 0
                return False
            return self._set(proc, h, False, why)

    def probe_result(self, proc: str, ok: bool, why: str = '') -> bool:
        """A probe of unhealthy ``proc`` ended; True when that makes it healthy again."""
        with self._lock:
            h = self._procs[proc]
            if h.healthy:
                return False
            if not ok:
                h.successes = 0
                h.last_error = why
                return False
            h.successes += 1
            if h.successes < self.settings.recovery_successes:
                return False
            return self._set(proc, h, True, '%d probes in a row succeeded' % h.successes)

    def _set(self, proc: str, h: _ProcHealth, healthy: bool, reason: str) -> bool:
        h.healthy = healthy
        h.failures = 0
        h.successes = 0
        h.reason = '' if healthy else reason
        h.since_s = self._clock()
        self.events.append(HealthEvent(h.since_s, proc, healthy, reason))
        return True

    def snapshot(self) -> Dict[str, Dict[str, Any]]:
        """Per processor: ``healthy``, ``reason`` (when not), ``since_s``, ``failures`` (in a
        row), ``probes_ok`` (in a row, while unhealthy)."""
        with self._lock:
            out = {}
            for p, h in self._procs.items():
                d: Dict[str, Any] = {'healthy': h.healthy, 'since_s': round(h.since_s, 3),
                                     'failures': h.failures}
                if not h.healthy:
                    d['reason'] = h.reason
                    d['probes_ok'] = h.successes
                out[p] = d
            return out
