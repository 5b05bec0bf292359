"""``hetero-infer evaluate``: every scheduler on every scenario, measured on the digital twin.

Writes ``OUT/summary.json`` (per-scenario metrics of each scheduler and the average improvement
of interference_aware over each baseline), ``OUT/details.json`` (plans, policies, timings),
``OUT/summary.md`` and PNG plots.
"""

import os
import sys

from hetero_infer.commands import argtypes


def add_arguments(parser):
    parser.add_argument('--platform', default=None,
                        help='platform name or YAML path (default: the scenario\'s, else xavier)')
    parser.add_argument('--scenarios', default=None, metavar='FILE',
                        help='scenario YAML (default: config/scenarios.yaml)')
    parser.add_argument('--out', type=argtypes.output_dir, default='eval_out', metavar='DIR',
                        help='output directory')
    parser.add_argument('--only', default=None, metavar='NAMES',
                        help='comma-separated scenario names (default: all)')
    parser.add_argument('--schedulers', default=None, metavar='NAMES',
                        help='comma-separated schedulers (default: all seven)')
    parser.add_argument('--workers', type=argtypes.workers, default=None,
                        help='scenario processes (default: available cores)')
    parser.add_argument('--seed', type=argtypes.seed, default=1)
    parser.add_argument('--duration-s', type=argtypes.sim_seconds, default=None,
                        help='simulated seconds of each twin measurement')
    parser.add_argument('--interference-model', default=None, metavar='FILE',
                        help='trained interference model (default: the committed one)')
    parser.add_argument('--force-interference-model', action='store_true',
                        help='use --interference-model even if trained on another platform')
    parser.add_argument('--no-slo99', action='store_true',
                        help='skip throughput at SLO99 (much faster)')


def _pct(v) -> str:
    return 'n/a' if v is None else '%+.1f%%' % v


def run(args) -> int:
    from tqdm import tqdm

    from hetero_infer.core.evaluation import EvalSettings, run_evaluation, write_outputs
    from hetero_infer.core.platform import Platform
    from hetero_infer.core.scenarios import choose_platform, find_scenario, load_scenarios
    from hetero_infer.core.schedulers import EVALUATED, get_scheduler
    from hetero_infer.core.search import default_workers

    scenarios = load_scenarios(args.scenarios)
    if args.only:
        scenarios = [find_scenario(scenarios, n.strip()) for n in args.only.split(',')]
    platform_name, warning = choose_platform(args.platform, scenarios)
    if warning:
        print('hetero-infer evaluate: warning: %s' % warning, file=sys.stderr)
    platform = Platform.load(platform_name)
    for s in scenarios:
        s.build(platform)  # validate every scenario before spending time
    schedulers = [n.strip() for n in args.schedulers.split(',')] if args.schedulers \
        else list(EVALUATED)
    for n in schedulers:
        get_scheduler(n)
    if 'interference_aware' in schedulers:
        from hetero_infer.core.predictors import load_interference_model
        load_interference_model(platform, args.interference_model,  # fail before the bar
                                force=args.force_interference_model)
    interference_model = args.interference_model
    if interference_model and args.force_interference_model:
        from hetero_infer.core.interference import InterferencePredictor
        interference_model = InterferencePredictor.load(interference_model)  # not re-checked
    settings = EvalSettings(seed=args.seed, slo99=not args.no_slo99)
    if args.duration_s:
        settings.duration_s = args.duration_s
        settings.warmup_s = 0.125 * args.duration_s
    workers = args.workers or default_workers()
    bar = tqdm(total=len(scenarios), desc='evaluate', unit='scenario')

    def progress(res):
        bar.update(1)
        bar.set_postfix_str(res['name'])

    result = run_evaluation(scenarios, platform_name, schedulers=schedulers, settings=settings,
                            workers=workers, interference_model=interference_model,
                            progress=progress)
    bar.close()
    paths = write_outputs(result, args.out)
    imp = result['summary']['average_improvement_pct']
    print('evaluated %d scenarios x %d schedulers in %.0f s (%d workers)'
          % (len(scenarios), len(schedulers), result['details']['wall_time_s'], workers))
    print('average improvement of interference_aware (mean of per-scenario improvements; '
          'geometric mean; of the average):')
    stats = result['details']['improvement_stats']
    for metric, row in imp.items():
        print('  %-17s ' % metric + '  '.join(
            '%s %+.1f%% (%s; %s)' % (b, v, _pct(stats[metric][b]['geometric_mean_pct']),
                                     _pct(stats[metric][b]['of_average_pct']))
            for b, v in row.items()))
    print('wrote ' + ', '.join(os.path.relpath(p) for p in paths))
    return 0
