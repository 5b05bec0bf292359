"""Interference model speed: 100,000 slowdown predictions, and model-level latency calls.

Prints JSON and a table. Run: ``python bench/bench_interference.py``.
"""

import json
import time

import numpy as np

from hetero_infer.interference.features import feature_names
from hetero_infer.interference.slowdown_model import ModelLatencyPredictor, SlowdownPredictor
from hetero_infer.models.zoo import list_models, load_model
from hetero_infer.platform.spec import Platform


def main() -> None:
    pred = SlowdownPredictor.load('xavier')
    rng = np.random.default_rng(0)
    out = {}
    for cfg in pred.configs:
        n_feat = len(feature_names(len(cfg.split('|')[1].split('+'))))
        X = np.abs(rng.standard_normal((100000, n_feat)))
        pred.predict_slowdown(cfg, X[:10])
        t0 = time.perf_counter()
        y = pred.predict_slowdown(cfg, X)
        out['predict_100k_s[%s]' % cfg] = time.perf_counter() - t0
        assert y.shape == (100000,)
    platform = Platform.load('xavier')
    lat = ModelLatencyPredictor(pred, platform)
    models = [load_model(n) for n in list_models()]
    t0 = time.perf_counter()
    calls = 0
    for i, m in enumerate(models):
        other = models[(i + 1) % len(models)]
        lat.predict_model_latency_ms(m, 'gpu', {'dla0': other})
        calls += 1
    out['model_latency_first_call_ms'] = (time.perf_counter() - t0) * 1e3 / calls
    t0 = time.perf_counter()
    for _ in range(1000):
        lat.predict_model_latency_ms(models[0], 'gpu', {'dla0': models[1]})
    out['model_latency_cached_call_us'] = (time.perf_counter() - t0) * 1e3
    print(json.dumps(out, indent=1))
    print('%-40s %12s' % ('metric', 'value'))
    for k, v in out.items():
        print('%-40s %12.4f' % (k, v))


if __name__ == '__main__':
    main()
