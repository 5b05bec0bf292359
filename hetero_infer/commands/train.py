"""``hetero-infer train``: fit the interference model and reproduce the talk's comparison.

Reads a dataset made by ``hetero-infer profile`` and writes to ``--out``:

- ``accuracy.json``: ``{"configs": [...], "regressors": {"mlp": {config: accuracy %}, "knn": ...,
  "random_forest": ..., "decision_tree": ..., "svr": ...}, "zoo_layers": {...},
  "model_level": {...}}`` plus the definitions, the talk's numbers and provenance;
- ``accuracy.md`` (tables) and ``accuracy.png`` (bar chart);
- ``<platform>.json``: the interference model, in the versioned JSON format of
  :class:`hetero_infer.interference.slowdown_model.SlowdownPredictor`: per configuration the
 
  regressor
  chosen by cross-validation (:mod:`hetero_infer.interference.regressor_selection`;
  ``--no-select``: the MLP)
  refitted on all random samples, the choice and why in its ``meta.selection``.

Accuracy = 100 x (1 - MAPE) of predicted co-run latency (predicted slowdown x measured isolated
latency) vs measured co-run latency, on a seeded 20% hold-out per configuration. Beside it,
``test_retest`` (from the dataset, ``hetero-infer profile --retest-fraction``): how well a second
measurement of the same sample agrees with the first, the measurement's own ceiling.
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
    parser.add_argument('--no-select', action='store_true',
                        help='ship the MLP without choosing a regressor by cross-validation')
    parser.add_argument('--candidates', default=None, metavar='KINDS',
                        help='comma-separated regressor kinds the cross-validated choice is '
                             'among (default: every registered candidate kind: mlp, '
                             'random_forest, knn, hist_gb, svr, the constants none and '
                             'median, and installed ones)')
    parser.add_argument('--search-iter', type=argtypes.int_in(0, 1000), default=8,
                        help='hyperparameter candidates searched per kind and configuration '
                             '(0: defaults, no search; a few keeps tests fast)')
    parser.add_argument('--cv', type=argtypes.int_in(2, 20), default=3,
                        help='cross-validation folds of the choice')
    parser.add_argument('--search-max-samples', type=argtypes.int_in(30, 10 ** 7), default=2000,
                        help='training samples the hyperparameter search uses at most '
                             '(a seeded subsample; the chosen model is refitted on all)')
    parser.add_argument('--seed', type=argtypes.seed, default=0)


def _markdown(result, configs, names):
    from hetero_infer.interference.features import CONFIG_TITLES
    from hetero_infer.interference.regressor_comparison import REGRESSOR_TITLES
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
    sel = result.get('selected') or {}
    tr = result.get('test_retest') or {}
    if sel or tr:
        from hetero_infer.interference.regressor_selection import title
        allc = list(configs) + [c for c in (result.get('extra_configs') or {})]
        lines += ['', '## Against the measurement\'s own noise', '',
                  'Test-retest: accuracy of a second measurement of the same samples against '
                  'the first (the same metric; a model averaging many samples can beat it a '
                  'little). Tuned: hyperparameters searched, %d-fold cross-validated accuracy '
                  'on the training split in brackets, held-out accuracy first.'
                  % result.get('cv_folds', 3), '',
                  '| | ' + ' | '.join(CONFIG_TITLES.get(c, c) for c in allc) + ' |',
                  '|---|' + '---|' * len(allc)]
        lines.append('| test-retest (re-measured samples) | %s |' % ' | '.join(
            '%.1f (%d)' % (tr[c], (result.get('measurement') or {}).get('retest_samples', {})
                           .get(c, 0)) if c in tr else '-' for c in allc))
        for k, row in (result.get('tuned') or {}).items():
            cvr = (result.get('cv_accuracy') or {}).get(k, {})
            lines.append('| %s, tuned | %s |' % (title(k), ' | '.join(
                '%.1f [%.1f]' % (row[c], cvr.get(c, float('nan'))) if c in row else '-'
                for c in allc)))
        for k, label in (('median_slowdown', 'baseline: the median slowdown for every sample'),
                         ('no_interference', 'baseline: no interference (slowdown 1)')):
            row = (result.get('baselines') or {}).get(k) or {}
            if row:
                lines.append('| %s | %s |' % (label, ' | '.join(
                    '%.1f' % row[c] if c in row else '-' for c in allc)))
        if sel:
            lines.append('| **selected** | %s |' % ' | '.join(
                '**%s %.1f**' % (title(sel[c]['regressor']), sel[c]['accuracy'])
                if c in sel else '-' for c in allc))
            lines += [''] + ['- %s: %s' % (c, sel[c]['why']) for c in allc if c in sel]
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

    from hetero_infer.interference.features import CONFIG_TITLES
    from hetero_infer.interference.regressor_comparison import REGRESSOR_TITLES
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(len(names), 1)
    x = np.arange(len(configs))
    for i, n in enumerate(names):
        vals = [result['regressors'][n].get(c, 0.0) for c in configs]
        ax.bar(x + (i - (len(names) - 1) / 2.0) * width, vals, width,
               label=REGRESSOR_TITLES.get(n, n))
    tr = result.get('test_retest') or {}
    for i, c in enumerate(configs):
        if c in tr:
            ax.hlines(tr[c], i - 0.45, i + 0.45, colors='k', linestyles='dashed',
                      label='test-retest' if i == 0 else None)
    sel = result.get('selected') or {}
    for i, c in enumerate(configs):
        if c in sel:
            ax.plot([i], [sel[c]['accuracy']], marker='*', color='k', markersize=12,
                    linestyle='none', label='selected (tuned, CV)' if i == 0 else None)
    ax.set_xticks(x)
    ax.set_xticklabels([CONFIG_TITLES.get(c, c) for c in configs])
    lows = [v for n in names for v in result['regressors'][n].values()] + \
        [tr[c] for c in configs if c in tr] + [sel[c]['accuracy'] for c in configs if c in sel]
    ax.set_ylim(max(0.0, min(lows) - 3.0), 100.0)
    ax.set_ylabel('accuracy, 100 x (1 - MAPE)')
    ax.set_title('Interference model: held-out accuracy per co-run configuration')
    ax.legend(ncol=min(len(names) + 2, 4), fontsize=8, loc='lower center')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args) -> int:
    import json
    import os
    import sys

    import numpy as np
    from tqdm import tqdm

    from hetero_infer.errors import ConfigError
    from hetero_infer.interference.features import TALK_CONFIGS
    from hetero_infer.interference.profiling import Dataset
    from hetero_infer.interference.regressor_comparison import (
        compare,
        design_matrix,
        evaluate_observations,
        make_regressor,
        regressor_names,
    )
    from hetero_infer.interference.slowdown_model import SlowdownPredictor

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
    from hetero_infer.interference import regressor_selection as model_selection
    from hetero_infer.interference.regressor_comparison import split_indices
    from hetero_infer.interference.regressor_registry import candidate_kinds, regressor_kinds
    candidates = ([k.strip() for k in args.candidates.split(',') if k.strip()]
                  if args.candidates else candidate_kinds())
    for k in candidates:
        if k not in regressor_kinds():
            raise ConfigError('--candidates: unknown %r (known: %s)'
                              % (k, ', '.join(regressor_kinds())))
    selection = {}
    if not args.no_select:
        with tqdm(total=len(configs) * len(candidates), desc='choose regressor (CV)',
                  unit='kind', dynamic_ncols=True) as bar:
            for ci, cfg in enumerate(configs):
                X, y, iso = design_matrix(ds.select(cfg, source='random'), kinds)
                tr, te = split_indices(len(y), args.test_fraction, args.seed + ci)
                selection[cfg] = model_selection.select(
                    X, y, iso, tr, te, candidates=candidates, n_iter=args.search_iter,
                    cv=args.cv, seed=args.seed, max_search_samples=args.search_max_samples,
                    progress=bar.update)
    # The shipped model: per configuration the chosen regressor (the MLP with --no-select)
    # refitted on every random sample.
    final = {}
    for cfg in tqdm(configs, desc='fit final models', unit='config', dynamic_ncols=True):
        X, y, _ = design_matrix(ds.select(cfg, source='random'), kinds)
        if cfg in selection:
            chosen = selection[cfg]['selected']
            final[cfg] = model_selection.make_model(chosen['regressor'], chosen['params'],
                                                    args.seed).fit(X, y)
        else:
            final[cfg] = make_regressor('mlp', args.seed).fit(X, y)
    # Baselines on the same hold-out: no interference (slowdown 1), and the training split's
    # median slowdown for every sample (a model must beat this to have learned anything).
    from hetero_infer.interference.regressor_comparison import corun_accuracy
    baselines = {'no_interference': {}, 'median_slowdown': {}}
    for ci, cfg in enumerate(configs):
        X, y, iso = design_matrix(ds.select(cfg, source='random'), kinds)
        tr, te = split_indices(len(y), args.test_fraction, args.seed + ci)
        baselines['no_interference'][cfg] = round(corun_accuracy(np.ones(len(te)), y[te],
                                                                 iso[te]), 3)
        baselines['median_slowdown'][cfg] = round(corun_accuracy(
            np.full(len(te), float(np.median(y[tr]))), y[te], iso[te]), 3)
    quality = ds.meta.get('quality') or {}
    shown = [c for c in TALK_CONFIGS if c in configs] or list(configs)
    extra = [c for c in configs if c not in shown]
    result = {
        'configs': shown,
        'regressors': {n: {c: round(table[n][c], 3) for c in shown} for n in names},
        'extra_configs': {c: {n: round(table[n][c], 3) for n in names} for c in extra},
        'test_retest': dict(quality.get('test_retest') or {}),
        'measurement': quality,
        'selected': {c: {k: v for k, v in selection[c]['selected'].items()}
                     for c in configs if c in selection},
        'tuned': {k: {c: selection[c]['kinds'][k]['holdout_accuracy'] for c in configs
                      if c in selection} for k in candidates} if selection else {},
        'cv_accuracy': {k: {c: selection[c]['kinds'][k]['cv_accuracy'] for c in configs
                            if c in selection} for k in candidates} if selection else {},
        'selection_detail': {c: selection[c]['kinds'] for c in configs if c in selection},
        'baselines': baselines,
        'cv_folds': args.cv, 'search_iter': args.search_iter,
        'zoo_layers': {}, 'model_level': {},
        'definition': DEFINITION,
        'talk': TALK if shown == list(TALK_CONFIGS) else {},
        'data': {k: ds.meta.get(k) for k in ('platform', 'backend', 'seed', 'samples',
                                              'repeats', 'versions', 'command', 'protocol',
                                              'load_average_1min')},
        'command': 'hetero-infer train ' + ' '.join(sys.argv[2:]) if len(sys.argv) > 2 else '',
    }
    zoo_meta = os.path.join(args.data, 'zoo_layers.json')
    if os.path.exists(zoo_meta):
        zoo = Dataset.load(args.data, meta_name='zoo_layers.json')
        result['zoo_layers'] = {c: {k: (round(v, 3) if isinstance(v, float) else v)
                                    for k, v in d.items()}
                                for c, d in evaluate_observations(final, zoo.observations,
                                                                  kinds).items()}
    predictor = SlowdownPredictor(final, kinds, platform_name=str(ds.meta.get('platform')),
                                      meta={'trained_on': result['data'],
                                            'accuracy': result['regressors'],
                                            'extra_configs': result['extra_configs'],
                                            'test_retest': result['test_retest'],
                                            'selection': result['selected'] or {
                                                c: {'regressor': 'mlp',
                                                    'why': 'no selection (--no-select)'}
                                                for c in configs}})
    if ds.meta.get('backend') == 'twin' and (args.pairs > 0 or args.triples > 0):
        from hetero_infer.interference.regressor_comparison import evaluate_model_level
        from hetero_infer.interference.slowdown_model import ModelLatencyPredictor
        from hetero_infer.models.zoo import list_models, load_model
        from hetero_infer.platform.spec import Platform
        from hetero_infer.twin.simulator import Twin
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
    if quality:
        from hetero_infer.commands.profile import quality_table
        print(quality_table(quality, ds.meta.get('load_average_1min')))
    print('wrote %s, accuracy.json, accuracy.md, accuracy.png in %s' % (model_path, args.out))
    return 0
