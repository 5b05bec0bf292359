"""The twin's optimised event loop against a straightforward reference implementation.

The twin's hot loop is written for speed (unrolled contention solves, the curve written out,
noise drawn in batches, one execution list reused per job). The reference below is the twin as
it was before that work, stated plainly: every event recomputes every running layer's duration
alone from the processor shares and solves the damped fixed point calling
:meth:`Contention.slowdown` itself, then scans for the next completion. Same seeds must give the
same records, co-run latencies and profiled times within float round-off (1e-9 relative), so an
optimisation cannot silently change what the twin measures. The GPU-side work of DLA inference
(:meth:`Platform.gpu_time_scale`) is stated the plain way too: recomputed from the running set
at every event.
"""

import math
import random
from collections import deque

import pytest
from twin_helpers import Spread, three_dla_platform

from hetero_infer.evaluation.scenarios import find_scenario, load_scenarios
from hetero_infer.models.zoo import load_model
from hetero_infer.planning.schedulers.driver import plan_scheduler
from hetero_infer.planning.schedulers.interface import PlanContext
from hetero_infer.platform.spec import Platform
from hetero_infer.twin.simulator import DEFAULT_MAX_QUEUE, Twin
from hetero_infer.workload.requests import (
    App,
    DispatchView,
    FixedDispatcher,
    RequestRecord,
    poisson_arrivals,
)

REL = 1e-9


def _extra(m, cont, x):
    """``m x (S(x) - 1)`` for :class:`Contention` ``cont``, in the twin's order of operations
    (``S(x) - 1`` rounds differently, and queueing amplifies round-off into visibly different
    traces). test_core_twin checks the twin's curve against :meth:`Contention.slowdown`."""
    if x <= cont.threshold:
        return 0.0
    assert cont.slowdown(x) - 1.0 == pytest.approx(
        cont.alpha * (x - cont.threshold) ** cont.power / (1.0 - min(x, cont.cap)), rel=1e-12)
    return m * cont.alpha * (x - cont.threshold) ** cont.power / (1.0 - min(x, cont.cap))


class _Job:
    def __init__(self, steps, owner, start_ms, record=None, tag=None):
        self.steps, self.idx, self.owner = steps, 0, owner
        self.start_ms, self.record, self.tag = start_ms, record, tag
        self.latencies = []


class _RefEngine:
    """The twin's fluid model, one plain step per event (no caching, no unrolling)."""

    def __init__(self, platform, seed, noise_pct):
        self.platform = platform
        self.ids = list(platform.processor_ids)
        self.rng = random.Random(seed)
        self.sigma = noise_pct / 100.0
        self.running = []   # dicts: job, proc, left, ov, c, m, bytes, dur
        self.now = 0.0
        self.events = 0
        self.on_finish = None
        self.most_running = 0   # coverage: largest running set solved
        self.most_sharing = 0   # coverage: most layers time-slicing one processor

    def start(self, job):
        e, ov, c, m, b = job.steps[job.idx]
        if self.sigma > 0.0:
            f = math.exp(self.rng.gauss(0.0, self.sigma))
            ov, c, m = ov * f, c * f, m * f
        self.running.append({'job': job, 'proc': e, 'left': 1.0, 'ov': ov, 'c': c, 'm': m,
                             'bytes': b, 'dur': 0.0})

    def solve(self):
        run = self.running
        share = {}
        for r in run:
            share[r['proc']] = share.get(r['proc'], 0) + 1
        self.most_running = max(self.most_running, len(run))
        self.most_sharing = max(self.most_sharing, max(share.values()))
        # GPU-side work of DLA inference: GPU layers time-share the GPU with it
        plat = self.platform
        gpu = self.ids.index(plat.gpu_id) if plat.gpu_id in self.ids else None
        n_dla = sum(1 for r in run if plat.processors[self.ids[r['proc']]].kind == 'dla')
        if gpu in share:
            share[gpu] *= plat.gpu_time_scale(n_dla)
        base = []
        for r in run:
            k = share[r['proc']]
            base.append(r['ov'] * k + max(r['c'] * k, r['m']))
        durs = list(base)
        if len(run) > 1:
            dram = self.platform.dram_gbps * 1e6
            curves = [self.platform.processors[self.ids[r['proc']]].contention for r in run]
            for _ in range(4):
                dem = [r['bytes'] / d if d > 0.0 else 0.0 for r, d in zip(run, durs)]
                total = sum(dem)
                new = []
                for i, r in enumerate(run):
                    x = (total - dem[i]) / dram
                    t = base[i] + _extra(r['m'], curves[i], x)
                    new.append(0.5 * (durs[i] + t))
                moved = any(abs(d - old) > 1e-4 * old for d, old in zip(new, durs))
                durs = new
                if not moved:
                    break
        for r, d in zip(run, durs):
            r['dur'] = d

    def run_until(self, t_end, stop=None):
        while self.running:
            self.solve()
            best = min(self.running, key=lambda r: r['left'] * r['dur'])
            t = self.now + best['left'] * best['dur']
            target = min(t, t_end)
            dt = target - self.now
            if dt > 0:
                for r in self.running:
                    if r['dur'] > 0:
                        r['left'] -= dt / r['dur']
                self.now = target
            if t > t_end:
                return
            self.events += 1
            self.running.remove(best)
            job = best['job']
            job.idx += 1
            if job.idx < len(job.steps):
                self.start(job)
            else:
                self.on_finish(job)
            if stop is not None and stop():
                return
        if t_end != math.inf:
            self.now = max(self.now, t_end)


class _RefView(DispatchView):
    def __init__(self, queues, current, queued_ms, iso, index):
        self.queues, self.current, self.queued_ms = queues, current, queued_ms
        self.iso, self.index = iso, index

    def queue_len(self, proc):
        i = self.index[proc]
        return len(self.queues[i]) + (self.current[i] is not None)

    def expected_free_ms(self, proc):
        i = self.index[proc]
        t = self.now_ms
        cur = self.current[i]
        if cur is not None:
            t = max(t, cur.start_ms + self.iso[(cur.tag, i)])
        return t + self.queued_ms[i]


def ref_serve(twin, apps, dispatcher, *, duration_s, seed, max_queue=DEFAULT_MAX_QUEUE):
    """Twin.serve's semantics: FIFO per processor, one inference at a time, drops with reasons."""
    plat = twin.platform
    arrivals = poisson_arrivals(apps, duration_s, seed)
    eng = _RefEngine(plat, seed + 1, twin.noise_pct)
    index = {p: i for i, p in enumerate(eng.ids)}
    n = len(eng.ids)
    allowed = [frozenset(p for p in (a.processors or plat.processor_ids)
                         if plat.can_run(a.model, p)) for a in apps]
    iso = {(ai, index[p]): plat.isolated_latency_ms(a.model, p)
           for ai, a in enumerate(apps) for p in allowed[ai]}
    queues, current, queued_ms = [deque() for _ in range(n)], [None] * n, [0.0] * n
    view = _RefView(queues, current, queued_ms, iso, index)
    dispatcher.reset(apps, plat)
    records = []

    def begin(i):
        job = queues[i].popleft()
        queued_ms[i] -= iso[(job.tag, i)]
        job.start_ms = job.record.start_ms = eng.now
        current[i] = job
        eng.start(job)

    def on_finish(job):
        rec = job.record
        rec.finish_ms = eng.now
        i = index[job.owner]
        current[i] = None
        dispatcher.completed(rec.app, job.owner, rec.finish_ms - rec.arrival_ms)
        if queues[i]:
            begin(i)

    eng.on_finish = on_finish
    for t, _seq, ai in arrivals:
        eng.run_until(t)
        eng.now = t
        rec = RequestRecord(app=ai, arrival_ms=t)
        records.append(rec)
        view.now_ms = t
        proc = dispatcher.dispatch(ai, t, view)
        if proc is None:
            rec.dropped_reason = 'rejected'
        elif proc not in allowed[ai]:
            rec.dropped_reason = 'no_processor'
        elif len(queues[index[proc]]) >= max_queue:
            rec.dropped_reason = 'queue_full'
        else:
            rec.proc = proc
            i = index[proc]
            queues[i].append(_Job(twin.program(apps[ai].model, proc), proc, t, rec, ai))
            queued_ms[i] += iso[(ai, i)]
            if current[i] is None:
                begin(i)
    eng.run_until(math.inf)
    return records, eng


def ref_corun(twin, jobs, *, iterations=5, seed=None):
    eng = _RefEngine(twin.platform, twin.seed if seed is None else seed, twin.noise_pct)
    need = iterations + 1
    finished = []

    def on_finish(job):
        job.latencies.append(eng.now - job.start_ms)
        if len(job.latencies) == need:
            finished.append(job.owner)
        job.idx, job.start_ms = 0, eng.now
        eng.start(job)

    eng.on_finish = on_finish
    all_jobs = [_Job(twin.program(model, proc), proc, 0.0) for proc, model in jobs.items()]
    for job in all_jobs:
        eng.start(job)
    eng.run_until(math.inf, stop=lambda: len(finished) == len(all_jobs))
    return {j.owner: sum(j.latencies[1:need]) / iterations for j in all_jobs}


def ref_profile_layer(twin, layer, proc, corunners, *, repeats=5, seed=None):
    plat = twin.platform
    eng = _RefEngine(plat, twin.seed if seed is None else seed, twin.noise_pct)
    done = []

    def step(p, lay):
        ov, c, m = plat.layer_components_ms(lay, p)
        return (plat.processor_ids.index(p), ov, c, m, float(plat.processors[p].dram_bytes(lay)))

    def on_finish(job):
        job.latencies.append(eng.now - job.start_ms)
        if job.tag == 'target' and len(job.latencies) >= repeats:
            done.append(True)
            return
        job.idx, job.start_ms = 0, eng.now
        eng.start(job)

    eng.on_finish = on_finish
    for cproc, layers in corunners.items():
        eng.start(_Job([step(cproc, lay) for lay in layers], cproc, 0.0, tag='co'))
    warm = max(r['ov'] + max(r['c'], r['m']) for r in eng.running)
    eng.run_until(warm * eng.rng.random())
    target = _Job([step(proc, layer)], proc, eng.now, tag='target')
    eng.start(target)
    eng.run_until(math.inf, stop=lambda: bool(done))
    return sum(target.latencies) / len(target.latencies)


@pytest.fixture(scope='module')
def xavier():
    return Platform.load('xavier')


@pytest.fixture(scope='module')
def three_dlas():
    return three_dla_platform()


def _assert_same_records(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert (g.app, g.arrival_ms, g.proc, g.dropped_reason) == \
            (w.app, w.arrival_ms, w.proc, w.dropped_reason)
        for a, b in ((g.start_ms, w.start_ms), (g.finish_ms, w.finish_ms)):
            assert (a is None) == (b is None)
            if a is not None:
                assert a == pytest.approx(b, rel=REL, abs=1e-12)


def _scenario_case(xavier, name, scheduler):
    apps = find_scenario(load_scenarios(), name).build(xavier)
    plan = plan_scheduler(scheduler, PlanContext(platform=xavier, apps=apps, seed=1))
    return apps, plan.make_dispatcher


@pytest.mark.parametrize('case,seed', [('mix_r1/interference_aware', 1),
                                       ('resnets_r3/least_finish_time', 2),
                                       ('spread', 3), ('fallback', 4), ('fallback', 5)])
def test_serve_matches_the_reference(xavier, three_dlas, case, seed):
    if case == 'spread':
        apps = [App('cam', load_model('resnet50'), 120.0, 40.0),
                App('det', load_model('googlenet'), 150.0, 30.0),
                App('kws', load_model('matchboxnet_kws'), 100.0, 10.0)]
        make, max_queue = Spread, 8
    elif case == 'fallback':
        # QuartzNet on the DLAs sends its unsupported layers to the GPU, which time-slices
        # them with its own ResNet-50 layers (two or three layers share the GPU).
        xavier = three_dlas
        qn = load_model('quartznet15x5')
        apps = [App('asr', qn, 80.0, 60.0), App('asr2', qn, 80.0, 60.0),
                App('det', load_model('googlenet'), 100.0, 30.0),
                App('cam', load_model('resnet50'), 150.0, 30.0)]
        make, max_queue = (lambda: FixedDispatcher(['dla0', 'dla1', 'dla2', 'gpu'])), 64
    else:
        apps, make = _scenario_case(xavier, *case.split('/'))
        max_queue = 64
    twin = Twin(xavier, seed=seed + 1000)
    got = twin.serve(apps, make(), duration_s=0.8, seed=seed, max_queue=max_queue)
    want, eng = ref_serve(twin, apps, make(), duration_s=0.8, seed=seed, max_queue=max_queue)
    assert sum(r.finish_ms is not None for r in want) > 50
    _assert_same_records(got, want)
    assert twin.last_events == eng.events
    if case == 'fallback':
        assert eng.most_running == 4 and eng.most_sharing >= 2


@pytest.mark.parametrize('noise_pct', [0.0, 3.0])
def test_corun_matches_the_reference(xavier, noise_pct):
    # Without noise both DLAs run identical layers: equal completion times, ties broken alike.
    twin = Twin(xavier, seed=7, noise_pct=noise_pct)
    r50 = load_model('resnet50')
    for jobs in ({'gpu': load_model('vgg19'), 'dla0': r50, 'dla1': r50},
                 {'dla0': load_model('quartznet15x5'), 'gpu': load_model('resnet152')}):
        got = twin.corun(jobs, iterations=3)
        want = ref_corun(twin, jobs, iterations=3)
        assert got.keys() == want.keys()
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=REL)


def test_profile_layer_matches_the_reference(xavier):
    # profile_layer draws the co-runners' phase from the noise generator between noise draws.
    twin = Twin(xavier, seed=11)
    vgg = load_model('vgg16')
    heavy = [lay for lay in vgg.layers if lay.kind == 'fc']
    conv = [lay for lay in vgg.layers if lay.kind == 'conv']
    for seed in (0, 1):
        for layer, proc, cors in ((heavy[0], 'gpu', {'dla0': heavy, 'dla1': conv[:4]}),
                                  (conv[2], 'dla0', {'gpu': heavy + conv[:3]})):
            got = twin.profile_layer(layer, proc, cors, repeats=4, seed=seed)
            want = ref_profile_layer(twin, layer, proc, cors, repeats=4, seed=seed)
            assert got == pytest.approx(want, rel=REL)
