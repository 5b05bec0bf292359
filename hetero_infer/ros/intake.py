"""Input subscriptions taken on a thread of the node's own, outside the rclpy executor.

Why: rclpy's Python executors rebuild their wait set and walk every entity of the node (parameter
services, timers, publishers' event handlers...) after each message, holding the GIL for a few
hundred microseconds per message. The processor workers wait for that GIL to preprocess and
publish, so each input message costs the node that much again in latency, and the executor's
bookkeeping was the largest single item of the node's CPU time per request
(``bench/bench_ros_node.py``). rclpy's C++ ``EventsExecutor`` would avoid it, but in Jazzy's
rclpy 7.1 it spins at 100% CPU and delivers nothing here.

:class:`Intake` does what ``rclpy.wait_for_message`` does, in a loop: one wait set holding the
input subscriptions and a stop guard condition, waited on in C (GIL released), then every
message waiting on a ready subscription taken at once (a burst costs one wake-up). The
subscriptions are created on the node's handle, so names, namespaces and ``--ros-args -r``
remappings resolve exactly as for ``Node.create_subscription`` and the graph (``ros2 node info``,
``ros2 topic info``) shows them under the node; the executor never sees them, so a message is
taken once. The parameter services, timers and publishers stay on the executor.

Each subscription also gets the RMW's message-lost event (what rclpy's
``SubscriptionEventCallbacks(message_lost=...)`` wires for executor subscriptions): samples DDS
knows it lost before the node could take them (a gap in a best-effort writer's sequence numbers,
fragments that never completed) are counted per input in :attr:`Intake.lost`. Where the RMW has
no such event (:attr:`Intake.lost` holds None for the input) nothing is counted.

This uses rclpy's implementation module (``_rclpy``) as ``rclpy.wait_for_message`` does; if it
differs (another rclpy), :func:`available` says why and the node falls back to executor
callbacks (parameter ``intake: executor``).
"""

import threading
from typing import Any, Callable, List, Optional, Tuple

from rclpy.impl.implementation_singleton import rclpy_implementation

try:
    from rclpy.event_handler import QoSSubscriptionEventType
except ImportError:  # Humble
    from rclpy.qos_event import QoSSubscriptionEventType

#: The RMW event of a subscription's lost messages.
MESSAGE_LOST = QoSSubscriptionEventType.RCL_SUBSCRIPTION_MESSAGE_LOST

#: The wait returns at least this often (seconds) to notice a stop when no message comes.
POLL_S = 0.2


def _implementation():
    for name in ('Subscription', 'WaitSet', 'GuardCondition'):
        if not hasattr(rclpy_implementation, name):
            raise AttributeError('rclpy implementation has no %s' % name)
    return rclpy_implementation


def available() -> Tuple[bool, str]:
    """``(True, '')`` when this rclpy offers what :class:`Intake` uses, else ``(False, why)``."""
    try:
        _implementation()
        from rclpy.guard_condition import GuardCondition  # noqa: F401
    except (ImportError, AttributeError) as exc:
        return False, str(exc)
    return True, ''


def _check_type(msg_type) -> None:
    try:
        from rclpy.type_support import check_is_valid_msg_type as check
    except ImportError:  # Humble
        from rclpy.type_support import check_for_type_support as check
    check(msg_type)


def message_lost_event(rclpy_impl, handle):
    """The message-lost event of subscription ``handle``, or None where the RMW has none."""
    try:
        with handle:
            return rclpy_impl.EventHandle(handle, MESSAGE_LOST)
    except Exception:  # noqa: BLE001  UnsupportedEventTypeError, or an rclpy without events
        return None


class _Input:
    __slots__ = ('handle', 'msg_type', 'handler', 'topic', 'pointer', 'lost_event', 'lost')

    def __init__(self, handle, msg_type, handler, topic: str, lost_event) -> None:
        self.handle = handle
        self.msg_type = msg_type
        self.handler = handler
        self.topic = topic
        self.pointer = handle.pointer
        self.lost_event = lost_event
        #: messages DDS reported lost on this input (None: the RMW does not report them)
        self.lost = None if lost_event is None else 0


class Intake:
    """Takes the messages of :meth:`add`-ed topics on one thread and calls their handlers.

    :param node: the node whose name, namespace and remappings resolve the topics.
    :param on_error: called with a text when a handler raises (the intake goes on).
    """

    def __init__(self, node, *, on_error: Optional[Callable[[str], None]] = None) -> None:
        self._rclpy = _implementation()
        self._node = node
        self._inputs: List[_Input] = []
        self._on_error = on_error or (lambda text: None)
        self._stop = False
        self._thread: Optional[threading.Thread] = None
        from rclpy.guard_condition import GuardCondition
        self._wake = GuardCondition(None, None, context=node.context)
        self.taken = 0

    def add(self, msg_type, topic: str, qos, handler: Callable[[Any], None]) -> str:
        """Subscribe to ``topic`` (before :meth:`start`); returns the resolved topic name.

        :raises ValueError: an invalid topic name (rclpy's message names it).
        """
        if self._thread is not None:
            raise RuntimeError('Intake.add after start')
        _check_type(msg_type)
        node = self._node
        try:
            with node.handle:
                handle = self._rclpy.Subscription(node.handle, msg_type, topic,
                                                  qos.get_c_qos_profile())
        except ValueError:
            node._validate_topic_or_service_name(topic)  # raises with rclpy's own message
            raise
        resolved = handle.get_topic_name()
        self._inputs.append(_Input(handle, msg_type, handler, resolved,
                                   message_lost_event(self._rclpy, handle)))
        return resolved

    @property
    def topics(self) -> List[str]:
        return [i.topic for i in self._inputs]

    @property
    def lost(self) -> List[Optional[int]]:
        """Per input (in :meth:`add` order): messages DDS reported lost since start, or None
        where the RMW has no message-lost event."""
        return [i.lost for i in self._inputs]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name='hetero-infer-intake',
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        rclpy_impl = self._rclpy
        inputs = self._inputs
        context = self._node.context
        events = [i for i in inputs if i.lost_event is not None]
        wait_set = rclpy_impl.WaitSet(len(inputs), 1, 0, 0, 0, len(events), context.handle)
        timeout_ns = int(POLL_S * 1e9)
        wake = self._wake.handle
        while not self._stop and context.ok():
            wait_set.clear_entities()
            for i in inputs:
                wait_set.add_subscription(i.handle)
            wait_set.add_guard_condition(wake)
            indices = [wait_set.add_event(i.lost_event) for i in events]
            try:
                wait_set.wait(timeout_ns)
            except Exception:  # context shut down while waiting
                if self._stop or not context.ok():
                    return
                raise
            if self._stop:
                return
            for i, index in zip(events, indices):
                if wait_set.is_ready('event', index):
                    self._take_lost(i)
            ready = wait_set.get_ready_entities('subscription')
            if not ready:
                continue
            for i in inputs:
                if i.pointer in ready:
                    self._drain(i)

    def _take_lost(self, i: _Input) -> None:
        try:
            with i.lost_event:
                info = i.lost_event.take_event()
        except Exception as exc:  # noqa: BLE001  an RMW error: say so, keep taking messages
            self._on_error('%s: cannot take the message-lost event: %s' % (i.topic, exc))
            return
        if info is not None:
            i.lost = int(info.total_count)

    def _drain(self, i: _Input) -> None:
        """Every message waiting on ``i`` (at most its QoS depth), in order."""
        while not self._stop:
            try:
                with i.handle:
                    taken = i.handle.take_message(i.msg_type, False)
            except Exception as exc:  # noqa: BLE001 - a message that cannot be deserialised: skip it
                self._on_error('%s: cannot take a message: %s' % (i.topic, exc))
                return
            if taken is None:
                return
            self.taken += 1
            try:
                i.handler(taken[0])
            except Exception as exc:  # noqa: BLE001 - the handler accounts for its own errors; be safe
                self._on_error('%s: input handler failed: %s' % (i.topic, exc))

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop the thread and destroy the subscriptions (idempotent)."""
        self._stop = True
        try:
            self._wake.trigger()
        except Exception:  # noqa: BLE001 - context already gone: the wait ends on its own
            pass
        if self._thread is not None:
            self._thread.join(timeout_s)
        for i in self._inputs:
            for entity in (i.lost_event, i.handle):
                if entity is None:
                    continue
                try:
                    entity.destroy_when_not_in_use()
                except Exception:  # noqa: BLE001 - already destroyed with the node
                    pass
        self._inputs = []
        try:
            self._wake.destroy()
        except Exception:  # noqa: BLE001 - context already gone
            pass
