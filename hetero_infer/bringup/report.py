"""``report.json``, ``report.md`` and ``twin_vs_board.png`` of a bring-up directory, from the
artifacts its steps left (remade on every run: they cost nothing)."""

import os
from typing import Any, Dict, List, Optional

from hetero_infer.bringup import artifacts
from hetero_infer.interference.regressor_selection import TIE_POINTS as TIE

#: Targets the report checks each headline against (issue 25's "done when").
TARGETS = {'fit_median_abs_error_pct': 10.0, 'goodput_abs_error_pct': 10.0}


def _load(out: str, name: str) -> Optional[Any]:
    path = os.path.join(out, name)
    return artifacts.read_json(path) if os.path.exists(path) else None


def interference_summary(accuracy: Optional[dict]) -> Optional[dict]:
    """Per configuration: test-retest, the selected model and the two baselines side by side,
    and whether a constant was selected everywhere (no learnable interference)."""
    if not accuracy:
        return None
    sel = accuracy.get('selected') or {}
    base = accuracy.get('baselines') or {}
    rows = []
    for cfg in sel:
        rows.append({'configuration': cfg,
                     'test_retest': (accuracy.get('test_retest') or {}).get(cfg),
                     'selected': sel[cfg]['regressor'], 'selected_accuracy': sel[cfg]['accuracy'],
                     'median_slowdown': (base.get('median_slowdown') or {}).get(cfg),
                     'no_interference': (base.get('no_interference') or {}).get(cfg),
                     'why': sel[cfg].get('why')})
    constant = bool(rows) and all(r['selected'] in ('median', 'none') for r in rows)
    return {'rows': rows, 'constant_selected': constant}


def build(out: str, timings: Dict[str, Any]) -> dict:
    settings = _load(out, artifacts.SETTINGS_FILE) or {}
    doc = {'settings': settings, 'step_seconds': timings}
    for name in ('environment', 'engines', 'isolated', 'fit', 'coruns', 'plan', 'serve'):
        doc[name] = _load(out, name + '.json')
    doc['interference'] = interference_summary(_load(out, os.path.join('model',
                                                                       'accuracy.json')))
    profile = _load(out, os.path.join('profile', 'dataset.json'))
    doc['profile'] = None if profile is None else {
        'samples': profile.get('samples'), 'stopped_by_budget': profile.get('stopped_by_budget'),
        'quality': profile.get('quality')}
    head: Dict[str, Any] = {}
    if doc['fit']:
        head['fit_median_abs_error_pct'] = doc['fit']['median_abs_error_pct']
        head['fit_max_abs_error_pct'] = doc['fit']['max_abs_error_pct']
    if doc['coruns']:
        head['corun_median_abs_slowdown_error'] = doc['coruns']['median_abs_slowdown_error']
    if doc['serve']:
        head['goodput_predicted_hz'] = doc['serve']['predicted']['goodput_hz']
        head['goodput_served_hz'] = doc['serve']['served']['goodput_hz']
        head['goodput_error_pct'] = doc['serve']['goodput_error_pct']
    if doc['interference']:
        head['constant_interference_model'] = doc['interference']['constant_selected']
    head['targets'] = dict(TARGETS)
    doc['headline'] = head
    return doc


def _f(v, fmt='%.2f') -> str:
    return '-' if v is None else fmt % v


def markdown(doc: dict) -> str:
    s = doc['settings']
    lines = ['# Bring-up: %s backend, platform %s' % (s.get('backend'), s.get('platform')), '',
             'Models: %s. Seed %s. Step times (s): %s.' % (
                 ', '.join(s.get('models') or []), s.get('seed'),
                 ', '.join('%s %.1f' % (k, v) for k, v in doc['step_seconds'].items())), '']
    env = doc.get('environment')
    if env:
        libs = env.get('libraries') or {}
        lines += ['## 1. Environment', '',
                  'Processors: %s (backend offers %s; platform describes %s). Python %s, '
                  'onnxruntime %s, tensorrt %s, numpy %s; %s CPUs, 1-min load %s.' % (
                      ', '.join(env['processors']), ', '.join(env['backend_processors']),
                      ', '.join(env['platform_processors']), libs.get('python'),
                      libs.get('onnxruntime'), libs.get('tensorrt'), libs.get('numpy'),
                      env.get('cpu_count'), _f(env.get('load_average_1min'))), '']
    eng = doc.get('engines')
    if eng:
        lines += ['## 2. Engines / sessions', '', '| model | processor | status | load s | '
                  'GPU-fallback layers |', '|---|---|---|---|---|']
        for r in eng['rows']:
            lines.append('| %s | %s | %s | %s | %s |' % (
                r['model'], r['processor'], r['status'] if r['status'] != 'error'
                else 'error: %s' % r.get('reason'), _f(r.get('load_s')),
                len(r.get('gpu_fallback_layers') or [])))
        lines.append('')
    iso, fit = doc.get('isolated'), doc.get('fit')
    if iso:
        fitted = {(r['model'], r['processor']): r for r in (fit or {}).get('rows', [])}
        lines += ['## 3-4. Isolated latency and the fitted platform', '',
                  'Measured: median of %d runs (%s). Fitted: the twin of platform.yaml, '
                  'fitted from %s.' % (iso['repeats'], iso['clock'],
                                       (fit or {}).get('start', '-')), '',
                  '| model | processor | measured ms | CV | fitted ms | error % |',
                  '|---|---|---|---|---|---|']
        for r in iso['rows']:
            f = fitted.get((r['model'], r['processor'])) or {}
            lines.append('| %s | %s | %.3f | %.3f | %s | %s |' % (
                r['model'], r['processor'], r['median_ms'], r['cv'],
                _f(f.get('fitted_ms'), '%.3f'), _f(f.get('error_pct'), '%+.1f')))
        if fit:
            lines += ['', 'Median absolute error of the fit: **%.2f%%** (target <= %g%%), '
                      'largest %.2f%%. Fitted values: %s.' % (
                          fit['median_abs_error_pct'], TARGETS['fit_median_abs_error_pct'],
                          fit['max_abs_error_pct'],
                          '; '.join('%s %s' % (p, ', '.join('%s %.4g' % kv for kv in v.items()))
                                    for p, v in fit['values'].items()))]
            from hetero_infer.evaluation.platform_fit import params_at_bounds
            stuck = [b for b in params_at_bounds(fit['values'])
                     if (b['parameter'], b['bound']) != ('overhead_ms', 'lower')]
            if stuck:
                # an efficiency at 1 means the board beats the base file's peak: no efficiency
                # can fit it, the base file's peak_gmacs / bandwidth_gbps must be raised
                lines += ['', 'At the bound of their range (the base file\'s peak rate or '
                          'bandwidth does not fit this board; correct them in the base file '
                          'given to --platform): %s.' % '; '.join(
                              '%s %s %.4g (%s bound)' % (b['processor'], b['parameter'],
                                                         b['value'], b['bound'])
                              for b in stuck)]
        lines.append('')
    co = doc.get('coruns')
    if co:
        lines += ['## 5. Co-runs: board vs fitted twin', '',
                  'Slowdown = co-run latency / isolated latency, median of %d runs on the '
                  'board; the twin is %s.' % (co['repeats'], co['twin']), '',
                  '| target | on | co-runners | board slowdown | twin slowdown |',
                  '|---|---|---|---|---|']
        for r in co['rows']:
            lines.append('| %s | %s | %s | %.3f | %.3f |' % (
                r['model'], r['processor'],
                ', '.join('%s on %s' % (m, q) for q, m in sorted(r['corunners'].items())),
                r['board_slowdown'], r['twin_slowdown']))
        lines += ['', 'Median absolute difference of the slowdowns: %s.'
                  % _f(co['median_abs_slowdown_error'], '%.3f'), '']
    prof, inter = doc.get('profile'), doc.get('interference')
    if prof or inter:
        lines += ['## 6. Interference profile and model', '']
        if prof:
            lines.append('%s random-layer samples%s.' % (
                prof.get('samples'), ' (stopped by the time budget)'
                if prof.get('stopped_by_budget') else ''))
        if inter:
            lines += ['', 'Accuracy = 100 x (1 - MAPE) of co-run latency on held-out samples.',
                      '', '| configuration | test-retest | selected | selected accuracy | '
                      'constant (median slowdown) | no interference |',
                      '|---|---|---|---|---|---|']
            for r in inter['rows']:
                lines.append('| %s | %s | %s | %s | %s | %s |' % (
                    r['configuration'], _f(r['test_retest'], '%.1f'), r['selected'],
                    _f(r['selected_accuracy'], '%.1f'), _f(r['median_slowdown'], '%.1f'),
                    _f(r['no_interference'], '%.1f')))
            lines.append('')
            if inter['constant_selected']:
                lines.append('**The board shows no learnable interference**: a constant '
                             '(the median slowdown, or none) predicts co-run latency as well as '
                             'any regressor in every configuration, so the planner uses it.')
            else:
                lines.append('Selected where a constant is not within %s point of the best '
                             'regressor (see model/accuracy.md for why, per configuration).'
                             % TIE)
            lines.append('')
    plan, serve = doc.get('plan'), doc.get('serve')
    if plan:
        lines += ['## 7. Plan and served run', '',
                  'Scenario: every model at %.1f req/s (%.2f x the fitted platform\'s equal-rate '
                  'capacity of %.1f req/s per model), SLOs %s. Plan: interference_aware, goal '
                  'goodput, in %.1f s.' % (
                      plan['applications'][0]['rate_hz'], plan['load'],
                      plan['capacity_per_app_hz'],
                      ', '.join('%s %.2f ms' % (a['name'], a['slo_ms'])
                                for a in plan['applications']), plan['plan_time_s']), '']
    if serve:
        p, v = serve['predicted'], serve['served']
        lines += ['| | predicted | served |', '|---|---|---|',
                  '| goodput (req/s) | %.1f | %.1f |' % (p['goodput_hz'], v['goodput_hz'])]
        for name in v['slo_attainment']:
            lines.append('| SLO attainment, %s | %.3f | %.3f |' % (
                name, p['slo_attainment'][name], v['slo_attainment'][name]))
        for proc in sorted(v['utilisation']):
            lines.append('| utilisation, %s | %s | %.3f |' % (
                proc, _f((p.get('planned_utilisation') or {}).get(proc), '%.3f'),
                v['utilisation'][proc]))
        lines += ['', 'Served vs predicted goodput: **%+.2f%%** (target within %g%%); clock: '
                  '%s. Predicted utilisation: the plan\'s shares x isolated latencies.'
                  % (serve['goodput_error_pct'], TARGETS['goodput_abs_error_pct'],
                     serve['clock']), '']
    if os.path.exists(os.path.join(doc.get('_out', ''), 'twin_vs_board.png')):
        lines += ['![twin vs board](twin_vs_board.png)', '']
    return '\n'.join(lines)


def plot(path: str, doc: dict) -> bool:
    """Board vs twin latencies (isolated: fitted; co-runs: the fitted twin), log-log."""
    iso, fit, co = doc.get('isolated'), doc.get('fit'), doc.get('coruns')
    if not fit:
        return False
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 5))
    xs: List[float] = []
    b = [r['measured_ms'] for r in fit['rows']]
    t = [r['fitted_ms'] for r in fit['rows']]
    ax.scatter(b, t, label='isolated', marker='o')
    xs += b + t
    if co and co['rows']:
        b = [r['board_ms'] for r in co['rows']]
        t = [r['twin_ms'] for r in co['rows']]
        ax.scatter(b, t, label='co-run', marker='x')
        xs += b + t
    lo, hi = min(xs) / 1.3, max(xs) * 1.3
    ax.plot([lo, hi], [lo, hi], 'k--', linewidth=0.8, label='twin = board')
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_xlabel('board latency (ms)')
    ax.set_ylabel('fitted twin latency (ms)')
    ax.set_title('Twin vs board (%s)' % (iso or {}).get('clock', ''))
    ax.legend()
    fig.tight_layout()
    artifacts.write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format='png'))
    plt.close(fig)
    return True


def write(out: str, timings: Dict[str, Any]) -> dict:
    doc = build(out, timings)
    plot(os.path.join(out, 'twin_vs_board.png'), doc)
    doc['_out'] = out
    text = markdown(doc)
    del doc['_out']
    artifacts.write_json(os.path.join(out, 'report.json'), doc)
    artifacts.write_text(os.path.join(out, 'report.md'), text)
    return doc
