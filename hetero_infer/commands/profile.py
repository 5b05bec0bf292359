"""``hetero-infer profile``: build an interference dataset from random layers.

Times random target layers alone and while the other processors loop random layers, under each
co-run configuration, and writes ``OUT/dataset.csv`` + ``OUT/dataset.json`` (provenance). On the
digital twin it also profiles real zoo layers (``OUT/zoo_layers.csv``/``.json``) for the
generalisation check of ``hetero-infer train``. ``--backend onnxruntime`` profiles the CPU cores of
this machine (``cpu0`` target, ``cpu1`` co-runner) through the executor interface instead.

Measurement quality: ``--retest-fraction`` of the samples (default 10%) is measured a second
time at the end, and the test-retest accuracy per configuration (how well one measurement
predicts the other, the ceiling a model can be judged against) and the median coefficient of
variation of the repeats are printed and stored in ``dataset.json`` (``quality``), which
``hetero-infer train`` reports beside each regressor's accuracy. On real backends the default
protocol (docs/interference.md) runs every layer on its processor's pinned worker thread,
interleaves isolated and co-run runs in blocks, takes the 20%-trimmed mean of the repeats,
redraws target layers shorter than ``--min-layer-ms``, measures a sample again when its
repeats scatter by more than ``--max-cv``, and on onnxruntime times each run by the time the
target's thread was on its core (``--timing on-cpu``), re-measuring co-run blocks in which a
co-runner was off its core (``--min-duty``).
"""

from hetero_infer.commands import argtypes


def add_arguments(parser):
    parser.add_argument('--platform', default='xavier',
                        help='simulated platform (twin backend) or a name recorded in the '
                             'provenance (real backends); default xavier')
    parser.add_argument('--backend', default='twin',
                        help='twin (digital twin of --platform), or a registered executor '
                             'backend: onnxruntime, tensorrt')
    parser.add_argument('--samples', type=argtypes.positive_count, default=20000,
                        help='random target layers in all (split evenly over configurations)')
    parser.add_argument('--zoo-samples', type=argtypes.count, default=2000,
                        help='zoo-layer samples for the generalisation check (twin only; 0: none)')
    parser.add_argument('--configs', default=None,
                        help='comma-separated configurations, e.g. "gpu|dla,dla|gpu" '
                             '(default: the platform\'s; Xavier: the talk\'s four + dla0|dla1)')
    parser.add_argument('--repeats', type=argtypes.int_in(1, 10000), default=20,
                        help='runs averaged per measurement')
    parser.add_argument('--max-macs', type=argtypes.float_in(1.0, 1e12), default=None,
                        help='largest random layer in MACs (default: 4e9 on the twin, '
                             '2e7 on CPU backends)')
    parser.add_argument('--aggregate', choices=('mean', 'median', 'trimmed'), default=None,
                        help='how repeats are combined (default: trimmed on real backends, '
                             'mean on the twin, whose measurements are already means)')
    parser.add_argument('--blocks', type=argtypes.int_in(1, 100), default=None,
                        help='isolated and co-run runs interleaved in this many blocks '
                             '(default: 4 on real backends, 1 on the twin)')
    parser.add_argument('--min-layer-ms', type=argtypes.float_in(0.0, 1000.0), default=None,
                        help='redraw target layers shorter than this (ms), so per-call overhead '
                             'does not dominate (default: 0.1 on real backends, 0 on the twin)')
    parser.add_argument('--max-cv', type=argtypes.float_in(0.0, 100.0), default=None,
                        help='measure a sample again (twice at most) when the coefficient of '
                             'variation of its repeats exceeds this: it was disturbed '
                             '(default: 0.25 on real backends, never on the twin; 0: never)')
    parser.add_argument('--timing', choices=('on-cpu', 'wall'), default=None,
                        help='on-cpu subtracts from each run the time the '
                             'target thread was preempted (onnxruntime with one core per '
                             'processor; its default), wall keeps wall time (other backends)')
    parser.add_argument('--min-duty', type=argtypes.float_in(0.0, 0.99), default=None,
                        help='re-measure a co-run block when a co-runner was '
                             'on its core for less than this share of it (default 0.9 with '
                             'on-cpu timing, else 0)')
    parser.add_argument('--retest-fraction', type=argtypes.float_in(0.0, 0.5), default=0.1,
                        help='share of samples measured twice for the test-retest accuracy '
                             '(0: none)')
    parser.add_argument('--budget-min', type=argtypes.float_in(0.01, 1e6), default=None,
                        metavar='M', help='stop drawing samples after M minutes (the re-test '
                                          'fits inside the budget); fewer samples than '
                                          '--samples then')
    parser.add_argument('--twin-noise-pct', type=argtypes.float_in(0.0, 50.0), default=None,
                        help='twin only: standard deviation of the per-layer-run noise in '
                             'percent (default 3, an assumption: see docs/interference.md)')
    parser.add_argument('--max-tensor-mb', type=argtypes.float_in(0.01, 1e5), default=None,
                        help='largest input or output tensor of a random layer in MiB '
                             '(default: 2 on CPU backends, the generator\'s own on the twin)')
    parser.add_argument('--seed', type=argtypes.seed, default=0)
    parser.add_argument('--out', type=argtypes.output_dir, required=True, metavar='DIR',
                        help='output directory')


def _bar(total, desc):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit='sample', dynamic_ncols=True)


def quality_table(quality, loads=None) -> str:
    """The measurement-quality lines ``profile`` prints (and ``train`` repeats)."""
    lines = ['measurement quality (test-retest: accuracy of a second measurement of the same '
             'sample against the first; the ceiling to read model accuracy against):',
             '| configuration | re-measured | test-retest slowdown | co-run | isolated '
             '| median CV of repeats (iso / co-run) |', '|---|---|---|---|---|---|']
    cfgs = list(quality.get('retest_samples') or {}) or list(quality.get('cv') or {})
    for c in cfgs:
        cv = (quality.get('cv') or {}).get(c) or {}

        def pct(key, c=c):
            v = (quality.get(key) or {}).get(c)
            return '-' if v is None else '%.1f' % v
        lines.append('| %s | %s | %s | %s | %s | %s / %s |' % (
            c, (quality.get('retest_samples') or {}).get(c, 0), pct('test_retest'),
            pct('test_retest_corun'), pct('test_retest_iso'),
            '-' if cv.get('iso') is None else '%.3f' % cv['iso'],
            '-' if cv.get('corun') is None else '%.3f' % cv['corun']))
    if not cfgs:
        lines.append('| (no sample re-measured: --retest-fraction 0) | | | | | |')
    if loads:
        lines.append('1-minute load average: %s' % ', '.join(
            '%s %s' % (k, '-' if v is None else '%.2f' % v) for k, v in sorted(loads.items())))
    return '\n'.join(lines)


def run(args) -> int:
    import contextlib

    from hetero_infer.interference.features import default_configs
    from hetero_infer.interference.profiling import profile_random, profile_zoo_layers

    with contextlib.ExitStack() as stack:
        if args.backend == 'twin':
            from hetero_infer.interference.profiling import TwinTarget
            from hetero_infer.platform.spec import Platform
            from hetero_infer.twin.simulator import Twin
            platform = Platform.load(args.platform)
            from hetero_infer.twin.simulator import DEFAULT_NOISE_PCT
            target = TwinTarget(Twin(platform, seed=args.seed,
                                     noise_pct=DEFAULT_NOISE_PCT if args.twin_noise_pct is None
                                     else args.twin_noise_pct))
            limits = {}
            real = False
        else:
            if args.twin_noise_pct is not None:
                from hetero_infer.errors import ConfigError
                raise ConfigError('--twin-noise-pct applies to --backend twin only (got '
                                  '--backend %s, whose noise is the machine\'s)' % args.backend)
            from hetero_infer.backends import create_backend
            from hetero_infer.backends.profiling_targets import ExecutorProfilingTarget
            backend = stack.enter_context(create_backend(args.backend))
            one_core = all(len(c) == 1 for c in getattr(backend, 'core_sets', {'x': ()}).values())
            timing = args.timing or ('on-cpu' if args.backend == 'onnxruntime' and one_core
                                     else 'wall')
            on_cpu = timing == 'on-cpu'
            target = stack.enter_context(ExecutorProfilingTarget(
                backend, platform_name=args.platform, on_cpu=on_cpu,
                min_duty=args.min_duty if args.min_duty is not None else (0.9 if on_cpu
                                                                          else 0.0)))
            limits = {'max_macs': 2 * 10 ** 7, 'max_tensor_bytes': 2 * 2 ** 20}
            real = True
        if args.max_macs is not None:
            limits['max_macs'] = int(args.max_macs)
        if args.max_tensor_mb is not None:
            limits['max_tensor_bytes'] = int(args.max_tensor_mb * 2 ** 20)
        configs = (tuple(c.strip() for c in args.configs.split(',') if c.strip())
                   if args.configs else default_configs(target.processor_kinds()))
        with _bar(args.samples, 'profile %s/%s' % (target.platform_name, target.backend)) as bar:
            ds = profile_random(
                target, configs, args.samples, seed=args.seed, repeats=args.repeats,
                layer_limits=limits,
                aggregate=args.aggregate or ('trimmed' if real else 'mean'),
                blocks=args.blocks or (4 if real else 1),
                min_layer_ms=args.min_layer_ms if args.min_layer_ms is not None
                else (0.1 if real else 0.0),
                max_cv=(0.25 if real else None) if args.max_cv is None else (args.max_cv or None),
                retest_fraction=args.retest_fraction,
                budget_s=None if args.budget_min is None else 60.0 * args.budget_min,
                progress=bar.update)
        ds.meta['command'] = 'hetero-infer profile ' + ' '.join(
            '--%s %s' % (k.replace('_', '-'), v) for k, v in sorted(vars(args).items())
            if not k.startswith('_') and k != 'command' and v is not None)
        ds.save(args.out)
        print('wrote %d samples to %s/dataset.csv%s' % (
            len(ds.observations), args.out,
            ' (stopped by the %g min budget)' % args.budget_min
            if ds.meta.get('stopped_by_budget') else ''))
        print(quality_table(ds.meta.get('quality') or {}, ds.meta.get('load_average_1min')))
        if args.backend == 'twin' and args.zoo_samples > 0:
            from hetero_infer.models.zoo import list_models, load_model
            models = [load_model(n) for n in list_models()]
            if len(models) >= 2:
                with _bar(args.zoo_samples, 'profile zoo layers') as bar:
                    zoo = profile_zoo_layers(target, configs, models, args.zoo_samples,
                                             seed=args.seed + 1, repeats=args.repeats,
                                             progress=bar.update)
                zoo.save(args.out, csv_name='zoo_layers.csv', meta_name='zoo_layers.json')
                print('wrote %d zoo-layer samples to %s/zoo_layers.csv'
                      % (len(zoo.observations), args.out))
    return 0
