"""The twin's contention model (hetero_infer/twin/contention.py) is written once.

The Python loop's unrolled fixed points for two and three running layers (``solve2``,
``solve3``) and the kernel's compiled ``solve`` must give the general ``solve``'s durations bit
for bit on any input (Hypothesis: random layers, curves, DRAM bandwidth and iteration counts,
with the fixed point both skipped and run). numba's cache must not outlive a change to the
model (``CONTENTION_SHA256``), and the model and the Python loop must work without numba.
"""

import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hetero_infer.platform.spec import Platform
from hetero_infer.twin.contention import DUR, curve_params, running_table, solve, solve2, solve3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANY = settings(max_examples=1500, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
XAVIER_CURVES = curve_params(Platform.load('xavier'), Platform.load('xavier').processor_ids)

unit = st.floats(0.0, 0.95)
# (flat_below, threshold, alpha, cap, power): Xavier's own curves, or random ones whose flat
# part ends at the knee (as Contention.flat_below does), at 0 or anywhere
random_curve = st.tuples(unit, unit, st.floats(0.0, 40.0), st.floats(0.05, 0.95),
                         st.floats(0.3, 3.0)).map(
    lambda c: (c[0] if c[0] < 0.3 else c[1] if c[0] < 0.6 else 0.0,) + c[1:])
curve_sets = st.sampled_from([XAVIER_CURVES]) | st.lists(random_curve, min_size=1, max_size=4)
duration = st.just(0.0) | st.floats(0.01, 20.0)


@st.composite
def problems(draw, n):
    """``(running rows in the Python loop's layout, curves, dram bytes/ms, iterations)``."""
    curves = draw(curve_sets)
    rows = []
    for _ in range(n):
        alone = draw(duration)
        rows.append([None, draw(st.integers(0, len(curves) - 1)), 1.0, 0.0, alone,
                     draw(st.just(0.0) | st.floats(0.0, 1e9)), 0.0, 0.0,
                     draw(st.floats(0.0, 1.0)) * alone])
    dram = draw(st.floats(1e7, 3e8))
    iterations = draw(st.sampled_from([4, 4, 4, 0, 1, 2, 3, 8, 60]))
    return rows, curves, dram, iterations


def general(running, curves, dram, iterations):
    """The general :func:`solve` on the running layers' table."""
    rows, procs = running_table(running)
    solve(len(running), rows, procs, curves, dram, iterations)
    return rows[:, DUR].tolist()


def bits(values):
    return [float(v).hex() for v in values]


@MANY
@given(problems(2))
def test_unrolled_solve_for_two_layers_is_the_general_solve_bit_for_bit(problem):
    assert bits(solve2(*problem)) == bits(general(*problem))


@MANY
@given(problems(3))
def test_unrolled_solve_for_three_layers_is_the_general_solve_bit_for_bit(problem):
    assert bits(solve3(*problem)) == bits(general(*problem))


def test_the_problems_reach_both_the_shortcut_and_the_fixed_point():
    # the property tests above would prove little if every drawn problem took the shortcut
    seen = set()

    @settings(max_examples=300, deadline=None, database=None, derandomize=True)
    @given(problems(3))
    def classify(problem):
        rows = problem[0]
        seen.add(general(*problem) == [r[4] for r in rows])

    classify()
    assert seen == {True, False}


def test_the_kernel_compiles_the_same_solve_bit_for_bit():
    pytest.importorskip('numba')
    import numpy as np
    from numba import njit

    from hetero_infer.twin import kernel

    @njit
    def compiled(n, rf, ri, curves, dram, iterations):
        solve(n, rf, ri, curves, dram, iterations)

    @settings(max_examples=400, deadline=None, database=None, derandomize=True)
    @given(st.integers(2, 5).flatmap(problems))
    def check(problem):
        rows, curves, dram, iterations = problem
        n = len(rows)
        rf = np.zeros((n, kernel.ROW_COLS))
        ri = np.zeros((n, 2), dtype=np.int64)
        for i, r in enumerate(rows):
            rf[i, kernel.ALONE], rf[i, kernel.BYTES], rf[i, kernel.MEM] = r[4], r[5], r[8]
            ri[i, kernel.PROC] = r[1]
        compiled(n, rf, ri, np.array(curves, dtype=kernel.CURVE_DTYPE), dram, iterations)
        assert bits(rf[:, kernel.DUR]) == bits(general(rows, curves, dram, iterations))

    check()


def test_the_kernel_cache_is_keyed_to_the_contention_model():
    # numba's cache would keep machine code compiled from an older contention.py: the kernel
    # caches only while contention.py is the one its digest names
    pytest.importorskip('numba')
    from hetero_infer.twin import kernel
    assert kernel.contention_sha256() == kernel.CONTENTION_SHA256, (
        'contention.py changed: set kernel.CONTENTION_SHA256 = %r' % kernel.contention_sha256())
    assert kernel._CACHE


def test_the_model_and_the_python_loop_need_no_numba():
    code = '''
import sys
sys.modules['numba'] = None                     # import numba fails
from hetero_infer.models.zoo import load_model
from hetero_infer.platform.spec import Platform
from hetero_infer.twin.contention import contention_factors
from hetero_infer.twin.simulator import Twin, event_loop_kind
from hetero_infer.workload.requests import App, FixedDispatcher
try:
    import hetero_infer.twin.kernel
except ImportError:
    pass
else:
    raise SystemExit('the kernel imported without numba')
plat = Platform.load('xavier')
assert event_loop_kind() == 'python'
recs = Twin(plat).serve([App('cam', load_model('resnet50'), 100.0, 30.0)],
                        FixedDispatcher(['gpu']), duration_s=0.2)
assert recs and all(r.done for r in recs)
assert contention_factors(plat, [('gpu', 0.1, 1.0, 0.5, 1e6)]) == [1.1]
print('ok')
'''
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    env.pop('HETERO_INFER_TWIN_KERNEL', None)
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == 'ok', out.stderr

