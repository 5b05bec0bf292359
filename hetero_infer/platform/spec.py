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

from hetero_infer.errors import ConfigError
from hetero_infer.io.yaml_file import read_yaml
from hetero_infer.models.zoo import LAYER_KINDS, Layer, ModelSpec

PLATFORM_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'config', 'platforms')
PROCESSOR_KINDS = ('gpu', 'dla', 'cpu')


def _platform_dirs() -> List[str]:
    """Where named platforms are looked up (:mod:`hetero_infer.resources`: source tree, pip
    install, colcon install)."""
    from hetero_infer.resources import resource_dirs
    return resource_dirs('config', 'platforms') or [PLATFORM_DIR]


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
    like 1/(1 - x) (``threshold`` at the knee, ``power`` >= 1).

    The twin evaluates the same curve in ``twin.contention.extra_ms`` (written out for speed)
    and skips its fixed point below :attr:`flat_below`: a change of shape changes all three
    (``test_inlined_contention_curve_matches_the_platform_curve`` checks they agree).
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

    @property
    def flat_below(self) -> float:
        """The largest ``x`` at which ``S(x)`` is exactly 1 (the curve is flat up to there).

        The twin skips its contention fixed point when no co-runner share exceeds this on any
        running layer's curve; a curve that rises from ``x = 0`` must return 0.
        """
        return self.threshold


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
        """Validate a parsed platform file (:data:`PLATFORM_SCHEMA`, then the checks across
        keys) and build the platform in ``power_mode`` (default: the file's).

        :raises ConfigError: names the file, the key path and the bad value.
        """
        from hetero_infer.io.schema import suggest, validate
        validate(doc, PLATFORM_SCHEMA, where)
        dram = doc['dram']
        achievable = float(dram['achievable_gbps'])
        if 'peak_gbps' in dram and dram['peak_gbps'] < achievable:
            raise ConfigError('%s: dram.peak_gbps = %r is below dram.achievable_gbps = %r'
                              % (where, dram['peak_gbps'], achievable))
        modes = doc['power_modes']
        default_mode = doc['default_power_mode']
        if default_mode not in modes:
            raise ConfigError('%s: default_power_mode %r is not one of power_modes (%s)%s'
                              % (where, default_mode, ', '.join(map(str, modes)),
                                 suggest(default_mode, list(modes))))
        mode = power_mode or default_mode
        if mode not in modes:
            raise ConfigError('%s: unknown power mode %r (known: %s)%s'
                              % (where, mode, ', '.join(map(str, modes)),
                                 suggest(mode, list(modes))))
        base_mode, this_mode = modes[default_mode], modes[mode]
        emc_scale = float(this_mode['emc_gbps']) / float(base_mode['emc_gbps'])
        processors = {}
        for pid, pdoc in doc['processors'].items():
            kind = pdoc['kind']
            clock_key = kind + '_mhz'
            clock_scale = 1.0
            if clock_key in base_mode and clock_key in this_mode:
                clock_scale = float(this_mode[clock_key]) / float(base_mode[clock_key])
            cont = pdoc['contention']
            processors[pid] = Processor(
                id=pid, kind=kind,
                peak_gmacs=float(pdoc['peak_gmacs']) * clock_scale,
                bandwidth_gbps=min(float(pdoc['bandwidth_gbps']), achievable) * emc_scale,
                overhead_ms=float(pdoc['overhead_ms']) / clock_scale,
                efficiency={k: float(pdoc['efficiency'][k]) for k in LAYER_KINDS},
                traffic_factor=float(pdoc.get('traffic_factor', 1.0)),
                contention=Contention(threshold=float(cont['threshold']),
                                      alpha=float(cont['alpha']),
                                      cap=float(cont.get('cap', 0.9)),
                                      power=float(cont.get('power', 2.0))),
            )
        trans = doc.get('transitions', {})
        work = doc.get('dla_gpu_work', {})
        return cls(
            name=doc['name'], power_mode=mode, processors=processors,
            dram_gbps=achievable * emc_scale,
            dla_to_gpu_ms=float(trans.get('dla_to_gpu_ms', 0.0)),
            gpu_to_dla_ms=float(trans.get('gpu_to_dla_ms', 0.0)),
            description=doc.get('description', ''), power_modes=tuple(modes),
            dla_gpu_busy_share=float(work.get('busy_share', 0.0)),
        )


def _platform_schema() -> dict:
    """The platform file format, declared once: every key, its type and its range.

    Ranges are the plausible physical ones (a DLA at 1 GMAC/s or a 1 ms per-layer cost are
    typos, not hardware); new keys are added here (and read in :meth:`Platform.from_dict`).
    """
    from hetero_infer.io.schema import number, strict
    mhz = number(1.0, 10000.0)
    processor = strict({
        'kind': {'enum': list(PROCESSOR_KINDS)},
        'peak_gmacs': number(1.0, 1e6),
        'bandwidth_gbps': number(0.1, 1e4),
        'traffic_factor': number(1.0, 20.0),
        'overhead_ms': number(0.0, 10.0),
        'efficiency': strict({k: number(1e-4, 1.0) for k in LAYER_KINDS}, LAYER_KINDS),
        'contention': strict({'threshold': number(0.0, 0.95), 'alpha': number(0.0, 100.0),
                              'cap': number(0.5, 0.99), 'power': number(0.1, 4.0)},
                             ('threshold', 'alpha')),
    }, ('kind', 'peak_gmacs', 'bandwidth_gbps', 'overhead_ms', 'efficiency', 'contention'))
    return strict({
        'name': {'type': 'string', 'minLength': 1, 'maxLength': 100},
        'description': {'type': 'string', 'maxLength': 10000},
        'dram': strict({'peak_gbps': number(1.0, 1e4), 'achievable_gbps': number(1.0, 1e4)},
                       ('achievable_gbps',)),
        'default_power_mode': {'type': 'string', 'minLength': 1},
        'power_modes': {'type': 'object', 'minProperties': 1,
                        'propertyNames': {'type': 'string'},
                        'additionalProperties': strict({
                            'gpu_mhz': mhz, 'dla_mhz': mhz, 'cpu_mhz': mhz,
                            'emc_gbps': number(1.0, 1e4)}, ('emc_gbps',))},
        'transitions': strict({'dla_to_gpu_ms': number(0.0, 10.0),
                               'gpu_to_dla_ms': number(0.0, 10.0)}),
        'dla_gpu_work': strict({'busy_share': number(0.0, 0.9)}),
        'processors': {'type': 'object', 'minProperties': 1, 'maxProperties': 64,
                       'propertyNames': {'type': 'string', 'minLength': 1},
                       'additionalProperties': processor},
    }, ('name', 'dram', 'default_power_mode', 'power_modes', 'processors'))


#: JSON Schema of a platform file (see :func:`hetero_infer.io.schema.validate`).
PLATFORM_SCHEMA = _platform_schema()
