"""The twin's event loop compiled with numba: the same fluid model, in array form.

:class:`KernelEventLoop` has :class:`~hetero_infer.twin.simulator._EventLoop`'s interface and
gives the same results bit for bit. The contention model is not written here: numba compiles
:mod:`~hetero_infer.twin.contention`'s own :func:`base_ms`, :func:`extra_ms` and :func:`solve`
(registered with ``register_jitable``: the Python loop keeps calling them as plain Python).
The rest of the Python loop's float operations (the GPU time scale, the re-slicing, the
advance) are done here in the same order, the first minimum in running order ends first, and an
ended layer's execution moves to the end of the running set as in the Python list. Only the
bookkeeping differs:

* the running executions are rows of a float array (:data:`ALONE` ... :data:`COMP`) with their
  job slot and processor in an int array; a job is a slot of the job table (where its program
  starts in the program table, its length, its current step);
* programs (lists of steps ``(exec_proc_index, overhead_ms, compute_ms, memory_ms, bytes)``)
  are copied once per engine into one concatenated table;
* the noise factors are the Python loop's (``exp(rng.gauss(0, sigma))``, ``noise_batch`` at a
  time, when the last one has been used) in a buffer the kernel and :meth:`start_job` read in
  order; :func:`draw_noise` computes them from a copy of the generator's state, or, where
  :func:`fast_noise_works` finds it differs from this interpreter's, Python draws them.

:func:`run` processes layer events until a job's last step ends, ``t_end`` is reached, the
running set empties, or (Python drawing the noise) the next step needs a factor the buffer no
longer has; Python then calls ``on_finish`` (which may start jobs), refills the noise, or
returns. A measurement job's ~3.2 million layer events thus cost ~53,000 returns to Python
instead of an interpreted step each.

Compiled on first use in a process (about 2.6 CPU-s); ``cache=True`` keeps the machine code
beside this file (``__pycache__``, else numba's user cache directory) so later processes (the
evaluation's workers) load it in about 0.6 s, numba's import included. numba's cache notices
a change to this file only, not to contention.py whose functions it compiled in, so
:data:`CONTENTION_SHA256` ties the two (see there).
"""

import hashlib
import math
import random
from typing import Dict, List

import numpy as np
from numba import njit
from numba.extending import register_jitable

from hetero_infer.platform.spec import Platform
from hetero_infer.twin import contention
from hetero_infer.twin.contention import (
    ALONE,
    BYTES,
    DUR,
    MEM,
    PROC,
    SOLVE_COLS,
    base_ms,
    curve_params,
    extra_ms,
    solve,
)

# numba compiles these where the kernel calls them; Python keeps calling them as they are
for _fn in (base_ms, extra_ms, solve):
    register_jitable(_fn)

#: SHA-256 of contention.py (``\r\n`` read as ``\n``), whose functions the cached kernel has
#: compiled in. numba's cache is invalidated by a change to this file, not to the files of the
#: functions it calls, so an edited contention.py would leave stale machine code in the cache
#: (results no longer the Python loop's). Where contention.py does not match this digest, the
#: functions that call it are compiled afresh in every process and not cached, and
#: test_core_twin_kernel fails until the digest here is updated (which invalidates the cache).
CONTENTION_SHA256 = '9bf52129985f69268d5154fcbff9043b6c3566c1599e78f3c048ffcb315274b4'


def contention_sha256() -> str:
    """SHA-256 of contention.py as it is now (compare :data:`CONTENTION_SHA256`)."""
    with open(contention.__file__, 'rb') as f:
        return hashlib.sha256(f.read().replace(b'\r\n', b'\n')).hexdigest()


_CACHE = contention_sha256() == CONTENTION_SHA256

# Columns of a running execution's float row: first contention.solve's table (duration alone,
# bytes, memory, duration now, its scratch DRAM demand: ALONE ... DEM), then the fraction left,
# overhead and compute (the Python loop's list holds the same, with the memory time)
LEFT, OV, COMP = range(SOLVE_COLS, SOLVE_COLS + 3)
ROW_COLS = SOLVE_COLS + 3
# Columns of its int row: its processor (PROC, contention.solve's int table), its job's slot
SLOT = PROC + 1
#: A processor's contention curve, as contention.curve_params gives it
CURVE_DTYPE = np.dtype([(name, np.float64) for name in
                        ('flat_below', 'threshold', 'alpha', 'cap', 'power')])
# Job table columns: first step in the program table, number of steps, current step
J_START, J_LEN, J_IDX = 0, 1, 2
# Engine scalars, int array: running executions, dirty flag, layers on DLAs now, layer events,
# next noise factor, noise factors in the buffer, slot of the job that finished, noise batch,
# whether the Mersenne Twister copy below is the generator's state now, its position, and
# whether a second normal deviate is pending (``random.Random.gauss_next``)
(S_N, S_DIRTY, S_DLA, S_EVENTS, S_NOISE_POS, S_NOISE_LEN, S_FINISHED, S_BATCH, S_MT_LIVE,
 S_MT_POS, S_GAUSS_HAS) = range(11)
# Engine scalars, float array: the clock, DRAM bytes per ms, noise sigma, the pending deviate
F_NOW, F_DRAM, F_SIGMA, F_GAUSS_NEXT = range(4)
# What :func:`run` returns
IDLE, AT_T_END, JOB_DONE, NEED_NOISE, EVENT_LIMIT, NO_NEXT = range(6)

# -- the noise: CPython's random.Random, replayed --------------------------------------------
# ``exp(rng.gauss(0, sigma))`` drawn here from a copy of the generator's state gives the same
# numbers as Python: Mersenne Twister MT19937 and ``random()``'s 53-bit construction as in
# CPython's _randommodule.c, ``gauss`` as in random.py (Box-Muller, the second deviate kept for
# the next call), the same libm functions. :func:`fast_noise_works` checks this once per
# process against the interpreter it runs in; where it fails, Python draws the factors.
_N, _M = 624, 397
_MATRIX_A, _UPPER, _LOWER, _MASK32 = 0x9908b0df, 0x80000000, 0x7fffffff, 0xffffffff
TWOPI = 2.0 * math.pi


@njit(cache=True)
def _genrand_uint32(mt, si):
    """The generator's next 32-bit word (``genrand_uint32``); ``mt`` holds words as int64."""
    if si[S_MT_POS] >= _N:
        for kk in range(_N):
            y = (mt[kk] & _UPPER) | (mt[(kk + 1) % _N] & _LOWER)
            mt[kk] = mt[(kk + _M) % _N] ^ (y >> 1) ^ (_MATRIX_A if y & 1 else 0)
        si[S_MT_POS] = 0
    y = mt[si[S_MT_POS]]
    si[S_MT_POS] += 1
    y ^= y >> 11
    y ^= (y << 7) & 0x9d2c5680
    y ^= (y << 15) & 0xefc60000
    y ^= y >> 18
    return y & _MASK32


@njit(cache=True)
def _random(mt, si):
    """``random.random()``: 53 random bits in [0, 1) (``genrand_res53``)."""
    a = _genrand_uint32(mt, si) >> 5
    b = _genrand_uint32(mt, si) >> 6
    return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def draw_noise(mt, si, sf, noise):
    """Refill ``noise`` with ``si[S_BATCH]`` factors ``exp(gauss(0, sigma))``."""
    sigma = sf[F_SIGMA]
    for i in range(si[S_BATCH]):
        if si[S_GAUSS_HAS]:
            z = sf[F_GAUSS_NEXT]
            si[S_GAUSS_HAS] = 0
        else:
            x2pi = _random(mt, si) * TWOPI
            g2rad = math.sqrt(-2.0 * math.log(1.0 - _random(mt, si)))
            z = math.cos(x2pi) * g2rad
            sf[F_GAUSS_NEXT] = math.sin(x2pi) * g2rad
            si[S_GAUSS_HAS] = 1
        noise[i] = math.exp(0.0 + z * sigma)
    si[S_NOISE_POS] = 0
    si[S_NOISE_LEN] = si[S_BATCH]


@njit(cache=_CACHE)
def _reslice(rf, ri, n, e, k, gpu, dla_running, gpu_scale):
    """``_EventLoop._reslice``: ``k`` layers now share processor ``e``."""
    kk = float(k)
    if e == gpu and dla_running:
        kk = k * gpu_scale[dla_running]
    for i in range(n):
        if ri[i, PROC] == e:
            rf[i, ALONE] = base_ms(rf[i, OV], rf[i, COMP], rf[i, MEM], kk)


@njit(cache=_CACHE)
def start_step(rf, ri, si, share, is_dla, jobs, prog_i, prog_f, noise, gpu_scale, gpu, noisy,
               slot):
    """``_EventLoop.start_job`` for the job in ``slot`` (its current step, one noise factor)."""
    p = jobs[slot, J_START] + jobs[slot, J_IDX]
    e = prog_i[p]
    ov = prog_f[p, 0]
    c = prog_f[p, 1]
    m = prog_f[p, 2]
    if noisy:
        f = noise[si[S_NOISE_POS]]
        si[S_NOISE_POS] += 1
        ov *= f
        c *= f
        m *= f
    k = share[e] + 1
    share[e] = k
    n = si[S_N]
    rf[n, LEFT] = 1.0
    rf[n, DUR] = 0.0
    rf[n, ALONE] = base_ms(ov, c, m, 1.0)
    rf[n, BYTES] = prog_f[p, 3]
    rf[n, OV] = ov
    rf[n, COMP] = c
    rf[n, MEM] = m
    ri[n, SLOT] = slot
    ri[n, PROC] = e
    n += 1
    si[S_N] = n
    if is_dla[e]:
        si[S_DLA] += 1
        if gpu >= 0 and share[gpu]:
            _reslice(rf, ri, n, gpu, share[gpu], gpu, si[S_DLA], gpu_scale)
    if k > 1 or (e == gpu and si[S_DLA]):
        _reslice(rf, ri, n, e, k, gpu, si[S_DLA], gpu_scale)
    si[S_DIRTY] = 1


@njit(cache=_CACHE)
def run(rf, ri, si, sf, share, is_dla, jobs, prog_i, prog_f, noise, mt, curves, gpu_scale,
        gpu, noisy, t_end, max_events):
    """``_EventLoop.run_until``'s loop until it must return to Python (see the module docstring).

    ``max_events > 0`` stops after that many layer events (a ``stop`` already true on entry
    lets the Python loop process exactly one). Noise is drawn here when the generator's state
    is in ``mt`` (``si[S_MT_LIVE]``). Returns one of :data:`IDLE`, :data:`AT_T_END`,
    :data:`JOB_DONE` (slot in ``si[S_FINISHED]``), :data:`NEED_NOISE` (Python must draw; nothing
    changed but the durations, already solved), :data:`EVENT_LIMIT`, :data:`NO_NEXT` (no
    execution has a finite end: a broken model).
    """
    n = si[S_N]
    dirty = si[S_DIRTY]
    dla = si[S_DLA]
    events = si[S_EVENTS]
    now = sf[F_NOW]
    dram = sf[F_DRAM]
    done = 0
    status = IDLE
    while n > 0:
        best = -1
        best_t = math.inf
        if dirty:
            dirty = 0
            if n == 1:
                best = 0
                rf[0, DUR] = rf[0, ALONE]
                best_t = rf[0, LEFT] * rf[0, ALONE]
            else:
                solve(n, rf, ri, curves, dram, 4)
        if best < 0:
            for i in range(n):
                t = rf[i, LEFT] * rf[i, DUR]
                if t < best_t:
                    best_t = t
                    best = i
        if best < 0:
            status = NO_NEXT
            break
        t = now + best_t
        late = t > t_end
        if late:
            t = t_end
        slot = ri[best, SLOT]
        idx = jobs[slot, J_IDX] + 1
        if (not late and noisy and idx < jobs[slot, J_LEN]
                and si[S_NOISE_POS] >= si[S_NOISE_LEN]):
            if not si[S_MT_LIVE]:
                status = NEED_NOISE
                break
            draw_noise(mt, si, sf, noise)
        dt = t - now
        if dt > 0:
            for i in range(n):
                d = rf[i, DUR]
                if d > 0:
                    rf[i, LEFT] -= dt / d
            now = t
        if late:
            status = AT_T_END
            break
        # ``best`` ends now; its job's next step starts (or the job is done)
        events += 1
        dirty = 1
        e = ri[best, PROC]
        old_dur = rf[best, DUR]
        for i in range(best, n - 1):
            for j in range(ROW_COLS):
                rf[i, j] = rf[i + 1, j]
            ri[i, SLOT] = ri[i + 1, SLOT]
            ri[i, PROC] = ri[i + 1, PROC]
        n -= 1
        jobs[slot, J_IDX] = idx
        if idx < jobs[slot, J_LEN]:
            p = jobs[slot, J_START] + idx
            e2 = prog_i[p]
            ov = prog_f[p, 0]
            c = prog_f[p, 1]
            m = prog_f[p, 2]
            if noisy:
                f = noise[si[S_NOISE_POS]]
                si[S_NOISE_POS] += 1
                ov *= f
                c *= f
                m *= f
            dla_moved = False
            if e2 == e:
                k = share[e]
            else:
                k = share[e] - 1
                share[e] = k
                dla_moved = is_dla[e] or is_dla[e2]
                if is_dla[e]:
                    dla -= 1
                if is_dla[e2]:
                    dla += 1
                # the GPU is re-sliced once below when the DLA count moved
                if k and not (dla_moved and e == gpu):
                    _reslice(rf, ri, n, e, k, gpu, dla, gpu_scale)
                k = share[e2] + 1
                share[e2] = k
            kk = float(k)
            if e2 == gpu and dla:
                kk = k * gpu_scale[dla]
            rf[n, LEFT] = 1.0
            rf[n, DUR] = old_dur
            rf[n, ALONE] = base_ms(ov, c, m, kk)
            rf[n, BYTES] = prog_f[p, 3]
            rf[n, OV] = ov
            rf[n, COMP] = c
            rf[n, MEM] = m
            ri[n, SLOT] = slot
            ri[n, PROC] = e2
            n += 1
            if k > 1 and e2 != e and not (dla_moved and e2 == gpu):
                _reslice(rf, ri, n, e2, k, gpu, dla, gpu_scale)
            if dla_moved and gpu >= 0 and share[gpu]:
                _reslice(rf, ri, n, gpu, share[gpu], gpu, dla, gpu_scale)
        else:
            k = share[e] - 1
            share[e] = k
            if k:
                _reslice(rf, ri, n, e, k, gpu, dla, gpu_scale)
            if is_dla[e]:
                dla -= 1
                if gpu >= 0 and share[gpu]:
                    _reslice(rf, ri, n, gpu, share[gpu], gpu, dla, gpu_scale)
            si[S_FINISHED] = slot
            status = JOB_DONE
            break
        done += 1
        if max_events > 0 and done >= max_events:
            status = EVENT_LIMIT
            break
    si[S_N] = n
    si[S_DIRTY] = dirty
    si[S_DLA] = dla
    si[S_EVENTS] = events
    sf[F_NOW] = now
    return status


_fast_noise = None   # whether draw_noise matches this interpreter's random.Random (checked once)


def _mt_load(rng: random.Random, mt, si, sf) -> None:
    """Copy ``rng``'s state into the kernel's arrays."""
    _version, words, gauss_next = rng.getstate()
    mt[:] = words[:_N]
    si[S_MT_POS] = words[_N]
    si[S_GAUSS_HAS] = gauss_next is not None
    sf[F_GAUSS_NEXT] = 0.0 if gauss_next is None else gauss_next


def _mt_store(rng: random.Random, mt, si, sf) -> None:
    """Set ``rng``'s state from the kernel's arrays."""
    rng.setstate((rng.VERSION, tuple(mt.tolist()) + (int(si[S_MT_POS]),),
                  float(sf[F_GAUSS_NEXT]) if si[S_GAUSS_HAS] else None))


def fast_noise_works() -> bool:
    """Whether :func:`draw_noise` gives exactly ``exp(random.Random.gauss(0, sigma))`` here, and
    leaves the generator where Python would (checked once per process on a few thousand
    draws, odd and even batches, across a regeneration of the generator's state)."""
    global _fast_noise
    if _fast_noise is None:
        ok = True
        rng, mirror = random.Random(20250601), random.Random(20250601)
        mirror.random()
        rng.random()
        mt = np.zeros(_N, dtype=np.int64)
        si = np.zeros(S_GAUSS_HAS + 1, dtype=np.int64)
        sf = np.zeros(F_GAUSS_NEXT + 1)
        sf[F_SIGMA] = 0.03
        for batch in (1, 3, 256, 1, 2000):
            _mt_load(mirror, mt, si, sf)
            si[S_BATCH] = batch
            noise = np.zeros(batch)
            draw_noise(mt, si, sf, noise)
            _mt_store(mirror, mt, si, sf)
            want = [math.exp(rng.gauss(0.0, 0.03)) for _ in range(batch)]
            ok = ok and noise.tolist() == want and mirror.getstate() == rng.getstate()
        _fast_noise = ok
    return _fast_noise


class KernelEventLoop:
    """:class:`~hetero_infer.twin.simulator._EventLoop` with the event loop in :func:`run`.

    Same constructor, attributes (``platform``, ``rng``, ``sigma``, ``ids``, ``index``,
    ``now``, ``events``, ``on_finish``) and methods, same results. ``running`` is a snapshot in
    the Python loop's layout (read-only). While a job runs, its ``idx`` lives in the job table:
    ``job.idx`` is set when the job finishes. The engine owns ``rng``: while it draws noise the
    generator's state lives in the kernel's arrays, and reading ``eng.rng`` hands it back (use
    ``eng.rng``, not another reference to the generator).
    """

    def __init__(self, platform: Platform, rng: random.Random, noise_sigma: float, *,
                 noise_batch: int = 256):
        if noise_batch < 1:
            raise ValueError('noise_batch must be >= 1, got %r' % noise_batch)
        self.platform = platform
        self._rng = rng
        self.sigma = noise_sigma
        self.ids = list(platform.processor_ids)
        self.index = {p: i for i, p in enumerate(self.ids)}
        n = len(self.ids)
        self.now = 0.0
        self.events = 0
        self.on_finish = None
        self._noisy = noise_sigma > 0.0
        # noise drawn by the kernel from a copy of the generator (a plain random.Random only:
        # a subclass may draw differently)
        self._fast = type(rng) is random.Random and fast_noise_works()
        self._gpu = self.index.get(platform.gpu_id, -1)
        self._rf = np.zeros((8, ROW_COLS))
        self._ri = np.zeros((8, 2), dtype=np.int64)
        self._si = np.zeros(S_GAUSS_HAS + 1, dtype=np.int64)
        self._si[S_BATCH] = noise_batch
        self._sf = np.zeros(F_GAUSS_NEXT + 1)
        self._sf[F_DRAM] = platform.dram_gbps * 1e6  # bytes per ms
        self._sf[F_SIGMA] = noise_sigma
        self._share = np.zeros(n, dtype=np.int64)
        self._is_dla = np.array([platform.processors[p].kind == 'dla' for p in self.ids],
                                dtype=np.bool_)
        self._jobs = np.zeros((8, 3), dtype=np.int64)
        self._slots: List[object] = []       # job of each slot (None: free)
        self._free: List[int] = []
        self._prog_i = np.zeros(256, dtype=np.int64)
        self._prog_f = np.zeros((256, 4))
        self._prog_used = 0
        self._programs: Dict[int, tuple] = {}  # id(steps) -> (steps, first row in the table)
        self._noise = np.zeros(noise_batch)
        self._mt = np.zeros(_N, dtype=np.int64)
        # a record per processor: contention's curve[k] reads it in place (a row of a 2-D
        # array would be a new view per read, and cost the kernel ~20% of its solve time)
        self._curves = np.array(curve_params(platform, self.ids), dtype=CURVE_DTYPE)
        self._gpu_scale = np.array([platform.gpu_time_scale(k) for k in range(2 * n + 2)],
                                   dtype=np.float64)
        self._bind()

    def _bind(self) -> None:
        """The argument tuples of :func:`start_step` and :func:`run` (arrays may grow)."""
        self._start_args = (self._rf, self._ri, self._si, self._share, self._is_dla, self._jobs,
                            self._prog_i, self._prog_f, self._noise, self._gpu_scale, self._gpu,
                            self._noisy)
        self._run_args = (self._rf, self._ri, self._si, self._sf, self._share, self._is_dla,
                          self._jobs, self._prog_i, self._prog_f, self._noise, self._mt,
                          self._curves, self._gpu_scale, self._gpu, self._noisy)

    @property
    def rng(self) -> random.Random:
        """The noise generator, in the state the draws so far left it."""
        if self._si[S_MT_LIVE]:
            _mt_store(self._rng, self._mt, self._si, self._sf)
            self._si[S_MT_LIVE] = 0
        return self._rng

    # -- tables ------------------------------------------------------------------------------
    def _program(self, steps) -> int:
        """Row of ``steps``' first step in the program table (copied there on first use)."""
        entry = self._programs.get(id(steps))
        if entry is not None and entry[0] is steps:
            return entry[1]
        n = len(steps)
        start = self._prog_used
        if start + n > len(self._prog_i):
            size = max(2 * len(self._prog_i), start + n)
            prog_i = np.zeros(size, dtype=np.int64)
            prog_f = np.zeros((size, 4))
            prog_i[:start] = self._prog_i[:start]
            prog_f[:start] = self._prog_f[:start]
            self._prog_i, self._prog_f = prog_i, prog_f
            self._bind()
        if n:
            self._prog_i[start:start + n] = [s[0] for s in steps]
            self._prog_f[start:start + n] = [s[1:5] for s in steps]
        self._prog_used = start + n
        self._programs[id(steps)] = (steps, start)   # holds steps: its id stays unique
        return start

    def _slot(self, job) -> int:
        """A free row of the job table for ``job``."""
        if self._free:
            slot = self._free.pop()
            self._slots[slot] = job
            return slot
        slot = len(self._slots)
        self._slots.append(job)
        if slot >= len(self._jobs):
            jobs = np.zeros((2 * len(self._jobs), 3), dtype=np.int64)
            jobs[:slot] = self._jobs
            self._jobs = jobs
            self._bind()
        return slot

    def _draw_noise(self) -> None:
        """The next ``noise_batch`` factors, the numbers the Python loop draws."""
        si = self._si
        if self._fast:
            if not si[S_MT_LIVE]:
                _mt_load(self._rng, self._mt, si, self._sf)
                si[S_MT_LIVE] = 1
            draw_noise(self._mt, si, self._sf, self._noise)
            return
        gauss, sigma, exp = self._rng.gauss, self.sigma, math.exp
        self._noise[:] = [exp(gauss(0.0, sigma)) for _ in range(len(self._noise))]
        si[S_NOISE_POS] = 0
        si[S_NOISE_LEN] = len(self._noise)

    # -- the engine's interface ----------------------------------------------------------------
    @property
    def running(self) -> List[list]:
        """The running executions in the Python loop's layout (a snapshot)."""
        out = []
        for i in range(int(self._si[S_N])):
            r = self._rf[i]
            out.append([self._slots[self._ri[i, SLOT]], int(self._ri[i, PROC]),
                        float(r[LEFT]), float(r[DUR]), float(r[ALONE]), float(r[BYTES]),
                        float(r[OV]), float(r[COMP]), float(r[MEM])])
        return out

    def start_job(self, job) -> None:
        """Start ``job``'s current step (``job.idx``) now."""
        if job.idx >= len(job.steps):
            raise IndexError('job has no step %d (it has %d)' % (job.idx, len(job.steps)))
        si = self._si
        if si[S_N] >= len(self._rf):
            size = 2 * len(self._rf)
            rf = np.zeros((size, ROW_COLS))
            ri = np.zeros((size, 2), dtype=np.int64)
            rf[:len(self._rf)] = self._rf
            ri[:len(self._ri)] = self._ri
            self._rf, self._ri = rf, ri
            self._bind()
        start = self._program(job.steps)
        slot = self._slot(job)
        jobs = self._jobs
        jobs[slot, J_START] = start
        jobs[slot, J_LEN] = len(job.steps)
        jobs[slot, J_IDX] = job.idx
        if self._noisy and si[S_NOISE_POS] >= si[S_NOISE_LEN]:
            self._draw_noise()
        start_step(*self._start_args, slot)

    def run_until(self, t_end, stop=None) -> None:
        """Process completions up to ``t_end`` (or until ``stop()`` is true).

        As the Python loop, ``stop`` counts after every layer event. Its value can only change
        where Python code runs: before the call and in ``on_finish``. So it is asked on entry
        (true: the kernel stops after one event, which the Python loop also processes before
        asking) and after each ``on_finish``.
        """
        t_end = float(t_end)
        limit = 1 if stop is not None and stop() else 0
        si, sf = self._si, self._sf
        while True:
            sf[F_NOW] = self.now
            status = run(*self._run_args, t_end, limit)
            self.now = float(sf[F_NOW])
            self.events = int(si[S_EVENTS])
            if status == JOB_DONE:
                slot = int(si[S_FINISHED])
                job = self._slots[slot]
                self._slots[slot] = None
                self._free.append(slot)
                job.idx = int(self._jobs[slot, J_IDX])
                self.on_finish(job)
                if stop is not None:
                    if stop():
                        si[S_DIRTY] = 1
                        return
                    limit = 0
            elif status == EVENT_LIMIT:
                if stop():
                    return
                limit = 0
            elif status == NEED_NOISE:
                self._draw_noise()
            elif status == IDLE:
                if t_end != math.inf:
                    self.now = max(self.now, t_end)
                return
            elif status == NO_NEXT:
                raise RuntimeError('twin: no running layer has a finite end at %.3f ms'
                                   % self.now)
            else:        # AT_T_END
                return
