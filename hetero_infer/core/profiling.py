"""Interference profiling: time layers alone and under co-runners, through any processor.

The profiler never talks to hardware or to the simulator directly. It goes through a
:class:`ProfilingTarget`, which can do one thing: time a target layer on one processor while
every co-runner processor loops its own layers for the whole measurement. Two implementations:

- :class:`TwinTarget` (here): the digital twin (``Twin.profile_layer``), for the simulated Xavier;
- ``hetero_infer.backends.profiling_targets.ExecutorProfilingTarget``: any backend's executors
  (onnxruntime on CPU cores now, TensorRT on a Jetson), co-runners looped by background threads.

:func:`profile_random` draws, for every sample, a random target layer and 1-3 random layers per
co-runner processor (DLA-runnable ones on DLAs), and records the target's isolated and co-run
times plus each co-runner layer's isolated time: exactly what the features need. Configurations
rotate so every one gets ``samples / len(configs)`` samples. :func:`profile_zoo_layers` does the
same with real layers of zoo models (targets and co-runner windows), for the generalisation test.

Dataset on disk (:class:`Dataset`): ``DIR/dataset.csv`` (one row per sample; the target layer and
the co-runner loops are JSON columns so nothing is lost) and ``DIR/dataset.json`` (format
``hetero_infer.interference_data/1``: platform, backend, seed, configurations, repeats, library
versions, row count and the CSV's SHA-256). Loading checks format, columns and checksum.
"""

import csv
import datetime
import hashlib
import json
import math
import os
import platform as _pyplatform
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from hetero_infer.core.features import Config, CorunnerLoad, corunner_order
from hetero_infer.core.model import Layer, ModelSpec
from hetero_infer.core.random_layers import random_layer
from hetero_infer.errors import ConfigError, HeteroInferError, ModelError

DATA_FORMAT = 'hetero_infer.interference_data/1'
CSV_NAME = 'dataset.csv'
META_NAME = 'dataset.json'
CSV_COLUMNS = ('config', 'source', 'target_proc', 'kind', 'macs', 'bytes', 'iso_ms', 'corun_ms',
               'slowdown', 'layer_json', 'corunners_json')


# -- profiling targets ------------------------------------------------------------------------

class ProfilingTarget:
    """Where layers are timed. Subclasses set ``backend`` and ``platform_name`` and implement
    :meth:`processor_kinds` and :meth:`measure`."""

    backend = ''
    platform_name = ''

    def processor_kinds(self) -> Dict[str, str]:
        """``{processor id: kind}`` (kind in 'gpu', 'dla', 'cpu')."""
        raise NotImplementedError

    def measure(self, proc: str, layer: Layer, corunners: Mapping[str, Sequence[Layer]], *,
                repeats: int, seed: int) -> float:
        """Mean ms of ``layer`` on ``proc`` while each co-runner loops its layers throughout.

        With no co-runners this is the isolated latency.
        """
        raise NotImplementedError

    def supports(self, layer: Layer, proc: str) -> bool:
        """Whether ``proc`` runs ``layer`` itself (a DLA needs a DLA-runnable layer)."""
        return self.processor_kinds()[proc] != 'dla' or layer.dla

    def versions(self) -> Dict[str, str]:
        """Library versions for the dataset's provenance."""
        return {}

    def close(self) -> None:
        """Release processors (executors, threads)."""

    def __enter__(self) -> 'ProfilingTarget':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class TwinTarget(ProfilingTarget):
    """Profiles on the digital twin; each measurement gets its own noise seed."""

    backend = 'twin'

    def __init__(self, twin: Any) -> None:
        self.twin = twin
        self.platform_name = twin.platform.name
        self._kinds = {pid: p.kind for pid, p in twin.platform.processors.items()}

    def processor_kinds(self) -> Dict[str, str]:
        return dict(self._kinds)

    def measure(self, proc: str, layer: Layer, corunners: Mapping[str, Sequence[Layer]], *,
                repeats: int, seed: int) -> float:
        return float(self.twin.profile_layer(layer, proc, dict(corunners), repeats=repeats,
                                             seed=seed))

    def versions(self) -> Dict[str, str]:
        return {'twin_noise_pct': str(self.twin.noise_pct), 'twin_seed': str(self.twin.seed)}


# -- observations and datasets ------------------------------------------------------------------

@dataclass
class Observation:
    """One profiled sample: a target layer alone and under co-runners."""

    config: str
    source: str                       # 'random' or 'zoo:<model>'
    target_proc: str
    layer: Layer
    iso_ms: float
    corun_ms: float
    corunners: Dict[str, List[Tuple[Layer, float]]]   # proc -> [(layer, isolated ms), ...]

    @property
    def slowdown(self) -> float:
        return self.corun_ms / self.iso_ms

    def loads(self, processor_kinds: Mapping[str, str]) -> List[CorunnerLoad]:
        """Co-runner summaries in feature-slot order."""
        out = []
        for proc in corunner_order(list(self.corunners), processor_kinds):
            pairs = self.corunners[proc]
            out.append(CorunnerLoad.from_layers([p[0] for p in pairs], [p[1] for p in pairs]))
        return out

    def to_row(self) -> Dict[str, str]:
        cors = {p: [[lay.to_dict(), t] for lay, t in v] for p, v in self.corunners.items()}
        return {'config': self.config, 'source': self.source, 'target_proc': self.target_proc,
                'kind': self.layer.kind, 'macs': str(self.layer.macs),
                'bytes': str(self.layer.bytes_total), 'iso_ms': repr(self.iso_ms),
                'corun_ms': repr(self.corun_ms), 'slowdown': repr(self.slowdown),
                'layer_json': json.dumps(self.layer.to_dict(), sort_keys=True),
                'corunners_json': json.dumps(cors, sort_keys=True)}

    @classmethod
    def from_row(cls, row: Mapping[str, str], where: str) -> 'Observation':
        try:
            cors = {p: [(Layer.from_dict(d, where=where), float(t)) for d, t in v]
                    for p, v in json.loads(row['corunners_json']).items()}
            obs = cls(config=row['config'], source=row['source'],
                      target_proc=row['target_proc'],
                      layer=Layer.from_dict(json.loads(row['layer_json']), where=where),
                      iso_ms=float(row['iso_ms']), corun_ms=float(row['corun_ms']),
                      corunners=cors)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, HeteroInferError):
                raise
            raise ModelError('%s: malformed row: %s: %s'
                             % (where, type(exc).__name__, exc)) from None
        if not (obs.iso_ms > 0 and obs.corun_ms > 0):
            raise ModelError('%s: non-positive time in row (iso_ms=%r, corun_ms=%r)'
                             % (where, obs.iso_ms, obs.corun_ms))
        return obs


@dataclass
class Dataset:
    """Observations plus provenance (``meta``: platform, backend, seed, versions, ...)."""

    observations: List[Observation]
    meta: Dict[str, Any] = field(default_factory=dict)

    @property
    def processor_kinds(self) -> Dict[str, str]:
        return dict(self.meta.get('processor_kinds', {}))

    def configs(self) -> List[str]:
        seen: List[str] = []
        for name in self.meta.get('configs', []) + [o.config for o in self.observations]:
            if name not in seen:
                seen.append(name)
        return seen

    def select(self, config: Optional[str] = None, source: Optional[str] = None
               ) -> List[Observation]:
        return [o for o in self.observations
                if (config is None or o.config == config)
                and (source is None or o.source == source
                     or (source.endswith('*') and o.source.startswith(source[:-1])))]

    def save(self, directory: str, *, csv_name: str = CSV_NAME,
             meta_name: str = META_NAME) -> None:
        os.makedirs(directory, exist_ok=True)
        csv_path = os.path.join(directory, csv_name)
        with open(csv_path, 'w', newline='') as f:
            w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            w.writeheader()
            for obs in self.observations:
                w.writerow(obs.to_row())
        meta = dict(self.meta)
        meta.update({'format': DATA_FORMAT, 'rows': len(self.observations), 'csv': csv_name,
                     'csv_sha256': _sha256(csv_path)})
        with open(os.path.join(directory, meta_name), 'w') as f:
            json.dump(meta, f, indent=1, sort_keys=True)
            f.write('\n')
        self.meta = meta

    @classmethod
    def load(cls, directory: str, *, meta_name: str = META_NAME) -> 'Dataset':
        """:raises ModelError: missing files, wrong format, checksum mismatch, bad rows."""
        meta_path = os.path.join(directory, meta_name)
        try:
            with open(meta_path) as f:
                meta = json.load(f)
        except FileNotFoundError:
            raise ModelError('no interference dataset in %s (missing %s; create one with '
                             '"hetero-infer profile")' % (directory, meta_name)) from None
        except (OSError, ValueError) as exc:
            raise ModelError('cannot read %s: %s' % (meta_path, exc)) from None
        if not isinstance(meta, dict) or meta.get('format') != DATA_FORMAT:
            raise ModelError('%s: unsupported dataset format %r (expected %r)'
                             % (meta_path, meta.get('format') if isinstance(meta, dict) else meta,
                                DATA_FORMAT))
        csv_path = os.path.join(directory, str(meta.get('csv', CSV_NAME)))
        if not os.path.exists(csv_path):
            raise ModelError('%s: data file %s is missing' % (meta_path, csv_path))
        digest = _sha256(csv_path)
        if meta.get('csv_sha256') and digest != meta['csv_sha256']:
            raise ModelError('%s: checksum mismatch (file %s, provenance says %s): the data was '
                             'modified or truncated' % (csv_path, digest[:12],
                                                        str(meta['csv_sha256'])[:12]))
        obs = []
        with open(csv_path, newline='') as f:
            reader = csv.DictReader(f)
            missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ModelError('%s: missing columns %s' % (csv_path, missing))
            for i, row in enumerate(reader):
                obs.append(Observation.from_row(row, '%s:%d' % (csv_path, i + 2)))
        if 'rows' in meta and meta['rows'] != len(obs):
            raise ModelError('%s: %d rows but provenance says %r' % (csv_path, len(obs),
                                                                    meta['rows']))
        return cls(observations=obs, meta=meta)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def library_versions() -> Dict[str, str]:
    """Versions of Python and the numeric libraries (provenance)."""
    from hetero_infer import __version__
    out = {'python': sys.version.split()[0], 'numpy': np.__version__,
           'hetero_infer': __version__, 'machine': _pyplatform.machine()}
    try:
        import sklearn
        out['scikit_learn'] = sklearn.__version__
    except ImportError:  # only training needs it
        pass
    return out


def provenance(target: ProfilingTarget, *, seed: int, configs: Sequence[str], repeats: int,
               extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    versions = library_versions()
    versions.update(target.versions())
    meta = {'platform': target.platform_name, 'backend': target.backend, 'seed': int(seed),
            'configs': list(configs), 'repeats': int(repeats),
            'processor_kinds': target.processor_kinds(), 'versions': versions,
            'created_utc': datetime.datetime.utcnow().replace(microsecond=0).isoformat() + 'Z'}
    meta.update(dict(extra or {}))
    return meta


# -- profilers ----------------------------------------------------------------------------------

Progress = Optional[Callable[[int], None]]


class _Measurer:
    """Measures through a target with one fresh noise seed per measurement."""

    def __init__(self, target: ProfilingTarget, seed: int, repeats: int, *,
                 cover_loops: float = 8.0, max_repeats: int = 2000) -> None:
        self.target = target
        self.repeats = repeats
        self.cover_loops = cover_loops
        self.max_repeats = max_repeats
        self._rng = np.random.default_rng([seed, 7919])

    def __call__(self, proc: str, layer: Layer,
                 corunners: Optional[Mapping[str, Sequence[Layer]]] = None, *,
                 repeats: Optional[int] = None) -> float:
        seed = int(self._rng.integers(0, 2 ** 31 - 1))
        t = self.target.measure(proc, layer, corunners or {}, repeats=repeats or self.repeats,
                                seed=seed)
        if not t > 0:
            raise HeteroInferError('profiling %s on %s returned a non-positive time %r'
                                   % (layer.name, proc, t))
        return t

    def observe(self, config: str, source: str, proc: str, layer: Layer,
                loops: Mapping[str, Sequence[Layer]]) -> Observation:
        iso = self(proc, layer)
        cors = {p: [(lay, self(p, lay)) for lay in lays] for p, lays in loops.items()}
        # Time the target over several co-runner loops, so the result averages over which
        # co-runner layer overlaps it instead of depending on the phase.
        loop_ms = max([sum(t for _, t in v) for v in cors.values()] or [0.0])
        reps = int(min(self.max_repeats,
                       max(self.repeats, math.ceil(self.cover_loops * loop_ms / iso))))
        corun = self(proc, layer, loops, repeats=reps)
        return Observation(config=config, source=source, target_proc=proc, layer=layer,
                           iso_ms=iso, corun_ms=corun, corunners=cors)


def _schedule(configs: Sequence[str], samples: int) -> List[str]:
    if not configs:
        raise ConfigError('at least one co-run configuration is required')
    if samples < 1:
        raise ConfigError('samples must be >= 1, got %r' % (samples,))
    return [configs[i % len(configs)] for i in range(samples)]


def _draw(target: ProfilingTarget, rng: np.random.Generator, proc: str, name: str,
          limits: Mapping[str, int], tries: int = 100) -> Layer:
    """A random layer that ``proc`` runs itself (DLA rules; what the backend can build)."""
    dla_only = target.processor_kinds()[proc] == 'dla'
    for _ in range(tries):
        layer = random_layer(rng, name=name, dla_only=dla_only, **limits)
        if target.supports(layer, proc):
            return layer
    raise ConfigError('no random layer that %s supports on %s in %d draws'
                      % (target.backend, proc, tries))


def profile_random(target: ProfilingTarget, configs: Sequence[str], samples: int, *,
                   seed: int = 0, repeats: int = 20, max_corunner_layers: int = 3,
                   layer_limits: Optional[Mapping[str, int]] = None,
                   progress: Progress = None) -> Dataset:
    """Profile ``samples`` random target layers, rotating over ``configs``.

    :param repeats: runs averaged per measurement (co-run measurements run longer when needed
        to cover several co-runner loops).
    :param layer_limits: ``max_macs`` / ``max_tensor_bytes`` for :func:`random_layer` (smaller
        layers keep CPU profiling fast).
    :param max_corunner_layers: each co-runner loops 1..this many random layers.
    :param progress: called with 1 after every sample (a tqdm ``update``).
    :raises ConfigError: a configuration the target's processors cannot provide.
    """
    kinds = target.processor_kinds()
    resolved = {c: Config.parse(c).resolve(kinds) for c in configs}
    rng = np.random.default_rng([seed, 1])
    limits = dict(layer_limits or {})
    meas = _Measurer(target, seed, repeats)
    out = []
    for i, cfg in enumerate(_schedule(configs, samples)):
        proc, cor_procs = resolved[cfg]
        layer = _draw(target, rng, proc, 't%d' % i, limits)
        loops = {}
        for cp in cor_procs:
            n = int(rng.integers(1, max_corunner_layers + 1))
            loops[cp] = [_draw(target, rng, cp, 'c%d_%s_%d' % (i, cp, j), limits)
                         for j in range(n)]
        out.append(meas.observe(cfg, 'random', proc, layer, loops))
        if progress is not None:
            progress(1)
    meta = provenance(target, seed=seed, configs=configs, repeats=repeats,
                      extra={'kind': 'random', 'samples': samples,
                             'max_corunner_layers': max_corunner_layers, 'layer_limits': limits})
    return Dataset(out, meta)


def _runnable(model: ModelSpec, proc_kind: str) -> List[Layer]:
    return [lay for lay in model.layers if proc_kind != 'dla' or lay.dla]


def profile_zoo_layers(target: ProfilingTarget, configs: Sequence[str],
                       models: Sequence[ModelSpec], samples: int, *, seed: int = 0,
                       repeats: int = 20, max_corunner_layers: int = 3,
                       progress: Progress = None) -> Dataset:
    """Profile real layers of ``models``: each sample times one layer of a random model while
    each co-runner loops a window of consecutive layers of another model.

    Layers a DLA cannot run are skipped on DLAs (they would run on the GPU as fallback).
    """
    if len(models) < 2:
        raise ConfigError('profile_zoo_layers needs at least two models, got %d' % len(models))
    kinds = target.processor_kinds()
    resolved = {c: Config.parse(c).resolve(kinds) for c in configs}
    rng = np.random.default_rng([seed, 2])
    meas = _Measurer(target, seed + 1, repeats)
    out = []
    for cfg in _schedule(configs, samples):
        proc, cor_procs = resolved[cfg]
        while True:
            mi = int(rng.integers(len(models)))
            cands = _runnable(models[mi], kinds[proc])
            if cands:
                break
        layer = cands[int(rng.integers(len(cands)))]
        loops = {}
        for cp in cor_procs:
            while True:
                mj = int(rng.integers(len(models)))
                pool = _runnable(models[mj], kinds[cp])
                if mj != mi and pool:
                    break
            n = int(rng.integers(1, max_corunner_layers + 1))
            start = int(rng.integers(max(1, len(pool) - n + 1)))
            loops[cp] = list(pool[start:start + n])
        out.append(meas.observe(cfg, 'zoo:' + models[mi].name, proc, layer, loops))
        if progress is not None:
            progress(1)
    meta = provenance(target, seed=seed, configs=configs, repeats=repeats,
                      extra={'kind': 'zoo_layers', 'samples': samples,
                             'models': [m.name for m in models]})
    return Dataset(out, meta)


def iter_configs(dataset: Dataset, configs: Optional[Iterable[str]] = None) -> List[str]:
    return list(configs) if configs is not None else dataset.configs()
