"""Layer tables: what every simulator, profiler and planner knows about a DNN.

A model is a sequence of layers in execution order. Each layer records what a profiler could read
off the graph: its kind, shapes, MACs, bytes moved (FP16, 2 bytes an element) and whether a Xavier
DLA can run it under the rules in FACTS.md. Zoo models are committed as JSON under
``hetero_infer/data/zoo/`` (format ``hetero_infer.zoo/1``) and loaded through :func:`load_model`.
The types live in :mod:`hetero_infer.models.layers` (imported here under their usual names).
"""

import os
from typing import Dict, List

from hetero_infer.errors import ModelError
from hetero_infer.models.layers import (  # noqa: F401  (the types' usual home for callers)
    BYTES_PER_ELEMENT,
    DOMAINS,
    LAYER_KINDS,
    MAX_COUNT,
    MAX_LAYERS,
    MAX_TABLE_BYTES,
    ZOO_FORMAT,
    Layer,
    ModelSpec,
)

ZOO_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'data', 'zoo')

_CACHE: Dict[str, ModelSpec] = {}


def list_models() -> List[str]:
    """Names of the committed zoo models."""
    if not os.path.isdir(ZOO_DIR):
        return []
    return sorted(f[:-5] for f in os.listdir(ZOO_DIR) if f.endswith('.json'))


def load_model(name_or_path: str) -> ModelSpec:
    """Load a zoo model by name, or a layer table / ONNX file by path.

    :raises ModelError: unknown name (the message lists the known ones) or a bad file.
    """
    if name_or_path in _CACHE:
        return _CACHE[name_or_path]
    if name_or_path.endswith('.onnx'):
        from hetero_infer.models.onnx_import import model_from_onnx
        spec = model_from_onnx(name_or_path)
    elif name_or_path.endswith('.json') or os.sep in name_or_path:
        spec = ModelSpec.load(name_or_path)
    else:
        path = os.path.join(ZOO_DIR, name_or_path + '.json')
        if not os.path.exists(path):
            raise ModelError('unknown model %r (zoo models: %s; or give a path to a .json layer '
                             'table or an .onnx file)' % (name_or_path, ', '.join(list_models())))
        spec = ModelSpec.load(path)
    _CACHE[name_or_path] = spec
    return spec

