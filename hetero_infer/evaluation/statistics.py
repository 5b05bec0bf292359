"""Statistics of the evaluation: confidence intervals over replications, paired comparisons.

* Per scenario and scheduler: the mean over replications and its 95% confidence interval
  (Student t, ``n - 1`` degrees of freedom; none with fewer than 2 replications).
* Per scenario, ``proposed`` against a baseline on the same traces (common random numbers): the
  ratio of the replication means, and the t interval of the per-replication differences
  ``proposed_r - baseline_r``. A scenario is a **win** when that interval lies above zero, a
  **loss** when below, a **tie** when it contains zero (or cannot be formed: one replication).
* Across scenarios: the geometric mean of the per-scenario ratios with a seeded bootstrap 95%
  interval (``scipy.stats.bootstrap``, BCa, over the scenarios' log ratios). Scenarios where the
  baseline's mean is 0 have no ratio: they are counted (``zero_baseline``) and left out, as are
  those where the proposed scheduler's mean is 0 (``zero_proposed``: log of 0). The talk's
  statistic, the arithmetic mean of ``100 * (ratio - 1)`` over scenarios with a non-zero
  baseline, is kept beside it as ``talk_mean_pct``.
"""

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

BOOTSTRAP_SEED = 20240607
BOOTSTRAP_RESAMPLES = 9999


def mean(xs: Sequence[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else math.nan


def mean_ci95(xs: Sequence[float]) -> Tuple[float, Optional[float], Optional[float]]:
    """``(mean, low, high)`` of a Student-t 95% interval; no interval below 2 values."""
    xs = [float(x) for x in xs]
    m = mean(xs)
    n = len(xs)
    if n < 2:
        return m, None, None
    from scipy.stats import t
    sd = float(np.std(xs, ddof=1))
    half = float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return m, m - half, m + half


def paired_scenario(a_runs: Sequence[float], b_runs: Sequence[float]) -> dict:
    """One scenario, proposed ``a`` against baseline ``b`` on the same traces."""
    if len(a_runs) != len(b_runs):
        raise ValueError('paired runs differ in length: %d and %d'
                         % (len(a_runs), len(b_runs)))
    diffs = [a - b for a, b in zip(a_runs, b_runs)]
    d, lo, hi = mean_ci95(diffs)
    ma, mb = mean(a_runs), mean(b_runs)
    if lo is None:
        outcome = 'tie'
    elif lo > 0:
        outcome = 'win'
    elif hi < 0:
        outcome = 'loss'
    else:
        outcome = 'tie'
    return {'mean': ma, 'baseline_mean': mb, 'ratio': (ma / mb) if mb > 0 else None,
            'diff': d, 'diff_ci95': None if lo is None else [lo, hi], 'outcome': outcome}


def ratio_ci(p: dict) -> Optional[Tuple[float, float]]:
    """Interval of one scenario's ratio: ``1 + diff_ci95 / baseline_mean`` (the baseline mean
    taken as fixed); ``None`` without a baseline or an interval."""
    if p['ratio'] is None or p['diff_ci95'] is None:
        return None
    mb = p['baseline_mean']
    return 1.0 + p['diff_ci95'][0] / mb, 1.0 + p['diff_ci95'][1] / mb


def bootstrap_geomean_ci(logs: Sequence[float], seed: int = BOOTSTRAP_SEED
                         ) -> Optional[Tuple[float, float]]:
    """95% interval of ``exp(mean(logs))`` by the bootstrap; ``None`` below 2 values."""
    logs = np.asarray(logs, dtype=float)
    if logs.size < 2:
        return None
    if np.allclose(logs, logs[0]):
        v = float(math.exp(logs[0]))
        return v, v
    from scipy.stats import bootstrap
    kwargs = dict(confidence_level=0.95, n_resamples=BOOTSTRAP_RESAMPLES, method='BCa')
    try:
        res = bootstrap((logs,), np.mean, rng=np.random.default_rng(seed), **kwargs)
    except TypeError:  # scipy < 1.15 (Python 3.8) names it random_state
        res = bootstrap((logs,), np.mean, random_state=np.random.default_rng(seed), **kwargs)
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return math.exp(lo), math.exp(hi)


def _pct(ratio: float) -> float:
    return round(100.0 * (ratio - 1.0), 3)


def paired_summary(per_scenario: List[dict], seed: int = BOOTSTRAP_SEED) -> dict:
    """Aggregate :func:`paired_scenario` results of one metric and baseline over scenarios.

    Returns the summary.json entry (``geomean_pct``, ``ci95_pct``, ``talk_mean_pct``, ``wins``,
    ``ties``, ``losses``) and, under ``extra``, the counts behind it.
    """
    logs = [math.log(p['ratio']) for p in per_scenario
            if p['ratio'] is not None and p['ratio'] > 0]
    talk = [100.0 * (p['ratio'] - 1.0) for p in per_scenario if p['ratio'] is not None]
    geo = math.exp(sum(logs) / len(logs)) if logs else None
    ci = bootstrap_geomean_ci(logs, seed) if logs else None
    out = {
        'geomean_pct': None if geo is None else _pct(geo),
        'ci95_pct': None if ci is None else [_pct(ci[0]), _pct(ci[1])],
        'talk_mean_pct': round(sum(talk) / len(talk), 3) if talk else None,
        'wins': sum(1 for p in per_scenario if p['outcome'] == 'win'),
        'ties': sum(1 for p in per_scenario if p['outcome'] == 'tie'),
        'losses': sum(1 for p in per_scenario if p['outcome'] == 'loss'),
    }
    extra = {'scenarios': len(per_scenario), 'in_geomean': len(logs),
             'zero_baseline': sum(1 for p in per_scenario if p['ratio'] is None),
             'zero_proposed': sum(1 for p in per_scenario
                                  if p['ratio'] is not None and p['ratio'] <= 0)}
    return {'summary': out, 'extra': extra}


def variance_split(values: Sequence[Sequence[float]]) -> Dict[str, float]:
    """Plan vs trace spread of ``values[plan_seed][replication]``, every plan measured on the
    same traces (a crossed design: ``value = mean + plan effect + trace effect + residual``,
    two-way ANOVA without repetition).

    ``plan_sd``: standard deviation of the plan effect, ``sqrt((MS_plan - MS_resid) / n)``
    (floored at 0), i.e. what changing the plan seed moves. ``trace_sd``: the pooled standard
    deviation of one plan over the traces (trace effect and residual together: what a user
    sees re-measuring a plan). ``resid_sd``: the plan x trace interaction (how differently two
    plans react to the same trace). ``plan_means_sd``: raw spread of the plans' means.
    """
    x = np.asarray([list(map(float, r)) for r in values], dtype=float) if values else None
    if x is None or x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        shape = 'x'.join(str(d) for d in np.shape(values)) if values else '0'
        raise ValueError('variance_split needs >= 2 plan seeds x >= 2 replications, got %s'
                         % shape)
    k, n = x.shape
    rows, cols, grand = x.mean(axis=1), x.mean(axis=0), x.mean()
    resid = x - rows[:, None] - cols[None, :] + grand
    ms_plan = n * float(np.var(rows, ddof=1))
    ms_resid = float((resid ** 2).sum()) / ((k - 1) * (n - 1))
    return {'plan_sd': math.sqrt(max(0.0, (ms_plan - ms_resid) / n)),
            'trace_sd': math.sqrt(float(np.mean(np.var(x, axis=1, ddof=1)))),
            'resid_sd': math.sqrt(ms_resid),
            'plan_means_sd': float(np.std(rows, ddof=1)), 'plan_seeds': k, 'replications': n}


def spearman(xs: Sequence[float], ys: Sequence[float]) -> Optional[float]:
    """Spearman rank correlation; ``None`` below 3 pairs or for a constant side."""
    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    from scipy.stats import spearmanr
    r = spearmanr(xs, ys)
    v = float(getattr(r, 'statistic', r[0]))
    return v if math.isfinite(v) else None
