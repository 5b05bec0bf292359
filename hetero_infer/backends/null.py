"""A zero-time backend: every inference returns zeros at once.

Registered as ``null`` (node parameter ``backend: 'null'``). It measures what the node itself
costs (conversion, routing, queueing, publishing) with nothing else in the way: the benchmark
finds the highest request rate the node sustains with it, and the ROS tests run without a model
runtime.
"""

from typing import Any, Dict, Sequence, Tuple

import numpy as np

from hetero_infer.backends.base import Backend, Executor, LoadRequest, ProcessorWorker, TensorSpec
from hetero_infer.errors import ConfigError


class NullExecutor(Executor):
    #: no thread-bound state: ``run`` / ``run_here`` execute in the caller's thread
    inline = True

    def _execute(self, inputs: Dict[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], Dict]:
        return {t.name: np.zeros(t.shape, dtype=t.dtype) for t in self.outputs}, \
            {'execute_ms': 0.0}


class NullBackend(Backend):
    """Processors ``processor_ids`` that run any model in zero time.

    ``load(LoadRequest(model, processor))``: the executor's input and output shapes are the
    model's (a zoo name or a layer-table / ONNX path); the other fields do not apply.
    """

    name = 'null'

    def __init__(self, processor_ids: Sequence[str] = ('gpu', 'dla0', 'dla1')) -> None:
        super().__init__()
        self._procs = tuple(processor_ids)

    @classmethod
    def create(cls, *, platform: Any = None, seed: int = 0, **options: Any) -> 'NullBackend':
        """The registry's factory: the processors of ``platform`` (a Platform or a name)."""
        if platform is not None and 'processor_ids' not in options:
            if isinstance(platform, str):
                from hetero_infer.platform.spec import Platform
                platform = Platform.load(platform)
            options['processor_ids'] = platform.processor_ids
        return cls(**options)

    def _provided(self) -> Tuple[str, ...]:
        return self._procs

    def _load(self, request: LoadRequest, worker: ProcessorWorker) -> Executor:
        if request.options:
            raise ConfigError('null backend: unknown load options %s' % sorted(request.options))
        from hetero_infer.models.zoo import load_model
        model = load_model(request.model)
        inp = TensorSpec(model.input_name or 'input', tuple(model.input_shape))
        out = TensorSpec('output', tuple(model.layers[-1].out_shape))
        return NullExecutor(processor=request.processor, model_path=model.name, worker=worker,
                            inputs=[inp], outputs=[out], info={'backend': 'null'})
