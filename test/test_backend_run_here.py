"""Executor.run_here: inference on the calling thread where the backend allows it, else run()."""

import os
import threading
import time

import numpy as np
import pytest

from hetero_infer.backends import create_backend
from hetero_infer.backends.base import Backend, Executor, InferenceResult, LoadRequest, TensorSpec
from hetero_infer.errors import BackendError
from hetero_infer.planning.policy import Policy
from hetero_infer.serving.engine import ServingEngine


class _ThreadExecutor(Executor):
    """Returns the thread it ran on; checks that its processor never runs two at once."""

    active = 0

    def _execute(self, inputs):
        _ThreadExecutor.active += 1
        try:
            assert _ThreadExecutor.active == 1, 'two inferences at once on ' + self.processor
            time.sleep(0.001)
            return {'t': np.array([threading.get_ident()])}, {}
        finally:
            _ThreadExecutor.active -= 1


class _FakeBackend(Backend):
    """Backend whose worker set-up / teardown record the thread they ran on."""

    name = 'fake'

    def __init__(self, attachable):
        super().__init__()
        self.attachable = attachable
        self.setups, self.teardowns = [], []

    def _provided(self):
        return ('p0',)

    def _worker_setup(self, processor):
        self.setups.append(threading.get_ident())

    def _worker_teardown(self, processor):
        self.teardowns.append(threading.get_ident())

    def _load(self, request, worker):
        spec = TensorSpec('x', (1,))
        return _ThreadExecutor(processor=request.processor, model_path=request.model,
                               worker=worker,
                               inputs=[spec], outputs=[TensorSpec('t', (1,))])


def _thread_of(res):
    return int(res.outputs['t'][0])


def test_attachable_backend_runs_on_caller_and_detaches():
    be = _FakeBackend(attachable=True)
    ex = be.load('m', 'p0')
    feed = {'x': np.zeros(1, np.float32)}
    worker_thread = _thread_of(ex.run(feed))          # the worker's own thread
    assert worker_thread != threading.get_ident()
    out = []

    def feeder():
        out.extend(_thread_of(ex.run_here(feed)) for _ in range(3))
        ex.worker.detach()

    t = threading.Thread(target=feeder)
    t.start()
    t.join()
    assert out == [t.ident] * 3
    # set up once on the worker thread, once on the feeder (not per request); torn down there
    assert be.setups == [worker_thread, t.ident] and be.teardowns == [t.ident]
    be.close()
    assert be.teardowns == [t.ident, worker_thread]
    with pytest.raises(BackendError, match='closed'):
        ex.run_here(feed)


def test_not_attachable_falls_back_to_worker_thread():
    with _FakeBackend(attachable=False) as be:
        ex = be.load('m', 'p0')
        feed = {'x': np.zeros(1, np.float32)}
        res = ex.run_here(feed)
        assert _thread_of(res) != threading.get_ident()
        assert be.setups == [_thread_of(res)]


def test_run_here_and_worker_share_the_processor_lock():
    with _FakeBackend(attachable=True) as be:
        ex = be.load('m', 'p0')
        feed = {'x': np.zeros(1, np.float32)}
        futs = [ex.submit(feed) for _ in range(10)]
        here = [ex.run_here(feed) for _ in range(10)]  # asserts no overlap inside _execute
        assert all(f.result().outputs for f in futs) and len(here) == 10


def test_onnxruntime_run_here_pins_caller_and_matches_reference():
    pytest.importorskip('onnxruntime')
    from test_backend_onnxruntime import _numpy_reference, _tiny_cnn
    cores = sorted(os.sched_getaffinity(0))
    model, weights = _tiny_cnn(seed=5)
    x = np.random.default_rng(5).standard_normal((1, 3, 6, 6)).astype(np.float32)
    got = {}
    with create_backend('onnxruntime', core_sets=[[cores[-1]]]) as be:
        ex = be.load(model, 'cpu0')

        def feeder():
            got['y'] = ex.run_here({'x': x}).outputs['logits']
            got['affinity'] = sorted(os.sched_getaffinity(0))

        t = threading.Thread(target=feeder)
        t.start()
        t.join()
    np.testing.assert_allclose(got['y'], _numpy_reference(x, *weights), rtol=1e-4, atol=1e-4)
    assert got['affinity'] == [cores[-1]]
    assert sorted(os.sched_getaffinity(0)) == cores  # this thread untouched


def test_engine_runs_inference_on_its_processor_thread():
    with create_backend('null', platform='xavier') as be:
        ex = be.load(LoadRequest('resnet18', 'gpu'))
        assert be.processor_ids == ('gpu', 'dla0', 'dla1')
        # the null backend's tensors are the model's
        assert [(t.name, t.shape) for t in ex.inputs] == [('input', (1, 3, 224, 224))]
        assert [(t.name, t.shape) for t in ex.outputs] == [('output', (1, 1000))]
        seen = []
        orig = ex._execute

        def execute(inputs):
            seen.append(threading.current_thread().name)
            return orig(inputs)

        ex._execute = execute
        outcomes = []
        done = threading.Event()

        def record(o):
            outcomes.append(o)
            if len(outcomes) == 5:
                done.set()

        eng = ServingEngine(app_names=['a'], executors=[{'gpu': ex}],
                            expected_ms=[{'gpu': 1.0}], slo_ms=[100.0],
                            policy=Policy(['a'], ['gpu'], np.ones((1, 1))),
                            on_outcome=record, queue_limit=8, admission_control=False)
        for _ in range(5):
            eng.submit(eng.new_request(0, {'input': np.zeros((1, 3, 224, 224), np.float32)}))
        assert done.wait(10.0)
        eng.close()
        assert isinstance(ex.run_here({'input': np.zeros((1, 3, 224, 224))}), InferenceResult)
    assert all(o.ok and o.outputs['output'].shape == (1, 1000) for o in outcomes), \
        [(o.drop_reason, o.detail) for o in outcomes]
    assert seen[:5] == ['hetero-infer-gpu'] * 5   # the engine's queue thread, no second hop
