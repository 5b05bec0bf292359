"""``hetero-infer profile``: build an interference dataset from random layers.

Times random target layers alone and while the other processors loop random layers, under each
co-run configuration, and writes ``OUT/dataset.csv`` + ``OUT/dataset.json`` (provenance). On the
digital twin it also profiles real zoo layers (``OUT/zoo_layers.csv``/``.json``) for the
generalisation check of ``hetero-infer train``. ``--backend onnxruntime`` profiles the CPU cores of
this machine (``cpu0`` target, ``cpu1`` co-runner) through the executor interface instead.
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
    parser.add_argument('--seed', type=argtypes.seed, default=0)
    parser.add_argument('--out', type=argtypes.output_dir, required=True, metavar='DIR',
                        help='output directory')


def _bar(total, desc):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit='sample', dynamic_ncols=True)


def run(args) -> int:
    import contextlib

    from hetero_infer.core.features import default_configs
    from hetero_infer.core.profiling import profile_random, profile_zoo_layers

    with contextlib.ExitStack() as stack:
        if args.backend == 'twin':
            from hetero_infer.core.platform import Platform
            from hetero_infer.core.profiling import TwinTarget
            from hetero_infer.core.twin import Twin
            platform = Platform.load(args.platform)
            target = TwinTarget(Twin(platform, seed=args.seed))
            limits = {}
        else:
            from hetero_infer.backends import create_backend
            from hetero_infer.backends.profiling_targets import ExecutorProfilingTarget
            backend = stack.enter_context(create_backend(args.backend))
            target = stack.enter_context(ExecutorProfilingTarget(backend,
                                                                 platform_name=args.platform))
            limits = {'max_macs': 2 * 10 ** 7, 'max_tensor_bytes': 2 * 2 ** 20}
        if args.max_macs is not None:
            limits['max_macs'] = int(args.max_macs)
        configs = (tuple(c.strip() for c in args.configs.split(',') if c.strip())
                   if args.configs else default_configs(target.processor_kinds()))
        with _bar(args.samples, 'profile %s/%s' % (target.platform_name, target.backend)) as bar:
            ds = profile_random(target, configs, args.samples, seed=args.seed,
                                repeats=args.repeats, layer_limits=limits, progress=bar.update)
        ds.meta['command'] = 'hetero-infer profile ' + ' '.join(
            '--%s %s' % (k.replace('_', '-'), v) for k, v in sorted(vars(args).items())
            if not k.startswith('_') and k != 'command' and v is not None)
        ds.save(args.out)
        print('wrote %d samples to %s/dataset.csv' % (len(ds.observations), args.out))
        if args.backend == 'twin' and args.zoo_samples > 0:
            from hetero_infer.core.model import list_models, load_model
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
