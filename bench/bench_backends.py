"""Per-call overhead of the execution backends against the raw library call, same run.

- onnxruntime: ``executor.run()`` from the caller's thread (hand-off to the processor's worker,
  input checks, timing, result) against ``session.run()`` called directly on the same pinned
  worker thread with the same session; a conv stack sized to about ``--target-ms``.
- emulated: ``executor.run()`` of a zoo model with ``time_scale`` set so the twin's latency is
  ``--target-ms`` wall ms, against (a) the twin's latency itself and (b) the raw floor of any
  wall-clock emulation, ``threading.Condition.wait`` for the same time; alone, and with the
  other two processors of the platform looping their own models (contention).

Blocks of raw and backend calls alternate so drift on a shared machine hits both alike. Target
from the issue: under 5% added at 5 ms inference. Prints a table and JSON (``--json FILE``).
"""

import argparse
import json
import os
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hetero_infer.backends import BackgroundLoop, create_backend  # noqa: E402


def _conv_stack(channels: int, size: int, depth: int, seed: int = 0):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], 'input'
    for i in range(depth):
        w = (rng.standard_normal((channels, channels, 3, 3)) * 0.05).astype(np.float32)
        inits.append(numpy_helper.from_array(w, 'w%d' % i))
        nodes.append(helper.make_node('Conv', [x, 'w%d' % i], ['c%d' % i], pads=[1, 1, 1, 1],
                                      kernel_shape=[3, 3]))
        nodes.append(helper.make_node('Relu', ['c%d' % i], ['r%d' % i]))
        x = 'r%d' % i
    nodes[-1].output[0] = 'output'
    shape = [1, channels, size, size]
    g = helper.make_graph(nodes, 'conv_stack', [helper.make_tensor_value_info(
        'input', TensorProto.FLOAT, shape)], [helper.make_tensor_value_info(
            'output', TensorProto.FLOAT, shape)], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def _stats(ms):
    a = np.asarray(ms)
    return {'mean_ms': float(a.mean()), 'p50_ms': float(np.median(a)),
            'p90_ms': float(np.percentile(a, 90)), 'n': int(a.size)}


def bench_onnxruntime(target_ms: float, iterations: int, block: int):
    be = create_backend('onnxruntime', num_processors=1)
    try:
        depth = 1
        model = _conv_stack(32, 56, depth)
        ex = be.load(model, 'cpu0')
        feed = ex.random_inputs()
        one = np.median([ex.run(feed).execute_ms for _ in range(5)])
        depth = max(1, int(round(target_ms / max(one, 1e-3))))
        ex.close()
        ex = be.load(_conv_stack(32, 56, depth), 'cpu0')
        for _ in range(10):
            ex.run(feed)
        sess = ex.session
        names = [t.name for t in ex.outputs]

        def raw_block(n):
            out = []
            for _ in range(n):
                t = time.perf_counter()
                sess.run(names, feed)
                out.append((time.perf_counter() - t) * 1e3)
            return out

        raw, api, execute = [], [], []
        worker = be.worker('cpu0')
        for _ in range(max(1, iterations // block)):
            raw.extend(worker.call(raw_block, block))
            for _ in range(block):
                t = time.perf_counter()
                r = ex.run(feed)
                api.append((time.perf_counter() - t) * 1e3)
                execute.append(r.execute_ms)
        return {'backend': 'onnxruntime', 'case': 'conv stack x%d, cpu0 (1 core)' % depth,
                'raw': _stats(raw), 'api': _stats(api), 'execute': _stats(execute),
                'added_ms': float(np.median(api) - np.median(raw)),
                'added_pct': float(100 * (np.median(api) / np.median(raw) - 1))}
    finally:
        be.close()


def bench_emulated(target_ms: float, iterations: int, block: int, contention: bool):
    probe = create_backend('emulated', platform='xavier', noise_pct=0.0)
    iso = probe.isolated_ms('resnet50', 'gpu')
    probe.close()
    scale = target_ms / iso
    be = create_backend('emulated', platform='xavier', noise_pct=0.0, time_scale=scale)
    loops = []
    try:
        ex = be.load('resnet50', 'gpu')
        feed = ex.random_inputs()
        if contention:
            for proc, model in (('dla0', 'googlenet'), ('dla1', 'resnet18')):
                loops.append(BackgroundLoop(be.load(model, proc)).start())
        for _ in range(5):
            ex.run(feed)
        cond = threading.Condition()

        def raw_block(n, dur_ms):
            out = []
            with cond:
                for _ in range(n):
                    t = time.perf_counter()
                    cond.wait(dur_ms / 1e3)
                    out.append((time.perf_counter() - t) * 1e3)
            return out

        raw, api, emulated_wall = [], [], []
        for _ in range(max(1, iterations // block)):
            for _ in range(block):
                t = time.perf_counter()
                r = ex.run(feed)
                api.append((time.perf_counter() - t) * 1e3)
                emulated_wall.append(r.info['emulated_ms'] * scale)
            raw.extend(raw_block(block, float(np.median(emulated_wall))))
        return {'backend': 'emulated',
                'case': 'resnet50 on gpu%s, time_scale %.3f' % (
                    ' + dla0/dla1 looping' if contention else ' alone', scale),
                'raw': _stats(raw), 'api': _stats(api), 'twin_wall': _stats(emulated_wall),
                'added_ms': float(np.median(np.subtract(api, emulated_wall))),
                'added_pct': float(100 * np.median(np.divide(api, emulated_wall) - 1)),
                'raw_added_ms': float(np.median(raw) - np.median(emulated_wall)),
                'lookaheads': be.state.lookaheads}
    finally:
        for lp in loops:
            lp.stop()
        be.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--target-ms', type=float, default=5.0, help='inference time (default 5)')
    ap.add_argument('--iterations', type=int, default=200, help='calls per variant')
    ap.add_argument('--block', type=int, default=20, help='calls per alternating block')
    ap.add_argument('--json', default=None, metavar='FILE', help='also write JSON here')
    args = ap.parse_args(argv)
    rows = [bench_onnxruntime(args.target_ms, args.iterations, args.block),
            bench_emulated(args.target_ms, args.iterations, args.block, False),
            bench_emulated(args.target_ms, args.iterations, args.block, True)]
    print('%-12s %-48s %9s %9s %9s %8s' % ('backend', 'case', 'ref_ms', 'api_ms', 'added_ms',
                                           'added%'))
    for r in rows:
        ref = r['raw']['p50_ms'] if r['backend'] == 'onnxruntime' else r['twin_wall']['p50_ms']
        print('%-12s %-48s %9.3f %9.3f %9.3f %7.2f%%' % (r['backend'], r['case'][:48], ref,
                                                         r['api']['p50_ms'], r['added_ms'],
                                                         r['added_pct']))
        if r['backend'] == 'emulated':
            print('%-12s %-48s %9s %9.3f %9.3f' % ('', '  floor: Condition.wait same time', '',
                                                   r['raw']['p50_ms'], r['raw_added_ms']))
    doc = {'bench': 'backends', 'target_ms': args.target_ms, 'iterations': args.iterations,
           'cpus': len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None,
           'rows': rows}
    print(json.dumps(doc, indent=1))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(doc, f, indent=1)
            f.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
