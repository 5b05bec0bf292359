"""``hetero-infer evaluate``: every scheduler on every scenario, measured on the digital twin.

Writes ``OUT/summary.json`` (per-scenario means and per-replication runs of each scheduler, the
paired comparison of interference_aware with each baseline), ``OUT/details.json`` (plans,
confidence intervals, oracle check, plan fidelity, plan variance, load sweep, time profile),
``OUT/summary.md`` and PNG plots. Seeds: docs/scheduling.md, "Seeds".
"""

import os
import sys

from hetero_infer.commands import argtypes


def _floats(text: str, what: str):
    from hetero_infer.errors import ConfigError
    try:
        return tuple(float(x) for x in text.split(',') if x.strip())
    except ValueError:
        raise ConfigError('%s: expected comma-separated numbers, got %r' % (what, text)) from None


def _names(text):
    return tuple(n.strip() for n in text.split(',') if n.strip()) if text else ()


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
                        help='comma-separated schedulers (default: every evaluated one: the '
                             'eight built-in ones and installed ones that ask to be)')
    parser.add_argument('--workers', type=argtypes.workers, default=None,
                        help='local worker processes (default: available cores)')
    parser.add_argument('--cluster', default=None, metavar='ADDRESS',
                        help='run the jobs on a Dask cluster: a scheduler address '
                             '(tcp://host:8786), or local / local:N for a local one '
                             '(needs the cluster extra); default: local process pool')
    argtypes.add_criticality_arguments(parser)
    parser.add_argument('--replications', type=argtypes.int_in(1, 1000), default=5, metavar='N',
                        help='measurement traces per scenario, shared by every scheduler')
    parser.add_argument('--seed', type=argtypes.seed, default=1,
                        help='trace seed of the first replication (replication r: seed + r); '
                             'drives arrivals and twin noise of the measurements only')
    parser.add_argument('--plan-seeds', type=argtypes.int_in(1, 100), default=1, metavar='K',
                        help='plans per scheduler and goal (plan seeds plan-seed .. +K-1); '
                             'the tables use the first, more give the plan-variance study')
    parser.add_argument('--plan-seed', type=argtypes.seed, default=0,
                        help="first plan seed: the search's sampling, the planner simulator's "
                             "arrival trace and the oracle's co-run measurements")
    parser.add_argument('--duration-s', type=argtypes.sim_seconds, default=None,
                        help='simulated seconds of each goodput measurement (default 2.5)')
    parser.add_argument('--interference-model', default=None, metavar='FILE',
                        help='trained interference model (default: the committed one)')
    parser.add_argument('--force-interference-model', action='store_true',
                        help='use --interference-model even if trained on another platform')
    parser.add_argument('--no-slo99', action='store_true',
                        help='skip throughput at SLO99 (much faster)')
    parser.add_argument('--load-sweep', default=None, metavar='LOADS',
                        help='also run --sweep-scenarios at these loads, e.g. 0.5,0.7,0.9 '
                             '(fractions of the interference-free capacity; goodput only)')
    parser.add_argument('--sweep-scenarios', default=None, metavar='NAMES',
                        help='scenarios of the load sweep (default: all evaluated ones)')
    parser.add_argument('--oracle-select-traces', type=argtypes.int_in(1, 100), default=None,
                        metavar='N', help='held-out twin traces the oracle picks its goodput '
                                          'plan on (default 20)')
    parser.add_argument('--oracle-slo99-traces', type=argtypes.int_in(1, 100), default=None,
                        metavar='N', help='held-out twin traces the oracle picks its SLO99 plan '
                                          'on (default 10)')
    parser.add_argument('--confirm-traces', type=argtypes.int_in(0, 100), default=10,
                        metavar='N', help='where interference_aware beats the oracle with a CI '
                                          'excluding zero, measure both again on N fresh traces '
                                          '(0: off; default 10)')
    parser.add_argument('--rank-scenarios', default=None, metavar='NAMES',
                        help="scenarios whose interference-aware search's top candidates are "
                             'all measured (rank correlation of predicted vs measured)')


def run(args) -> int:
    from tqdm import tqdm

    from hetero_infer.evaluation.runner import EvalSettings, run_evaluation, write_outputs
    from hetero_infer.evaluation.scenarios import (
        choose_platform,
        find_scenario,
        load_scenarios,
        with_criticality,
    )
    from hetero_infer.planning.schedulers import evaluated_schedulers, get_scheduler
    from hetero_infer.planning.search import default_workers
    from hetero_infer.platform.spec import Platform

    scenarios = load_scenarios(args.scenarios)
    if args.only:
        scenarios = [find_scenario(scenarios, n) for n in _names(args.only)]
    if args.floor or args.weight:
        scenarios = with_criticality(scenarios, weights=dict(args.weight),
                                     floors=dict(args.floor))
    platform_name, warning = choose_platform(args.platform, scenarios)
    if warning:
        print('hetero-infer evaluate: warning: %s' % warning, file=sys.stderr)
    platform = Platform.load(platform_name)
    for s in scenarios:
        s.build(platform)  # validate every scenario before spending time
    schedulers = list(_names(args.schedulers)) or evaluated_schedulers()
    needs_model = [get_scheduler(n).needs_interference_model for n in schedulers]  # names checked
    if any(needs_model):
        from hetero_infer.interference.predictors import load_latency_predictor
        load_latency_predictor(platform, args.interference_model,  # fail before the bar
                                force=args.force_interference_model)
    interference_model = args.interference_model
    if interference_model and args.force_interference_model:
        from hetero_infer.interference.slowdown_model import SlowdownPredictor
        interference_model = SlowdownPredictor.load(interference_model)  # not re-checked
    settings = EvalSettings(seed=args.seed, slo99=not args.no_slo99,
                            replications=args.replications, plan_seeds=args.plan_seeds,
                            plan_seed=args.plan_seed,
                            load_sweep=_floats(args.load_sweep, '--load-sweep')
                            if args.load_sweep else (),
                            sweep_scenarios=_names(args.sweep_scenarios),
                            rank_scenarios=_names(args.rank_scenarios),
                            confirm_traces=args.confirm_traces)
    if args.oracle_select_traces:
        settings.oracle_select_traces = args.oracle_select_traces
    if args.oracle_slo99_traces:
        settings.oracle_slo99_traces = args.oracle_slo99_traces
    if args.duration_s:
        settings.duration_s = args.duration_s
        settings.warmup_s = 0.125 * args.duration_s
    settings.check()
    workers = args.workers or default_workers()
    n_units = len(scenarios) * settings.plan_seeds + (
        len(settings.sweep_scenarios or scenarios) * len(settings.load_sweep))
    bar = tqdm(total=n_units * settings.replications, desc='evaluate', unit='run')

    def progress(res):
        bar.update(1)
        bar.set_postfix_str('%s r%d' % (res['scenario'], res['replication']))

    result = run_evaluation(scenarios, platform_name, schedulers=schedulers, settings=settings,
                            workers=workers, interference_model=interference_model,
                            progress=progress, cluster=args.cluster)
    bar.close()
    paths = write_outputs(result, args.out)
    d = result['details']
    print('evaluated %d scenarios x %d schedulers x %d replications in %.0f s (%s, %d workers)'
          % (len(scenarios), len(schedulers), settings.replications, d['wall_time_s'],
             d['engine'], d['workers']))
    paired = result['summary'].get('paired', {})
    if paired:
        print('interference_aware against each baseline: geometric mean of paired ratios '
              '[bootstrap 95% CI], wins/ties/losses; talk\'s mean of ratios:')
    for metric, row in paired.items():
        if metric not in ('goodput', 'slo99_throughput'):
            continue
        for b, st in row.items():
            ci = st['ci95_pct']
            print('  %-17s %-18s %s %s  %d/%d/%d  (talk: %s)' % (
                metric, b, _pct(st['geomean_pct']),
                '[n/a]' if ci is None else '[%+.1f, %+.1f]' % tuple(ci),
                st['wins'], st['ties'], st['losses'], _pct(st['talk_mean_pct'])))
    from hetero_infer.evaluation.report import oracle_check_lines
    for line in oracle_check_lines(d):
        print('oracle check: ' + line[2:] if line.startswith('- ') else line)
    fid = d.get('plan_fidelity') or {}
    rows = [r for r in fid.get('per_scenario', []) if r['scheduler'] == 'interference_aware']
    if rows:
        print('interference_aware goodput, predicted by its search vs measured on the twin:')
        for r in rows:
            print('  %-14s predicted %8.1f  measured %8.1f  error %s'
                  % (r['scenario'], r['predicted_goodput'], r['measured_goodput'],
                     _pct(r.get('error_pct'))))
    print('wrote ' + ', '.join(os.path.relpath(p) for p in paths))
    return 0


def _pct(v) -> str:
    return 'n/a' if v is None else '%+.1f%%' % v
