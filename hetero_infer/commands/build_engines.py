"""``hetero-infer build-engines``: build (or find cached) TensorRT engines for GPU / DLA cores.

For every model x processor: look the engine up in the cache (model hash, processor, precision,
TensorRT version), rebuild when missing, stale or corrupt (or always with
``--force-engine-update``), and report which layers fell back from the DLA to the GPU. Prints a
table and, with ``--json``, writes the same rows as JSON.

Models are ONNX paths or names of the project's ONNX models (``hetero_infer/data/onnx``).
"""

import json
import os
import sys

from hetero_infer.commands import argtypes

ONNX_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'data', 'onnx')


def add_arguments(parser):
    parser.add_argument('models', nargs='+', metavar='MODEL',
                        help='ONNX file or project ONNX model name (see hetero_infer/data/onnx)')
    parser.add_argument('--processors', default=None, metavar='LIST',
                        help='comma-separated processors (gpu,dla0,dla1); default: all present')
    parser.add_argument('--dla-core', type=argtypes.int_in(-1, 15), default=None, metavar='N',
                        help='Isaac ROS style: -1 = GPU, N = DLA core N (overrides --processors)')
    parser.add_argument('--precision', default='fp16', choices=('fp16', 'int8', 'fp32'),
                        help='engine precision (default fp16; DLA needs fp16 or int8)')
    parser.add_argument('--calibration-cache', default=None, metavar='FILE',
                        help='INT8 calibration cache (required for --precision int8)')
    parser.add_argument('--no-gpu-fallback', action='store_true',
                        help='fail instead of running DLA-unsupported layers on the GPU')
    parser.add_argument('--force-engine-update', action='store_true',
                        help='rebuild even when a valid cached engine exists')
    parser.add_argument('--cache-dir', default=None,
                        help='engine cache (default $HETERO_INFER_ENGINE_CACHE or '
                             '~/.cache/hetero_infer/engines)')
    parser.add_argument('--workspace-mb', type=argtypes.int_in(0, 1 << 20), default=0,
                        help='builder workspace limit in MB (0: TensorRT default)')
    parser.add_argument('--json', type=argtypes.output_file, default=None, metavar='FILE.json',
                        help='write rows as JSON')


def resolve_model_path(name_or_path: str) -> str:
    """An ONNX path as given, or the file of a project ONNX model by name.

    :raises ModelError: neither a file nor a known name (the known names are listed).
    """
    from hetero_infer.errors import ModelError
    if os.path.isfile(name_or_path):
        return name_or_path
    index = os.path.join(ONNX_DIR, 'models.json')
    known = {}
    if os.path.isfile(index):
        with open(index) as f:
            known = {k: v for k, v in json.load(f).items() if isinstance(v, dict)}
    if name_or_path in known:
        return os.path.join(ONNX_DIR, known[name_or_path].get('file', name_or_path + '.onnx'))
    raise ModelError('model %r: no such file and not a project ONNX model (known: %s)'
                     % (name_or_path, ', '.join(sorted(known)) or 'none'))


def run(args) -> int:
    from tqdm import tqdm

    from hetero_infer.backends import create_backend
    from hetero_infer.backends.tensorrt_backend import processor_for_dla_core
    from hetero_infer.errors import HeteroInferError

    paths = [resolve_model_path(m) for m in args.models]
    backend = create_backend('tensorrt', cache_dir=args.cache_dir,
                             workspace_mb=args.workspace_mb)
    rows, failed = [], 0
    try:
        if args.dla_core is not None:
            procs = [processor_for_dla_core(args.dla_core)]
        elif args.processors:
            procs = [p.strip() for p in args.processors.split(',') if p.strip()]
        else:
            procs = list(backend.processor_ids)
        jobs = [(path, proc) for path in paths for proc in procs]
        for path, proc in tqdm(jobs, desc='engines', unit='engine', file=sys.stderr):
            row = {'model': path, 'processor': proc, 'precision': args.precision}
            try:
                ex = backend.load(path, proc, precision=args.precision,
                                  force_engine_update=args.force_engine_update,
                                  gpu_fallback=not args.no_gpu_fallback,
                                  calibration_cache=args.calibration_cache)
                info = ex.info
                row.update(status=info['cache'], reason=info.get('cache_reason', ''),
                           build_s=info.get('build_s', 0.0),
                           gpu_fallback_layers=info.get('gpu_fallback_layers', []),
                           engine_file_path=info['engine_file_path'],
                           trt_version=backend.version)
                ex.close()
            except HeteroInferError as exc:
                failed += 1
                row.update(status='error', reason=str(exc))
            rows.append(row)
    finally:
        backend.close()
    print('%-28s %-6s %-6s %-8s %8s %9s  %s' % ('model', 'proc', 'prec', 'status', 'build_s',
                                                 'fallback', 'engine / reason'))
    for r in rows:
        print('%-28s %-6s %-6s %-8s %8.2f %9s  %s'
              % (os.path.basename(r['model'])[:28], r['processor'], r['precision'], r['status'],
                 r.get('build_s', 0.0), len(r.get('gpu_fallback_layers', [])),
                 r.get('engine_file_path') or r.get('reason')))
        if r.get('gpu_fallback_layers'):
            print('    on GPU: %s' % ', '.join(r['gpu_fallback_layers']))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)
            f.write('\n')
    return 1 if failed else 0
