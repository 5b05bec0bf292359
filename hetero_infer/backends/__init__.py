"""Execution backends: one executor interface (``base``), onnxruntime on CPU cores, TensorRT on
the GPU and DLA cores (imported only when used), and emulated processors that take the digital
twin's time. See :mod:`hetero_infer.backends.base` for the API."""

from hetero_infer.backends.base import (
    Backend,
    BackgroundLoop,
    Executor,
    InferenceResult,
    LoadRequest,
    ProcessorWorker,
    TensorSpec,
    backend_class,
    backend_names,
    create_backend,
    register_backend,
)

__all__ = ['Backend', 'BackgroundLoop', 'Executor', 'InferenceResult', 'LoadRequest',
           'ProcessorWorker', 'TensorSpec', 'backend_class', 'backend_names', 'create_backend',
           'register_backend']
