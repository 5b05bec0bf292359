"""The scheduler node's input subscriptions: on the intake thread or as executor callbacks, and
the check that publishers on them can reach the node (QoS).

``intake: thread`` takes messages on a thread of the node's own (:mod:`hetero_infer.ros.intake`,
where rclpy offers what it needs); ``intake: executor`` uses ordinary subscription callbacks.
Either way ``handler(index, msg)`` is called once per message of input ``index``.
"""

from typing import Any, Callable, Dict, List, Sequence, Tuple

from rclpy.node import Node
from rclpy.qos import QoSCompatibility, qos_check_compatible

from hetero_infer.ros import intake as intake_thread

#: How many status periods a publisher without a node name is waited for before warning
#: (a node's name reaches the graph after its endpoint; a plain DDS writer never gets one).
NAME_WAIT_PERIODS = 5


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
        self.topics: List[Tuple[str, Any]] = []
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
            sub = node.create_subscription(msg_type, topic, lambda msg, i=i: handler(i, msg), qos)
            self._subs.append(sub)
            self.topics.append((sub.topic_name, qos))

    @property
    def kind(self) -> str:
        """``'thread'`` or ``'executor'``: how messages are actually taken."""
        return 'thread' if self._intake is not None else 'executor'

    def check_qos(self) -> Dict[str, int]:
        """Publishers on the input topics whose QoS cannot reach the node's subscription (e.g.
        best effort into a reliable audio input): warned once each, counted per topic.

        Executor subscriptions get this warning from rclpy's default event handlers; the
        intake's subscriptions are not the executor's, so the node looks at the graph itself.
        """
        node = self._node
        counts: Dict[str, int] = {}
        for topic, qos in self.topics:
            try:
                infos = node.get_publishers_info_by_topic(topic)
            except Exception:  # noqa: BLE001  graph not available while shutting down
                continue
            for info in infos:
                compat, reason = qos_check_compatible(info.qos_profile, qos)
                if compat != QoSCompatibility.ERROR:
                    continue
                counts[topic] = counts.get(topic, 0) + 1
                key = (topic, bytes(info.endpoint_gid))
                if key in self._warned or self._intake is None:
                    continue
                seen = self._seen[key] = self._seen.get(key, 0) + 1
                named = info.node_name != '_NODE_NAME_UNKNOWN_'
                if not named and seen < NAME_WAIT_PERIODS:
                    continue
                self._warned.add(key)
                who = ('node %s%s' % (info.node_namespace.rstrip('/') + '/', info.node_name)
                       if named else 'a non-ROS DDS writer')
                node.get_logger().warning(
                    'input %s: publisher of %s has incompatible QoS, its messages never reach '
                    'this node: %s' % (topic, who, reason.strip().rstrip(';')))
        return counts

    def close(self) -> None:
        """Stop the intake thread (executor subscriptions go with the node)."""
        if self._intake is not None:
            self._intake.close()
