"""The scheduler node's input subscriptions: their QoS, taken on the intake thread or as executor
callbacks, the messages DDS reports lost, and the check that publishers on them can reach the node
(QoS and message type).

``intake: thread`` takes messages on a thread of the node's own (:mod:`hetero_infer.ros.intake`,
where rclpy offers what it needs); ``intake: executor`` uses ordinary subscription callbacks.
Either way ``handler(index, msg)`` is called once per message of input ``index``.

History: KEEP_LAST overwrites in a reader's history raise no event, so each input keeps
:data:`HISTORY_S` of its application's expected rate (at least :data:`MIN_DEPTH` messages): the
intake takes every message as it arrives, and only a stall of the intake thread that long loses
messages uncounted (the blind spot, README "Lost messages").
"""

import math
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSCompatibility,
    QoSProfile,
    ReliabilityPolicy,
    qos_check_compatible,
)

from hetero_infer.ros import conversions
from hetero_infer.ros import intake as intake_thread

try:
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

#: Seconds of an application's expected rate an input's history holds.
HISTORY_S = 2.0
#: The smallest input history (messages).
MIN_DEPTH = 20
#: How long ``input_qos: auto`` waits for the topic's publishers at start-up (discovery takes
#: 0.1-0.3 s on one machine).
AUTO_WAIT_S = 1.0


def history_depth(rate_hz: float) -> int:
    """KEEP_LAST depth of an input whose application expects ``rate_hz``."""
    return max(MIN_DEPTH, int(math.ceil(rate_hz * HISTORY_S)))


def input_qos(choice: str, input_type: str, rate_hz: float, *, node: Optional[Node] = None,
              topic: str = '', wait_s: float = AUTO_WAIT_S) -> Tuple[QoSProfile, str]:
    """The QoS of an input subscription and a note on how it was chosen.

    :param choice: the ``apps.<name>.input_qos`` parameter (``by_type``, ``sensor_data``,
        ``reliable``, ``system_default``, ``auto``).
    :param node: for ``auto``: the node whose graph shows the publishers of ``topic``.
    """
    depth = history_depth(rate_hz)
    image = input_type in ('image', 'compressed_image')
    note = choice
    if choice == 'auto':
        offered = _offered(node, topic, wait_s) if node is not None else []
        if offered:
            reliable = all(q.reliability == ReliabilityPolicy.RELIABLE for q in offered)
            latched = all(q.durability == DurabilityPolicy.TRANSIENT_LOCAL for q in offered)
            return QoSProfile(
                history=HistoryPolicy.KEEP_LAST, depth=depth,
                reliability=(ReliabilityPolicy.RELIABLE if reliable
                             else ReliabilityPolicy.BEST_EFFORT),
                durability=(DurabilityPolicy.TRANSIENT_LOCAL if latched
                            else DurabilityPolicy.VOLATILE)), \
                'auto: %s, %s as %d publisher(s) offer' % (
                    'reliable' if reliable else 'best effort',
                    'transient local' if latched else 'volatile', len(offered))
        choice, note = 'by_type', 'auto: no publisher yet, by_type'
    if choice == 'by_type':
        choice = 'sensor_data' if image else 'reliable'
    if choice == 'sensor_data':
        reliability = ReliabilityPolicy.BEST_EFFORT
    elif choice == 'reliable':
        reliability = ReliabilityPolicy.RELIABLE
    else:
        reliability = ReliabilityPolicy.SYSTEM_DEFAULT
    durability = (DurabilityPolicy.SYSTEM_DEFAULT if choice == 'system_default'
                  else DurabilityPolicy.VOLATILE)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability,
                      durability=durability), note


def _offered(node: Node, topic: str, wait_s: float) -> List[QoSProfile]:
    """The QoS of the publishers of ``topic`` (waits up to ``wait_s`` for the first)."""
    name = node.resolve_topic_name(topic)
    end = time.monotonic() + wait_s
    while True:
        infos = node.get_publishers_info_by_topic(name)
        if infos or time.monotonic() >= end:
            return [i.qos_profile for i in infos]
        time.sleep(0.05)


#: How many status periods a publisher without a node name is waited for before warning
#: (a node's name reaches the graph after its endpoint; a plain DDS writer never gets one).
NAME_WAIT_PERIODS = 5


def input_message_type(input_type: str):
    """The message class of an ``input_type`` (None: its optional package, audio_common_msgs,
    is not installed)."""
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Float32MultiArray, Int16MultiArray
    fixed = {'image': Image, 'compressed_image': CompressedImage,
             'audio_f32': Float32MultiArray, 'audio_i16': Int16MultiArray}
    if input_type in fixed:
        return fixed[input_type]
    name = {'audio_data': 'AudioData', 'audio_data_stamped': 'AudioDataStamped'}[input_type]
    return conversions.optional_msg('audio_common_msgs.msg', name)


def type_name(msg_type) -> str:
    """``sensor_msgs/msg/Image`` for the class ``sensor_msgs.msg.Image`` (as the graph names
    types)."""
    return '%s/msg/%s' % (msg_type.__module__.split('.')[0], msg_type.__name__)


class Inputs:
    """Subscribe ``node`` to ``topics`` (``[(topic, (msg_type, qos))]``).

    :param intake: ``'thread'`` or ``'executor'`` (the node parameter).
    """

    def __init__(self, node: Node, topics: Sequence[Tuple[str, Tuple[Any, Any]]],
                 handler: Callable[[int, Any], None], *, intake: str) -> None:
        self._node = node
        self._intake = None
        self._subs: List[Any] = []
        self._warned = set()
        self._seen: Dict[Any, int] = {}
        self._lost: List[Optional[int]] = []
        self.topics: List[Tuple[str, Any]] = []
        self.types: List[str] = [type_name(msg_type) for _, (msg_type, _) in topics]
        log = node.get_logger()
        if intake == 'thread':
            ok, why = intake_thread.available()
            if ok:
                self._intake = intake_thread.Intake(
                    node, on_error=lambda text: log.error(text, throttle_duration_sec=1.0))
                for i, (topic, (msg_type, qos)) in enumerate(topics):
                    resolved = self._intake.add(msg_type, topic, qos,
                                                lambda msg, i=i: handler(i, msg))
                    self.topics.append((resolved, qos))
                self._intake.start()
                return
            log.warning('intake=thread is not available with this rclpy (%s); taking inputs in '
                        'executor callbacks' % why)
        for i, (topic, (msg_type, qos)) in enumerate(topics):
            self._lost.append(0)
            events = SubscriptionEventCallbacks(message_lost=lambda info, i=i: self._on_lost(
                i, info))
            sub = node.create_subscription(msg_type, topic, lambda msg, i=i: handler(i, msg), qos,
                                           event_callbacks=events)
            self._subs.append(sub)
            self.topics.append((sub.topic_name, qos))
            if not any(getattr(h, 'event_type', None) == intake_thread.MESSAGE_LOST
                       for h in getattr(sub, 'event_handlers', [])):
                self._lost[i] = None  # rclpy skipped it: the RMW has no message-lost event

    def _on_lost(self, index: int, info) -> None:
        self._lost[index] = int(info.total_count)

    @property
    def kind(self) -> str:
        """``'thread'`` or ``'executor'``: how messages are actually taken."""
        return 'thread' if self._intake is not None else 'executor'

    @property
    def lost(self) -> List[Optional[int]]:
        """Per input: messages DDS reported lost since start (the RMW's message-lost event),
        None where the RMW does not report them."""
        if self._intake is not None:
            return self._intake.lost
        return list(self._lost)

    def check_publishers(self) -> Tuple[Dict[str, int], Dict[str, List[str]]]:
        """Publishers on the input topics that cannot reach the node: ``(incompatible QoS count
        per topic, other message types per topic)``, each publisher warned about once.

        A best-effort publisher into a reliable audio input never matches; a publisher of
        another type (``std_msgs/msg/Int16MultiArray`` on an ``audio_data`` input) neither.
        Executor subscriptions get the QoS warning from rclpy's default event handlers too; the
        intake's subscriptions are not the executor's, so the node looks at the graph itself.
        """
        node = self._node
        counts: Dict[str, int] = {}
        other_types: Dict[str, List[str]] = {}
        for (topic, qos), want in zip(self.topics, self.types):
            try:
                infos = node.get_publishers_info_by_topic(topic)
            except Exception:  # noqa: BLE001  graph not available while shutting down
                continue
            for info in infos:
                if info.topic_type != want:
                    kinds = other_types.setdefault(topic, [])
                    if info.topic_type not in kinds:
                        kinds.append(info.topic_type)
                    self._warn_once(topic, info, 'publishes %s, this input takes %s: its messages '
                                    'never reach this node' % (info.topic_type, want))
                    continue
                compat, reason = qos_check_compatible(info.qos_profile, qos)
                if compat != QoSCompatibility.ERROR:
                    continue
                counts[topic] = counts.get(topic, 0) + 1
                if self._intake is not None:
                    self._warn_once(topic, info, 'has incompatible QoS, its messages never reach '
                                    'this node: %s' % reason.strip().rstrip(';'))
        return counts, other_types

    def check_qos(self) -> Dict[str, int]:
        """Publishers whose QoS cannot reach the node, per topic (see :meth:`check_publishers`)."""
        return self.check_publishers()[0]

    def _warn_once(self, topic: str, info, what: str) -> None:
        key = (topic, bytes(info.endpoint_gid))
        if key in self._warned:
            return
        seen = self._seen[key] = self._seen.get(key, 0) + 1
        named = info.node_name != '_NODE_NAME_UNKNOWN_'
        if not named and seen < NAME_WAIT_PERIODS:
            return
        self._warned.add(key)
        who = ('node %s%s' % (info.node_namespace.rstrip('/') + '/', info.node_name)
               if named else 'a non-ROS DDS writer')
        self._node.get_logger().warning('input %s: publisher of %s %s' % (topic, who, what))

    def close(self) -> None:
        """Stop the intake thread (executor subscriptions go with the node)."""
        if self._intake is not None:
            self._intake.close()
