"""The 40-scenario evaluation: every scheduler on every scenario, measured on the digital twin.

For each scenario and scheduler:

1. the scheduler plans for the goal ``goodput`` (search-based ones with their own predictor);
   the plan is served on the layer-level twin for ``duration_s`` seconds (``warmup_s`` excluded)
   and goodput, throughput and fairness are measured (:func:`hetero_infer.core.metrics.
   compute_metrics`);
2. search-based schedulers plan again for the goal ``slo99_throughput`` (rule-based ones reuse
   their single plan) and the twin measures throughput at SLO99 by bisection on the load
   (:func:`twin_slo99_throughput`, ``slo99_iterations`` steps below ``slo99_hi_scale``; each
   probe serves about ``slo99_requests`` requests).

The twin runs use arrival and noise seeds that no planner sees. Scenarios run in parallel
processes (``workers``); each search inside runs serially.
"""

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from hetero_infer.core.metrics import SLO_TARGET, compute_metrics
from hetero_infer.core.schedulers import EVALUATED, PlanContext, get_scheduler
from hetero_infer.core.search import SimSettings
from hetero_infer.core.workload import poisson_arrivals
from hetero_infer.errors import ConfigError

METRICS = ('goodput', 'slo99_throughput', 'throughput', 'fairness')
PROPOSED = 'interference_aware'
#: Schedulers whose plan depends on the goal (they search); the others plan once.
GOAL_DEPENDENT = ('interference_aware', 'no_interference', 'oracle')


@dataclass
class EvalSettings:
    """Budget knobs of the evaluation (defaults: whole run within 15 minutes on 2 cores)."""

    duration_s: float = 2.5
    warmup_s: float = 0.3
    seed: int = 1
    slo99: bool = True
    slo99_plan: bool = True
    slo99_hi_scale: float = 1.2
    slo99_iterations: int = 5
    slo99_requests: int = 600
    sim: SimSettings = field(default_factory=SimSettings)
    top_fraction: float = 0.01
    confidence: float = 0.99
    oracle_top_fraction: float = 0.01
    oracle_rerank: int = 3
    oracle_serve_s: float = 1.5
    max_refine_evals: int = 100

    def to_dict(self) -> dict:
        return asdict(self)


def measure_on_twin(twin, apps: Sequence, make_dispatcher: Callable[[], object], *,
                    duration_s: float, seed: int, warmup_s: Optional[float] = None,
                    slo99: bool = False, slo99_hi_scale: float = 1.2,
                    slo99_iterations: int = 5, slo99_requests: int = 800) -> Dict[str, float]:
    """Serve ``apps`` on the twin with fresh dispatchers; return the four metrics (and more).

    ``slo99_throughput`` is present only when ``slo99`` is set.
    """
    warmup_s = 0.125 * duration_s if warmup_s is None else warmup_s
    records = twin.serve(apps, make_dispatcher(), duration_s=duration_s, seed=seed)
    m = compute_metrics(records, apps, warmup_s=warmup_s, duration_s=duration_s)
    out = {'goodput': m.goodput, 'throughput': m.throughput, 'fairness': m.fairness,
           'slo_attainment': m.slo_attainment_min}
    if slo99:
        out['slo99_throughput'] = twin_slo99_throughput(
            twin, apps, make_dispatcher, seed=seed, hi_scale=slo99_hi_scale,
            iterations=slo99_iterations, requests=slo99_requests)
    return out


def twin_slo99_throughput(twin, apps: Sequence, make_dispatcher, *, seed: int,
                          hi_scale: float = 1.2, iterations: int = 5, requests: int = 800,
                          max_duration_s: float = 8.0, stop_failed_probes: bool = True
                          ) -> float:
    """Throughput at SLO99 on the twin (definition of :mod:`hetero_infer.core.metrics`).

    Bisection on the load scale over ``(0, hi_scale)`` for ``iterations`` steps; ``hi_scale``
    itself is not probed (choose it above any load the SoC can serve at 99%). Each probe serves
    about ``requests`` requests (at most ``max_duration_s`` simulated seconds) and the result is
    the throughput measured at the largest passing scale (0 when none passes). With
    ``stop_failed_probes`` a probe ends as soon as one application has missed its SLO on more
    window requests than 99% attainment allows (:class:`SloWatch`): the verdict, and so the
    result, is the one the whole probe gives, in less time.
    """
    base = sum(a.rate_hz for a in apps)
    if base <= 0:
        return 0.0

    def run_at_scale(scale: float):
        scaled = [a.scaled(scale) for a in apps]
        dur = min(max(requests / (base * scale), 0.2), max_duration_s)
        arrivals = poisson_arrivals(scaled, dur, seed)
        watch = SloWatch(scaled, arrivals, warmup_s=0.1 * dur, duration_s=dur) \
            if stop_failed_probes else None
        recs = twin.serve(scaled, make_dispatcher(), duration_s=dur, seed=seed,
                          arrivals=arrivals, give_up=watch)
        return compute_metrics(recs, scaled, warmup_s=0.1 * dur, duration_s=dur)

    lo, hi, best = 0.0, hi_scale, 0.0
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        m = run_at_scale(mid)
        if m.meets_slo():
            lo, best = mid, m.throughput
        else:
            hi = mid
    return best


class SloWatch:
    """``give_up`` for :meth:`Twin.serve`: true once the run can no longer meet the SLO target.

    Counts, per application, the window requests (arrivals in ``[warmup_s, duration_s)``, as in
    :func:`compute_metrics`) that missed their SLO (finished late or dropped). When an
    application's attainment could reach at most ``(window - missed) / window < target``,
    every later outcome leaves :meth:`Metrics.meets_slo` false, so the run may stop.
    """

    def __init__(self, apps: Sequence, arrivals, *, warmup_s: float, duration_s: float,
                 target: float = SLO_TARGET):
        self.lo, self.hi = warmup_s * 1000.0, duration_s * 1000.0
        self.slo_ms = [a.slo_ms for a in apps]
        self.window = [0] * len(apps)
        for t, _seq, ai in arrivals:
            if self.lo <= t < self.hi:
                self.window[ai] += 1
        self.missed = [0] * len(apps)
        self.target = target

    def __call__(self, rec) -> bool:
        if not (self.lo <= rec.arrival_ms < self.hi):
            return False
        a = rec.app
        if rec.finish_ms is not None and rec.finish_ms - rec.arrival_ms <= self.slo_ms[a]:
            return False
        self.missed[a] += 1
        n = self.window[a]
        return (n - self.missed[a]) / n < self.target


def evaluate_scenario(scenario, platform, *, schedulers: Sequence[str] = EVALUATED,
                      settings: Optional[EvalSettings] = None, interference_model=None,
                      workers: int = 1) -> dict:
    """Plan and measure every scheduler on one scenario; returns a JSON-ready dict.

    :raises ConfigError: the scenario injects faults (the evaluation compares schedulers on
        healthy processors; ``hetero-infer simulate`` serves a scenario with its faults).
    """
    from hetero_infer.core.twin import Twin

    if getattr(scenario, 'faults', ()):
        raise ConfigError('scenario %s injects faults (%s): the evaluation compares schedulers '
                          'on healthy processors; serve it with hetero-infer simulate'
                          % (scenario.name, ', '.join(str(f) for f in scenario.faults)))
    settings = settings or EvalSettings()
    apps = scenario.build(platform)
    twin = Twin(platform, seed=settings.seed + 1000)
    results: Dict[str, Dict[str, float]] = {}
    details: Dict[str, dict] = {}
    for name in schedulers:
        sched = get_scheduler(name)
        ctx = PlanContext(platform=platform, apps=apps, goal='goodput', seed=settings.seed,
                          settings=settings.sim, top_fraction=settings.top_fraction,
                          confidence=settings.confidence, workers=workers,
                          max_refine_evals=settings.max_refine_evals,
                          oracle_top_fraction=settings.oracle_top_fraction,
                          oracle_rerank=settings.oracle_rerank,
                          oracle_serve_s=settings.oracle_serve_s,
                          interference_model=interference_model)
        t0 = time.perf_counter()
        plan = sched.plan(ctx)
        m = measure_on_twin(twin, apps, plan.make_dispatcher, duration_s=settings.duration_s,
                            warmup_s=settings.warmup_s, seed=settings.seed)
        info = {'goodput_plan': plan.to_dict()}
        if settings.slo99:
            slo_plan = plan
            if settings.slo99_plan and name in GOAL_DEPENDENT:
                ctx.goal = 'slo99_throughput'
                slo_plan = sched.plan(ctx)
                info['slo99_plan'] = slo_plan.to_dict()
            m['slo99_throughput'] = twin_slo99_throughput(
                twin, apps, slo_plan.make_dispatcher, seed=settings.seed,
                hi_scale=settings.slo99_hi_scale, iterations=settings.slo99_iterations,
                requests=settings.slo99_requests)
        info['time_s'] = round(time.perf_counter() - t0, 3)
        info['measured'] = dict(m)
        results[name] = {k: float(m[k]) for k in METRICS if k in m}
        details[name] = info
    return {'name': scenario.name,
            'applications': [{'name': a.name, 'model': a.model.name,
                              'rate_hz': round(a.rate_hz, 3), 'slo_ms': round(a.slo_ms, 3)}
                             for a in apps],
            'results': results, 'details': details}


def _scenario_worker(args):
    scenario, platform_name, schedulers, settings, interference_model = args
    from hetero_infer.core.platform import Platform
    platform = Platform.load(platform_name)
    return evaluate_scenario(scenario, platform, schedulers=schedulers, settings=settings,
                             interference_model=interference_model)


def _baselines(scenarios: List[dict], proposed: str) -> List[str]:
    out: List[str] = []
    for s in scenarios:
        for b in s['results']:
            if b != proposed and b not in out:
                out.append(b)
    return out


def average_improvements(scenarios: List[dict], proposed: str = PROPOSED) -> Dict[str, dict]:
    """Mean over scenarios of ``100 * (proposed / baseline - 1)`` per metric and baseline.

    This is the talk's convention (the average of per-scenario normalised improvements).
    Scenarios where the baseline's value is 0 are skipped (the ratio is undefined); a baseline
    that nearly collapses in one scenario dominates this mean, so :func:`improvement_stats`
    reports robust aggregates beside it.
    """
    out: Dict[str, Dict[str, float]] = {}
    for metric in METRICS:
        per: Dict[str, float] = {}
        for b in _baselines(scenarios, proposed):
            vals = []
            for s in scenarios:
                r = s['results']
                if proposed not in r or b not in r or metric not in r[b]:
                    continue
                base = r[b][metric]
                if base > 0 and math.isfinite(base):
                    vals.append(100.0 * (r[proposed][metric] / base - 1.0))
            if vals:
                per[b] = round(sum(vals) / len(vals), 3)
        if per:
            out[metric] = per
    return out


def improvement_stats(scenarios: List[dict], proposed: str = PROPOSED) -> Dict[str, dict]:
    """Per metric and baseline: the mean of per-scenario improvements (the summary's value),
    the geometric mean of the per-scenario ratios (scenarios where either value is 0 left out),
    the improvement of the average (ratio of the metric summed over all scenarios), and counts
    of scenarios won / lost / skipped."""
    mean = average_improvements(scenarios, proposed)
    out: Dict[str, Dict[str, dict]] = {}
    for metric in METRICS:
        per = {}
        for b in _baselines(scenarios, proposed):
            pairs = [(s['results'][proposed][metric], s['results'][b][metric])
                     for s in scenarios if proposed in s['results'] and b in s['results']
                     and metric in s['results'][b] and metric in s['results'][proposed]]
            if not pairs:
                continue
            logs = [math.log(a / c) for a, c in pairs if a > 0 and c > 0]
            total_a, total_c = sum(a for a, _ in pairs), sum(c for _, c in pairs)
            per[b] = {
                'mean_of_scenarios_pct': mean.get(metric, {}).get(b),
                'geometric_mean_pct': round(100.0 * (math.exp(sum(logs) / len(logs)) - 1.0), 3)
                if logs else None,
                'of_average_pct': round(100.0 * (total_a / total_c - 1.0), 3)
                if total_c > 0 else None,
                'wins': sum(1 for a, c in pairs if a > c * 1.005),
                'losses': sum(1 for a, c in pairs if a < c * 0.995),
                'scenarios': len(pairs),
                'skipped_zero_baseline': sum(1 for _, c in pairs if c <= 0),
            }
        if per:
            out[metric] = per
    return out


def run_evaluation(scenarios: Sequence, platform_name: str, *,
                   schedulers: Sequence[str] = EVALUATED,
                   settings: Optional[EvalSettings] = None, workers: int = 2,
                   interference_model=None, progress=None) -> dict:
    """Evaluate ``scenarios`` over ``workers`` processes; returns summary + details.

    :param interference_model: passed to the interference-aware scheduler (default: the
        committed model of the platform; a path or an object, see ``predictors``).
    """
    settings = settings or EvalSettings()
    jobs = [(s, platform_name, list(schedulers), settings, interference_model)
            for s in scenarios]
    t0 = time.perf_counter()
    by_name: Dict[str, dict] = {}
    pool = None
    if workers > 1 and len(jobs) > 1:
        try:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed
            ctx = multiprocessing.get_context('fork') \
                if 'fork' in multiprocessing.get_all_start_methods() else None
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        except (OSError, ValueError, ImportError, NotImplementedError):
            pool = None
    if pool is not None:
        with pool:
            futures = [pool.submit(_scenario_worker, j) for j in jobs]
            for fut in as_completed(futures):
                res = fut.result()
                by_name[res['name']] = res
                if progress is not None:
                    progress(res)
    else:
        for j in jobs:
            res = _scenario_worker(j)
            by_name[res['name']] = res
            if progress is not None:
                progress(res)
    ordered = [by_name[s.name] for s in scenarios]
    summary = {
        'scenarios': [{'name': r['name'], 'results': r['results']} for r in ordered],
        'average_improvement_pct': average_improvements(ordered),
    }
    details = {'platform': platform_name, 'settings': settings.to_dict(),
               'improvement_stats': improvement_stats(ordered),
               'wall_time_s': round(time.perf_counter() - t0, 1), 'workers': workers,
               'scenarios': ordered}
    return {'summary': summary, 'details': details}


def write_markdown(summary: dict, details: dict, path: str) -> None:
    """A markdown table of every scenario and the average improvements."""
    scheds = []
    for s in summary['scenarios']:
        for k in s['results']:
            if k not in scheds:
                scheds.append(k)
    lines = ['# Evaluation on the %s twin' % details.get('platform', '?'), '',
             'Wall time %.0f s on %d worker processes. Metrics: goodput / throughput in req/s, '
             'slo99_throughput in req/s, fairness (Jain).' % (details.get('wall_time_s', 0),
                                                             details.get('workers', 1)), '']
    lines.append('## Average improvement of %s (%%)' % PROPOSED)
    lines.append('')
    imp = summary['average_improvement_pct']
    lines.append('| metric | ' + ' | '.join(b for b in scheds if b != PROPOSED) + ' |')
    lines.append('|---' * (len(scheds)) + '|')
    for metric in METRICS:
        row = imp.get(metric, {})
        lines.append('| %s | ' % metric + ' | '.join(
            ('%+.1f' % row[b]) if b in row else 'n/a' for b in scheds if b != PROPOSED) + ' |')
    stats = details.get('improvement_stats') or {}
    if stats:
        lines += ['', 'Mean of per-scenario improvements (above, the summary.json value) / '
                  'geometric mean of per-scenario ratios / improvement of the average over all '
                  'scenarios; wins-losses out of scenarios:', '',
                  '| metric | baseline | mean | geometric | of average | wins-losses |',
                  '|---|---|---|---|---|---|']
        for metric in METRICS:
            for b, st in stats.get(metric, {}).items():
                def fmt(v):
                    return 'n/a' if v is None else '%+.1f%%' % v
                lines.append('| %s | %s | %s | %s | %s | %d-%d of %d |' % (
                    metric, b, fmt(st['mean_of_scenarios_pct']), fmt(st['geometric_mean_pct']),
                    fmt(st['of_average_pct']), st['wins'], st['losses'], st['scenarios']))
    for metric in METRICS:
        lines += ['', '## %s' % metric, '',
                  '| scenario | ' + ' | '.join(scheds) + ' |', '|---' * (len(scheds) + 1) + '|']
        for s in summary['scenarios']:
            r = s['results']
            lines.append('| %s | ' % s['name'] + ' | '.join(
                ('%.3f' % r[k][metric] if metric == 'fairness' else '%.1f' % r[k][metric])
                if k in r and metric in r[k] else 'n/a' for k in scheds) + ' |')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def write_plots(summary: dict, out_dir: str, stats: Optional[dict] = None) -> List[str]:
    """PNG plots like the talk's: per-scenario goodput / SLO99 bars (normalised to the best
    scheduler of each scenario) and the average improvements of interference_aware."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    paths = []
    names = [s['name'] for s in summary['scenarios']]
    scheds = []
    for s in summary['scenarios']:
        for k in s['results']:
            if k not in scheds:
                scheds.append(k)
    for metric in ('goodput', 'slo99_throughput'):
        if not any(metric in r for s in summary['scenarios'] for r in s['results'].values()):
            continue
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
        fig.suptitle('%s per scenario, normalised to the best scheduler of the scenario' % metric,
                     fontsize=10, y=1.0)
        fig.tight_layout()
        path = os.path.join(out_dir, '%s_per_scenario.png' % metric)
        fig.savefig(path, dpi=110, bbox_inches='tight')
        plt.close(fig)
        paths.append(path)
    imp = summary['average_improvement_pct']
    metrics = [m for m in ('goodput', 'slo99_throughput') if m in imp]
    if metrics:
        baselines = [b for b in scheds if b != PROPOSED]
        fig, axes = plt.subplots(1, len(metrics), figsize=(7 * len(metrics), 4.2),
                                 squeeze=False)
        kinds = (('mean of scenarios', 'mean_of_scenarios_pct'),
                 ('geometric mean', 'geometric_mean_pct'), ('of the average', 'of_average_pct'))
        cap = 200.0
        for col, metric in enumerate(metrics):
            ax = axes[0][col]
            x = np.arange(len(baselines))
            width = 0.8 / len(kinds)
            for k, (label, key) in enumerate(kinds):
                vals = []
                for b in baselines:
                    if key == 'mean_of_scenarios_pct' or not stats:
                        v = imp[metric].get(b)
                    else:
                        v = (stats.get(metric, {}).get(b) or {}).get(key)
                    vals.append(math.nan if v is None else v)
                pos = x + (k - len(kinds) / 2 + 0.5) * width
                ax.bar(pos, [min(v, cap) for v in vals], width, label=label)
                for px, v in zip(pos, vals):
                    if v == v and v > cap:
                        ax.text(px, cap, '%.0f' % v, ha='center', va='bottom', fontsize=6,
                                rotation=90)
                if not stats:
                    break
            ax.set_xticks(x)
            ax.set_xticklabels(baselines, rotation=20, fontsize=8)
            ax.axhline(0.0, color='k', linewidth=0.5)
            ax.set_ylim(top=cap * 1.25)
            ax.set_ylabel('improvement of %s (%%)' % PROPOSED, fontsize=8)
            ax.set_title(metric, fontsize=10)
            ax.legend(fontsize=7)
        fig.suptitle('Average improvement of %s over each scheduler (40 scenarios, twin)'
                     % PROPOSED, fontsize=10)
        fig.tight_layout()
        path = os.path.join(out_dir, 'average_improvement.png')
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def write_outputs(result: dict, out_dir: str) -> List[str]:
    """summary.json (the issue's schema), details.json, summary.md and the PNG plots."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    p = os.path.join(out_dir, 'summary.json')
    with open(p, 'w') as f:
        json.dump(result['summary'], f, indent=1)
        f.write('\n')
    paths.append(p)
    p = os.path.join(out_dir, 'details.json')
    with open(p, 'w') as f:
        json.dump(result['details'], f, indent=1, default=str)
        f.write('\n')
    paths.append(p)
    p = os.path.join(out_dir, 'summary.md')
    write_markdown(result['summary'], result['details'], p)
    paths.append(p)
    paths += write_plots(result['summary'], out_dir, result['details'].get('improvement_stats'))
    return paths
