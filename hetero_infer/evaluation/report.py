"""What the evaluation writes: summary.json, details.json, summary.md and PNG plots."""

import json
import math
import os
from typing import List, Optional

from hetero_infer.evaluation import statistics as eval_stats
from hetero_infer.planning.metrics import RUN_METRICS

#: The scheduler every other one is compared with.
PROPOSED = 'interference_aware'
#: Per-scenario metrics in summary.json (each with ``<metric>_runs``), in report order.
METRICS = tuple(RUN_METRICS)
#: What each metric is, with its unit (table captions).
LABELS = RUN_METRICS
#: The goals the schedulers plan for (paired comparisons and plots are per goal).
GOALS = ('goodput', 'slo99_throughput')


def _scheds(summary: dict) -> List[str]:
    out: List[str] = []
    for s in summary['scenarios']:
        for k in s['results']:
            if k not in out:
                out.append(k)
    return out


def _metrics(summary: dict) -> List[str]:
    return [m for m in METRICS
            if any(m in r for s in summary['scenarios'] for r in s['results'].values())]


def _pct(v) -> str:
    return 'n/a' if v is None else '%+.1f%%' % v


def _fmt(metric: str, v: float) -> str:
    return '%.3f' % v if metric in ('fairness', 'slo_attainment_min') else '%.1f' % v


def write_markdown(summary: dict, details: dict, path: str) -> None:
    """Geometric means with bootstrap CIs first, the talk's mean second, then the checks
    (oracle, plan fidelity, plan variance, load sweep, time profile) and per-scenario tables
    with 95% CIs. Metrics that were not measured (``--no-slo99``) get no table."""
    scheds = _scheds(summary)
    metrics = _metrics(summary)
    n = summary.get('replications', 1)
    seeds = details.get('seeds', {})
    lines = ['# Evaluation on the %s twin' % details.get('platform', '?'), '',
             'Wall time %.0f s (%s, %d workers); %d replications (trace seeds %s), plan seeds %s. '
             'Goodput and throughput%s in req/s, fairness (Jain), attainment in [0, 1].' % (
                 details.get('wall_time_s', 0), details.get('engine', '?'),
                 details.get('workers', 1), n, seeds.get('trace_seeds'), seeds.get('plan_seeds'),
                 ' (also at SLO99)' if 'slo99_throughput' in metrics else ''), '']
    paired = summary.get('paired', {})
    counts = details.get('paired_counts', {})
    if paired:
        lines += ['## %s against each baseline' % PROPOSED, '',
                  'Geometric mean of the per-scenario paired ratios (ratio of replication '
                  'means) with a bootstrap 95% CI; wins / ties / losses: scenarios whose paired '
                  '95% CI of the per-replication differences lies above zero / contains zero / '
                  'lies below zero. Scenarios where the baseline scores 0 are left out of the '
                  'geometric mean and counted apart. Last column: the talk\'s statistic (mean of '
                  'per-scenario % improvements, zero baselines skipped), dominated by scenarios '
                  'where a baseline nearly collapses.', '',
                  '| metric | baseline | geometric mean | 95% CI | wins / ties / losses | '
                  'zero baseline | talk\'s mean of ratios |', '|---|---|---|---|---|---|---|']
        for metric in metrics:
            for b, st in paired.get(metric, {}).items():
                c = counts.get(metric, {}).get(b, {})
                ci = st['ci95_pct']
                lines.append('| %s | %s | %s | %s | %d / %d / %d | %d | %s |' % (
                    metric, b, _pct(st['geomean_pct']),
                    'n/a' if ci is None else '[%+.1f, %+.1f]' % tuple(ci),
                    st['wins'], st['ties'], st['losses'], c.get('zero_baseline', 0),
                    _pct(st['talk_mean_pct'])))
    oc = oracle_check_lines(details)
    if oc:
        lines += ['', '## Is the oracle an upper reference?', ''] + oc
    fid = details.get('plan_fidelity') or {}
    if fid.get('summary'):
        lines += ['', '## Plan fidelity: predicted (planner simulation) vs measured goodput', '',
                  '| scheduler | scenarios | median error | median abs error | '
                  'Spearman over scenarios |', '|---|---|---|---|---|']
        for sched, st in fid['summary'].items():
            sp = st['spearman_over_scenarios']
            lines.append('| %s | %d | %s | %s | %s |' % (
                sched, st['scenarios'], _pct(st['median_error_pct']),
                'n/a' if st['median_abs_error_pct'] is None
                else '%.1f%%' % st['median_abs_error_pct'],
                'n/a' if sp is None else '%.2f' % sp))
        lines += ['', '| scenario | scheduler | predicted | measured | error |',
                  '|---|---|---|---|---|']
        for r in fid['per_scenario']:
            lines.append('| %s | %s | %.1f | %.1f | %s |' % (
                r['scenario'], r['scheduler'], r['predicted_goodput'], r['measured_goodput'],
                _pct(r.get('error_pct'))))
    rank = details.get('rank_correlation') or []
    if rank:
        lines += ['', '## Does the search rank its top candidates right?', '',
                  'Goodput of the interference-aware search\'s best candidates, predicted by the '
                  'planner and measured on the replication traces.', '',
                  '| scenario | candidates | Spearman | rank of the chosen plan (measured) |',
                  '|---|---|---|---|']
        for r in rank:
            sp = r['spearman']
            lines.append('| %s | %d | %s | %s |' % (
                r['scenario'], len(r['predicted_goodput']),
                'n/a' if sp is None else '%.2f' % sp, r['chosen_rank_measured']))
    pv = details.get('plan_variance') or []
    if pv:
        lines += ['', '## Plan vs trace spread', '',
                  'Every plan seed measured on the same traces (two-way split): plan sd = what '
                  'changing the plan seed moves, trace sd = one plan over the traces, residual '
                  '= plan x trace interaction; plan means in trace order of plan seeds.', '',
                  '| scenario | scheduler | metric | plan sd | trace sd | residual sd | '
                  'plan means |', '|---|---|---|---|---|---|---|']
        for row in pv:
            for sched in scheds:
                for metric, st in (row.get(sched) or {}).items():
                    means = ', '.join('%.1f' % (sum(v) / len(v)) for v in st.get('values', []))
                    lines.append('| %s | %s | %s | %.1f | %.1f | %.1f | %s |' % (
                        row['scenario'], sched, metric, st['plan_sd'], st['trace_sd'],
                        st['resid_sd'], means))
    sweep = details.get('load_sweep') or []
    if sweep:
        lines += ['', '## Load sweep: goodput (min. SLO attainment)', '',
                  '| scenario | load | ' + ' | '.join(scheds) + ' |',
                  '|---' * (len(scheds) + 2) + '|']
        for row in sweep:
            lines.append('| %s | %.2f | ' % (row['scenario'], row['load']) + ' | '.join(
                '%.1f (%.2f)' % (row['results'][k]['goodput']['mean'],
                                 row['results'][k]['slo_attainment_min']['mean'])
                if k in row['results'] else 'n/a' for k in scheds) + ' |')
    tp = details.get('time_profile') or {}
    if tp:
        slo = 'slo99_throughput' in metrics
        lines += ['', '## Where the time went (CPU seconds of the jobs, summed over workers)', '',
                  '| scheduler | planning | goodput runs |' + (' SLO99 bisections |' if slo
                                                             else ''),
                  '|---|---|---|' + ('---|' if slo else '')]
        for k in sorted(set(tp['plan_s']) | set(tp['measure_goodput_s'])):
            lines.append('| %s | %.1f | %.1f |' % (
                k, tp['plan_s'].get(k, 0.0), tp['measure_goodput_s'].get(k, 0.0)) + (
                ' %.1f |' % tp['measure_slo99_s'].get(k, 0.0) if slo else ''))
        if tp.get('confirm_s'):
            lines.append('| oracle check on fresh traces | | %.1f |' % tp['confirm_s']
                         + (' |' if slo else ''))
        lines.append('| total (all phases) | %.1f | |' % tp['total_job_s'] + (' |' if slo else ''))
    stats = {r['name']: r['stats'] for r in details.get('scenario_stats', [])}
    for metric in metrics:
        lines += ['', '## %s per scenario (mean [95%% CI] over %d replications)'
                  % (LABELS.get(metric, metric), n), '',
                  '| scenario | ' + ' | '.join(scheds) + ' |', '|---' * (len(scheds) + 1) + '|']
        for s in summary['scenarios']:
            cells = []
            for k in scheds:
                r = s['results'].get(k, {})
                if metric not in r:
                    cells.append('n/a')
                    continue
                st = stats.get(s['name'], {}).get(k, {}).get(metric, {})
                ci = st.get('ci95')
                cells.append(_fmt(metric, r[metric]) + (
                    '' if ci is None else ' [%s, %s]' % (_fmt(metric, ci[0]),
                                                         _fmt(metric, ci[1]))))
            lines.append('| %s | ' % s['name'] + ' | '.join(cells) + ' |')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def write_plots(summary: dict, details: dict, out_dir: str) -> List[str]:
    """Per-scenario bars (normalised to the best scheduler), the average improvement, the forest
    plot of paired ratios and, with a load sweep, goodput against load."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    paths = []
    scheds = _scheds(summary)
    for metric in GOALS:
        if not any(metric in r for s in summary['scenarios'] for r in s['results'].values()):
            continue
        names = [s['name'] for s in summary['scenarios']]
        rows = max(1, int(math.ceil(len(names) / 20.0)))
        fig, axes = plt.subplots(rows, 1, figsize=(16, 3.6 * rows), squeeze=False)
        width = 0.8 / max(1, len(scheds))
        for row in range(rows):
            ax = axes[row][0]
            part = summary['scenarios'][row * 20:(row + 1) * 20]
            x = np.arange(len(part))
            for k, sched in enumerate(scheds):
                vals = []
                for s in part:
                    r = s['results']
                    best = max((v.get(metric, 0.0) for v in r.values()), default=0.0)
                    v = r.get(sched, {}).get(metric, math.nan)
                    vals.append(v / best if best > 0 else math.nan)
                ax.bar(x + (k - len(scheds) / 2 + 0.5) * width, vals, width, label=sched)
            ax.set_xticks(x)
            ax.set_xticklabels([s['name'] for s in part], rotation=45, fontsize=7, ha='right')
            ax.set_ylim(0, 1.05)
            ax.set_ylabel('%s / best' % metric, fontsize=8)
            if row == 0:
                ax.legend(fontsize=7, ncol=7, loc='lower center', bbox_to_anchor=(0.5, 1.0))
        fig.suptitle('%s per scenario (mean of %d replications), normalised to the best '
                     'scheduler of the scenario' % (metric, summary.get('replications', 1)),
                     fontsize=10, y=1.0)
        fig.tight_layout()
        path = os.path.join(out_dir, '%s_per_scenario.png' % metric)
        fig.savefig(path, dpi=110, bbox_inches='tight')
        plt.close(fig)
        paths.append(path)
    paired = summary.get('paired', {})
    metrics = [m for m in GOALS if m in paired]
    if metrics:
        baselines = [b for b in scheds if b != PROPOSED]
        fig, axes = plt.subplots(1, len(metrics), figsize=(7 * len(metrics), 4.2),
                                 squeeze=False)
        for col, metric in enumerate(metrics):
            ax = axes[0][col]
            x = np.arange(len(baselines))
            cap = 200.0
            geo, lo, hi, talk = [], [], [], []
            for b in baselines:
                st = paired[metric].get(b) or {}
                g = st.get('geomean_pct')
                ci = st.get('ci95_pct')
                gc = math.nan if g is None else min(g, cap)
                geo.append(gc)
                # error bars drawn on the capped bar, clipped at the cap too
                lo.append(0.0 if ci is None or g is None else gc - min(ci[0], cap))
                hi.append(0.0 if ci is None or g is None else min(ci[1], cap) - gc)
                t = st.get('talk_mean_pct')
                talk.append(math.nan if t is None else t)
            ax.bar(x - 0.2, geo, 0.4, yerr=[lo, hi], capsize=3,
                   label='geometric mean, bootstrap 95% CI')
            ax.bar(x + 0.2, [min(v, cap) for v in talk], 0.4, color='lightgray',
                   label="talk's mean of ratios")
            for b, px in zip(baselines, x - 0.2):
                g = (paired[metric].get(b) or {}).get('geomean_pct')
                if g is not None and g > cap:
                    ax.text(px, cap, '%.0f' % g, ha='center', va='bottom', fontsize=6)
            for px, v in zip(x + 0.2, talk):
                if v == v and v > cap:
                    ax.text(px, cap, '%.0f' % v, ha='center', va='bottom', fontsize=6)
            ax.set_xticks(x)
            ax.set_xticklabels(baselines, rotation=20, fontsize=8)
            ax.axhline(0.0, color='k', linewidth=0.5)
            ax.set_ylim(top=cap * 1.25)
            ax.set_ylabel('improvement of %s (%%)' % PROPOSED, fontsize=8)
            ax.set_title(metric, fontsize=10)
            ax.legend(fontsize=7)
        fig.suptitle('Improvement of %s over each scheduler (%d scenarios, twin)'
                     % (PROPOSED, len(summary['scenarios'])), fontsize=10)
        fig.tight_layout()
        path = os.path.join(out_dir, 'average_improvement.png')
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    paths += _forest(summary, details, out_dir, plt)
    sweep = details.get('load_sweep') or []
    if sweep:
        names = sorted({r['scenario'] for r in sweep})
        fig, axes = plt.subplots(2, len(names), figsize=(4.5 * len(names), 6.4),
                                 squeeze=False, sharex=True)
        for col, name in enumerate(names):
            rows = sorted((r for r in sweep if r['scenario'] == name), key=lambda r: r['load'])
            loads = [r['load'] for r in rows]
            for sched in scheds:
                if not all(sched in r['results'] for r in rows):
                    continue
                good = [r['results'][sched]['goodput']['mean'] / max(
                    1e-9, max(v['goodput']['mean'] for v in r['results'].values()))
                    for r in rows]
                att = [r['results'][sched]['slo_attainment_min']['mean'] for r in rows]
                axes[0][col].plot(loads, good, marker='o', label=sched)
                axes[1][col].plot(loads, att, marker='o', label=sched)
            axes[0][col].set_title(name, fontsize=9)
            axes[0][col].set_ylabel('goodput / best at that load', fontsize=7)
            axes[1][col].set_ylabel('minimum per-application SLO attainment', fontsize=7)
            axes[1][col].axhline(0.99, color='k', linewidth=0.5, linestyle='--')
            axes[1][col].set_xlabel('offered load (fraction of interference-free capacity)',
                                    fontsize=7)
        axes[0][0].legend(fontsize=6)
        fig.tight_layout()
        path = os.path.join(out_dir, 'load_sweep.png')
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _forest(summary: dict, details: dict, out_dir: str, plt) -> List[str]:
    """Per metric: one panel per baseline, each scenario's paired ratio with its 95% CI
    (``1 + CI of the differences / baseline mean``) on a log axis, the geometric mean and its
    bootstrap CI as the last row."""
    per = details.get('paired_per_scenario') or {}
    paths = []
    for metric in GOALS:
        rows_by_b = per.get(metric) or {}
        if not rows_by_b:
            continue
        baselines = list(rows_by_b)
        names = [s['name'] for s in summary['scenarios']]
        from matplotlib.ticker import FuncFormatter, NullFormatter
        fig, axes = plt.subplots(1, len(baselines), figsize=(2.6 * len(baselines),
                                                             max(2.6, 1.2 + 0.17 * len(names))),
                                 squeeze=False, sharey=True)
        for col, b in enumerate(baselines):
            ax = axes[0][col]
            rows = {p['scenario']: p for p in rows_by_b[b]}
            for y, name in enumerate(names):
                p = rows.get(name)
                if p is None or p['ratio'] is None or p['ratio'] <= 0:
                    ax.text(1.0, y, 'zero' if p is not None else '', fontsize=5,
                            ha='center', va='center', color='gray')
                    continue
                ci = eval_stats.ratio_ci(p)
                color = {'win': 'tab:green', 'loss': 'tab:red'}.get(p['outcome'], 'tab:gray')
                if ci is not None:
                    lo, hi = max(ci[0], 1e-3), max(ci[1], 1e-3)
                    ax.plot([lo, hi], [y, y], color=color, linewidth=1)
                ax.plot([p['ratio']], [y], 'o', color=color, markersize=3)
            st = summary['paired'][metric][b]
            y = len(names) + 0.5
            if st['geomean_pct'] is not None:
                g = 1 + st['geomean_pct'] / 100.0
                if st['ci95_pct'] is not None:
                    ax.plot([1 + st['ci95_pct'][0] / 100.0, 1 + st['ci95_pct'][1] / 100.0],
                            [y, y], color='k', linewidth=2)
                ax.plot([g], [y], 'D', color='k', markersize=4)
            ax.axvline(1.0, color='k', linewidth=0.5, linestyle='--')
            ax.set_xscale('log')
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: '%.3g' % v))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel('ratio (log scale)', fontsize=6)
            ax.set_title('vs %s' % b, fontsize=8)
            ax.tick_params(labelsize=6)
        axes[0][0].set_yticks(list(range(len(names))) + [len(names) + 0.5])
        axes[0][0].set_yticklabels(names + ['geometric mean'], fontsize=6)
        axes[0][0].invert_yaxis()
        fig.suptitle('%s: %s / baseline per scenario, paired 95%% CI (green win, red loss, '
                     'gray tie)' % (metric, PROPOSED), fontsize=9)
        fig.tight_layout()
        path = os.path.join(out_dir, 'forest_%s.png' % metric)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def write_outputs(result: dict, out_dir: str) -> List[str]:
    """summary.json (schema in docs/scheduling.md), details.json, summary.md, PNG plots."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    p = os.path.join(out_dir, 'summary.json')
    with open(p, 'w') as f:
        json.dump(result['summary'], f, indent=1)
        f.write('\n')
    paths.append(p)
    p = os.path.join(out_dir, 'details.json')
    with open(p, 'w') as f:
        json.dump(_jsonable(result['details']), f, indent=1, default=str)
        f.write('\n')
    paths.append(p)
    p = os.path.join(out_dir, 'summary.md')
    write_markdown(result['summary'], result['details'], p)
    paths.append(p)
    paths += write_plots(result['summary'], result['details'], out_dir)
    return paths


def _jsonable(obj: Optional[object]):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def oracle_check_lines(details: dict) -> List[str]:
    """The oracle check as markdown bullets (``summary.md``; ``evaluate`` prints them)."""
    lines = []
    for metric, c in (details.get('oracle_check') or {}).items():
        lines.append('- %s: %s beats the oracle on the mean in %d of %d scenarios; in %d of '
                     'them the paired 95%% CI excludes zero%s.' % (
                         metric, PROPOSED, c['beaten'], c['scenarios'],
                         c['beaten_ci_excludes_zero'],
                         (' (%s)' % ', '.join(c['beaten_names'])) if c['beaten_names'] else ''))
        checks = c.get('confirmation') or []
        if checks:
            lines.append('  Measured again on %d fresh traces (seeds from %d, apart from the '
                         'measurement and selection traces), the miss is reproduced in %d of %d: '
                         '%s.' % (checks[0]['traces'], checks[0]['seeds_from'],
                                  len(c['reproduced_on_fresh_traces']), len(checks), '; '.join(
                                      '%s %.1f - oracle %.1f = %+.1f [%s]' % (
                                          k['scenario'], k['mean'], k['oracle_mean'], k['diff'],
                                          'n/a' if k['diff_ci95'] is None
                                          else '%+.1f, %+.1f' % tuple(k['diff_ci95']))
                                      for k in checks)))
    return lines
