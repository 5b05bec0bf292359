"""Fitting a platform file's free roofline numbers to measured latencies.

The roofline of :mod:`hetero_infer.platform.spec` has a few numbers per processor that no data
sheet gives: the share of peak each layer kind reaches (``efficiency``) and the fixed cost per
layer (``overhead_ms``). Two fits set them:

- :func:`fit_to_latencies`: to whole-model isolated latencies measured on a board (what
  ``hetero-infer bringup`` measures): every processor at once (a DLA's GPU-fallback layers use
  the GPU's numbers), least squares on log latency, in log-parameter space, from neutral starting
  values (the base file's efficiencies are not trusted), with the residual per model;
- :func:`fit_facts` (``python tools/fit_platform.py --platform xavier``): the Xavier GPU and
  DLA to FACTS.md's published latencies (torch2trt GPU table, HaX-CoNN DLA numbers);
- :func:`fit_contention` (``--contention``): the contention parameters (each processor's curve
  and the GPU-side work of DLA inference, :data:`CONTENTION_PARAMS`) by least squares over every
  gated interference check of ``hetero-infer calibrate`` at once, each residual divided by half
  its band; the talk's triple distribution is subsampled (every ``stride``-th triple, one
  iteration) to keep each evaluation near a second. Deterministic (seed 0), so the fit
  reproduces.

Peaks, bandwidths and contention curves stay as the base file gives them.
"""

import copy
import dataclasses
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from hetero_infer.errors import ConfigError
from hetero_infer.platform.spec import Platform, Processor

GPU_PARAMS = ('conv', 'fc', 'dwconv', 'overhead_ms')
DLA_PARAMS = ('conv', 'fc', 'overhead_ms')

#: Bounds of the fitted numbers: efficiency (share of peak) and per-layer cost (ms).
EFFICIENCY_BOUNDS = (0.005, 1.0)
OVERHEAD_BOUNDS_MS = (1e-4, 0.5)
#: The layer kinds with MACs whose efficiency a latency fit may move, most common first.
FIT_KINDS = ('conv', 'dwconv', 'fc')


def with_params(proc: Processor, names, values) -> Processor:
    """``proc`` with the efficiencies (by kind) and ``overhead_ms`` in ``names`` replaced."""
    eff = dict(proc.efficiency)
    overhead = proc.overhead_ms
    for name, v in zip(names, values):
        if name == 'overhead_ms':
            overhead = float(v)
        else:
            eff[name] = float(v)
    return dataclasses.replace(proc, overhead_ms=overhead, efficiency=eff)


def latency(platform, proc, model) -> float:
    """Isolated latency of ``model`` on ``proc`` alone, every layer on ``proc`` (FACTS fit)."""
    total = 0.0
    for layer in model.layers:
        c = proc.compute_ms(layer)
        m = proc.memory_ms(layer)
        total += proc.overhead_ms + max(c, m)
    return total


def fit(platform: Platform, proc_id: str, names, targets):
    """Least squares on log latency of one processor's ``names`` to ``targets``
    (``[(ModelSpec, ms)]``); returns ``({name: value}, residuals)``."""
    from scipy.optimize import least_squares
    proc = platform.processors[proc_id]
    x0 = [proc.overhead_ms if n == 'overhead_ms' else proc.efficiency[n] for n in names]
    lo = [0.005 for _ in names]  # >= 5 us per layer, >= 0.5% of peak
    hi = [0.2 if n == 'overhead_ms' else 1.0 for n in names]

    def residuals(x):
        p = with_params(proc, names, x)
        return [math.log(latency(platform, p, m) / t) for m, t in targets]

    res = least_squares(residuals, np.clip(x0, lo, hi), bounds=(lo, hi))
    return dict(zip(names, res.x)), residuals(res.x)


def fit_facts(name: str = 'xavier') -> List[str]:
    """The FACTS fit of ``name``'s GPU and DLA; returns the printed lines."""
    from hetero_infer.evaluation.calibration import HAXCONN_DLA_GPU_MS, TORCH2TRT_XAVIER_MS
    from hetero_infer.models.zoo import load_model
    plat = Platform.load(name)
    out = []
    for proc_id, params, targets in (
            ('gpu', GPU_PARAMS, [(load_model(n), ms) for n, ms in TORCH2TRT_XAVIER_MS.items()]),
            ('dla0', DLA_PARAMS, [(load_model(n), d)
                                  for n, (g, d) in HAXCONN_DLA_GPU_MS.items()])):
        values, res = fit(plat, proc_id, params, targets)
        out.append('%s: %s' % (proc_id[:3], {k: round(float(v), 4) for k, v in values.items()}))
        for (m, t), r in zip(targets, res):
            out.append('  %-14s measured %6.3f ms  fitted %+5.1f%%'
                       % (m.name, t, 100 * (math.exp(r) - 1)))
    return out


# -- a board's own isolated latencies ---------------------------------------------------------

def _fit_names(platform: Platform, proc_id: str, models: Sequence) -> List[str]:
    """The kinds of ``proc_id`` worth fitting: those carrying at least 5% of the models' MACs
    there (at most one fewer than the models measured on it), then ``overhead_ms``."""
    macs: Dict[str, float] = {}
    for m in models:
        total = float(sum(layer.macs for layer in m.layers)) or 1.0
        for layer in m.layers:
            if layer.kind in FIT_KINDS and layer.macs > 0:
                macs[layer.kind] = macs.get(layer.kind, 0.0) + layer.macs / total
    share = sum(macs.values()) or 1.0
    kinds = [k for k in sorted(macs, key=lambda k: -macs[k]) if macs[k] / share >= 0.05]
    return kinds[:max(1, len(models) - 1)] + ['overhead_ms']


def fit_to_latencies(base: Platform, measured: Mapping[Tuple[str, str], float],
                     models: Mapping[str, object], *, neutral_start: bool = True
                     ) -> Tuple[Platform, dict]:
    """Fit ``base``'s efficiencies and per-layer costs to measured isolated latencies.

    :param measured: ``{(model name, processor id): ms}``.
    :param models: ``{model name: ModelSpec}`` (the layer tables of the measured models).
    :param neutral_start: start every fitted number mid-range (log scale) instead of at the
        base file's value, so the result depends on the measurements only.
    :returns: ``(fitted platform, report)``; the report holds the fitted values per processor
        and per ``model|processor`` the measured and fitted ms and the error in percent.
    :raises ConfigError: a processor the platform lacks, a model without a layer table, a
        latency that is not positive, or a pair the platform cannot run.
    """
    from scipy.optimize import least_squares
    pairs = sorted(measured)
    for model_name, proc in pairs:
        if proc not in base.processors:
            raise ConfigError('fit: processor %r is not in platform %s (it has %s)'
                              % (proc, base.name, ', '.join(base.processor_ids)))
        if model_name not in models:
            raise ConfigError('fit: no layer table for model %r' % model_name)
        ms = measured[(model_name, proc)]
        if not (ms > 0 and math.isfinite(ms)):
            raise ConfigError('fit: latency of %s on %s must be > 0, got %r'
                              % (model_name, proc, ms))
        if not base.can_run(models[model_name], proc):
            raise ConfigError('fit: platform %s cannot run %s on %s'
                              % (base.name, model_name, proc))
    params: List[Tuple[str, str]] = []
    for proc in base.processor_ids:
        on_proc = [models[m] for m, p in pairs if p == proc]
        if on_proc:
            params += [(proc, n) for n in _fit_names(base, proc, on_proc)]
    lo = np.array([math.log(OVERHEAD_BOUNDS_MS[0] if n == 'overhead_ms'
                            else EFFICIENCY_BOUNDS[0]) for _, n in params])
    hi = np.array([math.log(OVERHEAD_BOUNDS_MS[1] if n == 'overhead_ms'
                            else EFFICIENCY_BOUNDS[1]) for _, n in params])
    if neutral_start:
        x0 = 0.5 * (lo + hi)
    else:
        x0 = np.clip([math.log(base.processors[p].overhead_ms if n == 'overhead_ms'
                               else base.processors[p].efficiency[n]) for p, n in params],
                     lo, hi)

    def platform_at(x) -> Platform:
        procs = dict(base.processors)
        for proc in base.processor_ids:
            names = [n for p, n in params if p == proc]
            if names:
                vals = [math.exp(v) for (p, _), v in zip(params, x) if p == proc]
                procs[proc] = with_params(base.processors[proc], names, vals)
        return dataclasses.replace(base, processors=procs, _cache={})

    def residuals(x):
        plat = platform_at(x)
        return [math.log(plat.isolated_latency_ms(models[m], p) / measured[(m, p)])
                for m, p in pairs]

    res = least_squares(residuals, x0, bounds=(lo, hi))
    fitted = platform_at(res.x)
    values: Dict[str, Dict[str, float]] = {}
    for (proc, name), v in zip(params, res.x):
        values.setdefault(proc, {})[name] = float(math.exp(v))
    rows = []
    for m, p in pairs:
        got = fitted.isolated_latency_ms(models[m], p)
        rows.append({'model': m, 'processor': p, 'measured_ms': measured[(m, p)],
                     'fitted_ms': got,
                     'error_pct': 100.0 * (got - measured[(m, p)]) / measured[(m, p)]})
    errors = [abs(r['error_pct']) for r in rows]
    return fitted, {'values': values, 'rows': rows,
                    'median_abs_error_pct': float(np.median(errors)) if errors else None,
                    'max_abs_error_pct': float(max(errors)) if errors else None,
                    'start': 'neutral (mid-range, log scale)' if neutral_start else 'base file',
                    'cost': float(res.cost), 'evaluations': int(res.nfev)}


def params_at_bounds(values: Mapping[str, Mapping[str, float]], *, rel: float = 1e-3
                     ) -> List[Dict[str, Any]]:
    """The fitted values of :func:`fit_to_latencies` that sit on a bound of their range
    (``EFFICIENCY_BOUNDS``, ``OVERHEAD_BOUNDS_MS``): where the fit could not go further, the
    base file's fixed numbers (peak rate, bandwidth) do not fit the board."""
    out = []
    for proc, vals in values.items():
        for name, v in vals.items():
            lo, hi = OVERHEAD_BOUNDS_MS if name == 'overhead_ms' else EFFICIENCY_BOUNDS
            for side, bound in (('lower', lo), ('upper', hi)):
                if abs(v - bound) <= rel * bound:
                    out.append({'processor': proc, 'parameter': name, 'value': v,
                                'bound': side})
    return out


def fitted_document(base_doc: dict, values: Mapping[str, Mapping[str, float]], *,
                    description: Optional[str] = None) -> dict:
    """``base_doc`` (a parsed platform file) with the fitted ``values`` written in.

    Processors that shared one YAML anchor are written apart, since each has its own fit.
    """
    doc = copy.deepcopy({k: v for k, v in base_doc.items() if k != 'processors'})
    doc['processors'] = {p: copy.deepcopy(pdoc) for p, pdoc in base_doc['processors'].items()}
    for proc, vals in values.items():
        pdoc = doc['processors'][proc]
        for name, v in vals.items():
            if name == 'overhead_ms':
                pdoc['overhead_ms'] = round(float(v), 6)
            else:
                pdoc['efficiency'][name] = round(float(v), 6)
    if description is not None:
        doc['description'] = description
    return doc


# -- contention: curves and the GPU-side work of DLA inference, fitted to every check at once --

def _contention_params(busy_share_max):
    return (('dla_gpu_work.busy_share', 0.0, busy_share_max),
            ('processors.gpu.contention.threshold', 0.30, 0.45),
            ('processors.gpu.contention.alpha', 0.5, 40.0),
            ('processors.gpu.contention.power', 1.0, 3.0),
            ('processors.dla0.contention.alpha', 0.05, 3.0),
            ('processors.dla0.contention.power', 0.3, 1.5),
            ('processors.dla0.contention.cap', 0.5, 0.9))


#: (YAML path, lower bound, upper bound) of each contention parameter the fit moves. The
#: upper bound of dla_gpu_work.busy_share is what the GR3D observations allow (FACTS: 30-40% of
#: the DLA inference's duration with DLA-only load; forum 219770, on Orin: ~30%); the fit, not
#: the bound, decides how much of the GPU's measured losses it explains.
CONTENTION_PARAMS = {'xavier': _contention_params(0.40), 'orin': _contention_params(0.30)}


def _set(doc: dict, path: str, value: float) -> None:
    keys = path.split('.')
    for k in keys[:-1]:
        doc = doc[k]
    doc[keys[-1]] = float(value)


def _get(doc: dict, path: str) -> float:
    for k in path.split('.'):
        doc = doc[k]
    return float(doc)


def contention_residuals(doc: dict, names, values, *, stride: int):
    """Band-normalised residuals ``(simulated - reference) / half band`` of every gated check
    (the DLAs share one curve: dla1 is dla0's YAML anchor)."""
    from hetero_infer.evaluation.calibration import calibration_checks
    doc = copy.deepcopy(doc)
    for name, v in zip(names, values):
        _set(doc, name, v)
    if 'processors.dla0.contention.alpha' in names:
        doc['processors']['dla1'] = doc['processors']['dla0']
    plat = Platform.from_dict(doc, where='fit')
    checks = calibration_checks(plat, iterations=2, triple_stride=stride,
                                triple_iterations=1, latencies=False, reported=False)
    gated = [c for c in checks if c['gate']]
    return gated, [(c['simulated'] - c['reference']) / (0.5 * (c['high'] - c['low']))
                   for c in gated]


def fit_contention(path: str, name: str, *, stride: int):
    """Fit :data:`CONTENTION_PARAMS` of platform file ``path``; returns ``(values, gated
    checks, residuals)``."""
    from scipy.optimize import least_squares

    from hetero_infer.io.yaml_file import read_yaml
    doc = read_yaml(path, 'platform')
    params = CONTENTION_PARAMS[name]
    names = [p[0] for p in params]
    lo = np.array([p[1] for p in params])
    hi = np.array([p[2] for p in params])
    x0 = np.clip([_get(doc, n) if _has(doc, n) else 0.5 * (a + b)
                  for n, a, b in params], lo, hi)

    def residuals(x):
        r = contention_residuals(doc, names, x, stride=stride)[1]
        print('  ' + ' '.join('%.4g' % v for v in x), '-> %.3f' % sum(v * v for v in r),
              flush=True)
        return r

    res = least_squares(residuals, x0, bounds=(lo, hi), diff_step=0.03, max_nfev=60)
    # The twin's event order makes the objective slightly rough, so the trust-region steps can
    # stall early; one pass of a line search per parameter (x 0.9, 0.95, 1.05, 1.1 within the
    # bounds) keeps any point with a lower sum of squares. Deterministic like the rest.
    x = np.array(res.x)
    best = sum(v * v for v in residuals(x))
    for i in range(len(x)):
        for f in (0.9, 0.95, 1.05, 1.1):
            trial = x.copy()
            trial[i] = min(hi[i], max(lo[i], x[i] * f))
            ssr = sum(v * v for v in residuals(trial))
            if ssr < best:
                x, best = trial, ssr
    gated, r = contention_residuals(doc, names, x, stride=stride)
    return dict(zip(names, x)), gated, r


def _has(doc, path):
    try:
        _get(doc, path)
        return True
    except (KeyError, TypeError):
        return False


def main(argv=None) -> int:
    """``python tools/fit_platform.py [--platform xavier] [--contention] [--stride N]``."""
    import argparse
    import os

    from hetero_infer.platform.spec import PLATFORM_DIR
    ap = argparse.ArgumentParser(description='Fit a platform\'s per-kind efficiencies and '
                                             'per-layer overheads to measured latencies.')
    ap.add_argument('--platform', default='xavier')
    ap.add_argument('--contention', action='store_true',
                    help='fit the contention parameters (curves and the GPU-side work of DLA '
                         'inference) to every published interference check at once')
    ap.add_argument('--stride', type=int, default=7,
                    help='with --contention: keep every n-th triple of the talk distribution')
    args = ap.parse_args(argv)
    if args.contention:
        path = os.path.join(PLATFORM_DIR, args.platform + '.yaml')
        values, gated, r = fit_contention(path, args.platform, stride=args.stride)
        print('contention fit (%s, every %d-th triple):' % (args.platform, args.stride))
        for k, v in values.items():
            print('  %-40s %.4g' % (k, v))
        print('  %-40s %10s %10s %14s %9s' % ('check', 'simulated', 'reference', 'band',
                                             'residual'))
        for c, ri in zip(gated, r):
            print('  %-40s %10.3f %10s %6.3g..%-6.3g %+9.2f' % (
                c['check'], c['simulated'], c['reference'], c['low'], c['high'], ri))
        print('  sum of squared band-normalised residuals: %.3f' % sum(x * x for x in r))
        return 0
    print('\n'.join(fit_facts(args.platform)))
    return 0
