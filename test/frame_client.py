"""A camera in its own process: rgb8 frames at a fixed rate into the scheduler node, results
counted (used by test_ros_large_frames.py and bench/bench_ros_node.py).

    python test/frame_client.py --sizes 640x480,1280x720 --rate 30 --seconds 5 \\
        [--dds-profile FILE|none] [--topic cam/image] [--results results/cam]

Sets the Fast DDS profile as ``hetero-infer serve`` does (``--dds-profile``, same meaning), then
publishes with the sensor-data QoS of a camera driver. Before each size it probes until the node
answers one frame of that size (best-effort samples sent while discovery completes are lost);
then it publishes ``rate x seconds`` frames, waits for their answers and prints one JSON line:
``{"WxH": {"sent": n, "results": r, "dropped": d, "drop_reasons": {...}, "dds_lost": l}, ...}``
where ``dds_lost`` is how many more messages the node's ``~/status`` counted as lost by DDS for
the application (``--app``) after the frames than before them (None: not reported).
"""

import argparse
import json
import os
import random
import sys
import threading
import time

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
if not os.environ.get('ROS_DOMAIN_ID'):
    os.environ['ROS_DOMAIN_ID'] = str(random.SystemRandom().randint(1, 100))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--sizes', default='640x480,1280x720')
    ap.add_argument('--rate', type=float, default=30.0)
    ap.add_argument('--seconds', type=float, default=5.0)
    ap.add_argument('--topic', default='cam/image')
    ap.add_argument('--results', default='results/cam')
    ap.add_argument('--app', default='cam')
    ap.add_argument('--status', default='/scheduler/status')
    ap.add_argument('--dds-profile', default='')
    ap.add_argument('--timeout', type=float, default=60.0)
    args = ap.parse_args(argv)

    from hetero_infer import dds_profile
    dds_profile.apply(choice=args.dds_profile)
    import numpy as np
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    rclpy.init()
    node = rclpy.create_node('frame_client')
    lock = threading.Lock()
    docs = []

    def on_result(msg):
        with lock:
            docs.append(json.loads(msg.data))
    node.create_subscription(String, args.results, on_result, QoSProfile(depth=5000))
    statuses = []

    def on_status(msg):
        with lock:
            statuses.append(json.loads(msg.data))
    node.create_subscription(String, args.status, on_status, QoSProfile(depth=10))

    def dds_lost():
        """The node's count after the next status message."""
        with lock:
            n = len(statuses)
        stop = time.monotonic() + 5.0
        while time.monotonic() < stop:
            with lock:
                if len(statuses) > n:
                    return statuses[-1]['applications'][args.app].get('dds_lost')
            time.sleep(0.05)
        return None
    pub = node.create_publisher(Image, args.topic, qos_profile_sensor_data)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    spinner = threading.Thread(target=ex.spin, daemon=True)
    spinner.start()
    out = {}
    try:
        end = time.monotonic() + args.timeout
        while pub.get_subscription_count() == 0 or node.count_publishers(args.results) == 0:
            if time.monotonic() > end:
                raise SystemExit('frame_client: no node on %s' % args.topic)
            time.sleep(0.05)
        for size in args.sizes.split(','):
            w, h = (int(v) for v in size.split('x'))
            img = np.random.default_rng(0).integers(0, 255, (h, w, 3)).astype(np.uint8)
            msg = Image(height=h, width=w, encoding='rgb8', step=w * 3, data=img.tobytes())

            def answered(frame_id):
                with lock:
                    return any(d['frame_id'] == frame_id for d in docs)
            probe = 'probe-' + size
            msg.header.frame_id = probe
            while not answered(probe):
                if time.monotonic() > end:
                    raise SystemExit('frame_client: the node never answered a %s frame' % size)
                pub.publish(msg)
                time.sleep(0.2)
            time.sleep(0.3)
            lost_before = dds_lost()
            n = int(round(args.rate * args.seconds))
            msg.header.frame_id = size
            t0 = time.monotonic()
            for k in range(n):
                delay = t0 + k / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                msg.header.stamp.sec = k
                pub.publish(msg)
            settle = time.monotonic() + 3.0
            while time.monotonic() < settle:
                with lock:
                    if sum(d['frame_id'] == size for d in docs) >= n:
                        break
                time.sleep(0.05)
            lost_after = dds_lost()
            with lock:
                mine = [d for d in docs if d['frame_id'] == size]
            reasons = {}
            for d in mine:
                if d['outcome'] != 'result':
                    reasons[d['drop_reason']] = reasons.get(d['drop_reason'], 0) + 1
            out[size] = {'sent': n, 'results': sum(d['outcome'] == 'result' for d in mine),
                         'dropped': sum(reasons.values()), 'drop_reasons': reasons,
                         'answers': len(mine),
                         'distinct': len({d['stamp']['sec'] for d in mine}),
                         'dds_lost': (None if lost_after is None or lost_before is None
                                      else lost_after - lost_before)}
    finally:
        ex.shutdown(timeout_sec=1.0)
        spinner.join(timeout=5.0)  # destroying the node under a spinning executor aborts
        node.destroy_node()
        rclpy.try_shutdown()
    print(json.dumps(out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
