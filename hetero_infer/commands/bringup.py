"""``hetero-infer bringup``: from a fresh board to a fitted twin, an interference model, a plan
and a measured serving run, resumable.

Steps and artifacts: :mod:`hetero_infer.bringup`. Each finished step leaves its artifact under
``--out``; running the same command again skips them (a step killed half-way left nothing and
is redone). ``report.md`` / ``report.json`` / ``twin_vs_board.png`` summarise every step.

    hetero-infer bringup --backend onnxruntime --platform cpu2 --out bringup_cpu2
    hetero-infer bringup --backend emulated --platform xavier --out bringup_xavier
"""

from hetero_infer.commands import argtypes


def add_arguments(parser):
    parser.add_argument('--backend', required=True,
                        choices=('tensorrt', 'onnxruntime', 'emulated'),
                        help='the processors to bring up: TensorRT GPU/DLA, onnxruntime CPU '
                             'cores, or the emulated platform (the twin on its virtual clock)')
    parser.add_argument('--platform', required=True, metavar='BASE',
                        help='base platform file (name or YAML path): its processors, peaks '
                             'and bandwidths; efficiencies and per-layer costs are fitted')
    parser.add_argument('--out', type=argtypes.output_dir, required=True, metavar='DIR',
                        help='bring-up directory (re-run with the same settings to resume)')
    parser.add_argument('--models', default=None, metavar='LIST',
                        help='comma-separated zoo names (emulated only), project ONNX model '
                             'names or ONNX files (default: emulated resnet18,googlenet,'
                             'squeezenet1_1; else tiny_cnn,mobilenet_v2_035,kws_matchboxnet)')
    parser.add_argument('--budget-s', type=argtypes.float_in(10.0, 1e6), default=900.0,
                        help='time budget of the whole bring-up; the profile gets 40%% of it '
                             '(default 900)')
    parser.add_argument('--repeats', type=argtypes.int_in(3, 100000), default=30,
                        help='runs per isolated latency (default 30)')
    parser.add_argument('--corun-repeats', type=argtypes.int_in(3, 100000), default=20,
                        help='target runs per co-run measurement (default 20)')
    parser.add_argument('--profile-samples', type=argtypes.int_in(20, 10 ** 7), default=2000,
                        help='random-layer samples of the interference profile (default 2000; '
                             'fewer when the budget ends first)')
    parser.add_argument('--candidates', default='mlp,knn,random_forest,median,none',
                        help='kinds the interference model is chosen among (median: the '
                             'median slowdown, none: no interference; constants win ties)')
    parser.add_argument('--search-iter', type=argtypes.int_in(0, 1000), default=4,
                        help='hyperparameter candidates per kind (0: defaults)')
    parser.add_argument('--cv', type=argtypes.int_in(2, 20), default=3,
                        help='cross-validation folds of the model choice')
    parser.add_argument('--load', type=argtypes.float_in(0.05, 2.0), default=0.8,
                        help='scenario load: share of the fitted platform\'s equal-rate '
                             'capacity (default 0.8)')
    parser.add_argument('--slo-factor', type=argtypes.float_in(1.0, 1000.0), default=5.0,
                        help='SLO = this x the model\'s fastest isolated latency (default 5)')
    parser.add_argument('--min-slo-ms', type=argtypes.float_in(0.0, 1e5), default=None,
                        help='SLO floor in ms (default 0 emulated, 2 on real processors, '
                             'where the serving engine\'s hand-offs add ~0.1 ms)')
    parser.add_argument('--serve-s', type=argtypes.float_in(1.0, 1e5), default=10.0,
                        help='seconds of the served trace (emulated: virtual seconds)')
    parser.add_argument('--warmup-s', type=argtypes.float_in(0.0, 1e4), default=1.0,
                        help='first seconds of the trace not measured (default 1)')
    parser.add_argument('--plan-samples', type=argtypes.int_in(1, 100000), default=100,
                        help='policies the plan search samples (default 100)')
    parser.add_argument('--serve-clock', choices=('virtual', 'wall'), default=None,
                        help='emulated backend: serve the plan on the twin\'s virtual clock '
                             '(default), or through the serving engine in wall time scaled by '
                             '--time-scale (Python\'s wake-up delays then count)')
    parser.add_argument('--plan-refine', type=argtypes.int_in(0, 100000), default=120,
                        help='simulations the plan search\'s refinement may use (default 120)')
    parser.add_argument('--time-scale', type=argtypes.float_in(0.01, 1000.0), default=None,
                        help='emulated backend: wall seconds per emulated second of its '
                             'processors (default 1)')
    parser.add_argument('--precision', default='fp16', choices=('fp16', 'int8', 'fp32'),
                        help='tensorrt engines\' precision (default fp16)')
    parser.add_argument('--seed', type=argtypes.seed, default=0)


def settings_from(args):
    """The :class:`hetero_infer.bringup.Settings` the arguments ask for.

    :raises ConfigError: an unknown candidate kind, or ``--time-scale`` off the emulated
        backend.
    """
    from hetero_infer.bringup.steps import DEFAULT_MODELS, Settings
    from hetero_infer.errors import ConfigError
    from hetero_infer.interference.regressor_registry import regressor_kinds
    models = tuple(m.strip() for m in (args.models or '').split(',') if m.strip()) \
        or DEFAULT_MODELS[args.backend]
    candidates = tuple(c.strip() for c in args.candidates.split(',') if c.strip())
    known = regressor_kinds()
    for c in candidates:
        if c not in known:
            raise ConfigError('--candidates: unknown %r (known: %s)' % (c, ', '.join(known)))
    for flag, value in (('--time-scale', args.time_scale), ('--serve-clock', args.serve_clock)):
        if value is not None and args.backend != 'emulated':
            raise ConfigError('%s applies to --backend emulated only (got --backend %s)'
                              % (flag, args.backend))
    if args.warmup_s >= args.serve_s:
        raise ConfigError('--warmup-s %g must be below --serve-s %g'
                          % (args.warmup_s, args.serve_s))
    emulated = args.backend == 'emulated'
    return Settings(
        backend=args.backend, platform=args.platform, models=models, seed=args.seed,
        repeats=args.repeats, corun_repeats=args.corun_repeats,
        profile_samples=args.profile_samples, profile_budget_s=0.4 * args.budget_s,
        candidates=candidates, search_iter=args.search_iter, cv=args.cv, load=args.load,
        slo_factor=args.slo_factor,
        min_slo_ms=args.min_slo_ms if args.min_slo_ms is not None else (0.0 if emulated
                                                                        else 2.0),
        serve_s=args.serve_s, warmup_s=args.warmup_s, plan_samples=args.plan_samples,
        plan_refine_evals=args.plan_refine,
        time_scale=(args.time_scale or 1.0) if emulated else 1.0, precision=args.precision,
        serve_clock=(args.serve_clock or 'virtual') if emulated else 'wall')


def run(args) -> int:
    import os
    import time

    from hetero_infer.bringup.runner import run as bringup
    settings = settings_from(args)
    t0 = time.perf_counter()
    doc = bringup(settings, args.out, log=lambda text: print(text, flush=True))
    head = doc['headline']
    print('bring-up of %s (%s backend) in %.0f s; report: %s' % (
        settings.platform, settings.backend, time.perf_counter() - t0,
        os.path.join(args.out, 'report.md')))
    for key in ('fit_median_abs_error_pct', 'corun_median_abs_slowdown_error',
                'goodput_predicted_hz', 'goodput_served_hz', 'goodput_error_pct',
                'constant_interference_model'):
        if key in head:
            print('  %-34s %s' % (key, head[key]))
    return 0
