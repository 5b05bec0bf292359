"""``hetero-infer demo``: the scheduler node and synthetic sources on the emulated Xavier.

Runs ``serve --sources`` with the package's config for ``--duration`` seconds (30 by default),
DDS kept on this machine, prints one status line per second, then a summary per application and
per processor, and checks that every received request was accounted for (result or drop).
``--fault dla1:error@10+10`` injects a processor fault; the status lines then show the processor
unhealthy until it recovers, and the summary lists when it left and rejoined routing and how much
it served after.
"""

import math
import time

from hetero_infer.commands import argtypes


def add_arguments(parser):
    parser.add_argument('--duration', type=argtypes.positive_float, default=30.0, metavar='S',
                        help='seconds of serving (default 30)')
    parser.add_argument('--config', default=None, metavar='FILE',
                        help='ROS 2 parameter file (default: the package\'s config/serve.yaml)')
    parser.add_argument('--backend', default='emulated', help='backend (default emulated)')
    parser.add_argument('--platform', default='xavier', help='platform (default xavier)')
    parser.add_argument('--set', action='append', default=[], metavar='NAME=VALUE',
                        help='override one parameter, e.g. --set goal=fairness')
    from hetero_infer.commands.serve import add_fault_argument
    add_fault_argument(parser)
    parser.add_argument('--json', default=None, metavar='FILE',
                        help='also write the summary (and the published count) as JSON')
    parser.add_argument('--log-level', default='warn',
                        choices=('debug', 'info', 'warn', 'error', 'fatal'))


def _fmt(x, spec='%.1f'):
    return '-' if x is None or (isinstance(x, float) and math.isnan(x)) else spec % x


def status_line(elapsed_s: float, doc: dict) -> str:
    apps = ' | '.join(
        '%s %s Hz %s%% p99 %s ms' % (name, _fmt(a['rate_hz'], '%.0f'),
                                   _fmt(None if a['slo_attainment'] is None
                                        else 100 * a['slo_attainment'], '%.0f'),
                                   _fmt(a['p99_ms']))
        for name, a in doc['applications'].items())
    procs = ' '.join('%s %3.0f%%%s' % (p, 100 * v['utilisation'],
                                       '' if v['health']['healthy'] else ' UNHEALTHY')
                     for p, v in doc['processors'].items())
    drops = sum(doc['drops'].values())
    return ('%3.0fs policy v%d%s | %s | %s | drops %d'
            % (elapsed_s, doc['policy_version'], '*' if doc['planning'] else '', apps, procs,
               drops))


def summary_table(summary: dict, duration_s: float) -> str:
    lines = ['', 'application    model              received  results  dropped   SLO ms  '
             'SLO met', '-' * 86]
    for name, a in summary['applications'].items():
        dropped = sum(a['dropped'].values())
        reasons = ','.join('%s=%d' % kv for kv in sorted(a['dropped'].items()))
        lines.append('%-14s %-18s %8d %8d %8d %8.1f %7.1f%%  %s'
                     % (name, a['model'], a['received'], a['results'], dropped, a['slo_ms'],
                        100 * a['slo_attainment'] if a['slo_attainment'] == a['slo_attainment']
                        else float('nan'), reasons))
    lines += ['', 'application@processor     results   p50 ms   p99 ms', '-' * 52]
    for key, p in summary['processors'].items():
        if p['results']:
            lines.append('%-24s %8d %8s %8s' % (key, p['results'], _fmt(p['p50_ms']),
                                                 _fmt(p['p99_ms'])))
    lines += ['', 'processor   busy s   utilisation  results  health', '-' * 56]
    for p, busy in summary['busy_s'].items():
        h = summary['health'][p]
        lines.append('%-9s %8.2f %12.1f%% %8d  %s'
                     % (p, busy, 100 * busy / max(duration_s, 1e-9),
                        summary['proc_results'].get(p, 0),
                        'healthy' if h['healthy'] else 'UNHEALTHY: ' + h['reason']))
    events = summary['health_events']
    if events:
        lines += ['', 'processor health (s since the node started)', '-' * 56]
        for i, e in enumerate(events):
            text = '%7.1f s  %-5s %s (%s)' % (e['t_s'], e['processor'],
                                             'healthy' if e['healthy'] else 'unhealthy',
                                             e['reason'])
            if e['healthy']:
                later = [x for x in events[i + 1:] if x['processor'] == e['processor']]
                upto = (later[0]['results_before'] if later
                        else summary['proc_results'].get(e['processor'], 0))
                text += ': %d results after' % (upto - e['results_before'])
            lines.append(text)
        lines.append('re-dispatched after a failure: %d; late results discarded: %d'
                     % (summary['redispatched'], summary['late_discarded']))
    return '\n'.join(lines)


def run(args) -> int:
    from hetero_infer.commands import serve
    serve.keep_dds_local()
    args.namespace = ''
    ros_args = serve.ros_arguments(args)
    from hetero_infer.ros.lifecycle import ros_session, spin_nodes
    with ros_session(['hetero-infer'] + ros_args) as nodes:
        nodes.extend(serve.start_nodes(args, sources=True))
        scheduler, sources = nodes
        print('hetero-infer demo: %s on the %s %s for %.0f s (ROS_DOMAIN_ID=%s, localhost)'
              % (', '.join('%s=%s' % (a.cfg.name, a.model.name) for a in scheduler.apps),
                 args.backend, args.platform, args.duration,
                 __import__('os').environ.get('ROS_DOMAIN_ID')))
        t0 = time.monotonic()
        seen = {'doc': None}

        def tick():
            doc = getattr(scheduler, '_latest_status', None)
            if doc is not None and doc is not seen['doc']:
                seen['doc'] = doc
                print(status_line(time.monotonic() - t0, doc), flush=True)

        spin_nodes(nodes[1:], duration_s=0.0)  # nothing: sources start with the scheduler below
        spin_nodes(nodes, duration_s=args.duration, on_tick=tick)
        serve_s = time.monotonic() - t0
        # Stop the sources, let the queues drain, then account for every request.
        nodes.remove(sources)
        sources.destroy_node()
        spin_nodes(nodes, duration_s=1.0)
        summary = scheduler.summary()
        print(summary_table(summary, serve_s))
        published = sum(sources.published.values())
        received = sum(a['received'] for a in summary['applications'].values())
        done = sum(a['results'] + sum(a['dropped'].values())
                   for a in summary['applications'].values())
        print('\npublished %d, received %d, results + drops %d, in flight %d; policy version %d'
              % (published, received, done, scheduler.engine.in_flight(),
                 scheduler.engine.policy_version))
        if args.json:
            import json
            with open(args.json, 'w') as f:
                json.dump(dict(summary, published=published, received=received,
                               results_plus_drops=done, duration_s=serve_s), f, indent=1,
                          default=str)
                f.write('\n')
        if received == 0:
            print('hetero-infer demo: no message reached the scheduler')
            return 1
        return 0 if done == received else 1
    return 1  # stopped with Ctrl-C before the summary
