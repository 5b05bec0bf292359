"""The twin's contention model, defined once: what a layer takes alone and next to co-runners.

Used by the Python event loop (:mod:`hetero_infer.twin.simulator`), the emulated backend
(:func:`contention_factors`) and the compiled kernel (:mod:`hetero_infer.twin.kernel`), which
compiles :func:`base_ms`, :func:`extra_ms` and :func:`solve` themselves with numba: they are
plain Python that numba's nopython mode accepts. :func:`solve` works on a table of the running
layers (a 2-D array indexed ``[row, column]``, the columns below), which the kernel's own
running rows are; a curve is read as ``curve[k]`` (a tuple here, a record of the kernel's
structured array there). This module does not import numba.

The unrolled :func:`solve2` and :func:`solve3` are the Python loop's fast paths for two and
three running layers (most solves): :func:`solve`'s arithmetic in the same order, written over
local variables; ``test_core_twin_contention`` checks that they give :func:`solve`'s results
bit for bit.
"""

from typing import List, Sequence, Tuple

import numpy as np

from hetero_infer.platform.spec import Platform

#: ``(flat_below, threshold, alpha, cap, power)`` of one processor's :class:`Contention`
Curve = Tuple[float, float, float, float, float]
#: Damped iterations of the fixed point stop once no duration moves by more than this (relative)
TOLERANCE = 1e-4
#: Columns of :func:`solve`'s float table: duration alone (ms), bytes moved, memory time (ms),
#: the co-run duration it writes (ms) and its scratch DRAM demand (bytes/ms)
ALONE, BYTES, MEM, DUR, DEM = range(5)
SOLVE_COLS = 5
#: Column of :func:`solve`'s int table: the layer's processor (its row of ``curves``)
PROC = 0


def curve_params(platform: Platform, ids: Sequence[str]) -> List[Curve]:
    """Per processor of ``ids``, what :func:`extra_ms` and :func:`solve` read of its
    :class:`~hetero_infer.platform.spec.Contention`: ``(flat_below, threshold, alpha, cap,
    power)``."""
    out = []
    for p in ids:
        cont = platform.processors[p].contention
        out.append((cont.flat_below, cont.threshold, cont.alpha, cont.cap, cont.power))
    return out


def base_ms(ov, c, m, k):
    """Duration alone (ms) of a layer with overhead ``ov``, compute ``c`` and memory ``m`` ms
    while ``k`` layers time-slice its processor (on the GPU, ``k`` also carries the GPU-side
    work of DLA inference: :meth:`Platform.gpu_time_scale`)."""
    if k != 1:
        ov = ov * k
        c = c * k
    return ov + (c if c > m else m)


def extra_ms(x, memory_ms, curve):
    """``memory_ms x (S(x) - 1)``: the time co-runners pulling DRAM share ``x`` add to a layer.

    ``S`` is :meth:`Contention.slowdown` (``curve`` a row of :func:`curve_params`), written out
    for speed (a test checks the two agree). It must be exactly 0 for ``x <= curve[0]``
    (``flat_below``), where :func:`solve` skips iterating.
    """
    th = curve[1]
    if x > th:
        excess = x - th
        cap = curve[3]
        return memory_ms * curve[2] * excess ** curve[4] / (1.0 - (x if x < cap else cap))
    return 0.0


def solve(n, rows, procs, curves, dram_bytes_per_ms, iterations):
    """Durations (ms) of ``n >= 1`` co-running layers, written into ``rows[:n, DUR]``.

    Layer ``i`` takes ``rows[i, ALONE]`` ms alone, moves ``rows[i, BYTES]`` bytes, has
    ``rows[i, MEM]`` ms of memory time and runs on processor ``procs[i, PROC]`` (its curve
    ``curves[procs[i, PROC]]``); ``rows[:, DEM]`` is scratch. A layer's duration alone is
    stretched by :func:`extra_ms` of ``x``, the share of DRAM bandwidth the other layers pull.
    Demands depend on durations and durations on demands; the fixed point is approached with
    damped iterations (half old, half new), since undamped ones oscillate when a slowed layer's
    lower demand releases its co-runner. When no layer's ``x`` (at the durations alone) exceeds
    where its curve is flat, the durations alone are the answer, found without iterating. Sums
    run in layer order from 0.0.
    """
    total = 0.0
    for i in range(n):
        d = rows[i, ALONE]
        dm = rows[i, BYTES] / d if d > 0.0 else 0.0
        rows[i, DEM] = dm
        total += dm
    flat = True
    for i in range(n):
        if (total - rows[i, DEM]) / dram_bytes_per_ms > curves[procs[i, PROC]][0]:
            flat = False
            break
    for i in range(n):
        rows[i, DUR] = rows[i, ALONE]
    if flat:
        return
    for it in range(iterations):
        if it:
            total = 0.0
            for i in range(n):
                d = rows[i, DUR]
                dm = rows[i, BYTES] / d if d > 0.0 else 0.0
                rows[i, DEM] = dm
                total += dm
        moved = False
        for i in range(n):
            old = rows[i, DUR]
            d = 0.5 * (old + (rows[i, ALONE] + extra_ms((total - rows[i, DEM]) / dram_bytes_per_ms,
                                                        rows[i, MEM], curves[procs[i, PROC]])))
            if d - old > TOLERANCE * old or old - d > TOLERANCE * old:
                moved = True
            rows[i, DUR] = d
        if not moved:
            break


def solve_running(running: List[list], curves: Sequence[Curve], dram_bytes_per_ms: float,
                  iterations: int) -> List[float]:
    """:func:`solve` for the Python loop's running executions (``[job, exec processor index,
    fraction left, duration now, duration alone, bytes, overhead, compute, memory]``): their
    co-run durations, in order. Two and three layers (most solves) take :func:`solve2` /
    :func:`solve3`; more, :func:`solve` on a table built here."""
    n = len(running)
    if n == 3:
        return solve3(running, curves, dram_bytes_per_ms, iterations)
    if n == 2:
        return solve2(running, curves, dram_bytes_per_ms, iterations)
    if n < 2:
        return [ex[4] for ex in running]
    rows, procs = running_table(running)
    solve(n, rows, procs, curves, dram_bytes_per_ms, iterations)
    return rows[:, DUR].tolist()


def running_table(running: List[list]):
    """:func:`solve`'s float and int tables for the Python loop's running executions."""
    rows = np.zeros((len(running), SOLVE_COLS))
    procs = np.zeros((len(running), PROC + 1), dtype=np.int64)
    for i, ex in enumerate(running):
        rows[i, ALONE], rows[i, BYTES], rows[i, MEM] = ex[4], ex[5], ex[8]
        procs[i, PROC] = ex[1]
    return rows, procs


def solve2(running, curves, dram, iterations):
    """:func:`solve_running` for two running layers: :func:`solve` unrolled."""
    a, b = running
    ba, bb = a[4], b[4]
    ya, yb = a[5], b[5]
    ca, cb = curves[a[1]], curves[b[1]]
    ea = ya / ba if ba > 0.0 else 0.0
    eb = yb / bb if bb > 0.0 else 0.0
    total = ea + eb
    if not ((total - ea) / dram > ca[0] or (total - eb) / dram > cb[0]):
        return [ba, bb]
    ma, mb = a[8], b[8]
    da, db = ba, bb
    for it in range(iterations):
        if it:
            ea = ya / da if da > 0.0 else 0.0
            eb = yb / db if db > 0.0 else 0.0
            total = ea + eb
        na = 0.5 * (da + (ba + extra_ms((total - ea) / dram, ma, ca)))
        nb = 0.5 * (db + (bb + extra_ms((total - eb) / dram, mb, cb)))
        moved = (na - da > TOLERANCE * da or da - na > TOLERANCE * da
                 or nb - db > TOLERANCE * db or db - nb > TOLERANCE * db)
        da, db = na, nb
        if not moved:
            break
    return [da, db]


def solve3(running, curves, dram, iterations):
    """:func:`solve_running` for three running layers: :func:`solve` unrolled."""
    a, b, c = running
    ba, bb, bc = a[4], b[4], c[4]
    ya, yb, yc = a[5], b[5], c[5]
    ca, cb, cc = curves[a[1]], curves[b[1]], curves[c[1]]
    ea = ya / ba if ba > 0.0 else 0.0
    eb = yb / bb if bb > 0.0 else 0.0
    ec = yc / bc if bc > 0.0 else 0.0
    total = ea + eb + ec
    if not ((total - ea) / dram > ca[0] or (total - eb) / dram > cb[0]
            or (total - ec) / dram > cc[0]):
        return [ba, bb, bc]
    ma, mb, mc = a[8], b[8], c[8]
    da, db, dc = ba, bb, bc
    for it in range(iterations):
        if it:
            ea = ya / da if da > 0.0 else 0.0
            eb = yb / db if db > 0.0 else 0.0
            ec = yc / dc if dc > 0.0 else 0.0
            total = ea + eb + ec
        na = 0.5 * (da + (ba + extra_ms((total - ea) / dram, ma, ca)))
        nb = 0.5 * (db + (bb + extra_ms((total - eb) / dram, mb, cb)))
        nc = 0.5 * (dc + (bc + extra_ms((total - ec) / dram, mc, cc)))
        moved = (na - da > TOLERANCE * da or da - na > TOLERANCE * da
                 or nb - db > TOLERANCE * db or db - nb > TOLERANCE * db
                 or nc - dc > TOLERANCE * dc or dc - nc > TOLERANCE * dc)
        da, db, dc = na, nb, nc
        if not moved:
            break
    return [da, db, dc]


def contention_factors(platform: Platform, running: Sequence[Tuple[str, float, float, float,
                                                                     float]],
                       *, iterations: int = 4) -> List[float]:
    """Co-run duration of each running layer, in ms (the twin's contention solution).

    ``running`` holds ``(exec_proc_id, overhead_ms, compute_ms, memory_ms, bytes)`` for every
    layer executing at this instant. Used by the emulated backend, which replays the same
    contention in wall-clock time, and by the calibration's PCCS checks.
    """
    ids = list(platform.processor_ids)
    index = {p: i for i, p in enumerate(ids)}
    share = {}
    for r in running:
        share[r[0]] = share.get(r[0], 0) + 1
    # -- GPU-side work of DLA inference: GPU layers time-share with it (Platform.gpu_time_scale)
    gpu = platform.gpu_id
    if gpu in share:
        share[gpu] *= platform.gpu_time_scale(sum(
            n for p, n in share.items() if platform.processors[p].kind == 'dla'))
    # -- end of the GPU-side work of DLA inference
    rows = [[None, index[r[0]], 1.0, 0.0, base_ms(r[1], r[2], r[3], share[r[0]]), r[4],
             r[1], r[2], r[3]] for r in running]
    return solve_running(rows, curve_params(platform, ids), platform.dram_gbps * 1e6, iterations)
