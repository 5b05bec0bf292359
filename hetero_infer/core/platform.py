"""Platform descriptions: processors, their speeds per layer kind, DRAM and contention curves.

A platform is loaded from ``config/platforms/<name>.yaml`` (or any path). Every number in those
files cites its FACTS.md row or shows how it was derived. Loading validates the file and names
the offending key and value on error.

Isolated time of a layer on a processor is a roofline with a fixed per-layer cost::

    t = overhead_ms + max(compute_ms, memory_ms)
    compute_ms = macs / (peak_gmacs * 1e6 * efficiency[kind])
    memory_ms  = traffic_factor * bytes / (bandwidth_gbps * 1e6)

``bytes`` is the layer's minimal traffic (weights, inputs, outputs once); ``traffic_factor`` is how
many times that a processor really moves, because its on-chip buffer (Xavier: 512 KB GPU L2,
512 KB DLA CBUF) cannot hold a layer's weights and tiles, so they are fetched again.

Under co-running the memory part stretches by the processor's convex contention curve ``S(x)``
of ``x``, the share of achievable DRAM bandwidth the *other* running layers pull; the extra time
is exposed (a stalled layer waits for it), so ``t = overhead + max(compute, memory) +
memory * (S(x) - 1)`` (see :class:`Contention`). The interference model never reads any
of this; it only sees profiled times.
"""

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from hetero_infer.core.model import LAYER_KINDS, Layer, ModelSpec
from hetero_infer.core.yaml_file import read_yaml
from hetero_infer.errors import ConfigError

PLATFORM_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'config', 'platforms')
PROCESSOR_KINDS = ('gpu', 'dla', 'cpu')


def _platform_dirs() -> List[str]:
    """Where named platforms are looked up: the source tree, then the ROS share directory."""
    dirs = [PLATFORM_DIR]
    try:  # installed with colcon: share/hetero_infer/config/platforms
        from importlib import util
        if util.find_spec('ament_index_python') is not None:
            from ament_index_python.packages import get_package_share_directory
            dirs.append(os.path.join(get_package_share_directory('hetero_infer'),
                                     'config', 'platforms'))
    except Exception:  # noqa: BLE001 - ament index absent or package not installed
        pass
    import sys
    dirs.append(os.path.join(sys.prefix, 'share', 'hetero_infer', 'config', 'platforms'))
    return dirs


def available_platforms() -> List[str]:
    names = set()
    for d in _platform_dirs():
        if os.path.isdir(d):
            names.update(f[:-5] for f in os.listdir(d) if f.endswith('.yaml'))
    return sorted(names)


@dataclass(frozen=True)
class Contention:
    """Slowdown of a processor's memory time versus co-runners' DRAM utilisation x.

    ``S(x) = 1 + alpha * max(0, x - threshold)^power / (1 - min(x, cap))``. The shapes HaX-CoNN's
    PCCS curves show (FACTS.md, "Measured interference"): the Xavier DLA rises from x = 0 like
    1/(1 - x) (``threshold`` 0, ``power`` below 1), the GPU is flat below a knee and then grows
    like 1/(1 - x) (``threshold`` at the knee, ``power`` >= 1). The twin's solver inlines this
    formula (``twin._solve``); a test keeps the two equal.
    """

    threshold: float
    alpha: float
    cap: float = 0.9
    power: float = 2.0

    def slowdown(self, x: float) -> float:
        if x <= self.threshold:
            return 1.0
        excess = x - self.threshold
        return 1.0 + self.alpha * excess ** self.power / (1.0 - min(x, self.cap))


@dataclass(frozen=True)
class Processor:
    id: str
    kind: str
    peak_gmacs: float
    bandwidth_gbps: float
    overhead_ms: float
    efficiency: Dict[str, float]
    contention: Contention
    traffic_factor: float = 1.0

    def compute_ms(self, layer: Layer) -> float:
        if layer.macs <= 0:
            return 0.0
        return layer.macs / (self.peak_gmacs * 1e6 * self.efficiency[layer.kind])

    def memory_ms(self, layer: Layer) -> float:
        return self.traffic_factor * layer.bytes_total / (self.bandwidth_gbps * 1e6)

    def dram_bytes(self, layer: Layer) -> float:
        """Bytes the layer really moves to or from DRAM on this processor."""
        return self.traffic_factor * layer.bytes_total


@dataclass(frozen=True)
class Platform:
    name: str
    power_mode: str
    processors: Dict[str, Processor]
    dram_gbps: float
    dla_to_gpu_ms: float
    gpu_to_dla_ms: float
    description: str = ''
    power_modes: Tuple[str, ...] = ()
    #: Share of the GPU's time the GPU-side work of a running DLA inference takes (reformat
    #: kernels, submission and completion signalling). 0: not modelled. See
    #: :meth:`gpu_time_scale`.
    dla_gpu_busy_share: float = 0.0
    _cache: Dict[tuple, float] = field(default_factory=dict, compare=False, repr=False)

    @property
    def processor_ids(self) -> Tuple[str, ...]:
        return tuple(self.processors)

    def processor(self, proc_id: str) -> Processor:
        try:
            return self.processors[proc_id]
        except KeyError:
            raise ConfigError('platform %s has no processor %r (processors: %s)'
                              % (self.name, proc_id, ', '.join(self.processors))) from None

    @property
    def gpu_id(self) -> Optional[str]:
        for pid, p in self.processors.items():
            if p.kind == 'gpu':
                return pid
        return None

    def gpu_time_scale(self, dla_running: int) -> float:
        """How much longer GPU layers' compute and fixed cost take while DLA layers run.

        Every DLA inference puts work on the GPU (reformat kernels, submission and completion
        signalling), concurrent with the DLA (GR3D is busy while the DLA computes, FACTS.md):
        it takes ``dla_gpu_busy_share`` (``b``) of the GPU's time per running DLA inference.
        GPU layers time-share the GPU with it, so with ``n`` DLAs executing they take
        ``1 / (1 - b)^n`` as long (on top of time-slicing between GPU layers). The DLA never
        waits for it, so isolated DLA latencies are unchanged.
        """
        return (1.0 - self.dla_gpu_busy_share) ** -dla_running

    # ---- isolated timing -------------------------------------------------------------
    def layer_components_ms(self, layer: Layer, proc_id: str) -> Tuple[float, float, float]:
        """(overhead, compute, memory) milliseconds of one layer run alone on a processor."""
        p = self.processor(proc_id)
        return p.overhead_ms, p.compute_ms(layer), p.memory_ms(layer)

    def layer_time_ms(self, layer: Layer, proc_id: str) -> float:
        """Isolated time of one layer on ``proc_id`` (where it runs, fallback not applied)."""
        ov, c, m = self.layer_components_ms(layer, proc_id)
        return ov + max(c, m)

    def layer_demand_gbps(self, layer: Layer, proc_id: str) -> float:
        """DRAM bandwidth the layer pulls when it runs alone on ``proc_id``."""
        t = self.layer_time_ms(layer, proc_id)
        return self.processor(proc_id).dram_bytes(layer) / (t * 1e6) if t > 0 else 0.0

    def segments(self, model: ModelSpec, proc_id: str) -> List[Tuple[str, Layer]]:
        """``(exec_proc_id, layer)`` in order; on a DLA, layers it cannot run go to the GPU."""
        p = self.processor(proc_id)
        if p.kind != 'dla':
            return [(proc_id, layer) for layer in model.layers]
        gpu = self.gpu_id
        out = []
        for layer in model.layers:
            if layer.dla:
                out.append((proc_id, layer))
            elif gpu is None:
                raise ConfigError('model %s layer %s cannot run on %s (%s) and platform %s '
                                  'has no GPU to fall back to'
                                  % (model.name, layer.name, proc_id, layer.dla_reason,
                                     self.name))
            else:
                out.append((gpu, layer))
        return out

    def can_run(self, model: ModelSpec, proc_id: str) -> bool:
        p = self.processor(proc_id)
        if p.kind != 'dla':
            return True
        return self.gpu_id is not None or all(layer.dla for layer in model.layers)

    def transition_ms(self, from_proc: str, to_proc: str) -> float:
        """Cost of handing a tensor between a DLA and the GPU inside one inference."""
        a, b = self.processor(from_proc).kind, self.processor(to_proc).kind
        if a == 'dla' and b == 'gpu':
            return self.dla_to_gpu_ms
        if a == 'gpu' and b == 'dla':
            return self.gpu_to_dla_ms
        return 0.0

    def isolated_latency_ms(self, model: ModelSpec, proc_id: str) -> float:
        """Latency of one inference alone on the platform (no noise, no contention)."""
        key = (model.name, id(model), proc_id)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        total = 0.0
        prev = proc_id
        for exec_proc, layer in self.segments(model, proc_id):
            if exec_proc != prev:
                total += self.transition_ms(prev, exec_proc)
                prev = exec_proc
            total += self.layer_time_ms(layer, exec_proc)
        if prev != proc_id:
            total += self.transition_ms(prev, proc_id)
        self._cache[key] = total
        return total

    def fastest_processor(self, model: ModelSpec, processors=None) -> str:
        procs = [p for p in (processors or self.processor_ids) if self.can_run(model, p)]
        return min(procs, key=lambda p: self.isolated_latency_ms(model, p))

    # ---- loading ---------------------------------------------------------------------
    @classmethod
    def load(cls, name_or_path: str = 'xavier', *, power_mode: Optional[str] = None
             ) -> 'Platform':
        """Load a platform by name (``xavier``, ``orin``) or YAML path.

        :raises ConfigError: unknown platform, unreadable file, or a bad key or value.
        """
        if name_or_path.endswith(('.yaml', '.yml')) or os.sep in name_or_path:
            path = name_or_path
        else:
            path = None
            for d in _platform_dirs():
                candidate = os.path.join(d, name_or_path + '.yaml')
                if os.path.exists(candidate):
                    path = candidate
                    break
            if path is None:
                raise ConfigError('unknown platform %r (known: %s)'
                                  % (name_or_path, ', '.join(available_platforms())))
        return cls.from_dict(read_yaml(path, 'platform'), where=path, power_mode=power_mode)

    @classmethod
    def from_dict(cls, doc, *, where: str = '<dict>', power_mode: Optional[str] = None
                  ) -> 'Platform':
        v = _Validator(where)
        doc = v.mapping(doc, '')
        name = v.string(doc, 'name')
        dram = v.mapping(doc.get('dram'), 'dram')
        achievable = v.number(dram, 'dram.achievable_gbps', lo=1.0)
        modes = v.mapping(doc.get('power_modes'), 'power_modes')
        default_mode = v.string(doc, 'default_power_mode')
        if default_mode not in modes:
            raise ConfigError('%s: default_power_mode %r is not one of power_modes (%s)'
                              % (where, default_mode, ', '.join(modes)))
        mode = power_mode or default_mode
        if mode not in modes:
            raise ConfigError('%s: unknown power mode %r (known: %s)'
                              % (where, mode, ', '.join(modes)))
        base_mode = v.mapping(modes[default_mode], 'power_modes.' + default_mode)
        this_mode = v.mapping(modes[mode], 'power_modes.' + mode)
        emc_scale = (v.number(this_mode, 'power_modes.%s.emc_gbps' % mode, lo=1.0)
                     / v.number(base_mode, 'power_modes.%s.emc_gbps' % default_mode, lo=1.0))
        procs_doc = v.mapping(doc.get('processors'), 'processors')
        if not procs_doc:
            raise ConfigError('%s: processors: at least one processor is required' % where)
        processors = {}
        for pid, pdoc in procs_doc.items():
            key = 'processors.' + str(pid)
            pdoc = v.mapping(pdoc, key)
            kind = v.string(pdoc, key + '.kind')
            if kind not in PROCESSOR_KINDS:
                raise ConfigError('%s: %s.kind: %r is not one of %s'
                                  % (where, key, kind, ', '.join(PROCESSOR_KINDS)))
            clock_key = 'gpu_mhz' if kind == 'gpu' else ('dla_mhz' if kind == 'dla' else
                                                         'cpu_mhz')
            clock_scale = 1.0
            if clock_key in base_mode and clock_key in this_mode:
                clock_scale = (v.number(this_mode, 'power_modes.%s.%s' % (mode, clock_key),
                                        lo=1.0)
                               / v.number(base_mode, 'power_modes.%s.%s' % (default_mode,
                                                                          clock_key), lo=1.0))
            eff_doc = v.mapping(pdoc.get('efficiency'), key + '.efficiency')
            eff = {}
            for k in LAYER_KINDS:
                if k not in eff_doc:
                    raise ConfigError('%s: %s.efficiency is missing layer kind %r'
                                      % (where, key, k))
                eff[k] = v.number(eff_doc, '%s.efficiency.%s' % (key, k), lo=1e-4, hi=1.0)
            for k in eff_doc:
                if k not in LAYER_KINDS:
                    raise ConfigError('%s: %s.efficiency.%s: unknown layer kind (known: %s)'
                                      % (where, key, k, ', '.join(LAYER_KINDS)))
            cont = v.mapping(pdoc.get('contention'), key + '.contention')
            processors[str(pid)] = Processor(
                id=str(pid), kind=kind,
                peak_gmacs=v.number(pdoc, key + '.peak_gmacs', lo=1.0) * clock_scale,
                bandwidth_gbps=min(v.number(pdoc, key + '.bandwidth_gbps', lo=0.1) * emc_scale,
                                   achievable * emc_scale),
                overhead_ms=v.number(pdoc, key + '.overhead_ms', lo=0.0, hi=10.0) / clock_scale,
                efficiency=eff,
                traffic_factor=v.number(pdoc, key + '.traffic_factor', lo=1.0, hi=20.0,
                                        default=1.0),
                contention=Contention(
                    threshold=v.number(cont, key + '.contention.threshold', lo=0.0, hi=0.95),
                    alpha=v.number(cont, key + '.contention.alpha', lo=0.0, hi=100.0),
                    cap=v.number(cont, key + '.contention.cap', lo=0.5, hi=0.99,
                                 default=0.9),
                    power=v.number(cont, key + '.contention.power', lo=0.1, hi=4.0,
                                   default=2.0)),
            )
        trans = v.mapping(doc.get('transitions', {}), 'transitions')
        work = v.mapping(doc.get('dla_gpu_work', {}), 'dla_gpu_work')
        return cls(
            name=name, power_mode=mode, processors=processors,
            dram_gbps=achievable * emc_scale,
            dla_to_gpu_ms=v.number(trans, 'transitions.dla_to_gpu_ms', lo=0.0, default=0.0),
            gpu_to_dla_ms=v.number(trans, 'transitions.gpu_to_dla_ms', lo=0.0, default=0.0),
            description=str(doc.get('description', '')), power_modes=tuple(modes),
            dla_gpu_busy_share=v.number(work, 'dla_gpu_work.busy_share', lo=0.0, hi=0.9,
                                        default=0.0),
        )


class _Validator:
    """Small helpers that name the file, the key and the bad value in every error."""

    def __init__(self, where: str):
        self.where = where

    def mapping(self, value, key: str) -> dict:
        if not isinstance(value, dict):
            raise ConfigError('%s: %s must be a mapping, got %r' % (self.where, key or '<top>',
                                                                   value))
        return value

    def string(self, doc: dict, key: str) -> str:
        leaf = key.rsplit('.', 1)[-1]
        value = doc.get(leaf)
        if not isinstance(value, str) or not value:
            raise ConfigError('%s: %s must be a non-empty string, got %r'
                              % (self.where, key, value))
        return value

    def number(self, doc: dict, key: str, *, lo: Optional[float] = None,
               hi: Optional[float] = None, default: Optional[float] = None) -> float:
        leaf = key.rsplit('.', 1)[-1]
        if leaf not in doc:
            if default is not None:
                return default
            raise ConfigError('%s: %s is missing' % (self.where, key))
        value = doc[leaf]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError('%s: %s must be a number, got %r' % (self.where, key, value))
        value = float(value)
        if value != value or (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError('%s: %s = %r is out of range [%s, %s]'
                              % (self.where, key, value, lo, hi))
        return value
