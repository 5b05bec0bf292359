"""The priority router: sends each request where its application is furthest behind its plan.

For a request of application ``i`` every processor ``p`` the policy allows gets

    score(i, p) = A[i, p] / consumed(i, p)

where ``A`` is the policy's allocation and ``consumed(i, p)`` is the share of application ``i``'s
recent requests that ``p`` took: an exponentially weighted count of decisions (weight ``decay`` per
decision, so the window is about ``1 / (1 - decay)`` requests) divided by its sum. The request goes
to the highest score (a processor never used yet scores infinity); scores within
``tie_tolerance`` (relative; default 0.5: within a factor 1.5) of the best are tied and the tie
goes to the processor with the earliest expected finish time (its ``view.expected_free_ms`` plus
this model's isolated latency there). The work per decision is a constant times the number of
processors.

Why a tolerance band rather than exact ties only (``tie_tolerance=0``, the talk's literal rule):
exact share tracking sends a request to a busy processor while another one that is almost on
its share sits idle, which costs tail latency. With the band every processor still receives at
least ``A[i, p] / (1 + tie_tolerance)`` of the application's requests (tested), and the planner
simulates the same router, so its plans account for the band. The band is one of the policy's
router options (:data:`hetero_infer.planning.policy.ROUTER_DEFAULTS`), which the search chooses per
scenario; so are the two rules below.

- **Overflow** (``overflow``, on by default): when the processor chosen has a full queue
  (``view.queue_full(p)``) the request goes to an idle processor (nothing queued or
  running) that the application may use and its model can run on, planned share or not, the
  fastest such; a processor never sits idle while the application drops requests for full
  queues. Overflow decisions do not count as consumed shares.
- **SLO-aware dispatch** (``slo_dispatch='drop'``): a request that no allowed processor can
  finish within its SLO (expected free time plus the isolated latency, already optimistic) is
  dropped at once with the reason ``slo_unreachable`` instead of taking a queue slot it would
  waste.
- **Shedding by weight** (only when the applications' weights differ; with equal weights
  nothing is shed): under overload a request of an application whose weight ``w`` is below
  the highest ``w_max`` is dropped at once (reason ``shed``) when, on the processor chosen,
  with ``L`` its expected latency there (expected free time minus now, plus its isolated
  latency: optimistic),

  1. it would miss its own SLO: ``L > slo_ms * (1 + f - f_min)`` with ``f = w / w_max`` and
     ``f_min`` the lowest such fraction (the lowest weight at its SLO, a middle weight only
     when it would miss by more, so the lowest weights go first as queues grow); or
  2. it would take capacity a higher-weight application needs: an application of higher
     weight with a planned share on that processor would, queued right behind it, miss its
     SLO (``L`` plus that application's isolated latency there exceeds its SLO).

  The highest weight is never shed. Why both clauses, measured on the twin with
  ``--goal weighted_goodput`` (docs/scheduling.md has the figures): the first rule shipped,
  ``L > slo_ms * w / w_max``, shed requests that would have met their SLO while nothing of
  higher weight was waiting for the processor (``mix_r1``, ``vgg16=3``: resnet50 at 21-28%
  attainment, weighted goodput 392-413); clause 1 alone never sheds a request expected to
  meet its SLO, but under deep overload lets lower-weight requests queue ahead of the
  higher-weight ones (``robot_ssdlite_r2``, ``detect_front=3 kws=3``: weighted goodput 736
  -> 540); with clause 2 a request expected to meet its SLO is shed only where it would
  make a heavier one miss, and both scenarios do at least as well as the better of the two
  (404-424 and 740-744).
- **No share tracking** (``share_tracking=False``): every processor the plan gives a share is
  tied, so the earliest expected finish among them wins (least finish time over the plan's
  processors; with an even plan over every allowed processor, exactly ``least_finish_time``).

A processor that fails or is removed (:meth:`PriorityRouter.remove_processor`) drops out: every
application's allocation is renormalised over the processors that are left, and an application
whose whole share was on the removed processor spreads evenly over those its model can run on.

Service times (the isolated latency of each application's model on each processor) come from
the platform given to :meth:`~PriorityRouter.reset` (planner simulator, twin) or from
:meth:`~PriorityRouter.set_service_ms` (the live engine, from the same platform's table). They
are kept, by processor name, across :meth:`~PriorityRouter.set_policy`, ``remove_processor`` and
``restore_processor``, so the live router decides as the planner simulated.

The same class serves live requests (the serving engine calls :meth:`route` from callback
threads, so state changes hold a lock) and runs inside the planner's simulator (:mod:`plansim`)
and the twin, so the plan is scored with exactly the routing it will get.
"""

import threading
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from hetero_infer.errors import ConfigError
from hetero_infer.planning.policy import ROUTER_DEFAULTS, Policy, check_router_options

_INF = float('inf')

#: Drop reason of a request no processor can finish within its SLO (``slo_dispatch='drop'``).
SLO_UNREACHABLE = 'slo_unreachable'
#: Drop reason of a lower-weight request shed under overload (weights differ).
SHED = 'shed'


class PriorityRouter:
    """Dispatcher (see ``docs/INTERFACES.md``) that enforces a :class:`Policy`.

    :param policy: the allocation to follow; rows are matched to applications by name.
    :param decay: weight kept by the consumed-share history per decision, in (0, 1).
    :param tie_tolerance: scores within this relative distance of the best count as tied;
        ``None``: the policy's router option (default 0.5). The same for ``overflow`` and
        ``slo_dispatch`` (see :data:`~hetero_infer.planning.policy.ROUTER_DEFAULTS`). A value given
        here overrides every policy this router follows.
    """

    name = 'priority'

    def __init__(self, policy: Policy, *, decay: float = 0.98,
                 tie_tolerance: Optional[float] = None, overflow: Optional[bool] = None,
                 slo_dispatch: Optional[str] = None) -> None:
        if not isinstance(policy, Policy):
            raise ConfigError('PriorityRouter needs a Policy, got %r' % (policy,))
        if not 0.0 < decay < 1.0:
            raise ConfigError('PriorityRouter: decay must be in (0, 1), got %r' % (decay,))
        given = {'tie_tolerance': tie_tolerance, 'overflow': overflow,
                 'slo_dispatch': slo_dispatch}
        self._fixed = check_router_options({k: v for k, v in given.items() if v is not None},
                                           'PriorityRouter')
        self.policy = policy
        self.decay = float(decay)
        self._lock = threading.Lock()
        self._procs = list(policy.processor_ids)
        self._removed = set()
        self._apps: List[str] = list(policy.app_names)
        self._service_by_proc: Optional[List[Dict[str, float]]] = None
        self._slo_ms: List[float] = [_INF] * len(self._apps)
        # multiple of its SLO at which each application is shed (inf: never, and the order of
        # the weights); None while the weights are equal (no shedding)
        self._shed: Optional[List[float]] = None
        self._options()
        self._rebuild(list(policy.app_names))

    # ------------------------------------------------------------ Dispatcher protocol
    def reset(self, apps: Sequence, platform=None) -> None:
        """Start a new run: map ``apps`` (objects with ``name``, ``model``, optionally
        ``slo_ms``) to policy rows; with a ``platform``, take the service times from it.

        :raises ConfigError: an application the policy has no row for.
        """
        names = [getattr(a, 'name', a) for a in apps]
        missing = [n for n in names if n not in self.policy.app_names]
        if missing:
            raise ConfigError('PriorityRouter: policy has no row for applications %s (it has %s)'
                              % (missing, list(self.policy.app_names)))
        service = None
        if platform is not None:
            service = []
            for a in apps:
                row = {}
                for p in self._procs:
                    try:
                        ok = platform.can_run(a.model, p)
                    except Exception:  # noqa: BLE001 - unknown processor on this platform
                        ok = False
                    if ok:
                        row[p] = float(platform.isolated_latency_ms(a.model, p))
                service.append(row)
        slos = [float(getattr(a, 'slo_ms', _INF) or _INF) for a in apps]
        with self._lock:
            self._service_by_proc = service
            self._slo_ms = slos
            self._rebuild(names)
            self._shed = _shed_fractions([getattr(a, 'weight', 1.0) for a in apps])

    def set_service_ms(self, service_ms: Sequence[Mapping[str, float]]) -> None:
        """Service times by hand: ``service_ms[app_index][proc]`` is the model's isolated
        latency (ms) there; a processor left out cannot run the model (the live engine passes
        its executors' table, the planner's simulator gets the same from its platform).

        :raises ConfigError: wrong number of rows, or a negative / non-numeric latency.
        """
        if len(service_ms) != len(self._apps):
            raise ConfigError('PriorityRouter: %d service-time rows for %d applications'
                              % (len(service_ms), len(self._apps)))
        rows = []
        for name, row in zip(self._apps, service_ms):
            out = {}
            for p, v in row.items():
                try:
                    ms = float(v)
                except (TypeError, ValueError):
                    ms = -1.0
                if not ms >= 0.0:
                    raise ConfigError('PriorityRouter: service time of %s on %s must be a '
                                      'number >= 0, got %r' % (name, p, v))
                out[str(p)] = ms
            rows.append(out)
        with self._lock:
            self._service_by_proc = rows
            self._rebuild(self._apps)

    def set_slos(self, slo_ms: Sequence[float]) -> None:
        """Each application's SLO (ms), read by SLO-aware dispatch."""
        if len(slo_ms) != len(self._apps):
            raise ConfigError('PriorityRouter: %d SLOs for %d applications'
                              % (len(slo_ms), len(self._apps)))
        with self._lock:
            self._slo_ms = [float(s) for s in slo_ms]

    def set_weights(self, weights: Sequence[float]) -> None:
        """Each application's weight, read by shedding under overload (equal: no shedding).

        :raises ConfigError: wrong number of weights, or one not > 0.
        """
        if len(weights) != len(self._apps):
            raise ConfigError('PriorityRouter: %d weights for %d applications'
                              % (len(weights), len(self._apps)))
        fractions = _shed_fractions(weights)
        with self._lock:
            self._shed = fractions

    def dispatch(self, app_index: int, now_ms: float, view=None) -> Optional[str]:
        """The processor for one request of application ``app_index`` (None: drop it)."""
        return self.route(app_index, now_ms, view)[0]

    def route(self, app_index: int, now_ms: float, view=None) -> Tuple[Optional[str], str]:
        """``(processor, '')``, or ``(None, reason)`` when the request is to be dropped:
        ``'no_processor'`` (none left), :data:`SLO_UNREACHABLE` or :data:`SHED`."""
        with self._lock:
            cols = self._cols[app_index]
            if not cols:
                return None, 'no_processor'
            procs = self._procs
            service = self._service_ms[app_index]
            if self._slo_drop and view is not None:
                deadline = now_ms + self._slo_ms[app_index]
                for j in self._allowed[app_index]:
                    if view.expected_free_ms(procs[j]) + service[j] <= deadline:
                        break
                else:
                    return None, SLO_UNREACHABLE
            alloc = self._alloc[app_index]
            counts = self._counts[app_index]
            if self.share_tracking:
                scores = [alloc[j] / counts[j] if counts[j] > 0.0 else _INF for j in cols]
                best_score = max(scores)
                floor = best_score / (1.0 + self.tie_tolerance)
                tied = [j for j, s in zip(cols, scores) if s >= floor]
            else:
                tied = cols
            best = tied[0]
            if len(tied) > 1 and view is not None:
                best_finish = _INF
                for j in tied:
                    finish = view.expected_free_ms(procs[j]) + service[j]
                    if finish < best_finish:
                        best, best_finish = j, finish
            if self.overflow and view is not None:
                full = getattr(view, 'queue_full', None)
                if full is not None and full(procs[best]):
                    # the fastest idle processor instead
                    spare, spare_ms = -1, _INF
                    for j in self._allowed[app_index]:
                        if j != best and service[j] < spare_ms and view.queue_len(procs[j]) == 0:
                            spare, spare_ms = j, service[j]
                    if spare >= 0:
                        if self._shed is not None and \
                                self._shed_now(app_index, spare, now_ms, view):
                            return None, SHED
                        return procs[spare], ''
            if self._shed is not None and self._shed_now(app_index, best, now_ms, view):
                return None, SHED
            d = self.decay
            for j in cols:
                counts[j] *= d
            counts[best] += 1.0
            return procs[best], ''

    def completed(self, app_index: int, proc_id: str, latency_ms: float) -> None:
        """Feedback hook of the Dispatcher protocol; shares are counted at dispatch time."""

    # ------------------------------------------------------------ live changes
    def remove_processor(self, proc_id: str) -> None:
        """Take a failed or removed processor out; allocations renormalise over the rest."""
        with self._lock:
            if proc_id not in self._procs:
                raise ConfigError('PriorityRouter: unknown processor %r (processors %s)'
                                  % (proc_id, self._procs))
            self._removed.add(proc_id)
            self._rebuild(self._apps)

    def restore_processor(self, proc_id: str) -> None:
        """Put a processor back (after a recovery); the policy's allocation applies again."""
        with self._lock:
            self._removed.discard(proc_id)
            self._rebuild(self._apps)

    def set_policy(self, policy: Policy) -> None:
        """Switch to a new plan (same applications) and its router options; the history of
        consumed shares restarts, service times and SLOs are kept."""
        with self._lock:
            if set(policy.app_names) != set(self.policy.app_names):
                raise ConfigError('PriorityRouter: new policy covers %s, current one %s'
                                  % (list(policy.app_names), list(self.policy.app_names)))
            self.policy = policy
            self._procs = list(policy.processor_ids)
            self._removed &= set(self._procs)
            self._options()
            self._rebuild(self._apps)

    # ------------------------------------------------------------ inspection
    @property
    def active_processors(self) -> List[str]:
        return [p for p in self._procs if p not in self._removed]

    def effective_allocation(self, app_index: int) -> Dict[str, float]:
        """The (renormalised) shares the router is enforcing for one application."""
        return {self._procs[j]: self._alloc[app_index][j] for j in self._cols[app_index]}

    def consumed_shares(self, app_index: int) -> Dict[str, float]:
        """The weighted share of recent requests each processor took."""
        with self._lock:
            counts = self._counts[app_index]
            total = sum(counts)
            return {p: (counts[j] / total if total > 0 else 0.0)
                    for j, p in enumerate(self._procs)}

    def service_ms(self, app_index: int) -> Dict[str, float]:
        """The service time per processor the tie-break and the rules above use."""
        with self._lock:
            return {p: self._service_ms[app_index][j] for j, p in enumerate(self._procs)}

    def options(self) -> Dict[str, object]:
        """The router options in force (the policy's, overridden by the constructor's)."""
        return {'tie_tolerance': self.tie_tolerance, 'overflow': self.overflow,
                'slo_dispatch': 'drop' if self._slo_drop else 'off',
                'share_tracking': self.share_tracking}

    # ------------------------------------------------------------ internals
    def _shed_now(self, app_index: int, j: int, now_ms: float, view) -> bool:
        factor = self._shed[app_index]
        if factor == _INF or view is None:  # the highest weight is never shed
            return False
        latency = view.expected_free_ms(self._procs[j]) - now_ms \
            + self._service_ms[app_index][j]
        if latency > self._slo_ms[app_index] * factor:   # a miss anyway
            return True
        # served, it would make the next request of a heavier application planned here miss
        for k, other in enumerate(self._shed):
            if other > factor and self._alloc[k][j] > 0.0 and \
                    latency + self._service_ms[k][j] > self._slo_ms[k]:
                return True
        return False

    def _options(self) -> None:
        opts = dict(ROUTER_DEFAULTS)
        opts.update(self.policy.router)
        opts.update(self._fixed)
        self.tie_tolerance = float(opts['tie_tolerance'])
        self.overflow = bool(opts['overflow'])
        self.share_tracking = bool(opts['share_tracking'])
        self._slo_drop = opts['slo_dispatch'] == 'drop'

    def _rebuild(self, names: List[str]) -> None:
        pol = self.policy
        self._apps = list(names)
        rows = [pol.app_names.index(n) for n in names]
        by_proc = self._service_by_proc
        service = []
        for k in range(len(names)):
            if by_proc is None:
                service.append([0.0] * len(self._procs))
            else:
                service.append([by_proc[k].get(p, _INF) for p in self._procs])
        alloc, cols, counts, allowed = [], [], [], []
        for k, r in enumerate(rows):
            raw = [float(v) if p not in self._removed else 0.0
                   for p, v in zip(pol.processor_ids, pol.allocation[r])]
            total = sum(raw)
            if total <= 0.0:
                spread = [j for j, p in enumerate(pol.processor_ids)
                          if pol.mask[r, j] and p not in self._removed]
                raw = [1.0 / len(spread) if j in spread else 0.0
                       for j in range(len(raw))] if spread else raw
                total = sum(raw)
            row = [v / total for v in raw] if total > 0 else raw
            alloc.append(row)
            cols.append(tuple(j for j, v in enumerate(row) if v > 0.0))
            counts.append([0.0] * len(row))
            # where the application may go at all (overflow, SLO check): allowed by the
            # policy's mask, not removed, and its model runs there
            allowed.append(tuple(j for j, p in enumerate(pol.processor_ids)
                                 if pol.mask[r, j] and p not in self._removed
                                 and service[k][j] != _INF))
        self._alloc = alloc
        self._cols = cols
        self._counts = counts
        self._allowed = allowed
        self._service_ms = service
        if len(self._slo_ms) != len(names):
            self._slo_ms = [_INF] * len(names)
        if self._shed is not None and len(self._shed) != len(names):
            self._shed = None


def _shed_fractions(weights: Sequence[float]) -> Optional[List[float]]:
    """Per application, the multiple of its SLO its expected latency must exceed before a
    request is shed: ``1 + w / w_max - w_min / w_max`` (1 for the lowest weight, so never
    below the SLO), infinity for the highest weight; None when the weights are equal.

    :raises ConfigError: a weight that is not a number > 0.
    """
    out = []
    for w in weights:
        try:
            ok = float(w) > 0.0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError('PriorityRouter: weights must be numbers > 0, got %r' % (w,))
        out.append(float(w))
    if len(set(out)) <= 1:
        return None
    top, low = max(out), min(out)
    return [_INF if w == top else 1.0 + (w - low) / top for w in out]
