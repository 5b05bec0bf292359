"""Every setting of the serving core, specified in one place, and the frozen config it yields.

Each :class:`ParamSpec` gives a setting's default, description, range or choices and whether it
can change while serving. The scheduler node declares one ROS parameter per spec
(:mod:`hetero_infer.ros.params`: rqt_reconfigure and ``ros2 param describe`` show them); values
are validated here (:func:`validate`, :func:`build_config`, :func:`apply_changes`), with a reason
a person can act on. The service reads everything from :class:`ServeConfig` (frozen), so nothing
below the node sees a ``Parameter``.

Applications are parameters too, under ``apps.<name>.*``, with ``applications`` listing the
names (ROS parameters cannot hold a list of mappings). See ``config/serve.yaml``.
"""

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from hetero_infer.backends.registry import backend_names
from hetero_infer.errors import ConfigError
from hetero_infer.planning.metrics import OBJECTIVES

RESULT_TYPES = ('json', 'vision_msgs')
INTAKES = ('thread', 'executor')
GOAL_METRICS = tuple(OBJECTIVES)  # the weights of the weighted goal (goal_weights.*)


def goal_choices() -> Tuple[str, ...]:
    """What the ``goal`` parameter may be set to at any time: the goal registry's names (built-in
    goals and those installed packages register as ``hetero_infer.goals`` entry points) and
    ``weighted`` (the sum of ``goal_weights.*``). A ``module:function`` goal is accepted only at
    start-up (:func:`build_config`): a parameter any DDS participant can set must not import
    code."""
    from hetero_infer.planning.goals import known_goals
    return tuple(known_goals()) + ('weighted',)
INPUT_TYPES = ('image', 'compressed_image', 'audio_f32', 'audio_i16', 'audio_data',
               'audio_data_stamped')
#: Input QoS choices: by_type = sensor data for images, reliable for audio (the defaults).
INPUT_QOS = ('by_type', 'sensor_data', 'reliable', 'system_default', 'auto')
#: What float audio samples outside [-1, 1] get.
AUDIO_RANGE = ('refuse', 'clip')
INT32_MAX = 2 ** 31 - 1


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: name, default, description, range / choices, read-only."""

    name: str
    default: Any
    description: str
    low: Optional[float] = None
    high: Optional[float] = None
    choices: Tuple[str, ...] = ()
    read_only: bool = False
    #: when set, the choices as they are now (they change as goals or backends are registered
    #: or installed): read at validation time, never frozen at import
    choices_fn: Optional[Callable[[], Tuple[str, ...]]] = None

    def all_choices(self) -> Tuple[str, ...]:
        return self.choices_fn() if self.choices_fn is not None else self.choices

    def full_description(self) -> str:
        text = self.description
        choices = self.all_choices()
        if choices:
            text += ' Choices: ' + ' | '.join(choices) + '.'
        if self.read_only:
            text += ' Read-only: set it at start-up (parameter file or launch argument).'
        return text


NODE_PARAMS = (
    ParamSpec('platform', 'xavier',
              'Platform description (config/platforms/<name>.yaml or a YAML path) that gives '
              'the processors and the isolated latencies used for SLOs and planning. '
              'bringup_dir, when set, gives it instead.',
              read_only=True),
    ParamSpec('interference_model', '', 'Trained interference model file the planner uses '
              '(what hetero-infer train writes, trained on this platform); empty = the '
              'committed model of the platform, or bringup_dir\'s when that is set (no model: '
              'plans with isolated latencies, with a warning).', read_only=True),
    ParamSpec('bringup_dir', '', 'A finished hetero-infer bringup directory: the node then '
              'serves with its fitted platform (DIR/platform.yaml, instead of platform) and '
              'plans with its trained interference model (DIR/model/<platform>.json, unless '
              'interference_model is set). Empty = not used.', read_only=True),
    ParamSpec('power_mode', '', 'Power mode of the platform (e.g. MAXN, 30W, 15W); empty = the '
              'platform file\'s default.', read_only=True),
    ParamSpec('backend', 'emulated', 'Execution backend of every processor: emulated = the '
              'digital twin\'s timing, null = zero-time (measures the node itself).',
              choices_fn=backend_names, read_only=True),
    ParamSpec('enable_fp16', True, 'Build TensorRT engines in FP16 (tensorrt backend).',
              read_only=True),
    ParamSpec('force_engine_update', False, 'Rebuild cached TensorRT engines at start-up.',
              read_only=True),
    ParamSpec('result_type', 'json',
              'Result message type: json = std_msgs/String with schema hetero_infer.result/1; '
              'vision_msgs = vision_msgs/Classification (classifiers, when installed).',
              choices=RESULT_TYPES, read_only=True),
    ParamSpec('intake', 'thread', 'How input messages are taken: thread = a wait set on a thread '
              'of the node\'s own (no executor bookkeeping per message; see '
              'hetero_infer/ros/intake.py); executor = ordinary subscription callbacks.',
              choices=INTAKES, read_only=True),
    ParamSpec('goal', 'goodput', 'What the planner maximises; changing it re-plans in the '
              'background and swaps the policy atomically. weighted = sum of goal_weights.*.',
              choices_fn=goal_choices),
    ParamSpec('goal_weights.goodput', 1.0, 'Weight of goodput when goal is weighted.', 0.0, 10.0),
    ParamSpec('goal_weights.slo99_throughput', 0.0,
              'Weight of throughput at 99% SLO when goal is weighted.', 0.0, 10.0),
    ParamSpec('goal_weights.throughput', 0.0, 'Weight of throughput when goal is weighted.',
              0.0, 10.0),
    ParamSpec('goal_weights.fairness', 0.0, 'Weight of fairness (Jain) when goal is weighted.',
              0.0, 10.0),
    ParamSpec('slo_scale', 5.0, 'SLO of an application without apps.<name>.slo_ms: slo_scale x '
              'its isolated latency on the fastest processor it may use.', 1.0, 100.0),
    ParamSpec('slo_target', 0.99, 'Share of an application\'s requests that must meet its SLO; '
              '/diagnostics turns WARN below it.', 0.5, 1.0),
    ParamSpec('admission_control', True, 'Drop a request (reason rejected) when it starts so '
              'late that its SLO cannot be met any more, instead of running it.'),
    ParamSpec('queue_limit', 4, 'Most requests waiting per processor; a request routed to a full '
              'queue is dropped with reason queue_full.', 1, 1000),
    ParamSpec('replan_period_s', 10.0, 'How often the observed request mix is compared with the '
              'planned one.', 0.5, 3600.0),
    ParamSpec('drift_threshold', 0.25, 'Re-plan when the observed rates drift from the planned '
              'ones by more than this (relative, the largest over applications).', 0.01, 10.0),
    ParamSpec('plan_samples', 200, 'Random policies the planner scores per (re-)plan.', 1, 100000),
    ParamSpec('plan_duration_s', 5.0, 'Simulated seconds per policy scored by the planner.',
              0.1, 600.0),
    ParamSpec('failure_threshold', 3, 'A processor whose inferences fail this many times in a row '
              'is unhealthy: it leaves routing and what was queued on it is re-dispatched.',
              1, 100),
    ParamSpec('watchdog_factor', 10.0, 'An inference running longer than watchdog_factor x its '
              'expected (isolated) latency, and at least watchdog_min_ms, is hung: its processor '
              'is unhealthy at once and its worker thread is abandoned.', 2.0, 1000.0),
    ParamSpec('watchdog_min_ms', 100.0, 'Floor of the watchdog (keeps a fast model\'s watchdog '
              'above the host\'s scheduling jitter).', 1.0, 60000.0),
    ParamSpec('probe_period_s', 1.0, 'An unhealthy processor is probed with one real inference '
              'this often.', 0.05, 60.0),
    ParamSpec('recovery_successes', 3, 'Probes in a row that must succeed before an unhealthy '
              'processor rejoins routing (and a re-plan includes it).', 1, 100),
    ParamSpec('faults', [''], 'Injected faults, for tests and demos (emulated backend only): '
              'PROC:KIND@SECONDS[+DURATION], KIND error (every inference raises) or hang (an '
              'inference does not return until the fault ends); seconds count from when serving '
              'starts, no duration = for ever. E.g. [dla1:error@10+10].', read_only=True),
    ParamSpec('status_period_s', 1.0, 'Period of ~/status and /diagnostics.', 0.1, 60.0,
              read_only=True),
    ParamSpec('seed', 0, 'Seed of the planner.', 0, INT32_MAX, read_only=True),
    ParamSpec('applications', [''], 'Names of the applications; each has parameters '
              'apps.<name>.*.', read_only=True),
)

APP_PARAMS = (
    ParamSpec('input_topic', '', 'Input topic (relative names resolve in the node namespace).',
              read_only=True),
    ParamSpec('input_type', 'image', 'Input message type: image = sensor_msgs/Image, '
              'compressed_image = sensor_msgs/CompressedImage, audio_f32 = std_msgs/'
              'Float32MultiArray, audio_i16 = std_msgs/Int16MultiArray, audio_data = '
              'audio_common_msgs/AudioData (int16, when installed), audio_data_stamped = '
              'audio_common_msgs/AudioDataStamped (its header is copied to the result).',
              choices=INPUT_TYPES,
              read_only=True),
    ParamSpec('input_qos', 'by_type', 'QoS of the input subscription: by_type = sensor_data for '
              'images, reliable for audio; sensor_data = best effort, volatile; reliable = '
              'reliable, volatile; system_default = the RMW\'s reliability and durability; '
              'auto = the reliability and durability every publisher on the topic at start-up '
              'offers (as recorders do; by_type when there is none yet). History: keep last, '
              '2 s of rate_hz, at least 20 messages.', choices=INPUT_QOS, read_only=True),
    ParamSpec('result_topic', '', 'Result topic; empty = results/<application>.', read_only=True),
    ParamSpec('model', '', 'Zoo model name or layer-table / ONNX path.', read_only=True),
    ParamSpec('model_file_path', '', 'ONNX file the onnxruntime / tensorrt backends load; with '
              'the emulated backend, real outputs are computed from it while the timing stays '
              'the twin\'s for model. Empty = model only. A bare file name that is not in the '
              'working directory names one of the package\'s own files (data/onnx: '
              'tiny_ssd.onnx, tiny_cnn.onnx, ...).', read_only=True),
    ParamSpec('engine_file_path', '', 'Prebuilt TensorRT engine; empty = build and cache.',
              read_only=True),
    ParamSpec('processors', [''], 'Processors that may run this application; empty = every '
              'processor that can run the model.', read_only=True),
    ParamSpec('rate_hz', 10.0, 'Expected request rate, planned for until rates are observed.',
              0.0, 10000.0),
    ParamSpec('slo_ms', 0.0, 'Latency objective; 0 = slo_scale x isolated latency.', 0.0, 1e6),
    ParamSpec('weight', 1.0, 'How much a request served within the SLO counts '
              '(weighted_goodput); when weights differ, lower-weight requests are shed first '
              'under overload. Changing it re-plans.', 0.01, 100.0),
    ParamSpec('min_attainment', 0.0, 'Floor: share of requests that must meet the SLO; the '
              'planner meets every floor it can first. Changing it re-plans.', 0.0, 1.0),
    ParamSpec('top_k', 5, 'Labels and scores reported per result.', 1, 1000),
    ParamSpec('score_threshold', 0.3, 'Detectors: lowest score a detection is reported with.',
              0.0, 1.0),
    ParamSpec('nms_iou', 0.5, 'Detectors: boxes of one class overlapping more (IoU) than this '
              'are suppressed by NMS.', 0.0, 1.0),
    ParamSpec('max_detections', 100, 'Detectors: most detections reported per result (the best '
              'after NMS).', 1, 10000),
    ParamSpec('sample_rate_hz', 16000, 'Sample rate of the audio input the model expects; a '
              'multi-array chunk whose layout label states another rate (samples@<rate>Hz) is '
              'resampled when audio_resample is true, else dropped as bad_input (bad_rate); '
              'AudioData carries no rate and is taken at this one.', 1000, 384000,
              read_only=True),
    ParamSpec('audio_resample', False, 'Resample audio chunks whose stated sample rate differs '
              'from sample_rate_hz (else they are refused).', read_only=True),
    ParamSpec('audio_out_of_range', 'refuse', 'Float audio samples outside [-1, 1]: refuse the '
              'chunk (bad_input, out_of_range) or clip them; counted in the status either way.',
              choices=AUDIO_RANGE, read_only=True),
    ParamSpec('labels_file', '', 'Text file with one label per line; empty = class_<index>.',
              read_only=True),
)


@dataclass(frozen=True)
class AppConfig:
    name: str
    input_topic: str
    input_type: str
    result_topic: str
    model: str
    model_file_path: str
    engine_file_path: str
    processors: Tuple[str, ...]
    rate_hz: float
    slo_ms: float
    top_k: int
    sample_rate_hz: int
    labels_file: str
    score_threshold: float = 0.3
    nms_iou: float = 0.5
    max_detections: int = 100
    input_qos: str = 'by_type'
    audio_resample: bool = False
    audio_out_of_range: str = 'refuse'
    weight: float = 1.0
    min_attainment: float = 0.0


@dataclass(frozen=True)
class ServeConfig:
    #: the platform the node serves: the ``platform`` parameter, or ``bringup_dir``'s fitted one
    platform: str
    power_mode: str
    backend: str
    enable_fp16: bool
    force_engine_update: bool
    result_type: str
    intake: str
    goal: str
    goal_weights: Tuple[Tuple[str, float], ...]
    slo_scale: float
    slo_target: float
    admission_control: bool
    queue_limit: int
    replan_period_s: float
    drift_threshold: float
    plan_samples: int
    plan_duration_s: float
    status_period_s: float
    seed: int
    apps: Tuple[AppConfig, ...]
    failure_threshold: int = 3
    watchdog_factor: float = 10.0
    watchdog_min_ms: float = 100.0
    probe_period_s: float = 1.0
    recovery_successes: int = 3
    faults: Tuple[str, ...] = ()
    #: the interference model file the planner uses ('' = the platform's committed one):
    #: ``interference_model``, else ``bringup_dir``'s
    interference_model: str = ''
    bringup_dir: str = ''

    def health_settings(self):
        """The :class:`~hetero_infer.twin.faults.HealthSettings` these parameters give."""
        from hetero_infer.twin.faults import HealthSettings
        return HealthSettings(failure_threshold=self.failure_threshold,
                              watchdog_factor=self.watchdog_factor,
                              watchdog_min_ms=self.watchdog_min_ms,
                              probe_period_s=self.probe_period_s,
                              recovery_successes=self.recovery_successes)

    def goal_spec(self):
        """What :func:`hetero_infer.planning.goals.get_goal` takes for the current goal."""
        if self.goal != 'weighted':
            return self.goal
        weights = {k: w for k, w in self.goal_weights if w > 0.0}
        return {'weighted': weights}

    def app_names(self) -> List[str]:
        return [a.name for a in self.apps]


def bundled_file(path: str) -> str:
    """``path``, or the package's own ``data/onnx/<path>`` when ``path`` is a bare file name
    that the working directory does not have."""
    if not path or os.sep in path or os.path.exists(path):
        return path
    own = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data',
                       'onnx', path)
    return own if os.path.isfile(own) else path


#: What a bring-up directory holds that the node uses (``hetero-infer bringup``: the fit step
#: writes the platform, the train step the model directory).
BRINGUP_PLATFORM = 'platform.yaml'
BRINGUP_MODEL_DIR = 'model'


def bringup_model_file(model_dir: str) -> Optional[str]:
    """The one interference model file ``hetero-infer train`` wrote into ``model_dir``
    (``<platform>.json``; ``accuracy.json`` is its report), or None if there is not exactly one."""
    if not os.path.isdir(model_dir):
        return None
    found = sorted(f for f in os.listdir(model_dir)
                   if f.endswith('.json') and f != 'accuracy.json')
    return os.path.join(model_dir, found[0]) if len(found) == 1 else None


def bringup_result(path: str) -> Tuple[str, str]:
    """The fitted platform file and the interference model file of the bring-up directory
    ``path``.

    :raises ConfigError: ``path`` is no directory, or a step that makes one of them has not
        finished there (the message names the value and what is missing).
    """
    if not os.path.isdir(path):
        raise ConfigError('bringup_dir=%r is not a directory' % path)
    platform = os.path.join(path, BRINGUP_PLATFORM)
    resume = ('run the same hetero-infer bringup command again to finish it')
    if not os.path.isfile(platform):
        raise ConfigError('bringup_dir=%r has no %s: its fit step has not finished (%s)'
                          % (path, BRINGUP_PLATFORM, resume))
    model_dir = os.path.join(path, BRINGUP_MODEL_DIR)
    model = bringup_model_file(model_dir)
    if model is None:
        have = sorted(os.listdir(model_dir)) if os.path.isdir(model_dir) else None
        raise ConfigError('bringup_dir=%r has no trained interference model (%s/<platform>.json'
                          '; %s): its train step has not finished (%s)'
                          % (path, BRINGUP_MODEL_DIR,
                             'no %s/ directory' % BRINGUP_MODEL_DIR if have is None
                             else 'found %s' % (have or 'nothing'), resume))
    return platform, model


def app_param(app: str, key: str) -> str:
    return 'apps.%s.%s' % (app, key)


def _check_value(spec: ParamSpec, name: str, value: Any, live: bool = True) -> Optional[str]:
    """A reason the value is not acceptable, or None (``live``: a change while serving)."""
    d = spec.default
    if isinstance(d, bool):
        if not isinstance(value, bool):
            return '%s must be true or false, got %r' % (name, value)
        return None
    if isinstance(d, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return '%s must be a number, got %r' % (name, value)
        if isinstance(d, int) and not isinstance(value, int):
            return '%s must be an integer, got %r' % (name, value)
        if isinstance(value, float) and not math.isfinite(value):
            return '%s must be finite, got %r' % (name, value)
        if (spec.low is not None and value < spec.low
                or spec.high is not None and value > spec.high):
            return '%s = %r is outside [%g, %g]' % (name, value, spec.low, spec.high)
        return None
    if isinstance(d, str):
        if not isinstance(value, str):
            return '%s must be a string, got %r' % (name, value)
        choices = spec.all_choices()
        if name == 'goal' and ':' in value and value not in choices:
            return _check_code_goal(value, live)
        if choices and value not in choices:
            return '%s = %r is not one of: %s' % (name, value, ', '.join(choices))
        return None
    if isinstance(d, list):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            return '%s must be a list of strings, got %r' % (name, value)
    return None


def _check_code_goal(value: str, live: bool) -> Optional[str]:
    """A ``module:function`` goal: refused live, imported (and checked) at start-up."""
    if live:
        return ('goal = %r: a module:function goal is accepted only at start-up (parameter '
                'file, --set), never from a live parameter change, which any DDS participant '
                'can make and which must not import code; register it as a hetero_infer.goals '
                'entry point to choose it live (choices: %s)'
                % (value, ', '.join(goal_choices())))
    from hetero_infer.planning.goals import get_goal
    try:
        get_goal(value)
    except ConfigError as exc:
        return 'goal = %r: %s' % (value, exc)
    return None


def spec_for(name: str) -> Optional[ParamSpec]:
    for spec in NODE_PARAMS:
        if spec.name == name:
            return spec
    if name.startswith('apps.'):
        key = name.rsplit('.', 1)[-1]
        for spec in APP_PARAMS:
            if spec.name == key:
                return spec
    return None


def validate(name: str, value: Any, *, live: bool = True) -> Optional[str]:
    """Why ``value`` cannot be given to parameter ``name`` (None if it can); ``live``: as a
    change while serving (the default), else at start-up."""
    spec = spec_for(name)
    if spec is None:
        return None
    return _check_value(spec, name, value, live)


def list_entries(values: Sequence[str]) -> Tuple[str, ...]:
    """The entries of a string-list parameter (``applications``, ``faults``, ``processors``),
    stripped, blank ones left out: a ROS string array cannot be declared empty, so ``['']``
    stands for no entry."""
    return tuple(v for v in (str(x).strip() for x in values) if v)


def build_config(values: Mapping[str, Any], *, node_name: str = 'scheduler') -> ServeConfig:
    """The frozen config of a complete name -> value mapping.

    :raises ConfigError: a bad value or an inconsistent application, naming the node, the
        parameter and the value.
    """
    def get(name):
        spec = spec_for(name)
        value = values.get(name, spec.default if spec else None)
        reason = validate(name, value, live=False)
        if reason:
            raise ConfigError('node %s: %s' % (node_name, reason))
        return value

    names = list_entries(get('applications'))
    if not names:
        raise ConfigError('node %s: parameter applications is empty: configure at least one '
                          'application (see config/serve.yaml)' % node_name)
    if len(set(names)) != len(names):
        raise ConfigError('node %s: applications has duplicates: %s' % (node_name, list(names)))
    apps = []
    for app in names:
        if not app.replace('_', '').isalnum():
            raise ConfigError('node %s: application name %r must be alphanumeric/underscore'
                              % (node_name, app))
        a = {spec.name: get(app_param(app, spec.name)) for spec in APP_PARAMS}
        if not a['input_topic']:
            raise ConfigError('node %s: %s is empty' % (node_name, app_param(app, 'input_topic')))
        if not a['model']:
            raise ConfigError('node %s: %s is empty' % (node_name, app_param(app, 'model')))
        apps.append(AppConfig(
            name=app, input_topic=a['input_topic'], input_type=a['input_type'],
            result_topic=a['result_topic'] or 'results/' + app, model=a['model'],
            model_file_path=bundled_file(a['model_file_path']),
            engine_file_path=a['engine_file_path'],
            processors=list_entries(a['processors']), rate_hz=float(a['rate_hz']),
            slo_ms=float(a['slo_ms']), top_k=int(a['top_k']),
            sample_rate_hz=int(a['sample_rate_hz']), labels_file=a['labels_file'],
            score_threshold=float(a['score_threshold']), nms_iou=float(a['nms_iou']),
            max_detections=int(a['max_detections']),
            input_qos=a['input_qos'], audio_resample=bool(a['audio_resample']),
            audio_out_of_range=a['audio_out_of_range'], weight=float(a['weight']),
            min_attainment=float(a['min_attainment'])))
    weights = tuple((m, float(get('goal_weights.' + m))) for m in GOAL_METRICS)
    goal = get('goal')
    if goal == 'weighted' and not any(w > 0 for _, w in weights):
        raise ConfigError('node %s: goal is weighted but every goal_weights.* is 0' % node_name)
    platform, model = get('platform'), get('interference_model')
    bringup = get('bringup_dir')
    if bringup:
        try:
            platform, bringup_model = bringup_result(bringup)
        except ConfigError as exc:
            raise ConfigError('node %s: parameter %s' % (node_name, exc)) from None
        model = model or bringup_model
    if model and not os.path.isfile(model):
        raise ConfigError('node %s: parameter interference_model=%r: no such file'
                          % (node_name, model))
    faults = list_entries(get('faults'))
    from hetero_infer.twin.faults import parse_faults
    try:
        parse_faults(faults)
    except ConfigError as exc:
        raise ConfigError('node %s: parameter faults: %s' % (node_name, exc)) from None
    return ServeConfig(
        failure_threshold=int(get('failure_threshold')),
        watchdog_factor=float(get('watchdog_factor')),
        watchdog_min_ms=float(get('watchdog_min_ms')),
        probe_period_s=float(get('probe_period_s')),
        recovery_successes=int(get('recovery_successes')), faults=faults,
        platform=platform, interference_model=model, bringup_dir=bringup,
        power_mode=get('power_mode'), backend=get('backend'),
        enable_fp16=get('enable_fp16'), force_engine_update=get('force_engine_update'),
        result_type=get('result_type'), intake=get('intake'), goal=goal, goal_weights=weights,
        slo_scale=float(get('slo_scale')), slo_target=float(get('slo_target')),
        admission_control=get('admission_control'),
        queue_limit=int(get('queue_limit')), replan_period_s=float(get('replan_period_s')),
        drift_threshold=float(get('drift_threshold')), plan_samples=int(get('plan_samples')),
        plan_duration_s=float(get('plan_duration_s')),
        status_period_s=float(get('status_period_s')), seed=int(get('seed')), apps=tuple(apps))


def apply_changes(config: ServeConfig, changes: Mapping[str, Any], *,
                  node_name: str = 'scheduler') -> ServeConfig:
    """The config with live-tunable ``changes`` applied (validated as a whole).

    :raises ConfigError: a bad value or a combination that cannot work.
    """
    node_fields = {}
    app_fields: Dict[str, Dict[str, Any]] = {}
    weights = dict(config.goal_weights)
    for name, value in changes.items():
        reason = validate(name, value)
        if reason:
            raise ConfigError(reason)
        spec = spec_for(name)
        if spec is not None and spec.read_only:
            # as ROS refuses them: the platform, backend, models... are what serving was built
            # with (a new bringup_dir would need new executors, SLOs and a new platform)
            raise ConfigError('%s is read-only: set it at start-up (parameter file or launch '
                              'argument); the node keeps %s' % (name, name))
        if name.startswith('goal_weights.'):
            weights[name.split('.', 1)[1]] = float(value)
        elif name.startswith('apps.'):
            _, app, key = name.split('.', 2)
            app_fields.setdefault(app, {})[key] = value
        elif name in {f.name for f in dataclasses.fields(ServeConfig)}:
            node_fields[name] = value
    apps = []
    known = set(config.app_names())
    for app in app_fields:
        if app not in known:
            raise ConfigError('unknown application %r (applications: %s)'
                              % (app, ', '.join(sorted(known))))
    for a in config.apps:
        upd = app_fields.get(a.name)
        apps.append(dataclasses.replace(a, **upd) if upd else a)
    new = dataclasses.replace(config, apps=tuple(apps),
                              goal_weights=tuple((m, weights[m]) for m in GOAL_METRICS),
                              **node_fields)
    if new.goal == 'weighted' and not any(w > 0 for _, w in new.goal_weights):
        raise ConfigError('goal is weighted but every goal_weights.* would be 0: set one > 0 '
                          'first')
    return new
