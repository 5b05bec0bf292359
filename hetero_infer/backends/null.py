"""A zero-time backend: every inference returns zeros at once.

Registered as ``null`` (node parameter ``backend: 'null'``). It measures what the node itself
costs (conversion, routing, queueing, publishing) with nothing else in the way: the benchmark
finds the highest request rate the node sustains with it, and the ROS tests run without a model
runtime.
"""

from typing import Any, Dict, Sequence, Tuple

import numpy as np

from hetero_infer.backends.base import Backend, Executor, ProcessorWorker, TensorSpec


class NullExecutor(Executor):
    #: no thread-bound state: ``run`` / ``run_here`` execute in the caller's thread
    inline = True

    def _execute(self, inputs: Dict[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], Dict]:
        return {t.name: np.zeros(t.shape, dtype=t.dtype) for t in self.outputs}, \
            {'execute_ms': 0.0}


class NullBackend(Backend):
    """Processors ``processor_ids`` that run any model in zero time.

    ``load(model_path, proc, input_spec=TensorSpec, output_spec=TensorSpec)``.
    """

    name = 'null'

    def __init__(self, processor_ids: Sequence[str] = ('gpu', 'dla0', 'dla1')) -> None:
        super().__init__()
        self._procs = tuple(processor_ids)

    def _provided(self) -> Tuple[str, ...]:
        return self._procs

    def _load(self, model_path: str, processor: str, worker: ProcessorWorker,
              **options: Any) -> Executor:
        inp = options.get('input_spec') or TensorSpec('input', (1, 3, 224, 224))
        out = options.get('output_spec') or TensorSpec('output', (1, 1000))
        return NullExecutor(processor=processor, model_path=model_path, worker=worker,
                            inputs=[inp], outputs=[out], info={'backend': 'null'})
