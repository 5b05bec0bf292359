"""The hetero_infer scheduler node: camera / audio messages in, one inference each, results out.

Per application (``apps.<name>.*`` parameters, see ``config/serve.yaml``) it subscribes to the
input topic (images with the sensor-data QoS; messages taken on the node's intake thread, see
:mod:`hetero_infer.ros.intake`, or in executor callbacks with ``intake: executor``), turns each
message into a request (conversion and preprocessing in :mod:`hetero_infer.ros.conversions`),
and hands it to the serving engine, which routes it with the priority router under the current
policy to the worker of one processor.
Each request gets exactly one message on the application's result topic (``results/<name>``,
remappable): a result, or a drop with its reason (schema in :mod:`hetero_infer.ros.results`).

Planning runs in a background thread: at start-up, when ``goal`` or the goal weights change, and
when the observed request rates drift from the planned ones (``drift_threshold``). The engine
swaps the policy atomically; requests already queued keep their processor.

``~/status`` (std_msgs/String, JSON ``hetero_infer.status/1``) and ``/diagnostics`` are published
every ``status_period_s``.

Processor faults (detection, fail-over, recovery: :mod:`hetero_infer.ros.engine`): when a processor
becomes unhealthy the node logs an error, re-plans without it, and reports it in ``~/status``
(``processors.<id>.health``) and ``/diagnostics`` (one entry per processor, ERROR while it is
unhealthy, with the reason); when it recovers, it re-plans with it again. The ``faults``
parameter injects faults into the emulated backend (tests, demos).
"""

import collections
import json
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import rclpy
import rclpy.exceptions
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Float32MultiArray, Int16MultiArray, String

try:
    from rclpy.event_handler import PublisherEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks

from hetero_infer.backends.base import TensorSpec
from hetero_infer.core.model import load_model
from hetero_infer.core.platform import Platform
from hetero_infer.core.policy import Policy
from hetero_infer.errors import BackendError, ConfigError, HeteroInferError
from hetero_infer.ros import conversions, params, results
from hetero_infer.ros.engine import Outcome, ServingEngine

STATUS_SCHEMA = 'hetero_infer.status/1'
SWITCH_INTERVAL_S = 0.0001

#: Google Speech Commands v2 (35 words), the label set of the keyword-spotting models.
SPEECH_COMMANDS = (
    'backward', 'bed', 'bird', 'cat', 'dog', 'down', 'eight', 'five', 'follow', 'forward',
    'four', 'go', 'happy', 'house', 'learn', 'left', 'marvin', 'nine', 'no', 'off', 'on', 'one',
    'right', 'seven', 'sheila', 'six', 'stop', 'three', 'tree', 'two', 'up', 'visual', 'wow',
    'yes', 'zero')

#: Observed rates are compared with planned ones only over windows with at least this many
#: requests, so that a few messages' jitter does not trigger a re-plan.
MIN_DRIFT_REQUESTS = 20


def _optional_msg(module: str, name: str):
    try:
        mod = __import__(module, fromlist=[name])
        return getattr(mod, name)
    except (ImportError, AttributeError):
        return None


class _App:
    """Everything the node keeps per application (immutable after start-up but ``slo_ms``)."""

    def __init__(self, index: int, cfg: params.AppConfig, model, input_spec: TensorSpec,
                 labels: Optional[Sequence[str]], slo_ms: float) -> None:
        self.index = index
        self.cfg = cfg
        self.model = model
        self.input_spec = input_spec
        self.labels = labels
        self.slo_ms = slo_ms
        self.is_audio = cfg.input_type.startswith('audio')
        self.publisher = None


class _Stats:
    """Counters of one status period and since start, per application and processor."""

    def __init__(self, n_apps: int) -> None:
        self.lock = threading.Lock()
        self.n_apps = n_apps
        self.total_received = [0] * n_apps
        self.total_results = [0] * n_apps
        self.total_met = [0] * n_apps
        self.total_dropped = [collections.Counter() for _ in range(n_apps)]
        self.bad_inputs = collections.Counter()
        self.per_proc_results = collections.Counter()   # (app, proc) -> results
        self.per_proc_latency = collections.defaultdict(list)  # (app, proc) -> total ms
        self.reset_window()
        self.drift_received = [0] * n_apps
        self.drift_since = time.perf_counter()

    def reset_window(self) -> None:
        self.win_received = [0] * self.n_apps
        self.win_results = [0] * self.n_apps
        self.win_met = [0] * self.n_apps
        self.win_dropped = [0] * self.n_apps
        self.win_latency = [[] for _ in range(self.n_apps)]


class _PlanResult:
    def __init__(self, policy: Policy, answer: Dict[str, Any]) -> None:
        self.policy = policy
        self.goal = answer['goal']
        self.predictor = answer['predictor']
        self.score = answer['score']
        self.search_time_s = answer['search_time_s']


class SchedulerNode(Node):
    """The scheduler node (see the module docstring).

    :param node_name: node name (``scheduler`` by default).
    :param namespace: node namespace.
    :param overrides: parameter name -> value, used instead of the built-in defaults (what
        ``hetero-infer serve --config`` passes); ``--params-file`` values still win.
    :param backend: an already-created :class:`hetero_infer.backends.Backend` to use instead of
        the ``backend`` parameter's (tests, benchmarks).
    :param plan_in_process: run the policy search in this process (default: a spawned worker
        process, so that planning never holds this process's GIL).
    :raises ConfigError: a bad parameter, unknown model or processor (node and parameter named).
    """

    def __init__(self, *, node_name: str = 'scheduler', namespace: Optional[str] = None,
                 overrides: Optional[Dict[str, Any]] = None, backend=None,
                 context=None, plan_in_process: bool = False) -> None:
        kwargs = {} if context is None else {'context': context}
        super().__init__(node_name, namespace=namespace or '', **kwargs)
        self.config = params.declare_all(self, overrides=overrides)
        cfg = self.config
        self._name = self.get_fully_qualified_name()
        try:
            self.platform = Platform.load(cfg.platform, power_mode=cfg.power_mode or None)
        except HeteroInferError as exc:
            raise ConfigError('node %s: parameter platform=%r: %s'
                              % (self._name, cfg.platform, exc)) from None
        self._own_backend = backend is None
        self.backend = backend if backend is not None else self._create_backend()
        self.apps: List[_App] = []
        executors: List[Dict[str, Any]] = []
        expected: List[Dict[str, float]] = []
        for i, a in enumerate(cfg.apps):
            app, execs, iso = self._load_app(i, a)
            self.apps.append(app)
            executors.append(execs)
            expected.append(iso)
        self._iso = expected
        # A request crosses three threads (DDS, the intake, the processor's worker: the
        # inference runs on the worker's own thread through Executor.run_here where the
        # backend allows it), and every C call that lets the GIL go (OpenCV, DDS) has to win it
        # back. With CPython's default 5 ms switch interval each of those waits can last that
        # long behind a busy thread. 0.1 ms measured best (bench/bench_ros_node.py): at 2400
        # requests/s 0.5 ms let the workers' queues run away, and at 30 Hz x 3 it gave p99
        # 1.6 ms from source stamp to publish against 1.0 ms.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self._warm_up(executors)
        self._stats = _Stats(len(self.apps))
        self._planned_rates = [a.cfg.rate_hz for a in self.apps]
        self._plan_lock = threading.Lock()
        self._plan_wanted = threading.Event()
        self._plan_reason = 'start-up'
        self._planning = False
        self._last_plan: Dict[str, Any] = {}
        self._plans_by_down: Dict[frozenset, Policy] = {}  # unhealthy processors -> last plan
        self._closing = False
        self._result_msg = self._result_type()
        policy = self._initial_policy(executors)
        self.engine = ServingEngine(
            app_names=[a.cfg.name for a in self.apps], executors=executors,
            expected_ms=expected, slo_ms=[a.slo_ms for a in self.apps], policy=policy,
            on_outcome=self._on_outcome, queue_limit=cfg.queue_limit,
            admission_control=cfg.admission_control, log=self.get_logger().error,
            log_info=self.get_logger().info, health=cfg.health_settings(),
            on_health=self._on_health)
        self._last_busy = self.engine.utilisation()
        self._last_status_s = time.perf_counter()
        # Every publisher's default QoS-event handler is one more entity the executor walks on
        # every wake-up (per message); the input subscriptions keep theirs, which warn about
        # incompatible QoS, the usual reason for a node that receives nothing.
        quiet = PublisherEventCallbacks(use_default_callbacks=False)
        for app in self.apps:
            app.publisher = self.create_publisher(self._result_msg, app.cfg.result_topic, 50,
                                                  event_callbacks=quiet)
        self.status_pub = self.create_publisher(String, '~/status', 10, event_callbacks=quiet)
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10,
                                              event_callbacks=quiet)
        self._intake = None
        self._subs = []
        self._qos_warned = set()
        self._qos_warned_later: Dict[Any, int] = {}
        self._inject_faults()
        self._start_inputs()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._status_timer = self.create_timer(cfg.status_period_s, self._publish_status)
        self._drift_timer = self.create_timer(cfg.replan_period_s, self._check_drift)
        from hetero_infer.ros.planning import Planner
        self._planner_proc = Planner(in_process=plan_in_process)
        self._planner = threading.Thread(target=self._plan_loop, name='hetero-infer-planner',
                                         daemon=True)
        self._planner.start()
        self.request_replan('start-up')
        self.get_logger().info(
            'serving %s on %s (%s backend), goal %s, policy %r'
            % (', '.join('%s:%s' % (a.cfg.name, a.model.name) for a in self.apps),
               self.platform.name, cfg.backend, cfg.goal, policy))

    # -- set-up ---------------------------------------------------------------------------------
    def _create_backend(self):
        cfg = self.config
        if cfg.backend == 'null':
            from hetero_infer.ros.null_backend import NullBackend
            return NullBackend(self.platform.processor_ids)
        from hetero_infer.backends import backend_class
        try:
            cls = backend_class(cfg.backend)
            if cfg.backend == 'emulated':
                return cls(platform=self.platform, seed=cfg.seed)
            return cls()
        except HeteroInferError as exc:
            raise ConfigError('node %s: parameter backend=%r: %s'
                              % (self._name, cfg.backend, exc)) from None

    def _inject_faults(self) -> None:
        """Arm the ``faults`` parameter's faults now that serving starts (after the warm-up,
        which they must not break)."""
        faults = self.config.faults
        if not faults:
            return
        from hetero_infer.core.faults import check_processors, parse_faults
        inject = getattr(self.backend, 'inject_faults', None)
        if inject is None:
            raise ConfigError('node %s: parameter faults=%s: fault injection needs the emulated '
                              'backend, not %s' % (self._name, list(faults), self.config.backend))
        parsed = parse_faults(faults)
        check_processors(parsed, self.platform.processor_ids,
                         'node %s: parameter faults' % self._name)
        inject(parsed)
        self.get_logger().warning('injecting faults: %s' % ', '.join(str(f) for f in parsed))

    def _on_health(self, proc: str, healthy: bool, reason: str) -> None:
        """A processor left (``healthy`` False) or rejoined routing: re-plan for the processors
        that work."""
        down = frozenset(self.engine.health.unhealthy())
        known = self._plans_by_down.get(down)
        if known is not None:
            # A plan made earlier for these very processors serves until the re-plan is done
            # (after a recovery the current plan gives the processor nothing).
            version = self.engine.set_policy(known)
            self.get_logger().info('policy %d: the last plan for processors %s'
                                   % (version, ', '.join(p for p in self.engine.workers
                                                         if p not in down)))
        if healthy:
            self.get_logger().info('processor %s is healthy again; re-planning with it' % proc)
            self.request_replan('processor %s recovered' % proc)
        else:
            self.get_logger().error('processor %s is unhealthy (%s); re-planning without it'
                                    % (proc, reason))
            self.request_replan('processor %s unhealthy' % proc)

    def _plan_mask(self, down) -> np.ndarray:
        """The processors each application may use, without the unhealthy ones (``down``; an
        application left with none keeps its own: routing still skips them, and the plan stays
        valid)."""
        mask = self._mask.copy()
        for j, p in enumerate(self.platform.processor_ids):
            if p in down:
                for i in range(mask.shape[0]):
                    if mask[i].sum() > 1 and mask[i, j]:
                        mask[i, j] = False
        return mask

    def _load_app(self, index: int, a: params.AppConfig):
        cfg = self.config
        try:
            model = load_model(a.model)
        except HeteroInferError as exc:
            raise ConfigError('node %s: parameter %s=%r: %s'
                              % (self._name, params.app_param(a.name, 'model'), a.model, exc)) \
                from None
        known = self.platform.processor_ids
        wanted = a.processors or known
        unknown = [p for p in wanted if p not in known]
        if unknown:
            raise ConfigError('node %s: parameter %s: unknown processors %s (platform %s has %s)'
                              % (self._name, params.app_param(a.name, 'processors'), unknown,
                                 self.platform.name, list(known)))
        runnable = [p for p in wanted if self.platform.can_run(model, p)]
        if not runnable:
            raise ConfigError('node %s: model %s of application %s can run on none of %s'
                              % (self._name, model.name, a.name, list(wanted)))
        iso = {p: self.platform.isolated_latency_ms(model, p) for p in runnable}
        slo_ms = a.slo_ms if a.slo_ms > 0 else cfg.slo_scale * min(iso.values())
        execs: Dict[str, Any] = {}
        path = a.model_file_path or a.model
        provided = set(self.backend.processor_ids)
        for p in runnable:
            if p not in provided:
                self.get_logger().warning('application %s: backend %s has no processor %s'
                                          % (a.name, cfg.backend, p))
                continue
            try:
                execs[p] = self._load_executor(path, p, model, a)
            except HeteroInferError as exc:
                self.get_logger().error('application %s: cannot load %s on %s: %s'
                                        % (a.name, path, p, exc))
        if not execs:
            raise ConfigError('node %s: application %s: no processor could load %s'
                              % (self._name, a.name, path))
        first = next(iter(execs.values()))
        input_spec = first.inputs[0] if getattr(first, 'inputs', None) else TensorSpec(
            model.input_name, model.input_shape)
        labels = self._labels(a, model)
        return _App(index, a, model, input_spec, labels, slo_ms), execs, iso

    def _load_executor(self, path: str, proc: str, model, a: params.AppConfig):
        options: Dict[str, Any] = {}
        from hetero_infer.ros.null_backend import NullBackend
        if isinstance(self.backend, NullBackend):
            last = model.layers[-1]
            options = {'input_spec': TensorSpec(model.input_name, model.input_shape),
                       'output_spec': TensorSpec('output', tuple(last.out_shape))}
        elif self.config.backend == 'emulated' and a.model_file_path:
            # Time from the twin for the zoo model, real outputs from the ONNX file.
            return self.backend.load(a.model, proc, onnx_path=a.model_file_path)
        elif self.config.backend == 'tensorrt':
            options = {'enable_fp16': self.config.enable_fp16,
                       'force_engine_update': self.config.force_engine_update}
            if a.engine_file_path:
                options['engine_file_path'] = a.engine_file_path
        try:
            return self.backend.load(path, proc, **options)
        except TypeError:
            return self.backend.load(path, proc)

    def _warm_up(self, executors: Sequence[Dict[str, Any]]) -> None:
        """One preprocessing and one inference per executor before serving.

        First calls pay for lazy imports (OpenCV), allocations and backend initialisation
        (TensorRT contexts, onnxruntime arenas); without this the first requests would miss
        their SLO.
        """
        import cv2
        # One frame's preprocessing takes ~0.15 ms on one core; OpenCV's thread pool costs
        # more in wake-ups than it saves at these sizes and competes with the workers.
        cv2.setNumThreads(1)
        for app, execs in zip(self.apps, executors):
            shape = app.input_spec.shape
            if app.is_audio:
                x = conversions.preprocess_audio(np.zeros(1600, np.float32),
                                                 app.cfg.sample_rate_hz, shape)
            else:
                x = conversions.preprocess_image(np.zeros((48, 64, 3), np.uint8), 'rgb', shape)
            for proc, ex in execs.items():
                try:
                    ex.run({app.input_spec.name: x})
                except Exception as exc:  # reported again, per request, if it persists
                    self.get_logger().warning('warm-up of %s on %s failed: %s'
                                              % (app.cfg.name, proc, exc))

    def _labels(self, a: params.AppConfig, model) -> Optional[List[str]]:
        if a.labels_file:
            try:
                with open(a.labels_file) as f:
                    return [line.strip() for line in f if line.strip()]
            except OSError as exc:
                raise ConfigError('node %s: parameter %s=%r: %s'
                                  % (self._name, params.app_param(a.name, 'labels_file'),
                                     a.labels_file, exc)) from None
        n_out = int(np.prod(model.layers[-1].out_shape))
        # the configured input type says what the model hears, not a guess from the file
        if a.input_type.startswith('audio') and n_out == len(SPEECH_COMMANDS):
            return list(SPEECH_COMMANDS)
        return None

    def _result_type(self):
        if self.config.result_type == 'json':
            return String
        cls = _optional_msg('vision_msgs.msg', 'Classification')
        if cls is None:
            raise ConfigError('node %s: parameter result_type=vision_msgs but vision_msgs is not '
                              'installed; use json' % self._name)
        return cls

    def _input_type(self, app: _App):
        """(message type, QoS) of an application's input topic."""
        kind = app.cfg.input_type
        if kind == 'image':
            return Image, qos_profile_sensor_data
        if kind == 'compressed_image':
            return CompressedImage, qos_profile_sensor_data
        if kind == 'audio_f32':
            return Float32MultiArray, QoSProfile(depth=10)
        if kind == 'audio_i16':
            return Int16MultiArray, QoSProfile(depth=10)
        msg_type = _optional_msg('audio_common_msgs.msg', 'AudioData')
        if msg_type is None:
            raise ConfigError('node %s: parameter %s=audio_data but audio_common_msgs is not '
                              'installed; publish std_msgs/Float32MultiArray (audio_f32)'
                              % (self._name, params.app_param(app.cfg.name, 'input_type')))
        return msg_type, QoSProfile(depth=10)

    def _start_inputs(self) -> None:
        """Subscribe to every application's input: on the intake thread (``intake: thread``,
        see :mod:`hetero_infer.ros.intake`) or as executor callbacks."""
        types = [self._input_type(app) for app in self.apps]
        self._inputs = [(app.cfg.input_topic, qos) for app, (_, qos) in zip(self.apps, types)]
        if self.config.intake == 'thread':
            from hetero_infer.ros import intake
            ok, why = intake.available()
            if ok:
                log = self.get_logger()
                self._intake = intake.Intake(
                    self, on_error=lambda text: log.error(text, throttle_duration_sec=1.0))
                for i, (app, (msg_type, qos)) in enumerate(zip(self.apps, types)):
                    topic = self._intake.add(msg_type, app.cfg.input_topic, qos,
                                             lambda msg, app=app: self._on_input(app, msg))
                    self._inputs[i] = (topic, qos)
                self._intake.start()
                return
            self.get_logger().warning('intake=thread is not available with this rclpy (%s); '
                                      'taking inputs in executor callbacks' % why)
        for i, (app, (msg_type, qos)) in enumerate(zip(self.apps, types)):
            sub = self.create_subscription(
                msg_type, app.cfg.input_topic, lambda msg, app=app: self._on_input(app, msg),
                qos)
            self._subs.append(sub)
            self._inputs[i] = (sub.topic_name, qos)

    def _check_input_qos(self) -> Dict[str, int]:
        """Publishers on the input topics whose QoS cannot reach this node's subscription
        (e.g. best effort into a reliable audio input): warned once each, counted per topic.

        Executor subscriptions get this warning from rclpy's default event handlers; the
        intake's subscriptions are not the executor's, so the node looks at the graph itself.
        """
        from rclpy.qos import QoSCompatibility, qos_check_compatible
        counts: Dict[str, int] = {}
        for topic, qos in self._inputs:
            try:
                infos = self.get_publishers_info_by_topic(topic)
            except Exception:  # graph not available while shutting down
                continue
            for info in infos:
                compat, reason = qos_check_compatible(info.qos_profile, qos)
                if compat != QoSCompatibility.ERROR:
                    continue
                counts[topic] = counts.get(topic, 0) + 1
                key = (topic, bytes(info.endpoint_gid))
                if key in self._qos_warned or self._intake is None:
                    continue
                # A publisher's node name reaches the graph after its endpoint: wait a few
                # periods for it (a plain DDS writer never gets one).
                seen = self._qos_warned_later[key] = self._qos_warned_later.get(key, 0) + 1
                named = info.node_name != '_NODE_NAME_UNKNOWN_'
                if not named and seen < 5:
                    continue
                self._qos_warned.add(key)
                who = ('node %s%s' % (info.node_namespace.rstrip('/') + '/', info.node_name)
                       if named else 'a non-ROS DDS writer')
                self.get_logger().warning(
                    'input %s: publisher of %s has incompatible QoS, its messages never reach '
                    'this node: %s' % (topic, who, reason.strip().rstrip(';')))
        return counts

    def _initial_policy(self, executors: Sequence[Dict[str, Any]]) -> Policy:
        """Shares proportional to each processor's isolated throughput, until the planner is done.

        Serving can start at once with a reasonable split; the planned policy replaces it.
        """
        procs = list(self.platform.processor_ids)
        alloc = np.zeros((len(self.apps), len(procs)))
        mask = np.zeros_like(alloc, dtype=bool)
        for i, execs in enumerate(executors):
            for j, p in enumerate(procs):
                if p in execs:
                    mask[i, j] = True
                    alloc[i, j] = 1.0 / max(self._iso[i][p], 1e-6)
            alloc[i] /= alloc[i].sum()
        self._mask = mask
        return Policy([a.cfg.name for a in self.apps], procs, alloc, mask=mask)

    # -- inputs ---------------------------------------------------------------------------------
    def _on_input(self, app: _App, msg) -> None:
        """On the intake thread (or an executor callback): validate the message here (bad inputs
        are answered at once); resize and normalise on the processor's worker (see
        :class:`~hetero_infer.ros.engine.Request`)."""
        received = time.perf_counter()
        header = getattr(msg, 'header', None)
        stamp = (header.stamp.sec, header.stamp.nanosec) if header is not None else (0, 0)
        frame_id = header.frame_id if header is not None else ''
        req = self.engine.new_request(app.index, None, received_s=received, stamp=stamp,
                                      frame_id=frame_id)
        with self._stats.lock:
            self._stats.total_received[app.index] += 1
            self._stats.win_received[app.index] += 1
            self._stats.drift_received[app.index] += 1
        try:
            req.prepare = self._decoder(app, msg)
        except conversions.InputError as exc:
            with self._stats.lock:
                self._stats.bad_inputs[exc.reason] += 1
            self.get_logger().warning('application %s: bad input dropped: %s'
                                      % (app.cfg.name, exc), throttle_duration_sec=1.0)
            self.engine.reject(req, 'bad_input', '%s: %s' % (exc.reason, exc))
            return
        self.engine.submit(req)

    def _decoder(self, app: _App, msg):
        """Check ``msg`` now; return the function that makes the model inputs from it."""
        name, shape = app.input_spec.name, app.input_spec.shape
        kind = app.cfg.input_type
        if kind == 'image':
            img, order = conversions.image_to_array(msg)  # a view: ``msg`` stays referenced
            return lambda: {name: conversions.preprocess_image(img, order, shape)}
        if kind == 'compressed_image':
            # Decoding is the expensive part and the only full check of the data.
            img, order = conversions.compressed_to_array(msg)
            return lambda: {name: conversions.preprocess_image(img, order, shape)}
        samples = conversions.audio_to_array(msg, kind=kind)
        rate = app.cfg.sample_rate_hz
        return lambda: {name: conversions.preprocess_audio(samples, rate, shape)}

    # -- outcomes -------------------------------------------------------------------------------
    def _on_outcome(self, o: Outcome) -> None:
        req = o.request
        app = self.apps[req.app_index]
        total_ms = (o.finished_s - req.received_s) * 1e3
        slo_ms = app.slo_ms
        met = o.ok and total_ms <= slo_ms
        st = self._stats
        with st.lock:
            if o.ok:
                st.total_results[app.index] += 1
                st.win_results[app.index] += 1
                st.win_latency[app.index].append(total_ms)
                st.per_proc_results[(app.index, o.proc)] += 1
                lat = st.per_proc_latency[(app.index, o.proc)]
                if len(lat) < 100000:
                    lat.append(total_ms)
                if met:
                    st.total_met[app.index] += 1
                    st.win_met[app.index] += 1
            else:
                st.total_dropped[app.index][o.drop_reason] += 1
                st.win_dropped[app.index] += 1
                if o.drop_reason == 'bad_input' and o.proc is not None:
                    # found while preprocessing on the worker (the callback counts its own)
                    st.bad_inputs[o.detail.split(':', 1)[0]] += 1
        if self._closing:
            return
        try:
            self._publish_outcome(app, o, total_ms)
        except Exception as exc:  # context shut down under us: nothing left to publish to
            if not self._closing:
                self.get_logger().error('cannot publish result of %s: %s' % (app.cfg.name, exc),
                                        throttle_duration_sec=5.0)

    def _publish_outcome(self, app: _App, o: Outcome, total_ms: float) -> None:
        req = o.request
        top_k = transcript = None
        if o.ok and o.outputs:
            out = next(iter(o.outputs.values()))
            if app.is_audio and app.labels is None:
                transcript = results.ctc_greedy_decode(out)
            else:
                top_k = conversions.top_k(out, app.cfg.top_k, app.labels)
        if self._result_msg is String:
            doc = results.result_document(
                stamp=req.stamp, frame_id=req.frame_id, application=app.cfg.name,
                model=app.model.name, processor=o.proc, request_id=req.request_id,
                policy_version=req.policy_version, queue_ms=o.queue_ms,
                execute_ms=o.execute_ms, total_ms=total_ms, slo_ms=app.slo_ms,
                outcome='result' if o.ok else 'dropped', drop_reason=o.drop_reason,
                detail=o.detail, top_k=top_k, transcript=transcript)
            app.publisher.publish(String(data=results.encode(doc)))
        elif o.ok and top_k is not None:
            msg = self._result_msg()
            msg.header.stamp.sec, msg.header.stamp.nanosec = req.stamp
            msg.header.frame_id = req.frame_id
            hyp = _optional_msg('vision_msgs.msg', 'ObjectHypothesis')
            for label, score in top_k:
                msg.results.append(hyp(class_id=label, score=score))
            app.publisher.publish(msg)

    # -- parameters -----------------------------------------------------------------------------
    def _on_set_parameters(self, parameters) -> SetParametersResult:
        changes = {}
        for p in parameters:
            reason = params.validate(p.name, p.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            changes[p.name] = p.value
        try:
            new = params.apply_changes(self.config, changes, node_name=self._name)
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        old = self.config
        self.config = new
        self._apply_live(old, new, changes)
        return SetParametersResult(successful=True)

    def _apply_live(self, old: params.ServeConfig, new: params.ServeConfig, changes) -> None:
        old_slos = [app.slo_ms for app in self.apps]
        for app, a in zip(self.apps, new.apps):
            app.cfg = a
            iso = self._iso[app.index]
            app.slo_ms = a.slo_ms if a.slo_ms > 0 else new.slo_scale * min(iso.values())
        slos_changed = [app.slo_ms for app in self.apps] != old_slos
        if slos_changed:
            self.engine.set_slos([app.slo_ms for app in self.apps])
        if (old.queue_limit, old.admission_control) != (new.queue_limit, new.admission_control):
            self.engine.set_limits(queue_limit=new.queue_limit,
                                   admission_control=new.admission_control)
        if old.health_settings() != new.health_settings():
            self.engine.set_health(new.health_settings())
        if old.replan_period_s != new.replan_period_s:
            self._drift_timer.cancel()
            self.destroy_timer(self._drift_timer)
            self._drift_timer = self.create_timer(new.replan_period_s, self._check_drift)
        if any(a.rate_hz != b.rate_hz for a, b in zip(new.apps, old.apps)):
            self._planned_rates = [a.rate_hz for a in new.apps]
        rates_changed = any(a.rate_hz != b.rate_hz for a, b in zip(new.apps, old.apps))
        if new.goal_spec() != old.goal_spec() or slos_changed or rates_changed:
            self.request_replan('parameters ' + ', '.join(sorted(changes)))

    # -- planning -------------------------------------------------------------------------------
    def request_replan(self, reason: str) -> None:
        """Ask the planner thread for a new policy (the latest request wins)."""
        with self._plan_lock:
            self._plan_reason = reason
        self._plan_wanted.set()

    def _plan_loop(self) -> None:
        while not self._closing:
            self._plan_wanted.wait(0.5)
            if self._closing:
                return
            if not self._plan_wanted.is_set():
                continue
            self._plan_wanted.clear()
            with self._plan_lock:
                reason = self._plan_reason
            cfg = self.config
            rates = list(self._planned_rates)
            down = frozenset(self.engine.health.unhealthy())
            self._planning = True
            try:
                result = self._plan(cfg, rates, down)
            except Exception as exc:  # keep serving with the current policy
                self.get_logger().error('planning (%s) failed, keeping policy %d: %s'
                                        % (reason, self.engine.policy_version, exc))
                continue
            finally:
                self._planning = False
            if self._closing:
                return
            self._plans_by_down[down] = result.policy
            if down != frozenset(self.engine.health.unhealthy()):
                # health changed while planning: that change asked for the next plan
                self.get_logger().info('plan (%s) kept aside: made for other healthy processors '
                                       'than now' % reason)
                continue
            version = self.engine.set_policy(result.policy)
            self._last_plan = {'reason': reason, 'goal': result.goal,
                               'predictor': result.predictor, 'score': result.score,
                               'search_time_s': round(result.search_time_s, 3),
                               'rates_hz': [round(r, 3) for r in rates]}
            self.get_logger().info('policy %d (%s, goal %s, %s predictor, %.2f s): %r'
                                   % (version, reason, result.goal, result.predictor,
                                      result.search_time_s, result.policy))

    def _plan(self, cfg: params.ServeConfig, rates: Sequence[float], down=frozenset()):
        from hetero_infer.ros import planning
        req = planning.plan_request(
            platform=cfg.platform, power_mode=cfg.power_mode,
            apps=planning.app_rows(self.apps, self.platform.processor_ids,
                                   self._plan_mask(down).tolist(), rates),
            goal=cfg.goal_spec(), n_samples=cfg.plan_samples, duration_s=cfg.plan_duration_s,
            seed=cfg.seed, max_queue=cfg.queue_limit)
        answer = self._planner_proc.plan(req)
        if answer['predictor_note'] and not getattr(self, '_warned_predictor', False):
            self._warned_predictor = True
            self.get_logger().warning('planning with isolated latencies: %s'
                                      % answer['predictor_note'])
        return _PlanResult(planning.policy_from_answer(answer), answer)

    def _check_drift(self) -> None:
        """Re-plan when the observed rates drift from the planned ones.

        drift = max over applications of |observed - planned| / max(planned, 1 Hz), over the
        last ``replan_period_s``; windows with fewer than MIN_DRIFT_REQUESTS requests are
        ignored.
        """
        st = self._stats
        now = time.perf_counter()
        with st.lock:
            counts = list(st.drift_received)
            st.drift_received = [0] * st.n_apps
            elapsed = now - st.drift_since
            st.drift_since = now
        if elapsed <= 0 or sum(counts) < MIN_DRIFT_REQUESTS:
            return
        observed = [c / elapsed for c in counts]
        drift = max(abs(o - p) / max(p, 1.0) for o, p in zip(observed, self._planned_rates))
        self._last_drift = drift
        if drift > self.config.drift_threshold and not self._planning:
            self.get_logger().info('request mix drifted by %.2f (> %.2f): observed %s Hz, planned '
                                   '%s Hz; re-planning'
                                   % (drift, self.config.drift_threshold,
                                      [round(o, 1) for o in observed],
                                      [round(p, 1) for p in self._planned_rates]))
            self._planned_rates = observed
            self.request_replan('drift %.2f' % drift)

    # -- status ---------------------------------------------------------------------------------
    def status(self) -> Dict[str, Any]:
        """The ``hetero_infer.status/1`` document of the period since the last call."""
        st = self._stats
        now = time.perf_counter()
        period = max(now - self._last_status_s, 1e-6)
        self._last_status_s = now
        busy = self.engine.utilisation()
        util = {p: round(min(1.0, (busy[p] - self._last_busy.get(p, 0.0)) / period), 4)
                for p in busy}
        self._last_busy = busy
        apps = {}
        with st.lock:
            for app in self.apps:
                i = app.index
                done = st.win_results[i] + st.win_dropped[i]
                lat = sorted(st.win_latency[i])
                apps[app.cfg.name] = {
                    'rate_hz': round(st.win_received[i] / period, 3),
                    'results': st.total_results[i],
                    'dropped': dict(st.total_dropped[i]),
                    'slo_ms': round(app.slo_ms, 3),
                    'slo_attainment': (round(st.win_met[i] / done, 4) if done else None),
                    'slo_attainment_total': (
                        round(st.total_met[i] / (st.total_results[i]
                                                 + sum(st.total_dropped[i].values())), 4)
                        if st.total_results[i] + sum(st.total_dropped[i].values()) else None),
                    'p50_ms': round(lat[len(lat) // 2], 3) if lat else None,
                    'p99_ms': round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 3)
                    if lat else None,
                }
            bad = dict(st.bad_inputs)
            st.reset_window()
        drops = dict(self.engine.drops)
        health = self.engine.health.snapshot()
        return {
            'schema': STATUS_SCHEMA,
            'uptime_s': round(self.engine.elapsed_s(), 3),
            'policy_version': self.engine.policy_version,
            'policy': self.engine.policy.to_dict()['allocation'],
            'goal': self.config.goal,
            'planning': self._planning,
            'last_plan': dict(self._last_plan),
            'applications': apps,
            'processors': {p: {'utilisation': util[p], 'queue': w.depth,
                               'results': self.engine.proc_results[p], 'health': health[p]}
                           for p, w in self.engine.workers.items()},
            'unhealthy': {p: h['reason'] for p, h in health.items() if not h['healthy']},
            'redispatched': self.engine.redispatched,
            'late_discarded': self.engine.late_discarded,
            'drops': drops,
            'bad_inputs': bad,
            'intake': 'thread' if self._intake is not None else 'executor',
            'incompatible_publishers': self._check_input_qos(),
            'counts': dict(self.engine.counts),
        }

    def _publish_status(self) -> None:
        doc = self.status()
        self._latest_status = doc
        self.status_pub.publish(String(data=json.dumps(doc, separators=(',', ':'))))
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        target = self.config.slo_target
        for name, a in doc['applications'].items():
            s = DiagnosticStatus(name='hetero_infer: %s' % name, hardware_id=self.platform.name)
            att = a['slo_attainment']
            if att is None:
                s.level, s.message = DiagnosticStatus.OK, 'no requests this period'
            elif att < target:
                s.level = DiagnosticStatus.WARN
                s.message = 'SLO attainment %.3f below target %.3f' % (att, target)
            else:
                s.level, s.message = DiagnosticStatus.OK, 'SLO attainment %.3f' % att
            s.values = [KeyValue(key=k, value=str(a[k])) for k in
                        ('rate_hz', 'slo_ms', 'slo_attainment', 'p50_ms', 'p99_ms', 'results')]
            arr.status.append(s)
        for p, v in doc['processors'].items():
            h = v['health']
            s = DiagnosticStatus(name='hetero_infer: processor %s' % p,
                                 hardware_id=self.platform.name)
            if h['healthy']:
                s.level, s.message = DiagnosticStatus.OK, 'healthy'
            else:
                s.level = DiagnosticStatus.ERROR
                s.message = 'processor %s unhealthy: %s' % (p, h['reason'])
            s.values = [KeyValue(key=k, value=str(h.get(k))) for k in
                        ('healthy', 'since_s', 'failures', 'reason', 'probes_ok') if k in h]
            s.values.append(KeyValue(key='results', value=str(v['results'])))
            arr.status.append(s)
        down = doc['unhealthy']
        s = DiagnosticStatus(name='hetero_infer: scheduler', hardware_id=self.platform.name,
                             level=DiagnosticStatus.ERROR if down else DiagnosticStatus.OK,
                             message='policy %d, goal %s%s' % (
                                 doc['policy_version'], doc['goal'],
                                 ''.join('; %s unhealthy: %s' % kv for kv in down.items())))
        s.values = ([KeyValue(key='utilisation.' + p, value=str(v['utilisation']))
                     for p, v in doc['processors'].items()]
                    + [KeyValue(key='drops.' + k, value=str(v)) for k, v in doc['drops'].items()])
        arr.status.append(s)
        self.diag_pub.publish(arr)

    def summary(self) -> Dict[str, Any]:
        """Totals since start per application and per (application, processor)."""
        st = self._stats
        out = {'applications': {}, 'processors': {}}
        with st.lock:
            for app in self.apps:
                i = app.index
                dropped = sum(st.total_dropped[i].values())
                done = st.total_results[i] + dropped
                out['applications'][app.cfg.name] = {
                    'model': app.model.name, 'received': st.total_received[i],
                    'results': st.total_results[i], 'dropped': dict(st.total_dropped[i]),
                    'slo_ms': app.slo_ms,
                    'slo_attainment': st.total_met[i] / done if done else float('nan')}
                for p in self.engine.workers:
                    lat = sorted(st.per_proc_latency.get((i, p), []))
                    out['processors']['%s@%s' % (app.cfg.name, p)] = {
                        'results': st.per_proc_results.get((i, p), 0),
                        'p50_ms': lat[len(lat) // 2] if lat else float('nan'),
                        'p99_ms': lat[min(len(lat) - 1, int(0.99 * len(lat)))]
                        if lat else float('nan')}
        busy = self.engine.utilisation()
        out['busy_s'] = busy
        out['health'] = self.engine.health.snapshot()
        out['health_events'] = [
            {'t_s': round(e.t_s, 3), 'processor': e.proc, 'healthy': e.healthy,
             'reason': e.reason, 'results_before': e.results_before}
            for e in self.engine.health_events()]
        out['proc_results'] = dict(self.engine.proc_results)
        out['redispatched'] = self.engine.redispatched
        out['late_discarded'] = self.engine.late_discarded
        return out

    # -- shutdown -------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop planning, drop what is queued (reason shutdown), release the backend.

        The shutdown drops are still published while the ROS context is valid (a close
        without Ctrl-C), so every request still gets its one message.
        """
        self._closing = not self.context.ok()
        if self._intake is not None:
            self._intake.close()
        self.engine.close()
        self._closing = True
        self._plan_wanted.set()
        self._planner.join(timeout=5.0)
        self._planner_proc.close()
        if self._own_backend:
            try:
                self.backend.close()
            except BackendError as exc:
                self.get_logger().error('closing backend: %s' % exc)

    def destroy_node(self) -> None:
        if not self._closing:
            self.close()
        super().destroy_node()


def make_executor(num_threads: int = 1):
    """The executor the nodes spin in: single-threaded unless more threads are asked for.

    (rclpy's experimental ``EventsExecutor`` would cost less per message, but in Jazzy's rclpy
    7.1 its timers never fired when spun from a thread and ``shutdown`` hung, so it is not used.)
    """
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    if num_threads > 1:
        return MultiThreadedExecutor(num_threads=num_threads)
    return SingleThreadedExecutor()


def spin_nodes(nodes: Sequence[Node], *, duration_s: Optional[float] = None,
               num_threads: int = 1, on_tick=None, tick_s: float = 0.1) -> None:
    """Spin ``nodes`` in one executor until Ctrl-C, shutdown or ``duration_s``.

    One thread is the default: the executor serves parameters, timers and, with
    ``intake: executor``, the input callbacks, which are short (validation and routing;
    preprocessing and inference run on the processors' workers). ``on_tick()`` is called from
    the calling thread every ``tick_s``.
    """
    executor = make_executor(num_threads)
    for n in nodes:
        executor.add_node(n)
    spinner = threading.Thread(target=_spin, args=(executor,), name='hetero-infer-spin',
                               daemon=True)
    spinner.start()
    end = None if duration_s is None else time.monotonic() + duration_s
    try:
        while rclpy.ok() and spinner.is_alive() and (end is None or time.monotonic() < end):
            time.sleep(tick_s if end is None else max(0.0, min(tick_s, end - time.monotonic())))
            if on_tick is not None:
                on_tick()
    finally:
        executor.shutdown(timeout_sec=1.0)
        spinner.join(timeout=2.0)
        for n in nodes:
            try:
                executor.remove_node(n)
            except Exception:  # already gone with the executor
                pass


def _spin(executor) -> None:
    try:
        executor.spin()
    except Exception:  # ExternalShutdownException and friends: the main thread exits too
        pass


def main(args=None) -> int:
    """``ros2 run hetero_infer scheduler_node [--ros-args --params-file FILE]``.

    The package's ``config/serve.yaml`` gives the defaults, so the node also starts without a
    parameter file; values from ``--params-file`` / ``-p`` override it.
    """
    from hetero_infer.ros.config_file import default_config_path, load_params_file
    rclpy.init(args=args)
    node = None
    try:
        try:
            defaults = load_params_file(default_config_path(), 'scheduler')
        except HeteroInferError:
            defaults = {}
        node = SchedulerNode(overrides=defaults)
        spin_nodes([node])
    except KeyboardInterrupt:
        pass
    except HeteroInferError as exc:
        print('scheduler_node: error: %s' % ' '.join(str(exc).split()), file=sys.stderr)
        return 1
    except (rclpy.exceptions.InvalidParameterException,
            rclpy.exceptions.InvalidParameterTypeException,
            rclpy.exceptions.InvalidParameterValueException) as exc:
        print('scheduler_node: error: parameter: %s' % ' '.join(str(exc).split()),
              file=sys.stderr)
        return 1
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
