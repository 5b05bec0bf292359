"""Experiment behind docs/twin.md, "Serial GPU-side work of DLA inference: tried, not adopted".

The twin models the GPU-side work of DLA inference as a concurrent busy share of the GPU
(``dla_gpu_work.busy_share``), and with it no setting meets HaX-CoNN's GoogLeNet pair together with
the talk's median slowdowns. This script measures the alternative: the work is *serial* with the
DLA inference, ``w_ms`` on the GPU before its first DLA layer (input reformat) and ``w_ms`` after
its last (output reformat, completion), so a DLA inference next to a busy GPU waits for its GPU
time. While that work shares the GPU with a GPU layer the two time-slice with weights
``ws : 1`` (``ws`` 1: equal kernel-level time-slicing, as the twin's fallback layers; ``ws`` large:
the DLA's GPU work goes first and the GPU layer stalls, as cuDLA blocking GPU inference in
TensorRT issue 3804). It is work-conserving: the GPU layer loses exactly the DLA's GPU work, and
that work takes ``w_ms x (1 + ws) / ws`` while it shares the GPU.

The serial work is inside a DLA inference's isolated latency, so by default the DLA's conv and
fc efficiencies and per-layer overhead are refitted (``fit_platform.fit``) so that GoogLeNet and
AlexNet on a DLA (layers + ``2 w_ms``) still take HaX-CoNN's 3.66 / 4.41 ms; ``--no-refit``
keeps the YAML's DLA (isolated DLA latencies then grow by ``2 w_ms``).

It runs ``calibration_checks`` (the talk's triples subsampled as in ``fit_platform.py
--contention``, or all of them with ``--full``) on a plain event loop written for this
experiment after test/test_core_twin_reference.py's; with ``w_ms`` 0 its co-run latencies are
the twin's within 1e-9 (test/test_tools_explore_dla_gpu_work.py). Nothing in the package uses
it.

    python tools/explore_dla_gpu_work.py 0.15,1,0.05 0.65,1,0 0.65,8,0
    python tools/explore_dla_gpu_work.py '0.15,1,0.05,processors.dla0.contention.alpha=0.38'

Each setting is ``w_ms,ws,busy_share`` then optional ``yaml.path=value`` overrides.
"""

import argparse
import copy
import math
import random
import sys
import time

import hetero_infer.evaluation.calibration as calibration
from hetero_infer.evaluation.platform_fit import DLA_PARAMS, fit
from hetero_infer.io.yaml_file import read_yaml
from hetero_infer.models.zoo import load_model
from hetero_infer.platform.spec import PLATFORM_DIR, Platform
from hetero_infer.twin.simulator import Twin

SHOWN = ('haxconn_googlenet_gpu_pct', 'haxconn_googlenet_dla_pct', 'talk_median_gpu_pct',
         'talk_median_dla_pct')


class _SerialEngine:
    """The twin's fluid model stated plainly (every event recomputes every duration), with a
    time-slicing weight per execution: a step's optional sixth field (default 1)."""

    def __init__(self, platform, seed, noise_pct):
        self.platform = platform
        self.ids = list(platform.processor_ids)
        self.gpu = self.ids.index(platform.gpu_id)
        self.is_dla = [platform.processors[p].kind == 'dla' for p in self.ids]
        self.curves = [platform.processors[p].contention for p in self.ids]
        self.rng = random.Random(seed)
        self.sigma = noise_pct / 100.0
        self.running = []
        self.now = 0.0
        self.on_finish = None

    def start(self, job):
        step = job.steps[job.idx]
        e, ov, c, m, b = step[:5]
        if self.sigma > 0.0:
            f = math.exp(self.rng.gauss(0.0, self.sigma))
            ov, c, m = ov * f, c * f, m * f
        self.running.append({'job': job, 'proc': e, 'left': 1.0, 'ov': ov, 'c': c, 'm': m,
                             'bytes': b, 'dur': 0.0, 'weight': step[5] if len(step) > 5 else 1.0})

    def _solve(self):
        run = self.running
        weight = {}
        for r in run:
            weight[r['proc']] = weight.get(r['proc'], 0.0) + r['weight']
        gpu_scale = self.platform.gpu_time_scale(sum(1 for r in run if self.is_dla[r['proc']]))
        base = []
        for r in run:
            k = weight[r['proc']] / r['weight']
            if r['proc'] == self.gpu:
                k *= gpu_scale
            base.append(r['ov'] * k + max(r['c'] * k, r['m']))
        durs = list(base)
        if len(run) > 1:
            dram = self.platform.dram_gbps * 1e6
            for _ in range(4):
                dem = [r['bytes'] / d if d > 0.0 else 0.0 for r, d in zip(run, durs)]
                total = sum(dem)
                new = []
                for i, r in enumerate(run):
                    slow = self.curves[r['proc']].slowdown((total - dem[i]) / dram)
                    new.append(0.5 * (durs[i] + base[i] + r['m'] * (slow - 1.0)))
                moved = any(abs(d - old) > 1e-4 * old for d, old in zip(new, durs))
                durs = new
                if not moved:
                    break
        for r, d in zip(run, durs):
            r['dur'] = d

    def run(self, stop):
        while self.running and not stop():
            self._solve()
            best = min(self.running, key=lambda r: r['left'] * r['dur'])
            dt = best['left'] * best['dur']
            for r in self.running:
                if r['dur'] > 0:
                    r['left'] -= dt / r['dur']
            self.now += dt
            self.running.remove(best)
            job = best['job']
            job.idx += 1
            if job.idx < len(job.steps):
                self.start(job)
            else:
                self.on_finish(job)


class _Job:
    def __init__(self, steps, owner):
        self.steps, self.idx, self.owner, self.start_ms, self.latencies = steps, 0, owner, 0.0, []


class SerialWorkTwin(Twin):
    """A twin whose DLA inferences run ``w_ms`` of GPU work before and after their layers."""

    w_ms = 0.0
    weight = 1.0

    def program(self, model, proc):
        key = (id(model), proc, 'serial')
        prog = self._programs.get(key)
        if prog is None:
            prog = list(Twin.program(self, model, proc))
            plat = self.platform
            if plat.processors[proc].kind == 'dla' and self.w_ms > 0.0:
                work = (plat.processor_ids.index(plat.gpu_id), self.w_ms, 0.0, 0.0, 0.0,
                        self.weight)
                prog = [work] + prog + [work]
            self._programs[key] = prog
        return prog

    def corun(self, jobs, *, iterations=5, seed=None):
        eng = _SerialEngine(self.platform, self.seed if seed is None else seed, self.noise_pct)
        need = iterations + 1
        finished = []

        def on_finish(job):
            job.latencies.append(eng.now - job.start_ms)
            if len(job.latencies) == need:
                finished.append(job.owner)
            job.idx, job.start_ms = 0, eng.now
            eng.start(job)

        eng.on_finish = on_finish
        all_jobs = [_Job(self.program(model, proc), proc) for proc, model in jobs.items()]
        for job in all_jobs:
            eng.start(job)
        eng.run(lambda: len(finished) == len(all_jobs))
        return {j.owner: sum(j.latencies[1:need]) / iterations for j in all_jobs}


def _set(doc, path, value):
    keys = path.split('.')
    for k in keys[:-1]:
        doc = doc[k]
    doc[keys[-1]] = float(value)


def refit_dla(doc, serial_ms):
    """Refit the DLA's conv/fc efficiency and overhead so that layers + ``serial_ms`` of GPU
    work still give HaX-CoNN's isolated DLA latencies; returns the values and the residuals."""
    plat = Platform.from_dict(doc, where='experiment')
    targets = [(load_model(n), d - serial_ms)
               for n, (_g, d) in calibration.HAXCONN_DLA_GPU_MS.items()]
    values, res = fit(plat, 'dla0', DLA_PARAMS, targets)
    dla = doc['processors']['dla0']
    for k, v in values.items():
        if k == 'overhead_ms':
            dla['overhead_ms'] = float(v)
        else:
            dla['efficiency'][k] = float(v)
    for k in ('softmax', 'other'):   # the YAML gives them the fc value
        dla['efficiency'][k] = dla['efficiency']['fc']
    return values, res


def evaluate(setting, *, stride, refit, full=False):
    fields = setting.split(',')
    w_ms, weight, busy = (float(v) for v in fields[:3])
    doc = copy.deepcopy(read_yaml(PLATFORM_DIR + '/xavier.yaml', 'platform'))
    doc['dla_gpu_work']['busy_share'] = busy
    for override in fields[3:]:
        path, value = override.split('=')
        _set(doc, path, value)
    note = ''
    if refit and w_ms > 0.0:
        values, res = refit_dla(doc, 2 * w_ms)
        note = 'DLA refit %s, GoogLeNet/AlexNet residual %s' % (
            ' '.join('%s %.4g' % kv for kv in values.items()),
            ' / '.join('%+.1f%%' % (100 * (math.exp(r) - 1)) for r in res))
    doc['processors']['dla1'] = doc['processors']['dla0']
    SerialWorkTwin.w_ms, SerialWorkTwin.weight = w_ms, weight
    start = time.time()
    # calibration_checks builds its twin as calibration.Twin: this experiment's for the run
    saved, calibration.Twin = calibration.Twin, SerialWorkTwin
    try:
        plat = Platform.from_dict(doc, where='experiment')
        if full:   # what `hetero-infer calibrate` runs
            checks = calibration.calibration_checks(plat)
        else:
            checks = calibration.calibration_checks(plat, iterations=2, triple_stride=stride,
                                                    triple_iterations=1)
    finally:
        calibration.Twin = saved
    gated = [c for c in checks if c['gate']]
    by_name = {c['check']: c for c in checks}
    print('w_ms %.3f (x2)  ws %.3g  busy_share %.4g  %s: %d of %d gates (%.0f s)' % (
        w_ms, weight, busy, ' '.join(fields[3:]), sum(1 for c in gated if c['pass']),
        len(gated), time.time() - start))
    if note:
        print('   ' + note)
    for name in SHOWN:
        c = by_name[name]
        print('   %-34s %8.2f  band %g..%g %s' % (name, c['simulated'], c['low'], c['high'],
                                                 '' if c['pass'] else 'FAIL'))
    for c in gated:
        if not c['pass'] and c['check'] not in SHOWN:
            print('   %-34s %8.2f  band %g..%g FAIL' % (c['check'], c['simulated'], c['low'],
                                                     c['high']))
    sys.stdout.flush()
    return checks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('settings', nargs='+', help='w_ms,ws,busy_share[,yaml.path=value...]')
    ap.add_argument('--stride', type=int, default=7,
                    help='keep every n-th triple of the talk distribution (as the fit)')
    ap.add_argument('--no-refit', action='store_true',
                    help='keep the YAML DLA efficiencies (isolated DLA latencies grow by 2 w)')
    ap.add_argument('--full', action='store_true',
                    help='run the checks as `hetero-infer calibrate` does (every triple, 5 and 2 '
                         'iterations) and print them all')
    args = ap.parse_args()
    for setting in args.settings:
        checks = evaluate(setting, stride=args.stride, refit=not args.no_refit, full=args.full)
        if args.full:
            for c in checks:
                print('   %-40s %10.3f %10s %10s %10s  %s' % (
                    c['check'], c['simulated'], c['reference'], c['low'], c['high'],
                    {True: 'yes', False: 'NO', None: 'reported'}[c['pass']]))


if __name__ == '__main__':
    main()
