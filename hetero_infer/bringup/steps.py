"""The steps of a bring-up, each producing one artifact of the bring-up directory.

A step is skipped when its artifact is there (:mod:`hetero_infer.bringup.artifacts` writes
artifacts whole or not at all). Latencies on the emulated backend are read on its virtual clock
(``emulated_ms``: the twin's time of the inference, whatever the host's load); on real backends
they are the executor's ``execute_ms``.
"""

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from hetero_infer.bringup import artifacts
from hetero_infer.errors import ConfigError, HeteroInferError, ModelError

#: Default models per backend: zoo layer tables on the emulated platform, the project's small
#: ONNX models on real processors.
DEFAULT_MODELS = {'emulated': ('resnet18', 'googlenet', 'squeezenet1_1'),
                  'onnxruntime': ('tiny_cnn', 'mobilenet_v2_035', 'kws_matchboxnet'),
                  'tensorrt': ('tiny_cnn', 'mobilenet_v2_035', 'kws_matchboxnet')}
BACKENDS = tuple(DEFAULT_MODELS)


@dataclass
class Settings:
    """What a bring-up does (recorded in ``bringup.json``; a re-run must ask the same)."""

    backend: str
    platform: str
    models: Tuple[str, ...]
    seed: int = 0
    repeats: int = 30
    corun_repeats: int = 20
    profile_samples: int = 2000
    profile_budget_s: float = 360.0
    candidates: Tuple[str, ...] = ('mlp', 'knn', 'random_forest', 'median', 'none')
    search_iter: int = 4
    cv: int = 3
    load: float = 0.8
    slo_factor: float = 5.0
    min_slo_ms: float = 0.0
    serve_s: float = 10.0
    warmup_s: float = 1.0
    plan_samples: int = 100
    plan_refine_evals: int = 120
    time_scale: float = 1.0
    precision: str = 'fp16'
    #: emulated backend: serve on the twin's virtual clock (``virtual``) or with the serving
    #: engine in wall time scaled by ``time_scale`` (``wall``); real backends: ``wall``
    serve_clock: str = 'wall'

    def to_dict(self) -> Dict[str, Any]:
        d = dict(self.__dict__)
        d['models'] = list(self.models)
        d['candidates'] = list(self.candidates)
        return d


@dataclass
class Context:
    """Shared by the steps of one run: settings, directory, backend (made on first use)."""

    settings: Settings
    out: str
    bar: Callable[..., Any]
    log: Callable[[str], None] = print
    _backend: Any = None
    _base: Any = None
    _models: Optional[Dict[str, Tuple[str, Any]]] = None
    timings: Dict[str, float] = field(default_factory=dict)

    def path(self, *parts: str) -> str:
        return os.path.join(self.out, *parts)

    @property
    def base(self):
        if self._base is None:
            from hetero_infer.platform.spec import Platform
            self._base = Platform.load(self.settings.platform)
        return self._base

    @property
    def backend(self):
        if self._backend is None:
            from hetero_infer.backends import create_backend
            s = self.settings
            if s.backend == 'emulated':
                self._backend = create_backend('emulated', platform=self.base, seed=s.seed,
                                               time_scale=s.time_scale)
            elif s.backend == 'tensorrt':
                self._backend = create_backend('tensorrt',
                                               cache_dir=self.path('engines'))
            else:
                self._backend = create_backend(s.backend)
        return self._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    @property
    def processors(self) -> List[str]:
        """The processors both the backend provides and the base platform describes."""
        have = set(self.backend.processor_ids)
        procs = [p for p in self.base.processor_ids if p in have]
        if not procs:
            raise ConfigError('backend %s provides %s, none of which is a processor of platform '
                              '%s (%s)' % (self.settings.backend,
                                           ', '.join(self.backend.processor_ids),
                                           self.base.name, ', '.join(self.base.processor_ids)))
        return procs

    @property
    def models(self) -> Dict[str, Tuple[str, Any]]:
        """``{name: (what the backend loads, layer table)}``."""
        if self._models is None:
            self._models = resolve_models(self.settings.models, self.settings.backend)
        return self._models

    def fitted(self):
        from hetero_infer.platform.spec import Platform
        return Platform.load(self.path('platform.yaml'))

    def latency_of(self, result) -> float:
        """One inference's latency: the emulated (virtual) time, or the executor's."""
        return float(result.info.get('emulated_ms', result.execute_ms))


def resolve_models(names: Sequence[str], backend: str) -> Dict[str, Tuple[str, Any]]:
    """``{name: (load reference, ModelSpec)}`` for zoo names (emulated backend only), project
    ONNX model names and ONNX files.

    :raises ModelError: an unknown name, a zoo layer table asked of a real backend (it has no
        weights to run), or a duplicate.
    """
    from hetero_infer.commands.build_engines import resolve_model_path
    from hetero_infer.models.zoo import list_models, load_model
    out: Dict[str, Tuple[str, Any]] = {}
    zoo = set(list_models())
    for name in names:
        if os.path.isfile(name):
            ref = name
        elif name in zoo and backend == 'emulated':
            ref = name
        elif name in zoo:
            try:
                ref = resolve_model_path(name)
            except ModelError:
                raise ModelError('model %r is a layer table without weights: backend %s needs '
                                 'an ONNX file (or use --backend emulated)'
                                 % (name, backend)) from None
        else:
            ref = resolve_model_path(name)
        label = os.path.splitext(os.path.basename(name))[0]
        if label in out:
            raise ModelError('model %r given twice' % name)
        out[label] = (ref, load_model(ref))
    if not out:
        raise ModelError('no models to bring up')
    return out


def _stats(values: Sequence[float]) -> Dict[str, float]:
    a = np.asarray(values, dtype=float)
    mean = float(a.mean())
    return {'median_ms': float(np.median(a)), 'mean_ms': mean,
            'p90_ms': float(np.percentile(a, 90)),
            'cv': float(a.std(ddof=1) / mean) if a.size > 1 and mean > 0 else 0.0,
            'n': int(a.size)}


# -- 1. environment ---------------------------------------------------------------------------

def environment(ctx: Context) -> dict:
    from hetero_infer.bringup.device_check import environment as libraries
    from hetero_infer.interference.profiling import load_average
    be = ctx.backend
    return {'libraries': libraries(), 'backend': ctx.settings.backend,
            'backend_processors': list(be.processor_ids),
            'backend_versions': dict(be.library_versions()),
            'platform': ctx.base.name, 'platform_processors': list(ctx.base.processor_ids),
            'processors': ctx.processors, 'cpu_count': os.cpu_count(),
            'load_average_1min': load_average()}


# -- 2. engines / sessions --------------------------------------------------------------------

def engines(ctx: Context) -> dict:
    rows = []
    jobs = [(m, p) for m in ctx.models for p in ctx.processors]
    precision = ctx.settings.precision if ctx.settings.backend == 'tensorrt' else ''
    with ctx.bar(total=len(jobs), desc='engines', unit='load') as bar:
        for name, proc in jobs:
            ref, spec = ctx.models[name]
            row = {'model': name, 'processor': proc}
            if not ctx.base.can_run(spec, proc):
                row.update(status='unsupported',
                           reason='platform %s cannot run it there' % ctx.base.name)
            else:
                t0 = time.perf_counter()
                try:
                    with ctx.backend.load(ref, proc, precision=precision) as ex:
                        info = ex.info
                        row.update(status='ok', load_s=round(time.perf_counter() - t0, 3),
                                   inputs={t.name: list(t.shape) for t in ex.inputs},
                                   cache=info.get('cache'), build_s=info.get('build_s'),
                                   gpu_fallback_layers=list(info.get('gpu_fallback_layers')
                                                            or []))
                except HeteroInferError as exc:
                    row.update(status='error', reason=str(exc))
            rows.append(row)
            bar.update(1)
    ok = [r for r in rows if r['status'] == 'ok']
    if not ok:
        raise ConfigError('no model loaded on any processor: %s'
                          % '; '.join('%s on %s: %s' % (r['model'], r['processor'],
                                                        r.get('reason')) for r in rows))
    return {'rows': rows, 'precision': precision or None}


def loaded_pairs(ctx: Context) -> List[Tuple[str, str]]:
    doc = artifacts.read_json(ctx.path('engines.json'))
    return [(r['model'], r['processor']) for r in doc['rows'] if r['status'] == 'ok']


# -- 3. isolated latency ----------------------------------------------------------------------

def isolated(ctx: Context) -> dict:
    s = ctx.settings
    rows = []
    pairs = loaded_pairs(ctx)
    with ctx.bar(total=len(pairs) * (s.repeats + 3), desc='isolated latency',
                 unit='run') as bar:
        for name, proc in pairs:
            ex = ctx.backend.load(ctx.models[name][0], proc,
                                  precision=s.precision if s.backend == 'tensorrt' else '')
            with ex:
                feed = ex.random_inputs(s.seed)
                for _ in range(3):  # warm-up: first runs allocate and page in
                    ex.run(feed)
                    bar.update(1)
                lat = []
                for _ in range(s.repeats):
                    lat.append(ctx.latency_of(ex.run(feed)))
                    bar.update(1)
            rows.append(dict(model=name, processor=proc, **_stats(lat)))
    return {'rows': rows, 'repeats': s.repeats,
            'clock': 'virtual (emulated_ms)' if s.backend == 'emulated' else 'execute_ms'}


def measured_isolated(ctx: Context) -> Dict[Tuple[str, str], float]:
    doc = artifacts.read_json(ctx.path('isolated.json'))
    return {(r['model'], r['processor']): r['median_ms'] for r in doc['rows']}


# -- 4. platform fit --------------------------------------------------------------------------

def fit(ctx: Context) -> dict:
    import yaml

    from hetero_infer.evaluation.platform_fit import fit_to_latencies, fitted_document
    from hetero_infer.io.yaml_file import read_yaml
    from hetero_infer.platform.spec import PLATFORM_DIR
    measured = measured_isolated(ctx)
    specs = {n: spec for n, (_, spec) in ctx.models.items()}
    fitted, report = fit_to_latencies(ctx.base, measured, specs)
    base_path = ctx.settings.platform
    if not base_path.endswith(('.yaml', '.yml')) and os.sep not in base_path:
        base_path = os.path.join(PLATFORM_DIR, base_path + '.yaml')
    doc = fitted_document(read_yaml(base_path, 'platform'), report['values'],
                          description='%s, efficiencies and per-layer costs fitted by '
                                      'hetero-infer bringup (%s backend)'
                                      % (ctx.base.name, ctx.settings.backend))
    header = ('# Fitted by "hetero-infer bringup --backend %s --platform %s" to the isolated '
              'latencies in isolated.json;\n# residuals per model in fit.json.\n'
              % (ctx.settings.backend, ctx.settings.platform))
    artifacts.write_text(ctx.path('platform.yaml'),
                         header + yaml.safe_dump(doc, sort_keys=False))
    ctx.fitted()  # the written file must load (schema)
    report['base_platform'] = base_path
    return report


# -- 5. co-runs, board vs fitted twin ---------------------------------------------------------

def corun_cases(ctx: Context) -> List[Dict[str, Any]]:
    """Pairs (target + one co-runner) for every ordered processor pair and triples (target +
    every other processor) where there are three or more, each with every model as the target
    and the next models (that can run there) as co-runners."""
    pairs = set(loaded_pairs(ctx))
    names = list(ctx.models)
    procs = ctx.processors
    cases = []
    for p in procs:
        others = [q for q in procs if q != p]
        sets = [[q] for q in others] + ([others] if len(others) >= 2 else [])
        for corunners in sets:
            for i, target in enumerate(names):
                if (target, p) not in pairs:
                    continue
                chosen = {}
                for k, q in enumerate(corunners):
                    cands = [names[(i + 1 + k + j) % len(names)] for j in range(len(names))]
                    fit = [c for c in cands if (c, q) in pairs]
                    if fit:
                        chosen[q] = fit[0]
                if len(chosen) == len(corunners):
                    cases.append({'processor': p, 'model': target, 'corunners': chosen})
    return cases


def coruns(ctx: Context) -> dict:
    from hetero_infer.backends import BackgroundLoop
    from hetero_infer.interference.predictors import TwinPredictor
    from hetero_infer.twin.simulator import Twin
    s = ctx.settings
    iso = measured_isolated(ctx)
    fitted = ctx.fitted()
    twin = TwinPredictor(Twin(fitted, seed=s.seed, noise_pct=0.0), iterations=4, seed=s.seed)
    cases = corun_cases(ctx)
    precision = s.precision if s.backend == 'tensorrt' else ''
    execs: Dict[Tuple[str, str], Any] = {}

    def executor(name, proc):
        if (name, proc) not in execs:
            execs[(name, proc)] = ctx.backend.load(ctx.models[name][0], proc,
                                                   precision=precision)
        return execs[(name, proc)]

    rows = []
    try:
        with ctx.bar(total=len(cases), desc='co-runs', unit='co-run') as bar:
            for case in cases:
                target = executor(case['model'], case['processor'])
                loops = [BackgroundLoop(executor(m, q), seed=s.seed)
                         for q, m in sorted(case['corunners'].items())]
                feed = target.random_inputs(s.seed)
                for loop in loops:
                    loop.start()
                try:
                    target.run(feed)  # the co-runners are under way by now
                    lat = [ctx.latency_of(target.run(feed)) for _ in range(s.corun_repeats)]
                finally:
                    for loop in loops:
                        loop.stop()
                board_ms = float(np.median(lat))
                spec = ctx.models[case['model']][1]
                corunners = {q: ctx.models[m][1] for q, m in case['corunners'].items()}
                twin_ms = twin.latency_ms(spec, case['processor'], corunners)
                twin_iso = fitted.isolated_latency_ms(spec, case['processor'])
                board_iso = iso[(case['model'], case['processor'])]
                rows.append(dict(case, board_ms=board_ms, board_cv=_stats(lat)['cv'],
                                 board_isolated_ms=board_iso, twin_ms=twin_ms,
                                 twin_isolated_ms=twin_iso,
                                 board_slowdown=board_ms / board_iso,
                                 twin_slowdown=twin_ms / twin_iso))
                bar.update(1)
    finally:
        for ex in execs.values():
            ex.close()
    errs = [abs(r['twin_slowdown'] - r['board_slowdown']) for r in rows]
    return {'rows': rows, 'repeats': s.corun_repeats,
            'median_abs_slowdown_error': float(np.median(errs)) if errs else None,
            'twin': 'fitted platform (platform.yaml), layer-level twin, no noise'}


# -- 6. profiling and training ----------------------------------------------------------------

def _command_args(module, argv: Sequence[str]):
    import argparse
    parser = argparse.ArgumentParser(prog='hetero-infer ' + module.__name__.split('.')[-1])
    module.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


def profile(ctx: Context, out_dir: str) -> None:
    """``hetero-infer profile`` of the board (emulated: the twin of the emulated platform, which
    is what the emulated processors run, on its own clock) into ``out_dir``."""
    from hetero_infer.commands import profile as command
    s = ctx.settings
    backend = 'twin' if s.backend == 'emulated' else s.backend
    argv = ['--backend', backend, '--platform', s.platform, '--samples', s.profile_samples,
            '--zoo-samples', 0, '--seed', s.seed, '--budget-min', s.profile_budget_s / 60.0,
            '--out', out_dir]
    command.run(_command_args(command, argv))


def train(ctx: Context, out_dir: str) -> None:
    """``hetero-infer train`` on the profile, the model choice among ``candidates``."""
    from hetero_infer.commands import train as command
    s = ctx.settings
    argv = ['--data', ctx.path('profile'), '--out', out_dir, '--regressors', 'mlp',
            '--candidates', ','.join(s.candidates), '--search-iter', s.search_iter,
            '--cv', s.cv, '--pairs', 0, '--triples', 0, '--seed', s.seed]
    command.run(_command_args(command, argv))


def model_file(ctx: Context) -> str:
    """The interference model ``train`` wrote (``model/<platform>.json``), found as the
    node's ``bringup_dir`` parameter finds it."""
    from hetero_infer.serving.config import BRINGUP_MODEL_DIR, bringup_model_file
    d = ctx.path(BRINGUP_MODEL_DIR)
    found = bringup_model_file(d)
    if found is None:
        raise ModelError('%s: expected one interference model file, found %s'
                         % (d, sorted(os.listdir(d))))
    return found


# -- 7. plan and served run -------------------------------------------------------------------

def capacity_per_app(platform, specs: Sequence[Any]) -> float:
    """The largest equal rate (req/s) of every model the platform can serve, by isolated
    latencies (a linear program over the shares of each model per processor)."""
    from scipy.optimize import linprog
    procs = platform.processor_ids
    n, m = len(specs), len(procs)
    # variables: x[i, j] (req/s of model i on processor j), then r
    c = np.zeros(n * m + 1)
    c[-1] = -1.0
    a_ub, b_ub = [], []
    for j in range(m):
        row = np.zeros(n * m + 1)
        for i, spec in enumerate(specs):
            row[i * m + j] = platform.isolated_latency_ms(spec, procs[j]) / 1000.0 \
                if platform.can_run(spec, procs[j]) else 0.0
        a_ub.append(row)
        b_ub.append(1.0)
    a_eq, b_eq = [], []
    for i in range(n):
        row = np.zeros(n * m + 1)
        row[i * m:(i + 1) * m] = 1.0
        row[-1] = -1.0
        a_eq.append(row)
        b_eq.append(0.0)
    bounds = [(0.0, 0.0 if not platform.can_run(specs[k // m], procs[k % m]) else None)
              for k in range(n * m)] + [(0.0, None)]
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds,
                  method='highs')
    if not res.success:
        raise ConfigError('capacity: no feasible equal-rate load (%s)' % res.message)
    return float(res.x[-1])


def scenario(ctx: Context, fitted) -> List[Any]:
    """The applications: every model at the same rate, ``load`` x the fitted platform's
    capacity, SLO ``slo_factor`` x its fastest isolated latency (at least ``min_slo_ms``)."""
    from hetero_infer.workload.requests import App
    s = ctx.settings
    procs = set(ctx.processors)
    specs = [spec for _, spec in ctx.models.values()]
    rate = s.load * capacity_per_app(fitted, specs)
    apps = []
    for name, (_, spec) in ctx.models.items():
        fastest = min(fitted.isolated_latency_ms(spec, p) for p in procs
                      if fitted.can_run(spec, p))
        apps.append(App(name, spec, rate, max(s.slo_factor * fastest, s.min_slo_ms),
                        tuple(p for p in fitted.processor_ids if p in procs)))
    return apps


def _problem(ctx: Context, fitted, apps, predictor):
    from hetero_infer.planning.search import SimSettings, build_problem
    s = ctx.settings
    return build_problem(fitted, apps, predictor, 'goodput',
                         SimSettings(duration_s=s.serve_s, warmup_s=s.warmup_s, seed=s.seed))


def plan(ctx: Context) -> dict:
    from hetero_infer.interference.predictors import InterferencePredictor
    from hetero_infer.planning.schedulers.driver import plan_scheduler
    from hetero_infer.planning.schedulers.interface import PlanContext
    from hetero_infer.planning.schedulers.interference_aware import InterferenceOptions
    from hetero_infer.planning.schedulers.searched import SearchOptions
    from hetero_infer.planning.search import SimSettings, plan_simulator
    s = ctx.settings
    fitted = ctx.fitted()
    apps = scenario(ctx, fitted)
    model_path = model_file(ctx)
    options = (SearchOptions(n_samples=s.plan_samples, workers=1,
                             max_refine_evals=s.plan_refine_evals),
               InterferenceOptions(model=model_path))
    pctx = PlanContext(platform=fitted, apps=apps, goal='goodput', seed=s.seed,
                       settings=SimSettings(seed=s.seed), options=options)
    chosen = plan_scheduler('interference_aware', pctx)
    # the prediction for the served run: the planner's simulator on the served trace
    predictor = InterferencePredictor(fitted, model_path)
    problem = _problem(ctx, fitted, apps, predictor)
    res = plan_simulator(problem).run(chosen.make_dispatcher(), keep_latencies=True)
    return {'applications': [{'name': a.name, 'rate_hz': a.rate_hz, 'slo_ms': a.slo_ms,
                              'processors': list(a.processors)} for a in apps],
            'capacity_per_app_hz': apps[0].rate_hz / s.load, 'load': s.load,
            'policy': chosen.policy.to_dict(), 'plan_time_s': round(chosen.plan_time_s, 2),
            'search_predicted': dict(chosen.search.metrics),
            'interference_model': os.path.relpath(model_path, ctx.out),
            'predicted': _sim_report(res, apps, problem)}


def _sim_report(res, apps, problem) -> dict:
    return {'goodput_hz': res.goodput, 'throughput_hz': res.throughput,
            'slo_attainment': {a.name: (res.met[i] / res.offered[i] if res.offered[i] else 1.0)
                               for i, a in enumerate(apps)},
            'offered': list(res.offered), 'met': list(res.met), 'dropped': list(res.dropped),
            'window_s': res.window_s,
            'planned_utilisation': None}


def serve(ctx: Context) -> dict:
    """Serve the plan's arrival trace on the board and compare with the prediction: real
    backends (and the emulated one with ``serve_clock='wall'``) through the serving engine in
    wall time; the emulated backend by default on its virtual clock (the layer-level twin of
    the emulated platform serving the same trace with the same router)."""
    from hetero_infer.interference.predictors import IsolatedPredictor
    from hetero_infer.planning.policy import Policy
    from hetero_infer.planning.search import plan_simulator
    from hetero_infer.workload.requests import App
    s = ctx.settings
    doc = artifacts.read_json(ctx.path('plan.json'))
    fitted = ctx.fitted()
    apps = [App(a['name'], ctx.models[a['name']][1], a['rate_hz'], a['slo_ms'],
                tuple(a['processors'])) for a in doc['applications']]
    policy = Policy.from_dict(doc['policy'], where=ctx.path('plan.json'))
    # the trace: the planner's simulator's arrivals for the same seed and duration (the
    # latencies do not enter the arrivals, so the isolated table is enough here)
    problem = _problem(ctx, fitted, apps, IsolatedPredictor(fitted))
    arrivals = plan_simulator(problem)._arrivals(1.0, s.serve_s)
    if s.backend == 'emulated' and s.serve_clock == 'virtual':
        served, clock = _serve_on_twin(ctx, apps, policy, arrivals)
    else:
        served, clock = _serve_with_engine(ctx, apps, policy, problem, fitted, arrivals)
    pred = doc['predicted']
    procs = policy.processor_ids
    planned = {p: sum(a.rate_hz * policy.allocation[i, j] * fitted.isolated_latency_ms(
        a.model, p) / 1000.0 for i, a in enumerate(apps) if problem.mask[i, j])
        for j, p in enumerate(procs)}
    err = 100.0 * (served['goodput_hz'] - pred['goodput_hz']) / pred['goodput_hz'] \
        if pred['goodput_hz'] else math.nan
    return {'served': served, 'predicted': dict(pred, planned_utilisation=planned),
            'goodput_error_pct': err, 'clock': clock}


def _summary(ctx: Context, apps, outcomes, busy_ms: Dict[str, float]) -> dict:
    """Metrics of ``outcomes`` (``(arrival ms, app, latency ms or None if dropped)``) over the
    window by arrival time, as the planner's simulator counts them."""
    s = ctx.settings
    lo, hi = s.warmup_s * 1000.0, s.serve_s * 1000.0
    offered = [0] * len(apps)
    met = [0] * len(apps)
    dropped = [0] * len(apps)
    lat: List[List[float]] = [[] for _ in apps]
    for t, i, ms in outcomes:
        if not lo <= t < hi:
            continue
        offered[i] += 1
        if ms is None:
            dropped[i] += 1
            continue
        lat[i].append(ms)
        met[i] += ms <= apps[i].slo_ms
    window = (hi - lo) / 1000.0
    return {'goodput_hz': sum(met) / window,
            'slo_attainment': {a.name: met[i] / offered[i] if offered[i] else 1.0
                               for i, a in enumerate(apps)},
            'offered': offered, 'met': met, 'dropped': dropped, 'window_s': window,
            'p99_latency_ms': {a.name: float(np.percentile(lat[i], 99)) if lat[i] else None
                               for i, a in enumerate(apps)},
            'utilisation': {p: v / (s.serve_s * 1000.0) for p, v in busy_ms.items()},
            'requests': len(outcomes)}


def _serve_on_twin(ctx: Context, apps, policy, arrivals):
    from hetero_infer.planning.schedulers.searched import router_factory
    from hetero_infer.planning.search import SimSettings
    from hetero_infer.twin.simulator import Twin
    s = ctx.settings
    twin = Twin(ctx.base, seed=s.seed)  # the emulated platform, its default noise
    records = twin.serve(apps, router_factory(policy, SimSettings())(), duration_s=s.serve_s,
                         seed=s.seed, arrivals=[(t, k, i) for k, (t, i) in enumerate(arrivals)])
    busy: Dict[str, float] = {p: 0.0 for p in policy.processor_ids}
    outcomes = []
    for r in records:
        outcomes.append((r.arrival_ms, r.app, r.latency_ms))
        if r.done and r.proc is not None:
            busy[r.proc] += r.finish_ms - r.start_ms - apps[r.app].model.postprocess_ms
    return (_summary(ctx, apps, outcomes, busy),
            'virtual: the layer-level twin of the emulated platform %s' % ctx.base.name)


def _serve_with_engine(ctx: Context, apps, policy, problem, fitted, arrivals):
    import threading

    from hetero_infer.serving.engine import ServingEngine
    s = ctx.settings
    procs = policy.processor_ids
    precision = s.precision if s.backend == 'tensorrt' else ''
    executors, expected, feeds = [], [], []
    for i, a in enumerate(apps):
        row, exp = {}, {}
        for j, p in enumerate(procs):
            if problem.mask[i, j]:  # the router may overflow to any processor allowed
                row[p] = ctx.backend.load(ctx.models[a.name][0], p, precision=precision)
                exp[p] = fitted.isolated_latency_ms(a.model, p) * s.time_scale
        executors.append(row)
        expected.append(exp)
        feeds.append(next(iter(row.values())).random_inputs(s.seed))
    scale = s.time_scale if s.backend == 'emulated' else 1.0
    outcomes = []
    lock = threading.Lock()
    done = threading.Event()

    def on_outcome(o):
        with lock:
            outcomes.append(o)
            if len(outcomes) == len(arrivals):
                done.set()

    eng = ServingEngine(app_names=[a.name for a in apps], executors=executors,
                        expected_ms=expected, slo_ms=[a.slo_ms * scale for a in apps],
                        policy=policy, on_outcome=on_outcome,
                        queue_limit=problem.settings.max_queue, admission_control=False)
    busy0 = eng.utilisation()
    t0 = time.perf_counter() + 0.05
    received = {}
    try:
        with ctx.bar(total=len(arrivals), desc='served run', unit='req') as bar:
            for t_ms, i in arrivals:
                due = t0 + t_ms * scale / 1000.0
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                req = eng.new_request(i, feeds[i], received_s=due)
                received[req.request_id] = t_ms
                eng.submit(req)
                bar.update(1)
            done.wait(max(10.0, 20 * max(a.slo_ms for a in apps) * scale / 1000.0))
        span_s = time.perf_counter() - t0
        busy = {p: (v - busy0.get(p, 0.0)) / span_s for p, v in eng.utilisation().items()}
    finally:
        eng.close()
        for row in executors:
            for ex in row.values():
                ex.close()
    rows = []
    for o in outcomes:
        ms = None
        if o.ok:
            ms = (o.finished_s - o.request.received_s) * 1000.0 / scale \
                + apps[o.request.app_index].model.postprocess_ms
        rows.append((received[o.request.request_id], o.request.app_index, ms))
    served = _summary(ctx, apps, rows, {p: v * 1000.0 * s.serve_s for p, v in busy.items()})
    served['outcomes'] = len(outcomes)
    return served, (('emulated time x %g wall' % scale) if s.backend == 'emulated'
                    else 'wall')
