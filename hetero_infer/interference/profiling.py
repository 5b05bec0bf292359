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
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from hetero_infer.errors import ConfigError, HeteroInferError, ModelError
from hetero_infer.interference.features import Config, CorunnerLoad, corunner_order
from hetero_infer.interference.random_layers import random_layer
from hetero_infer.models.zoo import Layer, ModelSpec

DATA_FORMAT = 'hetero_infer.interference_data/1'
CSV_NAME = 'dataset.csv'
META_NAME = 'dataset.json'
CSV_COLUMNS = ('config', 'source', 'target_proc', 'kind', 'macs', 'bytes', 'iso_ms', 'corun_ms',
               'slowdown', 'layer_json', 'corunners_json')
#: Written since issue 17, optional when reading (older datasets lack them; empty = unknown):
#: coefficient of variation of the isolated and co-run repeats, 1-minute load average.
OPTIONAL_COLUMNS = ('iso_cv', 'corun_cv', 'load1')
#: How the repeats of one measurement are combined (:func:`aggregate_runs`).
AGGREGATES = ('mean', 'median', 'trimmed')
#: Target layers drawn at most to find one of at least ``min_layer_ms``.
MIN_LAYER_DRAWS = 200
#: Share cut from each end of the sorted repeats by the ``'trimmed'`` aggregate.
TRIM_SHARE = 0.2


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

    def measure_runs(self, proc: str, layer: Layer, corunners: Mapping[str, Sequence[Layer]],
                     *, repeats: int, seed: int) -> List[float]:
        """The time of every run (ms); a target that only reports means returns one value."""
        return [self.measure(proc, layer, corunners, repeats=repeats, seed=seed)]

    def measure_pair(self, proc: str, layer: Layer, corunners: Mapping[str, Sequence[Layer]],
                     *, repeats: int, corun_repeats: int, blocks: int, seed: int
                     ) -> Tuple[List[float], List[float]]:
        """Isolated and co-run runs of ``layer``; targets that can interleave them in
        ``blocks`` override this (the default measures one after the other)."""
        iso = self.measure_runs(proc, layer, {}, repeats=repeats, seed=seed) if repeats else []
        cor = self.measure_runs(proc, layer, corunners, repeats=corun_repeats, seed=seed + 1)
        return iso, cor

    def supports(self, layer: Layer, proc: str) -> bool:
        """Whether ``proc`` runs ``layer`` itself (a DLA needs a DLA-runnable layer)."""
        return self.processor_kinds()[proc] != 'dla' or layer.dla

    def versions(self) -> Dict[str, str]:
        """Library versions for the dataset's provenance."""
        return {}

    def release(self, layers: Iterable[Layer]) -> None:
        """Free what the target holds for ``layers`` (a real backend's loaded sessions); the
        profiler calls it once a layer is measured, so memory does not grow with samples."""

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
    iso_cv: Optional[float] = None    # coefficient of variation of the isolated repeats
    corun_cv: Optional[float] = None  # ... of the co-run repeats
    load1: Optional[float] = None     # 1-minute load average when measured

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
                'corunners_json': json.dumps(cors, sort_keys=True),
                'iso_cv': _opt_str(self.iso_cv), 'corun_cv': _opt_str(self.corun_cv),
                'load1': _opt_str(self.load1)}

    @classmethod
    def from_row(cls, row: Mapping[str, str], where: str) -> 'Observation':
        try:
            cors = {p: [(Layer.from_dict(d, where=where), float(t)) for d, t in v]
                    for p, v in json.loads(row['corunners_json']).items()}
            obs = cls(config=row['config'], source=row['source'],
                      target_proc=row['target_proc'],
                      layer=Layer.from_dict(json.loads(row['layer_json']), where=where),
                      iso_ms=float(row['iso_ms']), corun_ms=float(row['corun_ms']),
                      corunners=cors, iso_cv=_opt_float(row.get('iso_cv')),
                      corun_cv=_opt_float(row.get('corun_cv')),
                      load1=_opt_float(row.get('load1')))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, HeteroInferError):
                raise
            raise ModelError('%s: malformed row: %s: %s'
                             % (where, type(exc).__name__, exc)) from None
        if not (obs.iso_ms > 0 and obs.corun_ms > 0):
            raise ModelError('%s: non-positive time in row (iso_ms=%r, corun_ms=%r)'
                             % (where, obs.iso_ms, obs.corun_ms))
        return obs


def _opt_str(v: Optional[float]) -> str:
    return '' if v is None else repr(float(v))


def _opt_float(v: Optional[str]) -> Optional[float]:
    return float(v) if v not in (None, '') else None


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
            w = csv.DictWriter(f, fieldnames=CSV_COLUMNS + OPTIONAL_COLUMNS)
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


def aggregate_runs(runs: Sequence[float], how: str) -> float:
    """One time from a measurement's repeats: ``'mean'``, ``'median'``, or ``'trimmed'`` (the
    mean of the middle runs, :data:`TRIM_SHARE` cut from each end: robust to a run preempted by
    another process, yet still averaging over the co-runner's phases).

    :raises ConfigError: unknown ``how`` or no runs.
    """
    a = np.asarray(runs, dtype=float)
    if not a.size:
        raise ConfigError('aggregate_runs: no runs')
    if how == 'mean':
        return float(a.mean())
    if how == 'median':
        return float(np.median(a))
    if how == 'trimmed':
        a = np.sort(a)
        k = int(math.floor(TRIM_SHARE * a.size))
        return float(a[k:a.size - k].mean()) if a.size - 2 * k > 0 else float(np.median(a))
    raise ConfigError('aggregate %r: choose one of %s' % (how, ', '.join(AGGREGATES)))


def run_cv(runs: Sequence[float]) -> Optional[float]:
    """Coefficient of variation of the repeats (None with fewer than two)."""
    a = np.asarray(runs, dtype=float)
    if a.size < 2 or not a.mean() > 0:
        return None
    return float(a.std(ddof=1) / a.mean())


def load_average() -> Optional[float]:
    """The 1-minute load average (None where the OS does not report it)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


class _Measurer:
    """Measures through a target with one fresh noise seed per measurement.

    :param aggregate: how repeats are combined (:func:`aggregate_runs`).
    :param blocks: isolated/co-run blocks interleaved per observation (1: one after the other).
    :param max_cv: re-measure (up to ``retries`` times) when the isolated or co-run repeats
        have a larger coefficient of variation; None: never.
    """

    def __init__(self, target: ProfilingTarget, seed: int, repeats: int, *,
                 aggregate: str = 'mean', blocks: int = 1, max_cv: Optional[float] = None,
                 retries: int = 2, cover_loops: float = 8.0, max_repeats: int = 2000) -> None:
        if max_cv is not None and not max_cv > 0:
            raise ConfigError('max_cv must be positive, got %r' % (max_cv,))
        self.max_cv = max_cv
        self.retries = retries
        self.remeasured = 0
        if aggregate not in AGGREGATES:
            raise ConfigError('aggregate %r: choose one of %s'
                              % (aggregate, ', '.join(AGGREGATES)))
        if blocks < 1:
            raise ConfigError('blocks must be >= 1, got %r' % (blocks,))
        self.target = target
        self.repeats = repeats
        self.aggregate = aggregate
        self.blocks = blocks
        self.cover_loops = cover_loops
        self.max_repeats = max_repeats
        self._rng = np.random.default_rng([seed, 7919])

    def _seed(self) -> int:
        return int(self._rng.integers(0, 2 ** 31 - 1))

    def _check(self, proc: str, layer: Layer, runs: Sequence[float]) -> None:
        if not runs or not all(t > 0 for t in runs):
            raise HeteroInferError('profiling %s on %s returned a non-positive time in %r'
                                   % (layer.name, proc, list(runs)[:5]))

    def __call__(self, proc: str, layer: Layer,
                 corunners: Optional[Mapping[str, Sequence[Layer]]] = None, *,
                 repeats: Optional[int] = None) -> float:
        runs = self.target.measure_runs(proc, layer, corunners or {},
                                        repeats=repeats or self.repeats, seed=self._seed())
        self._check(proc, layer, runs)
        return aggregate_runs(runs, self.aggregate)

    def observe(self, config: str, source: str, proc: str, layer: Layer,
                loops: Mapping[str, Sequence[Layer]], *,
                iso_probe_ms: Optional[float] = None) -> Observation:
        """One observation; ``iso_probe_ms`` (a short isolated measurement already made) sets
        the co-run repeats when the isolated and co-run runs are interleaved."""
        cors = {p: [(lay, self(p, lay)) for lay in lays] for p, lays in loops.items()}
        loop_ms = max([sum(t for _, t in v) for v in cors.values()] or [0.0])

        def corun_repeats(iso: float) -> int:
            # Time the target over several co-runner loops, so the result averages over which
            # co-runner layer overlaps it instead of depending on the phase.
            return int(min(self.max_repeats,
                           max(self.repeats, math.ceil(self.cover_loops * loop_ms / iso))))

        def measure() -> Tuple[List[float], List[float]]:
            if self.blocks > 1:
                iso0 = iso_probe_ms or self(proc, layer, repeats=3)
                iso_runs, cor_runs = self.target.measure_pair(
                    proc, layer, loops, repeats=self.repeats,
                    corun_repeats=corun_repeats(iso0), blocks=self.blocks, seed=self._seed())
            else:
                iso_runs = self.target.measure_runs(proc, layer, {}, repeats=self.repeats,
                                                    seed=self._seed())
                self._check(proc, layer, iso_runs)
                iso0 = aggregate_runs(iso_runs, self.aggregate)
                cor_runs = self.target.measure_runs(proc, layer, loops,
                                                    repeats=corun_repeats(iso0),
                                                    seed=self._seed())
            self._check(proc, layer, iso_runs)
            self._check(proc, layer, cor_runs)
            return iso_runs, cor_runs

        def spread(pair: Tuple[List[float], List[float]]) -> float:
            return max(run_cv(pair[0]) or 0.0, run_cv(pair[1]) or 0.0)

        # A measurement whose repeats scatter more than max_cv was disturbed (a co-runner or
        # the target preempted by another process): measure again, keep the steadiest.
        best = measure()
        for _ in range(self.retries if self.max_cv is not None else 0):
            if spread(best) <= self.max_cv:
                break
            self.remeasured += 1
            again = measure()
            if spread(again) < spread(best):
                best = again
        iso_runs, cor_runs = best
        return Observation(config=config, source=source, target_proc=proc, layer=layer,
                           iso_ms=aggregate_runs(iso_runs, self.aggregate),
                           corun_ms=aggregate_runs(cor_runs, self.aggregate), corunners=cors,
                           iso_cv=run_cv(iso_runs), corun_cv=run_cv(cor_runs),
                           load1=load_average())


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
                   aggregate: str = 'mean', blocks: int = 1, min_layer_ms: float = 0.0,
                   max_cv: Optional[float] = None, retest_fraction: float = 0.0,
                   budget_s: Optional[float] = None,
                   progress: Progress = None, clock: Callable[[], float] = time.monotonic
                   ) -> Dataset:
    """Profile ``samples`` random target layers, rotating over ``configs``.

    :param repeats: runs per measurement (co-run measurements run longer when needed to cover
        several co-runner loops).
    :param layer_limits: ``max_macs`` / ``max_tensor_bytes`` for :func:`random_layer` (smaller
        layers keep CPU profiling fast).
    :param max_corunner_layers: each co-runner loops 1..this many random layers.
    :param aggregate: how repeats are combined (:func:`aggregate_runs`).
    :param blocks: isolated and co-run runs interleaved in this many blocks (targets that can).
    :param min_layer_ms: redraw target layers whose isolated time (a 3-run probe) is shorter,
        so per-call overhead does not dominate what is measured (0: keep every layer).
    :param max_cv: measure a sample again (twice at most; the steadiest of the tries is kept)
        when the coefficient of variation of its isolated or co-run repeats exceeds this: such
        a measurement was disturbed by other processes (None: never).
    :param retest_fraction: share of the samples measured a second time at the end; the
        agreement of the two measurements (test-retest accuracy per configuration, the ceiling
        a model can be judged against) goes to ``meta['quality']`` (:func:`retest_quality`).
    :param budget_s: stop drawing new samples after this long (the re-test, a
        ``retest_fraction`` share of the time spent, comes on top: the main loop stops at
        ``budget_s / (1 + retest_fraction)``); ``meta['stopped_by_budget']`` says whether it did.
    :param progress: called with 1 after every sample (a tqdm ``update``).
    :raises ConfigError: a configuration the target's processors cannot provide, or bad
        numbers (negative ``min_layer_ms``, ``retest_fraction`` outside [0, 1)).
    """
    if min_layer_ms < 0:
        raise ConfigError('min_layer_ms must be >= 0, got %r' % (min_layer_ms,))
    if not 0.0 <= retest_fraction < 1.0:
        raise ConfigError('retest_fraction must be in [0, 1), got %r' % (retest_fraction,))
    if budget_s is not None and not budget_s > 0:
        raise ConfigError('budget must be positive, got %r s' % (budget_s,))
    kinds = target.processor_kinds()
    resolved = {c: Config.parse(c).resolve(kinds) for c in configs}
    rng = np.random.default_rng([seed, 1])
    limits = dict(layer_limits or {})
    meas = _Measurer(target, seed, repeats, aggregate=aggregate, blocks=blocks, max_cv=max_cv)
    out = []
    redrawn = 0
    t0 = clock()
    stop_at = None if budget_s is None else t0 + budget_s / (1.0 + retest_fraction)
    stopped = False
    loads = [load_average()]
    for i, cfg in enumerate(_schedule(configs, samples)):
        if stop_at is not None and clock() >= stop_at:
            stopped = True
            break
        proc, cor_procs = resolved[cfg]
        probe = None
        for _ in range(MIN_LAYER_DRAWS):
            layer = _draw(target, rng, proc, 't%d' % i, limits)
            if min_layer_ms <= 0:
                break
            probe = meas(proc, layer, repeats=3)
            if probe >= min_layer_ms:
                break
            target.release([layer])
            redrawn += 1
        else:
            raise ConfigError('no random layer of at least %g ms on %s in %d draws; lower '
                              '--min-layer-ms or raise --max-macs'
                              % (min_layer_ms, proc, MIN_LAYER_DRAWS))
        loops = {}
        for cp in cor_procs:
            n = int(rng.integers(1, max_corunner_layers + 1))
            loops[cp] = [_draw(target, rng, cp, 'c%d_%s_%d' % (i, cp, j), limits)
                         for j in range(n)]
        out.append(meas.observe(cfg, 'random', proc, layer, loops, iso_probe_ms=probe))
        target.release([layer] + [lay for lays in loops.values() for lay in lays])
        if progress is not None:
            progress(1)
    main_s = clock() - t0
    loads.append(load_average())
    retests: List[Tuple[int, Observation]] = []
    if retest_fraction > 0 and out:
        pick = np.random.default_rng([seed, 17]).permutation(len(out))
        n = max(1, int(round(retest_fraction * len(out))))
        for idx in sorted(int(j) for j in pick[:n]):
            o = out[idx]
            loops = {p: [lay for lay, _ in v] for p, v in o.corunners.items()}
            retests.append((idx, meas.observe(o.config, o.source, o.target_proc, o.layer,
                                              loops)))
            target.release([o.layer] + [lay for lays in loops.values() for lay in lays])
    loads.append(load_average())
    meta = provenance(target, seed=seed, configs=configs, repeats=repeats,
                      extra={'kind': 'random', 'samples': len(out), 'samples_asked': samples,
                             'max_corunner_layers': max_corunner_layers, 'layer_limits': limits,
                             'protocol': {'aggregate': aggregate, 'blocks': blocks,
                                          'min_layer_ms': min_layer_ms,
                                          'redrawn_short_layers': redrawn, 'max_cv': max_cv,
                                          'remeasured_unsteady': meas.remeasured},
                             'budget_s': budget_s, 'stopped_by_budget': stopped,
                             'profile_s': round(main_s, 3),
                             'retest_s': round(clock() - t0 - main_s, 3),
                             'load_average_1min': {'start': loads[0], 'end_main': loads[1],
                                                   'end': loads[2]}})
    if retests:
        meta['retest'] = [{'row': idx, 'iso_ms': r.iso_ms, 'corun_ms': r.corun_ms,
                           'load1': r.load1} for idx, r in retests]
    meta['quality'] = retest_quality(out, meta.get('retest', []), configs)
    return Dataset(out, meta)


def _acc(a: Sequence[float], b: Sequence[float]) -> float:
    """``100 * (1 - MAPE)`` of ``b`` against ``a`` (the accuracy metric of the models)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    return float(100.0 * (1.0 - np.mean(np.abs(b - a) / np.abs(a))))


def retest_quality(observations: Sequence[Observation], retest: Sequence[Mapping[str, Any]],
                   configs: Sequence[str]) -> Dict[str, Any]:
    """Measurement quality per configuration.

    - ``test_retest``: accuracy (``100 * (1 - MAPE)``) of the re-measured slowdown against the
      first one, i.e. how well a perfect copy of one measurement predicts another. The models are
      scored on exactly this quantity (their accuracy on co-run latency equals their accuracy on
      the slowdown), so it is the ceiling to read a model's accuracy against; a model can beat it
      somewhat, because it averages the noise of many samples while each of the two measurements
      here carries its own.
    - ``test_retest_corun`` / ``test_retest_iso``: the same for the co-run and isolated latency.
    - ``cv``: median coefficient of variation of the repeats within one measurement.
    - ``retest_samples``: how many samples were measured twice.
    """
    by_cfg: Dict[str, List[Tuple[Observation, Mapping[str, Any]]]] = {}
    for r in retest:
        o = observations[int(r['row'])]
        by_cfg.setdefault(o.config, []).append((o, r))
    q: Dict[str, Any] = {'test_retest': {}, 'test_retest_corun': {}, 'test_retest_iso': {},
                         'retest_samples': {}, 'cv': {}}
    for cfg in configs:
        obs = [o for o in observations if o.config == cfg]
        iso_cv = [o.iso_cv for o in obs if o.iso_cv is not None]
        cor_cv = [o.corun_cv for o in obs if o.corun_cv is not None]
        if iso_cv or cor_cv:
            q['cv'][cfg] = {'iso': round(float(np.median(iso_cv)), 4) if iso_cv else None,
                            'corun': round(float(np.median(cor_cv)), 4) if cor_cv else None}
        pairs = by_cfg.get(cfg, [])
        if not pairs:
            continue
        first = [o for o, _ in pairs]
        again = [r for _, r in pairs]
        q['test_retest'][cfg] = round(_acc([o.slowdown for o in first],
                                           [r['corun_ms'] / r['iso_ms'] for r in again]), 3)
        q['test_retest_corun'][cfg] = round(_acc([o.corun_ms for o in first],
                                                 [r['corun_ms'] for r in again]), 3)
        q['test_retest_iso'][cfg] = round(_acc([o.iso_ms for o in first],
                                               [r['iso_ms'] for r in again]), 3)
        q['retest_samples'][cfg] = len(pairs)
    return q


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
