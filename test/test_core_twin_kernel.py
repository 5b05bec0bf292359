"""The twin's compiled event loop (numba, twin_kernel) against its Python loop.

Every user of the twin's engine runs twice with the same seeds, once per loop
(``HETERO_INFER_TWIN_KERNEL``), and must give exactly the same records, latencies, measured
metrics and random-generator state: the kernel does the same float operations in the same order
and replays the same noise stream, so nothing may differ, not even in the last bit. Skipped
when numba is not installed (the Python loop is then the only one).
"""

import functools
import math
import random

import pytest

pytest.importorskip('numba')

from twin_helpers import Spread, three_dla_platform  # noqa: E402

from hetero_infer.models.zoo import load_model  # noqa: E402
from hetero_infer.planning.policy import Policy  # noqa: E402
from hetero_infer.planning.router import PriorityRouter  # noqa: E402
from hetero_infer.planning.twin_measure import measure_on_twin, twin_slo99_throughput  # noqa: E402
from hetero_infer.platform.spec import Platform  # noqa: E402
from hetero_infer.twin import kernel as twin_kernel  # noqa: E402
from hetero_infer.twin import simulator as twin_mod  # noqa: E402
from hetero_infer.twin.faults import HealthSettings  # noqa: E402
from hetero_infer.twin.simulator import KERNEL_ENV, Twin  # noqa: E402
from hetero_infer.workload.requests import App, FixedDispatcher  # noqa: E402


@pytest.fixture(scope='module')
def xavier():
    return Platform.load('xavier')


@pytest.fixture(scope='module')
def three_dlas():
    return three_dla_platform()


def _both(monkeypatch, fn):
    """``fn()`` under the Python loop, then under the kernel (checked to be the one used)."""
    out = {}
    for kind in ('python', 'numba'):
        monkeypatch.setenv(KERNEL_ENV, kind)
        assert twin_mod.event_loop_kind() == kind
        out[kind] = fn()
    return out['python'], out['numba']


def _records(recs):
    return [(r.app, r.arrival_ms, r.proc, r.start_ms, r.finish_ms, r.dropped_reason)
            for r in recs]


def _apps():
    return [App('cam', load_model('resnet50'), 150.0, 40.0),
            App('det', load_model('googlenet'), 150.0, 30.0),
            App('kws', load_model('matchboxnet_kws'), 100.0, 10.0)]


def _router(platform, apps):
    """A planned priority router (the plan the searches produce, written out)."""
    return PriorityRouter(Policy([a.name for a in apps], platform.processor_ids,
                                 [[0.6, 0.2, 0.2], [0.3, 0.4, 0.3], [0.2, 0.3, 0.5]],
                                 router={'overflow': True, 'slo_dispatch': 'drop'}))


@pytest.mark.parametrize('dispatcher,noise_pct,seed', [
    ('router', 3.0, 1), ('router', 0.0, 2), ('spread', 3.0, 3), ('fixed', 3.0, 4),
    ('fixed', 8.0, 5)])
def test_serve_gives_the_same_records(monkeypatch, xavier, dispatcher, noise_pct, seed):
    apps = [a.scaled(2.0) for a in _apps()]      # overloaded: queues fill, requests drop
    if dispatcher == 'fixed':
        # QuartzNet on the DLAs sends its unsupported layers to the GPU, time-sliced there with
        # the GPU's own inference: the re-slicing and the GPU-side work of DLA inference
        qn = load_model('quartznet15x5')
        apps = [App('asr', qn, 60.0, 60.0), App('asr2', qn, 60.0, 60.0),
                App('cam', load_model('resnet50'), 150.0, 30.0)]

    def make():
        if dispatcher == 'router':
            return _router(xavier, apps)
        if dispatcher == 'spread':
            return Spread()
        return FixedDispatcher(['dla0', 'dla1', 'gpu'])

    def run():
        twin = Twin(xavier, seed=seed, noise_pct=noise_pct)
        recs = twin.serve(apps, make(), duration_s=1.5, max_queue=8)
        return _records(recs), twin.last_events

    py, nb = _both(monkeypatch, run)
    assert py[1] > 10000 and any(r[5] for r in py[0])   # layer events and drops were exercised
    assert nb == py


def test_four_running_layers_give_the_same_records(monkeypatch, three_dlas):
    qn = load_model('quartznet15x5')
    apps = [App('asr', qn, 60.0, 60.0), App('asr2', qn, 60.0, 60.0),
            App('det', load_model('googlenet'), 100.0, 30.0),
            App('cam', load_model('resnet50'), 150.0, 30.0)]

    def run():
        twin = Twin(three_dlas, seed=6)
        return _records(twin.serve(apps, FixedDispatcher(['dla0', 'dla1', 'dla2', 'gpu']),
                                   duration_s=1.0))

    py, nb = _both(monkeypatch, run)
    assert nb == py


def test_give_up_and_slo99_bisection_give_the_same_results(monkeypatch, xavier):
    apps = _apps()

    def give_up_on_reject():
        # the dispatcher's rejection ends the run: the next run_until starts with stop() true
        # and must still process exactly the one event the Python loop processes
        twin = Twin(xavier, seed=7)
        recs = twin.serve(apps, Spread(), duration_s=1.0,
                          give_up=lambda rec: rec.dropped_reason == 'rejected')
        return _records(recs), twin.last_events

    py, nb = _both(monkeypatch, give_up_on_reject)
    assert [r[5] for r in py[0]].count('shutdown') > 10
    assert nb == py

    def bisection():
        twin = Twin(xavier, seed=8)
        return (twin_slo99_throughput(twin, apps, lambda: _router(xavier, apps), seed=8,
                                      requests=400, iterations=3, min_app_requests=50),
                measure_on_twin(twin, apps, lambda: _router(xavier, apps), duration_s=1.0,
                                seed=9))

    py, nb = _both(monkeypatch, bisection)
    assert py[0] > 0.0
    assert nb == py


def test_faults_give_the_same_records(monkeypatch, xavier):
    apps = _apps()

    def run():
        twin = Twin(xavier, seed=10)
        recs = twin.serve(apps, _router(xavier, apps), duration_s=2.5,
                          faults=['dla1:error@0.5+0.6', 'dla0:hang@1.2+0.5'],
                          health=HealthSettings(probe_period_s=0.2))
        fsim = twin.last_faults
        return (_records(recs), fsim.redispatched, fsim.late_discarded,
                [(e.proc, e.healthy, e.t_s) for e in fsim.health.events])

    py, nb = _both(monkeypatch, run)
    assert py[1] > 0 and py[2] == 1
    assert nb == py


def test_corun_and_profiling_give_the_same_times(monkeypatch, xavier):
    rn, gn = load_model('resnet50'), load_model('googlenet')
    layers = rn.layers

    def run():
        # without noise the two DLAs' layers end at the same instants: ties go to the first
        # in running order, whose next step is appended after the other
        out = [Twin(xavier, seed=11, noise_pct=pct).corun(jobs, iterations=3)
               for pct in (3.0, 0.0)
               for jobs in ({'gpu': rn, 'dla0': gn, 'dla1': rn}, {'dla0': rn, 'dla1': rn},
                            {'dla1': rn, 'dla0': rn, 'gpu': gn})]
        twin = Twin(xavier, seed=12)
        # profiling draws the co-runners' phase from the noise generator between draws
        out += [twin.profile_layer(layers[i], 'gpu',
                                   {'dla0': [lay for lay in gn.layers if lay.dla][:4],
                                    'dla1': [lay for lay in layers if lay.dla][5:9]}, seed=i)
                for i in (3, 20, 40)]
        out.append(twin.profile_layer(layers[7], 'dla0', None, seed=13))
        return out

    py, nb = _both(monkeypatch, run)
    assert nb == py


def test_ties_end_in_running_order(monkeypatch, xavier):
    """Two layers ending at the same instant end in running order (the first started first),
    and each one's next layer joins the end of the running set: the DLA jobs' layers (fixed
    times) tie at every step, so the order in which the jobs finish shows it."""
    gpu, dla0, dla1 = (xavier.processor_ids.index(p) for p in ('gpu', 'dla0', 'dla1'))
    g = [(gpu, 0.01, 0.9 + 0.1 * (i % 4), 1.3 + 0.2 * (i % 3), 3.7e6 * 1.09 ** i)
         for i in range(30)]
    a = [(dla0, 0.37, 0.0, 0.0, 2.9e6 * 1.13 ** i) for i in range(40)]
    b = [(dla1, 0.37, 0.0, 0.0, 4.3e6 * 1.07 ** i) for i in range(40)]

    def run():
        eng = twin_mod._new_event_loop(xavier, random.Random(1), 0.0, 256)
        ends = []
        eng.on_finish = lambda job: ends.append((job.owner, eng.now))
        for owner, steps in (('g', g), ('a', a), ('b', b)):
            eng.start_job(twin_mod._Job(steps, owner, 0.0))
        eng.run_until(math.inf)
        return ends, eng.events

    py, nb = _both(monkeypatch, run)
    assert [e[0] for e in py[0]] == ['a', 'b', 'g'] and py[0][0][1] == py[0][1][1]
    assert nb == py


def test_engines_leave_the_noise_generator_in_the_same_state(monkeypatch, xavier):
    """``eng.rng`` after a run is the Python loop's generator (odd and even batch sizes),
    with the kernel's own draws and with Python's (where the check of the former fails)."""
    twin = Twin(xavier)
    steps = twin.program(load_model('resnet50'), 'gpu')

    def run(batch):
        eng = twin_mod._new_event_loop(xavier, random.Random(14), 0.03, batch)
        finished = []

        def on_finish(job):
            finished.append(eng.now)
            if len(finished) < 5:
                job.idx = 0
                eng.start_job(job)

        eng.on_finish = on_finish
        eng.start_job(twin_mod._Job(steps, 'gpu', 0.0))
        eng.run_until(30.0)
        mid = (eng.now, eng.rng.random())           # hands the generator back mid-run
        eng.run_until(math.inf)
        return finished, mid, eng.events, eng.rng.getstate()

    # the kernel draws the noise itself (on CPython with its usual libm it matches Python)
    assert twin_kernel.fast_noise_works()
    for batch in (1, 7, 256):
        py, nb = _both(monkeypatch, functools.partial(run, batch))
        assert nb == py
        monkeypatch.setattr(twin_kernel, '_fast_noise', False)
        py, nb = _both(monkeypatch, functools.partial(run, batch))
        assert nb == py
        monkeypatch.setattr(twin_kernel, '_fast_noise', None)


def test_the_kernel_compiles_once_per_process(monkeypatch, xavier, three_dlas):
    monkeypatch.setenv(KERNEL_ENV, 'numba')
    for plat, seed in ((xavier, 1), (three_dlas, 2), (xavier, 3)):
        eng = Twin(plat, seed=seed)._engine(None)
        assert isinstance(eng, twin_kernel.KernelEventLoop)
        Twin(plat, seed=seed).serve(_apps(), Spread(), duration_s=0.2)
        eng.run_until(1)          # an int time: converted, no second specialisation
    for fn in (twin_kernel.run, twin_kernel.start_step, twin_kernel.draw_noise):
        assert len(fn.signatures) == 1, fn.signatures


def test_the_python_loop_is_chosen_by_the_environment(monkeypatch, xavier):
    monkeypatch.setenv(KERNEL_ENV, 'python')
    assert type(Twin(xavier)._engine(None)) is twin_mod._EventLoop
    monkeypatch.setenv(KERNEL_ENV, 'numba')
    assert type(Twin(xavier)._engine(None)) is twin_kernel.KernelEventLoop
