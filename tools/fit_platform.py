"""Fit a platform's per-kind efficiencies and per-layer overheads to measured model latencies.

The roofline of hetero_infer/core/platform.py has a few free numbers per processor that no data
sheet gives: the share of peak a layer kind reaches and the fixed cost per layer. This script
fits them by least squares on log latency to FACTS.md's measured whole-model latencies (Xavier:
torch2trt GPU table, HaX-CoNN DLA numbers) and prints the values to paste into the YAML, with
the residual per model. Peaks and bandwidths stay as FACTS.md gives them.

    python tools/fit_platform.py --platform xavier
"""

import argparse
import copy
import math

import numpy as np
from scipy.optimize import least_squares

from hetero_infer.core.calibration import HAXCONN_DLA_GPU_MS, TORCH2TRT_XAVIER_MS
from hetero_infer.core.model import load_model
from hetero_infer.core.platform import Platform, Processor

GPU_PARAMS = ('conv', 'fc', 'dwconv', 'overhead_ms')
DLA_PARAMS = ('conv', 'fc', 'overhead_ms')


def with_params(proc: Processor, names, values) -> Processor:
    p = copy.copy(proc)
    eff = dict(proc.efficiency)
    for name, v in zip(names, values):
        if name == 'overhead_ms':
            object.__setattr__(p, 'overhead_ms', float(v))
        else:
            eff[name] = float(v)
    object.__setattr__(p, 'efficiency', eff)
    return p


def latency(platform, proc, model) -> float:
    total = 0.0
    for layer in model.layers:
        c = proc.compute_ms(layer)
        m = proc.memory_ms(layer)
        total += proc.overhead_ms + max(c, m)
    return total


def fit(platform: Platform, proc_id: str, names, targets):
    proc = platform.processors[proc_id]
    x0 = [proc.overhead_ms if n == 'overhead_ms' else proc.efficiency[n] for n in names]
    lo = [0.005 if n == 'overhead_ms' else 0.005 for n in names]  # >= 5 us per layer
    hi = [0.2 if n == 'overhead_ms' else 1.0 for n in names]

    def residuals(x):
        p = with_params(proc, names, x)
        return [math.log(latency(platform, p, m) / t) for m, t in targets]

    res = least_squares(residuals, np.clip(x0, lo, hi), bounds=(lo, hi))
    return dict(zip(names, res.x)), residuals(res.x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--platform', default='xavier')
    args = ap.parse_args()
    plat = Platform.load(args.platform)
    gpu_targets = [(load_model(n), ms) for n, ms in TORCH2TRT_XAVIER_MS.items()]
    gpu_fit, gpu_res = fit(plat, 'gpu', GPU_PARAMS, gpu_targets)
    print('gpu:', {k: round(float(v), 4) for k, v in gpu_fit.items()})
    for (m, t), r in zip(gpu_targets, gpu_res):
        print('  %-14s measured %6.3f ms  fitted %+5.1f%%' % (m.name, t, 100 * (math.exp(r) - 1)))
    dla_targets = [(load_model(n), d) for n, (g, d) in HAXCONN_DLA_GPU_MS.items()]
    dla_fit, dla_res = fit(plat, 'dla0', DLA_PARAMS, dla_targets)
    print('dla:', {k: round(float(v), 4) for k, v in dla_fit.items()})
    for (m, t), r in zip(dla_targets, dla_res):
        print('  %-14s measured %6.3f ms  fitted %+5.1f%%' % (m.name, t, 100 * (math.exp(r) - 1)))


if __name__ == '__main__':
    main()
