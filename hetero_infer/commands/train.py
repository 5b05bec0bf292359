"""``hetero-infer train``: fit the interference model and reproduce the talk's comparison.

Reads a dataset made by ``hetero-infer profile`` and writes to ``--out``:

- ``accuracy.json``: ``{"configs": [...], "regressors": {"mlp": {config: accuracy %}, "knn": ...,
  "random_forest": ..., "decision_tree": ..., "svr": ...}, "zoo_layers": {...},
  "model_level": {...}}`` plus the definitions, the talk's numbers and provenance;
- ``accuracy.md`` (tables) and ``accuracy.png`` (bar chart);
- ``<platform>.json``: the interference model (MLPs refitted on all random samples), in the
  versioned JSON format of :class:`hetero_infer.core.interference.InterferencePredictor`.

Accuracy = 100 x (1 - MAPE) of predicted co-run latency (predicted slowdown x measured isolated
latency) vs measured co-run latency, on a seeded 20% hold-out per configuration.
"""

from hetero_infer.commands import argtypes

TALK = {
    'mlp': {'gpu|dla': 97.8, 'dla|gpu': 94.3, 'gpu|dla0+dla1': 97.4, 'dla0|dla1+gpu': 94.0},
    'knn': {'gpu|dla': 97.7, 'dla|gpu': 91.8, 'gpu|dla0+dla1': 95.6, 'dla0|dla1+gpu': 91.2},
    'random_forest': {'gpu|dla': 98.5, 'dla|gpu': 92.7, 'gpu|dla0+dla1': 92.7,
                      'dla0|dla1+gpu': 88.5},
    'decision_tree': {'gpu|dla': 97.5, 'dla|gpu': 92.0, 'gpu|dla0+dla1': 87.4,
                      'dla0|dla1+gpu': 77.6},
    'svr': {'gpu|dla': 92.8, 'dla|gpu': 92.7, 'gpu|dla0+dla1': 94.6, 'dla0|dla1+gpu': 86.5},
}
DEFINITION = ('accuracy = 100 x (1 - MAPE) of predicted co-run latency (predicted slowdown x '
              'measured isolated latency) vs measured co-run latency on held-out samples; equal '
              'to 100 x (1 - MAPE) of the slowdown')



def add_arguments(parser):
    parser.add_argument('--data', required=True, metavar='DIR',
                        help='dataset directory written by "hetero-infer profile"')
    parser.add_argument('--out', type=argtypes.output_dir, required=True, metavar='DIR',
                        help='output directory')
    parser.add_argument('--regressors', default='mlp,knn,random_forest,decision_tree,svr',
                        help='comma-separated regressors to compare')
    parser.add_argument('--test-fraction', type=argtypes.float_in(0.05, 0.9), default=0.2)
    parser.add_argument('--pairs', type=argtypes.int_in(0, 10000), default=30,
                        help='zoo model pairs (GPU+DLA0) for the model-level check (twin only)')
    parser.add_argument('--triples', type=argtypes.int_in(0, 10000), default=20,
                        help='zoo model triples (GPU+DLA0+DLA1) for the model-level check')
    parser.add_argument('--seed', type=argtypes.seed, default=0)


def _markdown(result, configs, names):
    from hetero_infer.core.features import CONFIG_TITLES
    from hetero_infer.core.regressors import REGRESSOR_TITLES
    lines = ['# Interference model accuracy', '', DEFINITION + '.', '',
             '| regressor | ' + ' | '.join(CONFIG_TITLES.get(c, c) for c in configs) + ' |',
             '|---|' + '---|' * len(configs)]
    for n in names:
        row = result['regressors'][n]
        lines.append('| %s | %s |' % (REGRESSOR_TITLES.get(n, n), ' | '.join(
            '%.1f' % row[c] if c in row else '-' for c in configs)))
    if all(c in TALK['mlp'] for c in configs):
        lines += ['', 'The talk (Jetson AGX Xavier):', '',
                  '| regressor | ' + ' | '.join(CONFIG_TITLES.get(c, c) for c in configs) + ' |',
                  '|---|' + '---|' * len(configs)]
        for n in names:
            if n in TALK:
                lines.append('| %s | %s |' % (REGRESSOR_TITLES.get(n, n), ' | '.join(
                    '%.1f' % TALK[n][c] for c in configs)))
    extra = result.get('extra_configs') or {}
    if extra:
        lines += ['', 'Extra configurations (not in the talk):', '']
        for c, row in extra.items():
            lines.append('- %s: %s' % (c, ', '.join('%s %.1f' % (REGRESSOR_TITLES.get(n, n), a)
                                                      for n, a in row.items())))
    zoo = result.get('zoo_layers') or {}
    if zoo:
        lines += ['', '## Zoo layers (never in training), MLP', '',
                  '| configuration | samples | MLP accuracy | no-interference accuracy |',
                  '|---|---|---|---|']
        for c, v in zoo.items():
            lines.append('| %s | %d | %.1f | %.1f |' % (CONFIG_TITLES.get(c, c), v['samples'],
                                                       v['accuracy'],
                                                       v['no_interference_accuracy']))
    ml = result.get('model_level') or {}
    if ml.get('pairs') or ml.get('triples'):
        lines += ['', '## Model-level co-run latency vs the digital twin', '',
                  '| mapping | predictions | MAPE % | MAPE % assuming no interference |',
                  '|---|---|---|---|']
        for k in ('pairs', 'triples'):
            if k in ml:
                v = ml[k]
                lines.append('| %s | %d | %.2f | %.2f |' % (k, v['predictions'], v['mape_pct'],
                                                            v['no_interference_mape_pct']))
    return '\n'.join(lines) + '\n'


def _chart(path, result, configs, names):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    from hetero_infer.core.features import CONFIG_TITLES
    from hetero_infer.core.regressors import REGRESSOR_TITLES
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(len(names), 1)
    x = np.arange(len(configs))
    for i, n in enumerate(names):
        vals = [result['regressors'][n].get(c, 0.0) for c in configs]
        ax.bar(x + (i - (len(names) - 1) / 2.0) * width, vals, width,
               label=REGRESSOR_TITLES.get(n, n))
    ax.set_xticks(x)
    ax.set_xticklabels([CONFIG_TITLES.get(c, c) for c in configs])
    lows = [v for n in names for v in result['regressors'][n].values()]
    ax.set_ylim(max(0.0, min(lows) - 3.0), 100.0)
    ax.set_ylabel('accuracy, 100 x (1 - MAPE)')
    ax.set_title('Interference model: held-out accuracy per co-run configuration')
    ax.legend(ncol=len(names), fontsize=8, loc='lower center')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args) -> int:
    import json
    import os
    import sys

    from tqdm import tqdm

    from hetero_infer.core.features import TALK_CONFIGS
    from hetero_infer.core.interference import InterferencePredictor
    from hetero_infer.core.profiling import Dataset
    from hetero_infer.core.regressors import (
        compare,
        design_matrix,
        evaluate_observations,
        make_regressor,
        regressor_names,
    )
    from hetero_infer.errors import ConfigError

    ds = Dataset.load(args.data)
    names = [n.strip() for n in args.regressors.split(',') if n.strip()]
    for n in names:
        if n not in regressor_names():
            raise ConfigError('--regressors: unknown %r (known: %s)'
                              % (n, ', '.join(regressor_names())))
    if 'mlp' not in names:
        names.insert(0, 'mlp')
    configs = ds.configs()
    kinds = ds.processor_kinds
    with tqdm(total=len(configs) * len(names), desc='compare regressors', unit='fit',
              dynamic_ncols=True) as bar:
        table, _ = compare(ds, configs=configs, regressors=names,
                           test_fraction=args.test_fraction, seed=args.seed, progress=bar.update)
    # The shipped model: MLPs refitted on every random sample of each configuration.
    final = {}
    for cfg in tqdm(configs, desc='fit final MLPs', unit='config', dynamic_ncols=True):
        X, y, _ = design_matrix(ds.select(cfg, source='random'), kinds)
        final[cfg] = make_regressor('mlp', args.seed).fit(X, y)
    shown = [c for c in TALK_CONFIGS if c in configs] or list(configs)
    extra = [c for c in configs if c not in shown]
    result = {
        'configs': shown,
        'regressors': {n: {c: round(table[n][c], 3) for c in shown} for n in names},
        'extra_configs': {c: {n: round(table[n][c], 3) for n in names} for c in extra},
        'zoo_layers': {}, 'model_level': {},
        'definition': DEFINITION,
        'talk': TALK if shown == list(TALK_CONFIGS) else {},
        'data': {k: ds.meta.get(k) for k in ('platform', 'backend', 'seed', 'samples',
                                              'repeats', 'versions', 'command')},
        'command': 'hetero-infer train ' + ' '.join(sys.argv[2:]) if len(sys.argv) > 2 else '',
    }
    zoo_meta = os.path.join(args.data, 'zoo_layers.json')
    if os.path.exists(zoo_meta):
        zoo = Dataset.load(args.data, meta_name='zoo_layers.json')
        result['zoo_layers'] = {c: {k: (round(v, 3) if isinstance(v, float) else v)
                                    for k, v in d.items()}
                                for c, d in evaluate_observations(final, zoo.observations,
                                                                  kinds).items()}
    predictor = InterferencePredictor(final, kinds, platform_name=str(ds.meta.get('platform')),
                                      meta={'trained_on': result['data'],
                                            'accuracy': result['regressors'],
                                            'extra_configs': result['extra_configs']})
    if ds.meta.get('backend') == 'twin' and (args.pairs > 0 or args.triples > 0):
        from hetero_infer.core.interference import ModelLatencyPredictor
        from hetero_infer.core.model import list_models, load_model
        from hetero_infer.core.platform import Platform
        from hetero_infer.core.regressors import evaluate_model_level
        from hetero_infer.core.twin import Twin
        platform = Platform.load(str(ds.meta['platform']))
        models = [load_model(n) for n in list_models()]
        if len(models) >= 3:
            with tqdm(total=args.pairs + args.triples, desc='model-level co-runs', unit='mapping',
                      dynamic_ncols=True) as bar:
                ml = evaluate_model_level(ModelLatencyPredictor(predictor, platform),
                                          Twin(platform, seed=args.seed + 7), models,
                                          pairs=args.pairs, triples=args.triples,
                                          seed=args.seed, progress=bar.update)
            result['model_level'] = ml
            result['model_level']['method'] = (
                'sum over the target model\'s layers of isolated time x predicted slowdown, '
                'combined over co-runner phases by time, i.e. the harmonic mean of the '
                'per-phase loop latency (ModelLatencyPredictor)')
            predictor.meta['model_level_mape_pct'] = {
                k: round(v['mape_pct'], 3) for k, v in ml.items() if isinstance(v, dict)}
    os.makedirs(args.out, exist_ok=True)
    model_path = os.path.join(args.out, '%s.json' % (ds.meta.get('platform') or 'interference'))
    predictor.save(model_path)
    with open(os.path.join(args.out, 'accuracy.json'), 'w') as f:
        json.dump(result, f, indent=1)
        f.write('\n')
    with open(os.path.join(args.out, 'accuracy.md'), 'w') as f:
        f.write(_markdown(result, shown, names))
    _chart(os.path.join(args.out, 'accuracy.png'), result, shown, names)
    print(_markdown(result, shown, names))
    print('wrote %s, accuracy.json, accuracy.md, accuracy.png in %s' % (model_path, args.out))
    return 0
