"""Allocation policies: for each application, the share of its requests each processor takes.

A :class:`Policy` is an ``apps x processors`` matrix whose rows sum to 1 and which is zero wherever
the application's model cannot run (no engine, or not allowed by the application). It is what the
planner searches over and what the priority router (:mod:`hetero_infer.planning.router`) enforces.
"""

import json
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from hetero_infer.errors import ConfigError

#: Row sums may differ from 1 by this much (JSON round trips, user-written files).
ROW_SUM_TOL = 1e-6

POLICY_FORMAT = 'hetero_infer.policy/1'

#: How the priority router follows a policy (``Policy.router``); a key a policy does not set
#: takes the default here. Policy files written before these existed load with the defaults.
#:
#: - ``tie_tolerance``: scores within this relative distance of the best share score are tied
#:   and the tie goes to the earliest expected finish (0: the talk's exact ties).
#: - ``overflow``: a request whose chosen processor's queue is full goes to an idle processor
#:   its model can run on (planned share or not) instead of being dropped.
#: - ``slo_dispatch``: ``'drop'`` drops a request at once (reason ``slo_unreachable``) when no
#:   processor can finish it within its SLO given the queues; ``'off'`` never does.
#: - ``share_tracking``: ``false`` ties every processor the plan gives a share, whatever its
#:   share so far: the earliest expected finish among them wins (least_finish_time restricted
#:   to the plan's processors; with an even plan over every allowed processor, exactly it).
ROUTER_DEFAULTS = {'tie_tolerance': 0.5, 'overflow': True, 'slo_dispatch': 'off',
                   'share_tracking': True}
SLO_DISPATCH_MODES = ('off', 'drop')


def check_router_options(options, where: str = 'policy') -> Dict[str, object]:
    """Validated router options (a copy); unknown keys and bad values are refused.

    :raises ConfigError: naming the key and the value.
    """
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ConfigError('%s: "router" must be a mapping of %s, got %r'
                          % (where, sorted(ROUTER_DEFAULTS), options))
    out: Dict[str, object] = {}
    for key, value in options.items():
        if key == 'tie_tolerance':
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0.0 <= float(value) < 100.0:
                raise ConfigError('%s: router tie_tolerance must be a number in [0, 100), got %r'
                                  % (where, value))
            out[key] = float(value)
        elif key in ('overflow', 'share_tracking'):
            if not isinstance(value, bool):
                raise ConfigError('%s: router %s must be true or false, got %r'
                                  % (where, key, value))
            out[key] = value
        elif key == 'slo_dispatch':
            if value not in SLO_DISPATCH_MODES:
                raise ConfigError('%s: router slo_dispatch must be one of %s, got %r'
                                  % (where, list(SLO_DISPATCH_MODES), value))
            out[key] = value
        else:
            raise ConfigError('%s: unknown router option %r (known: %s)'
                              % (where, key, ', '.join(sorted(ROUTER_DEFAULTS))))
    return out


class Policy:
    """An allocation matrix with the names of its rows (applications) and columns (processors).

    :param app_names: one name per row.
    :param processor_ids: one processor id per column.
    :param allocation: ``len(app_names) x len(processor_ids)`` non-negative shares.
    :param mask: optional boolean matrix of the same shape; ``False`` = the model cannot run there,
        so the allocation must be zero.
    :param router: how the router follows the plan (:data:`ROUTER_DEFAULTS` has the keys); keys
        left out take the defaults.
    :raises ConfigError: wrong shape, negative or non-finite entries, a row that does not sum to 1,
        or a share on a processor the mask forbids (the message names the application and value).
    """

    __slots__ = ('app_names', 'processor_ids', 'allocation', 'mask', 'router')

    def __init__(self, app_names: Sequence[str], processor_ids: Sequence[str], allocation,
                 *, mask=None, router=None) -> None:
        self.app_names = tuple(str(a) for a in app_names)
        self.processor_ids = tuple(str(p) for p in processor_ids)
        if len(set(self.processor_ids)) != len(self.processor_ids):
            raise ConfigError('policy: duplicate processor ids %r' % (self.processor_ids,))
        try:
            alloc = np.array(allocation, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ConfigError('policy: allocation is not a numeric matrix: %s' % exc) from None
        shape = (len(self.app_names), len(self.processor_ids))
        if alloc.shape != shape:
            raise ConfigError('policy: allocation has shape %s, expected %s (apps x processors)'
                              % (alloc.shape, shape))
        if mask is None:
            mask_arr = np.ones(shape, dtype=bool)
        else:
            mask_arr = np.array(mask, dtype=bool)
            if mask_arr.shape != shape:
                raise ConfigError('policy: mask has shape %s, expected %s'
                                  % (mask_arr.shape, shape))
        for i, name in enumerate(self.app_names):
            row = alloc[i]
            if not np.all(np.isfinite(row)) or np.any(row < 0):
                raise ConfigError('policy: application %r has a negative or non-finite share: %s'
                                  % (name, row.tolist()))
            if not mask_arr[i].any():
                raise ConfigError('policy: application %r can run on none of %s'
                                  % (name, list(self.processor_ids)))
            bad = [self.processor_ids[j] for j in range(shape[1])
                   if row[j] > 0 and not mask_arr[i, j]]
            if bad:
                raise ConfigError('policy: application %r has a share on %s where its model '
                                  'cannot run (shares %s)' % (name, bad, row.tolist()))
            total = float(row.sum())
            if abs(total - 1.0) > ROW_SUM_TOL:
                raise ConfigError('policy: shares of application %r sum to %.6g, not 1 (%s)'
                                  % (name, total, row.tolist()))
            alloc[i] = row / total
        alloc.setflags(write=False)
        mask_arr.setflags(write=False)
        self.allocation = alloc
        self.mask = mask_arr
        self.router = check_router_options(router)

    # ---------------------------------------------------------------- access
    @property
    def shape(self) -> Tuple[int, int]:
        return self.allocation.shape

    def share(self, app: str, proc: str) -> float:
        """The share of ``app``'s requests that ``proc`` should take."""
        try:
            return float(self.allocation[self.app_names.index(app),
                                         self.processor_ids.index(proc)])
        except ValueError:
            raise ConfigError('policy: unknown application %r or processor %r (apps %s, '
                              'processors %s)' % (app, proc, list(self.app_names),
                                                  list(self.processor_ids))) from None

    def router_option(self, key: str):
        """The router option ``key`` of this policy, or its default."""
        return self.router.get(key, ROUTER_DEFAULTS[key])

    def with_router(self, **options) -> 'Policy':
        """The same allocation with these router options set (the others kept)."""
        merged = dict(self.router)
        merged.update(options)
        return Policy(self.app_names, self.processor_ids, self.allocation, mask=self.mask,
                      router=merged)

    def row(self, app_index: int) -> Dict[str, float]:
        return {p: float(v) for p, v in zip(self.processor_ids, self.allocation[app_index])}

    def without(self, proc: str) -> 'Policy':
        """The policy with ``proc`` removed and every row renormalised over what is left.

        An application whose whole share was on ``proc`` spreads evenly over the processors its
        mask still allows.

        :raises ConfigError: unknown processor, or an application that can run nowhere else.
        """
        if proc not in self.processor_ids:
            raise ConfigError('policy: cannot remove unknown processor %r (processors %s)'
                              % (proc, list(self.processor_ids)))
        keep = [j for j, p in enumerate(self.processor_ids) if p != proc]
        alloc = self.allocation[:, keep].copy()
        mask = self.mask[:, keep].copy()
        for i in range(alloc.shape[0]):
            total = alloc[i].sum()
            if total > 0:
                alloc[i] /= total
            elif mask[i].any():
                alloc[i] = mask[i] / mask[i].sum()
            else:
                raise ConfigError('policy: removing %r leaves application %r no processor'
                                  % (proc, self.app_names[i]))
        return Policy(self.app_names, [self.processor_ids[j] for j in keep], alloc, mask=mask,
                      router=self.router)

    # ---------------------------------------------------------------- I/O
    def to_dict(self) -> dict:
        d = {
            'format': POLICY_FORMAT,
            'processors': list(self.processor_ids),
            'allocation': {a: {p: round(float(v), 9) for p, v in zip(self.processor_ids, row)}
                           for a, row in zip(self.app_names, self.allocation)},
        }
        if self.router:
            d['router'] = dict(self.router)
        return d

    @classmethod
    def from_dict(cls, d: dict, *, mask=None, where: str = '<policy>') -> 'Policy':
        if not isinstance(d, dict) or not isinstance(d.get('allocation'), dict):
            raise ConfigError('%s: a policy needs an "allocation" mapping app -> {proc: share}'
                              % where)
        procs = list(d.get('processors') or [])
        alloc_map = d['allocation']
        for row in alloc_map.values():
            if not isinstance(row, dict):
                raise ConfigError('%s: allocation rows must be mappings proc -> share, got %r'
                                  % (where, row))
            for p in row:
                if p not in procs:
                    procs.append(p)
        apps = list(alloc_map)
        matrix = [[float(alloc_map[a].get(p, 0.0)) for p in procs] for a in apps]
        router = check_router_options(d.get('router'), where)
        return cls(apps, procs, matrix, mask=mask, router=router)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def __eq__(self, other) -> bool:
        return (isinstance(other, Policy) and self.app_names == other.app_names
                and self.processor_ids == other.processor_ids
                and np.array_equal(self.allocation, other.allocation)
                and self.router == other.router)

    def __hash__(self) -> int:
        return hash((self.app_names, self.processor_ids, self.allocation.tobytes(),
                     tuple(sorted(self.router.items()))))

    def __repr__(self) -> str:
        rows = ', '.join('%s: %s' % (a, ' '.join('%s=%.2f' % (p, v) for p, v in
                                                  zip(self.processor_ids, row) if v > 0))
                         for a, row in zip(self.app_names, self.allocation))
        if self.router:
            rows += '; router %s' % ', '.join('%s=%s' % kv for kv in sorted(self.router.items()))
        return 'Policy(%s)' % rows


def quantise_row(row: np.ndarray, step: float) -> np.ndarray:
    """Round a share vector to multiples of ``step`` keeping the sum at 1 (largest remainder)."""
    units = int(round(1.0 / step))
    scaled = row * units
    base = np.floor(scaled)
    short = units - int(base.sum())
    if short > 0:
        order = np.argsort(-(scaled - base), kind='stable')
        for j in order[:short]:
            base[j] += 1
    return base / units


def random_policy(rng: np.random.Generator, app_names: Sequence[str],
                  processor_ids: Sequence[str], mask, *, step: float = 0.05,
                  alpha: float = 1.0) -> Policy:
    """A policy drawn uniformly (Dirichlet(alpha)) from each row's simplex, on a ``step`` grid.

    Quantising to a grid gives exact zeros (a processor unused by an application) a real
    probability, which uniform sampling of the simplex would not.
    """
    mask = np.asarray(mask, dtype=bool)
    alloc = np.zeros(mask.shape)
    for i in range(mask.shape[0]):
        cols = np.flatnonzero(mask[i])
        draw = rng.dirichlet([alpha] * len(cols)) if len(cols) > 1 else np.ones(1)
        alloc[i, cols] = quantise_row(draw, step)
    return Policy(app_names, processor_ids, alloc, mask=mask)


def neighbours(policy: Policy, step: float) -> List[Policy]:
    """Policies one move away: ``step`` of one application's share moved between two processors."""
    out = []
    alloc = policy.allocation
    mask = policy.mask
    n_apps, n_procs = alloc.shape
    for i in range(n_apps):
        for src in range(n_procs):
            if alloc[i, src] <= 0:
                continue
            delta = min(step, float(alloc[i, src]))
            for dst in range(n_procs):
                if dst == src or not mask[i, dst]:
                    continue
                new = alloc.copy()
                new[i, src] -= delta
                new[i, dst] += delta
                new[i, src] = max(new[i, src], 0.0)
                if new[i, src] < 1e-9:
                    new[i, src] = 0.0
                out.append(Policy(policy.app_names, policy.processor_ids, new, mask=mask,
                                  router=policy.router))
    return out


def samples_for_guarantee(top_fraction: float, confidence: float) -> int:
    """Samples n so that the best lies in the top ``top_fraction`` with ``confidence``.

    Radojkovic et al.: P(best in top p) = 1 - (1 - p)^n, so n = ceil(log(1 - c) / log(1 - p));
    459 for the top 1% with 99% confidence.

    :raises ConfigError: a fraction or confidence outside (0, 1).
    """
    if not 0.0 < top_fraction < 1.0:
        raise ConfigError('top_fraction must be in (0, 1), got %r' % (top_fraction,))
    if not 0.0 < confidence < 1.0:
        raise ConfigError('confidence must be in (0, 1), got %r' % (confidence,))
    return int(math.ceil(math.log(1.0 - confidence) / math.log(1.0 - top_fraction)))


def uniform_policy(app_names: Sequence[str], processor_ids: Sequence[str], mask,
                   weights: Optional[np.ndarray] = None, router=None) -> Policy:
    """Each row proportional to ``weights`` (default: equal) over the processors it may use."""
    mask = np.asarray(mask, dtype=bool)
    w = np.ones(mask.shape) if weights is None else np.asarray(weights, dtype=float)
    alloc = np.where(mask, w, 0.0)
    sums = alloc.sum(axis=1, keepdims=True)
    if np.any(sums <= 0):
        bad = [app_names[i] for i in np.flatnonzero(sums[:, 0] <= 0)]
        raise ConfigError('policy: applications %s have no processor with positive weight' % bad)
    return Policy(app_names, processor_ids, alloc / sums, mask=mask, router=router)
