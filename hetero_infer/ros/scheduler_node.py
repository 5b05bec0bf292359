"""The hetero_infer scheduler node: camera / audio messages in, one inference each, results out.

The node is the ROS wiring around a :class:`hetero_infer.serving.service.Service` (which holds
the applications, the engine, the planner and the statistics): per application (``apps.<name>.*``
parameters, see ``config/serve.yaml``) it subscribes to the input topic (QoS ``input_qos``,
sensor data for images by default, :mod:`hetero_infer.ros.inputs`; messages taken on the node's
intake thread, :mod:`hetero_infer.ros.intake`, or in executor callbacks with ``intake:
executor``), decodes each message (:mod:`hetero_infer.ros.conversions`) and submits it to the
service. Each request gets exactly one message on the application's result topic
(``results/<name>``, remappable): a result, or a drop with its reason (schema in
:mod:`hetero_infer.serving.results`); with ``result_type: vision_msgs`` classifier results are
typed there and everything else goes as JSON to ``results/<name>_json``.

Parameters are declared in :mod:`hetero_infer.ros.params`; a live change is validated there and
applied by the service (SLOs at once, goal / SLOs / rates by re-planning in the background).
``~/status`` (std_msgs/String, JSON ``hetero_infer.status/1``) and ``/diagnostics`` (one entry per
application and processor, ERROR while a processor is unhealthy) are published every
``status_period_s``. The ``faults`` parameter injects faults into the emulated backend.
"""

import json
import sys
import time
from typing import Any, Dict, List, Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from std_msgs.msg import String

try:
    from rclpy.event_handler import PublisherEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks

from hetero_infer.errors import ConfigError
from hetero_infer.ros import conversions, inputs, params
from hetero_infer.ros.lifecycle import run_main
from hetero_infer.serving.service import Service


def typed_results(app) -> bool:
    """Whether ``app``'s results have a typed message (vision_msgs/Classification): every
    classifier's do; a speech recogniser's transcript does not."""
    return not (app.is_audio and app.labels is None)


def json_sibling(result_topic: str) -> str:
    """Where drops and untyped results go with ``result_type: vision_msgs``:
    ``results/cam`` -> ``results/cam_json``."""
    return result_topic + '_json'


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
        cfg = params.declare_all(self, overrides=overrides)
        self._name = self.get_fully_qualified_name()
        self._closing = False
        self._latest_status: Optional[Dict[str, Any]] = None
        self._result_msg = self._result_type(cfg)
        self.service = Service(cfg, publish=self._publish, backend=backend,
                               log=self.get_logger(), name='node %s' % self._name,
                               plan_in_process=plan_in_process)
        self.platform = self.service.platform
        # Every publisher's default QoS-event handler is one more entity the executor walks on
        # every wake-up (per message); the input subscriptions keep theirs, which warn about
        # incompatible QoS, the usual reason for a node that receives nothing.
        quiet = PublisherEventCallbacks(use_default_callbacks=False)
        # json: every document on results/<app>. vision_msgs: classifiers' results typed on
        # results/<app> (Classification), detectors' too (Detection2DArray); their drops, and
        # every document of a speech recogniser (no typed message fits a transcript), on the
        # sibling results/<app>_json (String), so each request still gets exactly one message.
        # (not ``_publishers``: that is rclpy's own list of the node's publishers)
        self._result_msgs = [self._app_result_type(app) for app in self.service.apps]
        self._typed_pubs: List[Any] = []
        self._json_pubs: List[Any] = []
        for msg_type, app in zip(self._result_msgs, self.service.apps):
            typed = self._result_msg is not String and typed_results(app)
            self._typed_pubs.append(
                self.create_publisher(msg_type, app.cfg.result_topic, 50,
                                      event_callbacks=quiet) if typed else None)
            json_topic = (app.cfg.result_topic if self._result_msg is String
                          else json_sibling(app.cfg.result_topic))
            self._json_pubs.append(self.create_publisher(String, json_topic, 50,
                                                         event_callbacks=quiet))
        self.status_pub = self.create_publisher(String, '~/status', 10, event_callbacks=quiet)
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10,
                                              event_callbacks=quiet)
        self._qos_notes: List[str] = []  # how each input's QoS was chosen, for the log
        self._clipped = [0] * len(self.service.apps)  # audio chunks with samples clipped
        self.inputs = inputs.Inputs(self, [(app.cfg.input_topic, self._input_type(app.cfg))
                                           for app in self.service.apps],
                                    self._on_input, intake=cfg.intake)
        for app, (topic, qos), note in zip(self.service.apps, self.inputs.topics,
                                           self._qos_notes):
            self.get_logger().info('application %s: input %s (%s), QoS %s, %s, depth %d'
                                   % (app.name, topic, app.cfg.input_type, note,
                                      qos.reliability.name.lower(), qos.depth))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._status_timer = self.create_timer(cfg.status_period_s, self._publish_status)
        self._drift_timer = self.create_timer(cfg.replan_period_s, self.service.check_drift)
        self.service.start()

    # -- what tests, benchmarks and the CLI read ------------------------------------------------
    @property
    def config(self):
        return self.service.config

    @property
    def apps(self):
        return self.service.apps

    @property
    def engine(self):
        return self.service.engine

    def status(self) -> Dict[str, Any]:
        """The ``hetero_infer.status/1`` document of the period since the last call."""
        doc = self.service.status()
        doc['intake'] = self.inputs.kind
        incompatible, other_types = self.inputs.check_publishers()
        doc['incompatible_publishers'] = incompatible
        doc['other_type_publishers'] = other_types
        for app, lost in zip(self.service.apps, self.inputs.lost):
            doc['applications'][app.name]['dds_lost'] = lost
            if app.is_audio:
                doc['applications'][app.name]['clipped_chunks'] = self._clipped[app.index]
        return doc

    def summary(self) -> Dict[str, Any]:
        """Totals since start per application and per (application, processor)."""
        return self.service.summary()

    # -- set-up ---------------------------------------------------------------------------------
    def _result_type(self, cfg):
        if cfg.result_type == 'json':
            return String
        cls = conversions.optional_msg('vision_msgs.msg', 'Classification')
        if cls is None:
            raise ConfigError('node %s: parameter result_type=vision_msgs but vision_msgs is not '
                              'installed; use json' % self.get_fully_qualified_name())
        return cls

    def _app_result_type(self, app):
        """An application's result message: a detector's is ``vision_msgs/Detection2DArray``
        in typed mode."""
        if self._result_msg is String or app.detector is None:
            return self._result_msg
        cls = conversions.optional_msg('vision_msgs.msg', 'Detection2DArray')
        if cls is None:
            raise ConfigError('node %s: parameter result_type=vision_msgs but vision_msgs has '
                              'no Detection2DArray; use json' % self._name)
        return cls

    def _input_type(self, a: params.AppConfig):
        """(message type, QoS) of an application's input topic (``input_qos``)."""
        msg_type = inputs.input_message_type(a.input_type)
        if msg_type is None:
            raise ConfigError('node %s: parameter %s=%s but audio_common_msgs is not '
                              'installed; publish std_msgs/Float32MultiArray (audio_f32)'
                              % (self._name, params.app_param(a.name, 'input_type'),
                                 a.input_type))
        qos, note = inputs.input_qos(a.input_qos, a.input_type, a.rate_hz, node=self,
                                     topic=a.input_topic)
        self._qos_notes.append(note)
        return msg_type, qos

    # -- message in -> request ------------------------------------------------------------------
    def _on_input(self, index: int, msg) -> None:
        """On the intake thread (or an executor callback): decode the message here (bad inputs
        are answered at once); the model inputs are made on the processor's worker."""
        received = time.perf_counter()
        app = self.service.apps[index]
        header = getattr(msg, 'header', None)
        stamp = (header.stamp.sec, header.stamp.nanosec) if header is not None else (0, 0)
        frame_id = header.frame_id if header is not None else ''
        try:
            if app.is_audio:
                a = app.cfg
                data, clipped = conversions.audio_input(
                    msg, kind=a.input_type, sample_rate_hz=a.sample_rate_hz,
                    resample=a.audio_resample, out_of_range=a.audio_out_of_range)
                order = ''
                if clipped:
                    self._clipped[index] += 1
            else:
                data, order = conversions.decode(msg, app.cfg.input_type)
        except conversions.InputError as exc:
            self.get_logger().warning('application %s: bad input dropped: %s' % (app.name, exc),
                                      throttle_duration_sec=1.0)
            self.service.bad_input(app, exc, received_s=received, stamp=stamp,
                                   frame_id=frame_id)
            return
        self.service.submit(app, app.preprocessor(data, order), received_s=received,
                            stamp=stamp, frame_id=frame_id)

    # -- document -> message out ----------------------------------------------------------------
    def _publish(self, app, doc: Dict[str, Any]) -> None:
        if self._closing:
            return
        try:
            typed = self._typed_pubs[app.index]
            if typed is not None and doc['outcome'] == 'result' and 'detections' in doc:
                typed.publish(conversions.detection_array(self._result_msgs[app.index], doc))
            elif typed is not None and doc['outcome'] == 'result' \
                    and doc.get('top_k') is not None:
                typed.publish(conversions.classification(self._result_msg, doc))
            else:
                self._json_pubs[app.index].publish(
                    String(data=json.dumps(doc, separators=(',', ':'))))
        except Exception as exc:  # noqa: BLE001  context shut down under us: nowhere to publish
            if not self._closing:
                self.get_logger().error('cannot publish result of %s: %s' % (app.name, exc),
                                        throttle_duration_sec=5.0)

    # -- parameters -----------------------------------------------------------------------------
    def _on_set_parameters(self, parameters) -> SetParametersResult:
        changes = {}
        for p in parameters:
            reason = params.validate(p.name, p.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            changes[p.name] = p.value
        try:
            old = self.service.apply(changes)
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        if old.replan_period_s != self.config.replan_period_s:
            self._drift_timer.cancel()
            self.destroy_timer(self._drift_timer)
            self._drift_timer = self.create_timer(self.config.replan_period_s,
                                                  self.service.check_drift)
        return SetParametersResult(successful=True)

    # -- status ---------------------------------------------------------------------------------
    def _publish_status(self) -> None:
        doc = self.status()
        self._latest_status = doc
        self.status_pub.publish(String(data=json.dumps(doc, separators=(',', ':'))))
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        hw = self.platform.name
        target = self.config.slo_target
        for name, a in doc['applications'].items():
            s = DiagnosticStatus(name='hetero_infer: %s' % name, hardware_id=hw)
            att = a['slo_attainment']
            if att is None:
                s.level, s.message = DiagnosticStatus.OK, 'no requests this period'
            elif att < target:
                s.level = DiagnosticStatus.WARN
                s.message = 'SLO attainment %.3f below target %.3f' % (att, target)
            else:
                s.level, s.message = DiagnosticStatus.OK, 'SLO attainment %.3f' % att
            s.values = [KeyValue(key=k, value=str(a.get(k))) for k in
                        ('rate_hz', 'slo_ms', 'slo_attainment', 'p50_ms', 'p99_ms', 'results',
                         'dds_lost', 'weight', 'min_attainment', 'predicted_attainment')]
            arr.status.append(s)
        for p, v in doc['processors'].items():
            h = v['health']
            s = DiagnosticStatus(name='hetero_infer: processor %s' % p, hardware_id=hw)
            if h['healthy']:
                s.level, s.message = DiagnosticStatus.OK, 'healthy'
            else:
                s.level = DiagnosticStatus.ERROR
                s.message = 'processor %s unhealthy: %s' % (p, h['reason'])
            s.values = [KeyValue(key=k, value=str(h.get(k))) for k in
                        ('healthy', 'since_s', 'failures', 'reason', 'probes_ok') if k in h]
            s.values.append(KeyValue(key='results', value=str(v['results'])))
            arr.status.append(s)
        # the plan cannot meet a floor: a WARN naming each such application (until a plan
        # that meets them all is installed)
        unmet = doc.get('floors_unmet') or []
        s = DiagnosticStatus(name='hetero_infer: floors', hardware_id=hw)
        if unmet:
            s.level = DiagnosticStatus.WARN
            s.message = 'floor not met by the plan: ' + '; '.join(
                '%s predicted attainment %.3f < min_attainment %.3g'
                % (u['application'], u['predicted_attainment'], u['min_attainment'])
                for u in unmet)
        else:
            s.level, s.message = DiagnosticStatus.OK, 'the plan meets every floor'
        s.values = [KeyValue(key='%s.%s' % (u['application'], k), value=str(u[k]))
                    for u in unmet for k in ('min_attainment', 'predicted_attainment')]
        arr.status.append(s)
        down = doc['unhealthy']
        s = DiagnosticStatus(name='hetero_infer: scheduler', hardware_id=hw,
                             level=DiagnosticStatus.ERROR if down else DiagnosticStatus.OK,
                             message='policy %d, goal %s%s' % (
                                 doc['policy_version'], doc['goal'],
                                 ''.join('; %s unhealthy: %s' % kv for kv in down.items())))
        s.values = ([KeyValue(key='utilisation.' + p, value=str(v['utilisation']))
                     for p, v in doc['processors'].items()]
                    + [KeyValue(key='drops.' + k, value=str(v)) for k, v in doc['drops'].items()])
        arr.status.append(s)
        self.diag_pub.publish(arr)

    # -- shutdown -------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop taking inputs and planning, drop what is queued (reason shutdown), release the
        backend. The shutdown drops are still published while the ROS context is valid (a close
        without Ctrl-C), so every request still gets its one message."""
        publish = self.context.ok()
        self._closing = not publish
        self.inputs.close()
        self.service.close(publish_drops=publish)
        self._closing = True

    def destroy_node(self) -> None:
        if not self._closing:
            self.close()
        super().destroy_node()


def main(args=None) -> int:
    """``ros2 run hetero_infer scheduler_node [--ros-args --params-file FILE -p NAME:=VALUE]``.

    The package's ``config/serve.yaml`` is read first, so the node also starts without a
    parameter file; rcl lets later ``--params-file`` / ``-p`` values override it. The package's
    Fast DDS profile for camera frames applies unless the user chose one
    (:mod:`hetero_infer.dds_profile`).
    """
    from hetero_infer import dds_profile
    from hetero_infer.errors import ConfigError
    from hetero_infer.resources import find_resource
    try:
        dds_profile.apply()
    except ConfigError as exc:
        print('scheduler_node: error: %s' % exc, file=sys.stderr)
        return 1
    argv = list(sys.argv if args is None else args) or ['scheduler_node']
    try:
        argv[1:1] = ['--ros-args', '--params-file', find_resource('config', 'serve.yaml'), '--']
    except ConfigError:  # not installed with its config: the declared defaults apply
        pass
    return run_main('scheduler_node', lambda: [SchedulerNode()], argv)


if __name__ == '__main__':
    raise SystemExit(main())
