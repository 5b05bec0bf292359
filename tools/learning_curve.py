"""Learning curve of the interference model: held-out accuracy against training samples.

For each configuration of a dataset made by ``hetero-infer profile``, a fixed seeded 20% of the
random samples is held out (the split ``hetero-infer train`` uses); the regressor is trained on
``--subsets`` seeded random subsets of the rest of each size in ``--sizes`` and scored on the
held-out part (``100 x (1 - MAPE)`` of the co-run latency). The dataset's test-retest accuracy
(``hetero-infer profile --retest-fraction``) is drawn as the ceiling (dashed), the accuracy of
predicting the training split's median slowdown for every sample as the floor (dotted), and the
profiling time per sample recorded in the dataset turns sample counts into minutes of
profiling, so a user can read how long to profile a new board.

The regressor is ``--regressor`` with default hyperparameters, or, with ``--accuracy`` (an
``accuracy.json`` written by ``hetero-infer train``), the kind and hyperparameters selected for
each configuration. Writes ``OUT.json`` and ``OUT.png``::

    python tools/learning_curve.py --data prof/ --out docs/interference/lc_cpu \\
        --accuracy model/accuracy.json --sizes 25,50,100,184
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hetero_infer.errors import ConfigError  # noqa: E402
from hetero_infer.interference.profiling import Dataset  # noqa: E402
from hetero_infer.interference.regressor_comparison import (  # noqa: E402
    corun_accuracy,
    design_matrix,
    split_indices,
)
from hetero_infer.interference.regressor_selection import make_model, title  # noqa: E402


def learning_curve(ds, sizes, *, kinds, params, subsets=3, test_fraction=0.2, seed=0):
    """``{config: {'regressor', 'params', 'points': [{'samples', 'accuracy', 'std'}]}}``."""
    out = {}
    for ci, cfg in enumerate(ds.configs()):
        X, y, iso = design_matrix(ds.select(cfg, source='random'), ds.processor_kinds)
        tr, te = split_indices(len(y), test_fraction, seed + ci)
        kind, p = kinds.get(cfg, 'mlp'), params.get(cfg, {})
        points = []
        for n in sizes:
            if n > len(tr):
                continue
            accs = []
            for s in range(subsets if n < len(tr) else 1):
                sub = np.random.default_rng([seed, n, s]).choice(tr, n, replace=False)
                est = make_model(kind, p, seed=seed).fit(X[sub], y[sub])
                accs.append(corun_accuracy(np.asarray(est.predict(X[te])), y[te], iso[te]))
            points.append({'samples': int(n), 'accuracy': round(float(np.mean(accs)), 3),
                           'std': round(float(np.std(accs)), 3), 'subsets': len(accs)})
        base = corun_accuracy(np.full(len(te), float(np.median(y[tr]))), y[te], iso[te])
        out[cfg] = {'regressor': kind, 'params': p, 'test_samples': int(len(te)),
                    'median_slowdown_accuracy': round(base, 3), 'points': points}
    return out


def _plot(path, result, title_text):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for cfg, r in result['configs'].items():
        xs = [p['samples'] for p in r['points']]
        ys = [p['accuracy'] for p in r['points']]
        es = [p['std'] for p in r['points']]
        line = ax.errorbar(xs, ys, yerr=es, marker='o', capsize=3,
                           label='%s (%s)' % (cfg, title(r['regressor'])))
        ax.axhline(r['median_slowdown_accuracy'], color=line[0].get_color(), linestyle='dotted',
                   linewidth=1, label='%s: the median slowdown for every sample %.1f'
                   % (cfg, r['median_slowdown_accuracy']))
        tr = result['test_retest'].get(cfg)
        if tr is not None:
            ax.axhline(tr, color=line[0].get_color(), linestyle='dashed', linewidth=1,
                       label='%s test-retest %.1f' % (cfg, tr))
    ax.set_xscale('log')
    ax.set_xlabel('training samples per configuration')
    ax.set_ylabel('held-out accuracy, 100 x (1 - MAPE)')
    s = result.get('profile_s_per_sample')
    ax.set_title(title_text + ('' if not s else
                               ' (%.2f s of profiling per sample)' % s), fontsize=10)
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', required=True, help='dataset directory (hetero-infer profile)')
    ap.add_argument('--out', required=True, help='output path without extension')
    ap.add_argument('--sizes', default='25,50,100,200,400,800,1600,3200')
    ap.add_argument('--regressor', default='mlp')
    ap.add_argument('--accuracy', default='', help='accuracy.json of hetero-infer train: use '
                                                   'the kind and hyperparameters it selected')
    ap.add_argument('--subsets', type=int, default=3)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--title', default='')
    args = ap.parse_args(argv)
    try:
        sizes = sorted({int(s) for s in args.sizes.split(',') if s.strip()})
    except ValueError:
        raise ConfigError('--sizes must be comma-separated integers, got %r'
                          % args.sizes) from None
    if not sizes or sizes[0] < 5:
        raise ConfigError('--sizes: at least one size >= 5 needed, got %r' % args.sizes)
    ds = Dataset.load(args.data)
    kinds, params = {}, {}
    if args.accuracy:
        with open(args.accuracy) as f:
            sel = json.load(f).get('selected') or {}
        for cfg, v in sel.items():
            kinds[cfg], params[cfg] = v['regressor'], v.get('params') or {}
    for cfg in ds.configs():
        kinds.setdefault(cfg, args.regressor)
    curves = learning_curve(ds, sizes, kinds=kinds, params=params, subsets=args.subsets,
                            seed=args.seed)
    n = ds.meta.get('samples') or len(ds.observations)
    per = ds.meta.get('profile_s') / n if ds.meta.get('profile_s') and n else None
    result = {'command': 'python tools/learning_curve.py ' + ' '.join(sys.argv[1:]),
              'data': {k: ds.meta.get(k) for k in ('platform', 'backend', 'samples', 'repeats',
                                                   'protocol', 'command')},
              'profile_s_per_sample': round(per, 4) if per else None,
              'test_retest': dict((ds.meta.get('quality') or {}).get('test_retest') or {}),
              'configs': curves}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + '.json', 'w') as f:
        json.dump(result, f, indent=1)
        f.write('\n')
    _plot(args.out + '.png', result, args.title or 'Learning curve: %s / %s'
          % (ds.meta.get('platform'), ds.meta.get('backend')))
    for cfg, r in curves.items():
        print('%s (%s): %s; test-retest %s; median-slowdown baseline %.1f' % (
            cfg, r['regressor'], ', '.join('%d: %.1f' % (p['samples'], p['accuracy'])
                                           for p in r['points']),
            result['test_retest'].get(cfg, '-'), r['median_slowdown_accuracy']))
    print('wrote %s.json and %s.png' % (args.out, args.out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
