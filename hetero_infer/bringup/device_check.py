"""TensorRT backend check on a machine with an NVIDIA GPU (``tools/device_check.sh`` runs it
through ``tools/device_check.py``; ``hetero-infer bringup`` records its :func:`environment`).

Steps, each recorded in the JSON whether it passes or fails (one failure does not stop the rest):

1. environment: GPU (nvidia-smi), Python, tensorrt / pycuda / onnxruntime versions;
2. for each project ONNX model (tiny_cnn, mobilenet_v2_035, kws_matchboxnet): build a GPU engine
   (FP32 and FP16) through the project's TensorRT backend, run it on seeded inputs, compare with
   onnxruntime (max abs / relative error), time ``executor.run`` (p50/p90 wall and execute ms)
   against the raw ``execute_async_v3``/copies loop of the same executor;
3. the engine cache: second load is a hit, a corrupted engine file is rebuilt (never run),
   ``force_engine_update`` rebuilds;
4. the execute API: ``execute_async_v2`` as well where the TensorRT version has it (8.5/8.6);
5. a DLA request: on a machine without DLA cores it must fail with a clear BackendError.

Writes ``$OUT/device_check.json`` (or ``--out``) and prints a summary table.
"""

import argparse
import json
import os
import platform as _pyplatform
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

MODELS = ('tiny_cnn', 'mobilenet_v2_035', 'kws_matchboxnet')


def _step(report, name, fn):
    t0 = time.perf_counter()
    try:
        value = fn()
        report['steps'][name] = {'ok': True, 'value': value}
    except Exception as exc:  # noqa: BLE001 - recorded, the check goes on
        report['steps'][name] = {'ok': False, 'error': '%s: %s' % (type(exc).__name__, exc),
                                 'traceback': traceback.format_exc(limit=6)}
    report['steps'][name]['seconds'] = round(time.perf_counter() - t0, 3)
    print('[%s] %s (%.1f s)' % ('ok' if report['steps'][name]['ok'] else 'FAIL', name,
                                report['steps'][name]['seconds']), flush=True)
    return report['steps'][name]


def environment():
    env = {'python': sys.version.split()[0], 'machine': _pyplatform.machine()}
    try:
        env['nvidia_smi'] = subprocess.run(
            ['nvidia-smi', '--query-gpu=name,driver_version,memory.total',
             '--format=csv,noheader'], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        env['nvidia_smi'] = 'unavailable: %s' % exc
    for mod in ('tensorrt', 'pycuda', 'onnxruntime', 'onnx', 'numpy'):
        try:
            m = __import__(mod)
            env[mod] = getattr(m, '__version__', getattr(m, 'VERSION_TEXT', 'present'))
        except Exception as exc:  # noqa: BLE001 - recorded, the check goes on
            env[mod] = None
            env[mod + '_error'] = str(exc)
    return env


def _stats(ms):
    a = np.asarray(ms, dtype=float)
    return {'p50_ms': float(np.median(a)), 'p90_ms': float(np.percentile(a, 90)),
            'mean_ms': float(a.mean()), 'n': int(a.size)}


def check_model(backend, model_path, precision, iterations):
    from hetero_infer.backends import create_backend
    ex = backend.load(model_path, 'gpu', precision=precision)
    feed = ex.random_inputs(seed=0)
    got = ex.run(feed).outputs
    with create_backend('onnxruntime', num_processors=1) as ort_be:
        ref = ort_be.load(model_path, 'cpu0').run(feed).outputs
    errors = {}
    for name, want in ref.items():
        g = got[name].astype(np.float64)
        w = want.astype(np.float64)
        errors[name] = {'max_abs': float(np.max(np.abs(g - w))),
                        'max_rel_to_range': float(np.max(np.abs(g - w))
                                                  / max(1e-12, float(np.ptp(w)))),
                        'argmax_equal': bool(np.array_equal(g.reshape(g.shape[0], -1).argmax(1),
                                                            w.reshape(w.shape[0], -1).argmax(1)))}
    for _ in range(20):
        ex.run(feed)
    wall, execute = [], []
    for _ in range(iterations):
        t = time.perf_counter()
        r = ex.run(feed)
        wall.append((time.perf_counter() - t) * 1e3)
        execute.append(r.execute_ms)

    def raw_loop(n):
        out = []
        for _ in range(n):
            t = time.perf_counter()
            ex._execute(feed)
            out.append((time.perf_counter() - t) * 1e3)
        return out

    raw = backend.worker('gpu').call(raw_loop, iterations)
    tol = 1e-3 if precision == 'fp32' else 5e-2
    ok = all(e['max_rel_to_range'] <= tol for e in errors.values())
    result = {'model': os.path.basename(model_path), 'precision': precision,
              'cache': ex.info.get('cache'), 'build_s': ex.info.get('build_s'),
              'execute_api': ex.info.get('execute_api'), 'errors': errors,
              'outputs_match': ok, 'tolerance_rel_to_range': tol,
              'api_wall': _stats(wall), 'execute': _stats(execute), 'raw_execute': _stats(raw),
              'added_ms_p50': float(np.median(wall) - np.median(raw)),
              'engine_layers': len(ex.info.get('engine_layers', []))}
    ex.close()
    if not ok:
        raise AssertionError('outputs differ from onnxruntime: %s' % json.dumps(result))
    return result


def check_cache(backend, model_path):
    a = backend.load(model_path, 'gpu', precision='fp16')
    hit = backend.load(model_path, 'gpu', precision='fp16')
    path = hit.info['engine_file_path']
    with open(path, 'r+b') as f:
        f.seek(os.path.getsize(path) // 2)
        f.write(b'\xde\xad\xbe\xef' * 16)
    rebuilt = backend.load(model_path, 'gpu', precision='fp16')
    forced = backend.load(model_path, 'gpu', precision='fp16', force_engine_update=True)
    out = {'first': a.info['cache'], 'second': hit.info['cache'],
           'after_corruption': rebuilt.info['cache'],
           'after_corruption_reason': rebuilt.info['cache_reason'],
           'forced': forced.info['cache'], 'forced_reason': forced.info['cache_reason']}
    feed = rebuilt.random_inputs(seed=3)
    diff = max(float(np.max(np.abs(rebuilt.run(feed).outputs[k] - v)))
               for k, v in forced.run(feed).outputs.items())
    out['rebuilt_vs_forced_max_abs'] = diff
    for ex in (a, hit, rebuilt, forced):
        ex.close()
    if out['second'] != 'hit' or out['after_corruption'] != 'built' or out['forced'] != 'built':
        raise AssertionError('cache behaviour wrong: %s' % out)
    if not out['after_corruption_reason'].startswith('corrupt'):
        raise AssertionError('corruption not detected: %s' % out)
    return out


def check_v2(cache_dir, model_path):
    from hetero_infer.backends import create_backend
    with create_backend('tensorrt', cache_dir=cache_dir, api='auto') as be_auto:
        ex = be_auto.load(model_path, 'gpu', precision='fp32')
        if not hasattr(ex.context, 'execute_async_v2'):
            return {'skipped': 'TensorRT %s has no execute_async_v2 (v3 only)' % be_auto.version}
        feed = ex.random_inputs(seed=1)
        want = ex.run(feed).outputs
    with create_backend('tensorrt', cache_dir=cache_dir, api='v2') as be:
        ex = be.load(model_path, 'gpu', precision='fp32')
        got = ex.run(feed).outputs
    diff = max(float(np.max(np.abs(got[k] - want[k]))) for k in want)
    if diff > 1e-5:
        raise AssertionError('v2 and v3 outputs differ by %g' % diff)
    return {'execute_api': ex.info['execute_api'], 'max_abs_vs_v3': diff}


def check_dla(backend, model_path):
    from hetero_infer.errors import BackendError
    n = backend.num_dla_cores
    if n > 0:
        ex = backend.load(model_path, 'dla0', precision='fp16')
        return {'num_dla_cores': n, 'built': True,
                'gpu_fallback_layers': ex.info.get('gpu_fallback_layers')}
    try:
        backend.load(model_path, 'dla0', precision='fp16')
    except BackendError as exc:
        msg = str(exc)
        if 'DLA' not in msg or 'dla0' not in msg:
            raise AssertionError('unclear DLA error: %s' % msg) from None
        return {'num_dla_cores': 0, 'error_message': msg}
    raise AssertionError('dla0 load succeeded on a machine with 0 DLA cores')


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description='TensorRT backend device check')
    ap.add_argument('--out', default=os.path.join(os.environ.get('OUT', 'out'),
                                                  'device_check.json'))
    ap.add_argument('--iterations', type=int, default=200)
    args = ap.parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    report = {'check': 'tensorrt backend', 'started_unix_s': time.time(), 'steps': {}}
    env = _step(report, 'environment', environment)
    report['environment'] = env.get('value')
    if not (env.get('value') or {}).get('tensorrt') or not (env.get('value') or {}).get('pycuda'):
        report['summary'] = 'tensorrt or pycuda not importable: nothing else to check'
    else:
        from hetero_infer.backends import create_backend
        from hetero_infer.commands.build_engines import resolve_model_path
        cache_dir = tempfile.mkdtemp(prefix='hetero_infer_engines_')
        be_step = _step(report, 'create_backend',
                        lambda: create_backend('tensorrt', cache_dir=cache_dir))
        be = be_step.get('value')
        if be is not None:
            be_step['value'] = {'processors': list(be.processor_ids), 'trt': be.version,
                                'device': be.device_name}
            for name in MODELS:
                path = resolve_model_path(name)
                for prec in ('fp32', 'fp16'):
                    _step(report, 'gpu_%s_%s' % (name, prec),
                          lambda p=path, q=prec: check_model(be, p, q, args.iterations))
            _step(report, 'engine_cache', lambda: check_cache(be, resolve_model_path('tiny_cnn')))
            _step(report, 'execute_async_v2',
                  lambda: check_v2(cache_dir, resolve_model_path('tiny_cnn')))
            _step(report, 'dla_request', lambda: check_dla(be, resolve_model_path('tiny_cnn')))
            be.close()
        report['summary'] = '%d/%d steps ok' % (
            sum(1 for s in report['steps'].values() if s['ok']), len(report['steps']))
    report['finished_unix_s'] = time.time()
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=1, default=str)
        f.write('\n')
    print('%-34s %-5s %s' % ('step', 'ok', 'figures'))
    for name, s in report['steps'].items():
        v = s.get('value') if s['ok'] else s.get('error')
        if isinstance(v, dict) and 'api_wall' in v:
            v = 'p50 wall %.3f ms, raw %.3f ms, max_rel_err %.2e, cache %s' % (
                v['api_wall']['p50_ms'], v['raw_execute']['p50_ms'],
                max(e['max_rel_to_range'] for e in v['errors'].values()), v['cache'])
        print('%-34s %-5s %s' % (name, 'yes' if s['ok'] else 'NO', str(v)[:160]))
    print(report['summary'])
    print('wrote %s' % args.out)
    if len(report['steps']) == 1:
        return 2  # nothing could be checked: not a pass
    return 0 if all(s['ok'] for s in report['steps'].values()) else 1


if __name__ == '__main__':
    sys.exit(main())
