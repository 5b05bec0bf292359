"""Execution backends: one executor interface (``base``), onnxruntime on CPU cores, TensorRT on
the GPU and DLA cores (imported only when used), and emulated processors that take the digital
twin's time. See :mod:`hetero_infer.backends.base` for the API and
:mod:`hetero_infer.backends.registry` for the registry."""

from hetero_infer.backends.base import (
    Backend,
    BackgroundLoop,
    Executor,
    InferenceResult,
    LoadRequest,
    ProcessorWorker,
    TensorSpec,
)
from hetero_infer.backends.registry import (
    BACKENDS,
    ENTRY_POINT_GROUP,
    backend_class,
    backend_names,
    create_backend,
    register_backend,
    unregister_backend,
)

__all__ = ['BACKENDS', 'ENTRY_POINT_GROUP', 'Backend', 'BackgroundLoop', 'Executor',
           'InferenceResult', 'LoadRequest', 'ProcessorWorker', 'TensorSpec', 'backend_class',
           'backend_names', 'create_backend', 'register_backend', 'unregister_backend']
