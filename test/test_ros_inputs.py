"""Input subscriptions: the QoS each input_qos choice gives (auto follows the publishers), the
history depth, the message-lost event wired in both intake modes, and publishers of another
type reported (never an abort). Real rclpy, in-process; conftest.py keeps DDS on localhost."""

import time

import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.qos import (  # noqa: E402
    DurabilityPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Float32MultiArray, String  # noqa: E402

from hetero_infer.ros import inputs  # noqa: E402


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def test_fixed_choices_and_history_depth():
    q, note = inputs.input_qos('by_type', 'image', 30.0)
    assert (q.reliability, q.durability, q.depth) == (ReliabilityPolicy.BEST_EFFORT,
                                                      DurabilityPolicy.VOLATILE, 60)
    q, _ = inputs.input_qos('by_type', 'audio_f32', 2.0)
    assert (q.reliability, q.depth) == (ReliabilityPolicy.RELIABLE, inputs.MIN_DEPTH)
    assert inputs.input_qos('reliable', 'image', 30.0)[0].reliability == \
        ReliabilityPolicy.RELIABLE
    assert inputs.input_qos('sensor_data', 'audio_i16', 10.0)[0].reliability == \
        ReliabilityPolicy.BEST_EFFORT
    q, _ = inputs.input_qos('system_default', 'image', 30.0)
    assert (q.reliability, q.durability) == (ReliabilityPolicy.SYSTEM_DEFAULT,
                                             DurabilityPolicy.SYSTEM_DEFAULT)
    assert inputs.history_depth(100.0) == 200


def test_auto_matches_what_the_publishers_offer(context):
    node = rclpy.create_node('taker', context=context)
    other = rclpy.create_node('talker', context=context)
    try:
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        other.create_publisher(Image, 'latched', latched)
        q, note = inputs.input_qos('auto', 'image', 30.0, node=node, topic='latched',
                                   wait_s=5.0)
        assert (q.reliability, q.durability) == (ReliabilityPolicy.RELIABLE,
                                                 DurabilityPolicy.TRANSIENT_LOCAL), note
        other.create_publisher(Image, 'mixed', latched)
        other.create_publisher(Image, 'mixed', qos_profile_sensor_data)
        end = time.monotonic() + 5.0
        while len(node.get_publishers_info_by_topic('/mixed')) < 2 and time.monotonic() < end:
            time.sleep(0.05)
        q, note = inputs.input_qos('auto', 'audio_f32', 10.0, node=node, topic='mixed')
        assert (q.reliability, q.durability) == (ReliabilityPolicy.BEST_EFFORT,
                                                 DurabilityPolicy.VOLATILE), note
        q, note = inputs.input_qos('auto', 'audio_f32', 10.0, node=node, topic='nobody',
                                   wait_s=0.2)
        assert q.reliability == ReliabilityPolicy.RELIABLE and 'no publisher' in note
    finally:
        node.destroy_node()
        other.destroy_node()


@pytest.mark.parametrize('intake', ['thread', 'executor'])
def test_lost_counted_and_other_types_reported(context, intake):
    node = rclpy.create_node('taker', context=context)
    # another participant: one participant cannot have two types on one topic (RCLError)
    elsewhere = rclpy.Context()
    rclpy.init(context=elsewhere)
    other = rclpy.create_node('talker', context=elsewhere)
    got = []
    try:
        ins = inputs.Inputs(node, [('cam', (Image, qos_profile_sensor_data)),
                                   ('mic', (Float32MultiArray, QoSProfile(depth=10)))],
                            lambda i, msg: got.append(i), intake=intake)
        assert ins.kind == intake
        assert ins.lost == [0, 0]  # Fast DDS reports message loss: counted from 0
        assert ins.types == ['sensor_msgs/msg/Image', 'std_msgs/msg/Float32MultiArray']
        other.create_publisher(String, 'mic', 10)  # another type on an input topic
        end = time.monotonic() + 5.0
        while time.monotonic() < end and not ins.check_publishers()[1]:
            time.sleep(0.05)
        incompatible, other_types = ins.check_publishers()
        assert other_types == {'/mic': ['std_msgs/msg/String']}
        assert incompatible == {}
        ins.close()
    finally:
        node.destroy_node()
        other.destroy_node()
        rclpy.try_shutdown(context=elsewhere)
