"""Co-run configurations and the features the interference model sees.

**Configurations.** A configuration names the processor whose layer is timed (the target) and the
processors that run other work meanwhile, e.g. ``'gpu|dla'`` (GPU target, one DLA co-running),
``'dla0|dla1+gpu'``. Tokens are processor ids or processor kinds; a configuration is matched to a
live mapping by *kinds*: ``key = (target kind, sorted co-runner kinds)``, so ``dla1`` with ``gpu``
co-running uses the model of ``'dla|gpu'``. The talk's four are :data:`TALK_CONFIGS`; Xavier's
default set adds ``'dla0|dla1'`` (one DLA with only the other DLA busy) so that every mapping a
planner can produce on Xavier has a model.

**Features** are only what a profiler observes (never a simulator's contention parameters):

- target layer: kind one-hot, log MACs, log bytes (weights + input + output, FP16), log weight
  bytes, log isolated latency *measured on the target processor*, bandwidth demand
  (bytes / isolated time, GB/s), log arithmetic intensity (MACs / byte);
- co-runners: for each co-runner processor (in the configuration's order) its loop's isolated
  bandwidth demand (total bytes / total isolated time of the layers it loops, GB/s) and the peak
  demand of a single layer in the loop; then the sum and the max of the loop demands, the number
  of co-runners, and the time-weighted share of the co-runners' loops spent in conv, dwconv, fc
  and memory-bound layers (pool, eltwise, concat, act, ...).

A co-runner is summarised by :class:`CorunnerLoad`, built from the layers it loops and their
isolated times (:meth:`CorunnerLoad.from_layers`) or, at model level, from a whole model.
"""

from dataclasses import dataclass
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from hetero_infer.errors import ConfigError
from hetero_infer.models.zoo import LAYER_KINDS, Layer

#: The talk's four co-run configurations, in its table's column order.
TALK_CONFIGS = ('gpu|dla', 'dla|gpu', 'gpu|dla0+dla1', 'dla0|dla1+gpu')
#: Default configurations per platform kind set: Xavier/Orin (GPU + 2 DLAs) and two CPUs.
DEFAULT_CONFIGS = {
    'gpu+dla': TALK_CONFIGS + ('dla0|dla1',),
    'cpu': ('cpu0|cpu1',),
}
#: Human-readable column titles for the talk's configurations.
CONFIG_TITLES = {
    'gpu|dla': 'GPU with DLA', 'dla|gpu': 'DLA with GPU', 'gpu|dla0+dla1': 'GPU with DLA0+DLA1',
    'dla0|dla1+gpu': 'DLA0 with DLA1+GPU', 'dla0|dla1': 'DLA0 with DLA1',
    'cpu0|cpu1': 'CPU0 with CPU1',
}
#: Co-runner layer groups for the time-share features.
KIND_GROUPS = ('conv', 'dwconv', 'fc', 'memory')

TARGET_FEATURES = tuple('kind_' + k for k in LAYER_KINDS) + (
    'log_macs', 'log_bytes', 'log_weight_bytes', 'log_iso_ms', 'demand_gbps', 'log_intensity')


def _group(kind: str) -> str:
    return kind if kind in ('conv', 'dwconv', 'fc') else 'memory'


@dataclass(frozen=True)
class Config:
    """A parsed configuration: ``name``, ``target`` token and ``corunners`` tokens."""

    name: str
    target: str
    corunners: Tuple[str, ...]

    @classmethod
    def parse(cls, name: str) -> 'Config':
        """:raises ConfigError: not of the form ``target|co1+co2``."""
        if not isinstance(name, str) or name.count('|') != 1:
            raise ConfigError('configuration %r must look like "gpu|dla0+dla1" '
                              '(target|co-runner+co-runner)' % (name,))
        target, rest = name.split('|')
        cors = tuple(t.strip() for t in rest.split('+'))
        if not target.strip() or not cors or not all(cors):
            raise ConfigError('configuration %r has an empty processor token' % name)
        return cls(name=name, target=target.strip(), corunners=cors)

    def resolve(self, processor_kinds: Mapping[str, str]) -> Tuple[str, Tuple[str, ...]]:
        """Concrete ``(target_proc, corunner_procs)`` on a platform (``{id: kind}``).

        A token that is a processor id picks that processor; a kind picks the first processor of
        that kind not used yet (so ``'dla|gpu'`` profiles dla0 with the GPU).

        :raises ConfigError: the platform lacks a processor the configuration needs.
        """
        used: List[str] = []
        ids = list(processor_kinds)
        explicit = [t for t in (self.target,) + self.corunners if t in processor_kinds]
        for token in (self.target,) + self.corunners:
            if token in processor_kinds:
                if token in used:
                    raise ConfigError('configuration %r uses processor %r twice'
                                      % (self.name, token))
                used.append(token)
                continue
            pick = [p for p in ids if processor_kinds[p] == token and p not in used
                    and p not in explicit]
            if not pick:
                raise ConfigError('configuration %r needs a free %r processor; platform has %s'
                                  % (self.name, token, dict(processor_kinds)))
            used.append(pick[0])
        return used[0], tuple(used[1:])

    def key(self, processor_kinds: Mapping[str, str]) -> Tuple[str, Tuple[str, ...]]:
        target, cors = self.resolve(processor_kinds)
        return mapping_key(target, cors, processor_kinds)


def mapping_key(target_proc: str, corunner_procs: Sequence[str],
                processor_kinds: Mapping[str, str]) -> Tuple[str, Tuple[str, ...]]:
    """``(target kind, sorted co-runner kinds)``: how a live mapping finds its configuration."""
    try:
        return (processor_kinds[target_proc],
                tuple(sorted(processor_kinds[p] for p in corunner_procs)))
    except KeyError as exc:
        raise ConfigError('unknown processor %s (known: %s)'
                          % (exc, ', '.join(processor_kinds))) from None


def default_configs(processor_kinds: Mapping[str, str]) -> Tuple[str, ...]:
    """The configurations to profile on a platform with these processors."""
    kinds = sorted(set(processor_kinds.values()))
    if 'gpu' in kinds and sum(k == 'dla' for k in processor_kinds.values()) >= 2:
        return DEFAULT_CONFIGS['gpu+dla']
    if kinds == ['cpu'] and len(processor_kinds) >= 2:
        ids = sorted(processor_kinds)
        return ('%s|%s' % (ids[0], ids[1]),)
    raise ConfigError('no default co-run configurations for processors %s; pass them explicitly'
                      % dict(processor_kinds))


def corunner_order(corunner_procs: Sequence[str],
                   processor_kinds: Mapping[str, str]) -> List[str]:
    """Co-runner processors in feature-slot order: by kind, then id (stable across mappings)."""
    return sorted(corunner_procs, key=lambda p: (processor_kinds[p], p))


@dataclass(frozen=True)
class CorunnerLoad:
    """What a profiler knows about one co-runner processor's looping work."""

    demand_gbps: float          # loop bytes / loop isolated time
    peak_demand_gbps: float     # largest single-layer demand in the loop
    kind_share: Tuple[float, float, float, float]  # time share per KIND_GROUPS

    @classmethod
    def from_layers(cls, layers: Sequence[Layer], iso_ms: Sequence[float]) -> 'CorunnerLoad':
        """Summarise a loop of ``layers`` with their measured isolated times (ms)."""
        if len(layers) == 0 or len(layers) != len(iso_ms):
            raise ConfigError('co-runner loop needs one isolated time per layer (got %d layers, '
                              '%d times)' % (len(layers), len(iso_ms)))
        times = np.maximum(np.asarray(iso_ms, dtype=float), 1e-6)
        nbytes = np.array([layer.bytes_total for layer in layers], dtype=float)
        total_t = float(times.sum())
        share = {g: 0.0 for g in KIND_GROUPS}
        for layer, t in zip(layers, times):
            share[_group(layer.kind)] += float(t) / total_t
        return cls(demand_gbps=float(nbytes.sum() / (total_t * 1e6)),
                   peak_demand_gbps=float((nbytes / (times * 1e6)).max()),
                   kind_share=tuple(share[g] for g in KIND_GROUPS))

    def to_dict(self) -> Dict[str, object]:
        return {'demand_gbps': self.demand_gbps, 'peak_demand_gbps': self.peak_demand_gbps,
                'kind_share': list(self.kind_share)}


def corunner_feature_names(n_corunners: int) -> Tuple[str, ...]:
    names = []
    for i in range(n_corunners):
        names += ['co%d_demand_gbps' % i, 'co%d_peak_demand_gbps' % i]
    names += ['co_sum_demand_gbps', 'co_max_demand_gbps', 'co_count']
    names += ['co_share_' + g for g in KIND_GROUPS]
    return tuple(names)


def feature_names(n_corunners: int) -> Tuple[str, ...]:
    return TARGET_FEATURES + corunner_feature_names(n_corunners)


def target_features(layers: Sequence[Layer], iso_ms: Sequence[float]) -> np.ndarray:
    """``(n, len(TARGET_FEATURES))`` matrix for target layers with their isolated times (ms)."""
    n = len(layers)
    iso = np.maximum(np.asarray(iso_ms, dtype=float).reshape(-1), 1e-6)
    if iso.shape[0] != n:
        raise ConfigError('target_features: %d layers but %d isolated times' % (n, iso.shape[0]))
    out = np.zeros((n, len(TARGET_FEATURES)))
    kind_index = {k: i for i, k in enumerate(LAYER_KINDS)}
    macs = np.empty(n)
    nbytes = np.empty(n)
    wbytes = np.empty(n)
    for i, layer in enumerate(layers):
        out[i, kind_index[layer.kind]] = 1.0
        macs[i] = layer.macs
        nbytes[i] = max(layer.bytes_total, 1)
        wbytes[i] = layer.weight_bytes
    k = len(LAYER_KINDS)
    out[:, k] = np.log10(macs + 1.0)
    out[:, k + 1] = np.log10(nbytes)
    out[:, k + 2] = np.log10(wbytes + 1.0)
    out[:, k + 3] = np.log10(iso)
    out[:, k + 4] = nbytes / (iso * 1e6)
    out[:, k + 5] = np.log10(macs / nbytes + 1e-3)
    return out


def corunner_features(loads: Sequence[CorunnerLoad]) -> np.ndarray:
    """Feature vector of the co-runners (already in :func:`corunner_order`)."""
    vec: List[float] = []
    demands = [c.demand_gbps for c in loads]
    for c in loads:
        vec += [c.demand_gbps, c.peak_demand_gbps]
    vec += [float(sum(demands)), float(max(demands)) if demands else 0.0, float(len(loads))]
    total = sum(demands) or 1.0
    share = [0.0] * len(KIND_GROUPS)
    for c in loads:
        # Weight each co-runner's time shares by its demand: heavy co-runners dominate.
        w = c.demand_gbps / total if sum(demands) > 0 else 1.0 / max(len(loads), 1)
        for g in range(len(KIND_GROUPS)):
            share[g] += w * c.kind_share[g]
    vec += share
    return np.asarray(vec, dtype=float)


def build_features(layers: Sequence[Layer], iso_ms: Sequence[float],
                   loads: Sequence[Sequence[CorunnerLoad]]) -> np.ndarray:
    """Full feature matrix, one row per target layer with its own co-runner loads."""
    t = target_features(layers, iso_ms)
    c = np.stack([corunner_features(row) for row in loads]) if len(loads) else np.zeros((0, 0))
    return np.hstack([t, c])
