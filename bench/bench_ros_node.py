"""Benchmark of the scheduler node over real DDS (localhost), in one run:

1. added latency of the node at 30 Hz x 3 camera applications (320x240 rgb8): result received
   minus source stamp minus execute time, p50 / p99 (zero-time backend, so that what is left is
   the node: DDS in and out, conversion, preprocessing, routing, queueing, JSON, publishing);
2. the highest request rate the node sustains with the zero-time backend, against raw DDS: the
   same messages through a relay process that only answers each one with a small String (the
   physical limit of publish -> other process -> publish -> subscriber here);
3. camera frames of real sizes (640x480 and 1280x720 rgb8 at 30 Hz, from another process,
   ``test/frame_client.py``) answered with a result, with Fast DDS's defaults and with the
   package's profile (``config/fastdds_camera.xml``) on both sides.

Node and relay run in their own processes; the publisher and the result sink run here.
Images of 1. and 2. default to 320x240 rgb8 (230 KB) and run without the profile (``--dds-profile
none``): Fast DDS's shared-memory segments are 512 KB by default, so a 640x480 rgb8 frame (921 KB)
goes over UDP fragments, which best-effort (sensor data) QoS loses wholesale under load, raw DDS
included (3. shows it, and what the profile changes).

Prints a table and JSON. Usage: python bench/bench_ros_node.py [--duration S] [--json FILE]
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
if not os.environ.get('ROS_DOMAIN_ID'):
    os.environ['ROS_DOMAIN_ID'] = str(random.SystemRandom().randint(1, 100))

import rclpy  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from hetero_infer.ros.intake import Intake  # noqa: E402

CONFIG = """
/**:
  ros__parameters:
    platform: xavier
    backend: 'null'
    admission_control: false
    queue_limit: 64
    slo_scale: 100.0
    plan_samples: 12
    plan_duration_s: 1.0
    replan_period_s: 3600.0
    applications: [cam0, cam1, cam2]
    apps:
      cam0: {input_topic: bench/cam0, model: mobilenet_v2, rate_hz: 30.0}
      cam1: {input_topic: bench/cam1, model: mobilenet_v2, rate_hz: 30.0}
      cam2: {input_topic: bench/cam2, model: mobilenet_v2, rate_hz: 30.0}
"""

RELAY = r'''
import rclpy, sys
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import String
# The node's result document for a top-5 classifier, so that the sink decodes the same size of
# message from the relay as from the node; only the stamp changes.
DOC = ('{"schema":"hetero_infer.result/1","outcome":"result","drop_reason":null,'
       '"stamp":{"sec":%d,"nanosec":%d},"frame_id":"","application":"cam0",'
       '"model":"mobilenet_v2","processor":"gpu","request_id":1,"policy_version":1,'
       '"queue_ms":0.0,"execute_ms":0.0,"total_ms":0.0,"slo_ms":100.0,"slo_met":true,'
       '"top_k":[' + ','.join(['{"label":"class_999","score":0.001}'] * 5) + ']}')
rclpy.init()
n = rclpy.create_node('relay')
def make(topic):
    pub = n.create_publisher(String, topic.replace('bench/', 'results/'), 50)
    def cb(m):
        pub.publish(String(data=DOC % (m.header.stamp.sec, m.header.stamp.nanosec)))
    return cb
for t in sys.argv[1:]:
    n.create_subscription(Image, t, make(t), qos_profile_sensor_data)
try:
    rclpy.spin(n)
except Exception:
    pass
'''


def cpu_seconds(pid):
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


#: Total publish rate at which the CPU time per message is measured (both sustain it).
CPU_RATE_HZ = 1200.0


class Bench:
    def __init__(self, topics, width, height):
        self.node = rclpy.create_node('bench_driver')
        self.topics = topics
        self.pubs = [self.node.create_publisher(Image, t, 10) for t in topics]
        self.lock = threading.Lock()
        self.lat = []
        self.received = 0
        self.first_s = None
        # The results are taken on a thread of their own (the node's Intake), not by an
        # executor: the receiving end of the measurement then adds as little as it can, to the
        # node's figures and the relay's alike.
        self.result_topics = [t.replace('bench/', 'results/') for t in topics]
        self.sink = Intake(self.node)
        for t in self.result_topics:
            self.sink.add(String, t, QoSProfile(depth=1000), self._on)
        self.sink.start()
        h, w = height, width
        img = np.random.default_rng(0).integers(0, 255, (h, w, 3)).astype(np.uint8)
        self.msg = Image(height=h, width=w, encoding='rgb8', step=w * 3, data=img.tobytes())

    def _on(self, m):
        now = time.time()
        doc = json.loads(m.data)
        if doc.get('outcome', 'result') != 'result':
            return  # a drop answer (e.g. queue_full) is accounted for, but not a served request
        st = doc['stamp']
        lat = (now - (st['sec'] + st['nanosec'] * 1e-9)) * 1e3 - doc.get('execute_ms', 0.0)
        with self.lock:
            self.received += 1
            self.lat.append(lat)

    def wait_connected(self, timeout_s=60.0):
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if all(p.get_subscription_count() > 0 for p in self.pubs) and all(
                    self.node.count_publishers(t) > 0 for t in self.result_topics):
                time.sleep(1.0)
                return
            time.sleep(0.05)
        raise RuntimeError('no subscriber on %s' % self.topics)

    def wait_planned(self, timeout_s=60.0):
        """Until the node's ~/status says its start-up plan is in place (the planner's worker
        process competes for the cores while it runs; the figures are of steady serving)."""
        from rclpy.wait_for_message import wait_for_message
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            ok, msg = wait_for_message(String, self.node, '/scheduler/status', time_to_wait=2.0)
            if ok:
                doc = json.loads(msg.data)
                if doc['policy_version'] >= 2 and not doc['planning']:
                    return doc['last_plan']
        raise RuntimeError('the node did not finish its start-up plan in %.0f s' % timeout_s)

    def reset(self):
        with self.lock:
            self.lat = []
            self.received = 0

    def publish(self, pub):
        t = time.time()
        self.msg.header.stamp.sec = int(t)
        self.msg.header.stamp.nanosec = int((t - int(t)) * 1e9)
        pub.publish(self.msg)

    def paced(self, rate_hz, duration_s):
        """Every topic at rate_hz (offset evenly), for duration_s."""
        period = 1.0 / rate_hz
        t0 = time.monotonic()
        k = 0
        sent = 0
        while True:
            due = t0 + k * period / len(self.pubs)
            if due - t0 > duration_s:
                break
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.publish(self.pubs[k % len(self.pubs)])
            k += 1
            sent += 1
        return sent

    def flood(self, duration_s):
        """As fast as this process can publish, round robin over the topics."""
        t0 = time.monotonic()
        k = 0
        while time.monotonic() - t0 < duration_s:
            self.publish(self.pubs[k % len(self.pubs)])
            k += 1
        return k

    def close(self):
        self.sink.close()
        self.node.destroy_node()


def trial(bench, rate_hz, duration_s):
    """Publish at ``rate_hz`` (all topics together) for ``duration_s``; delivered fraction."""
    bench.reset()
    t0 = time.monotonic()
    sent = bench.paced(rate_hz / len(bench.pubs), duration_s)
    elapsed = time.monotonic() - t0
    time.sleep(0.5)  # drain
    with bench.lock:
        got = bench.received
    return sent / elapsed, got / max(sent, 1)


def sustained_rate(bench, *, duration_s, floor=0.98, start_hz=100.0, max_hz=20000.0):
    """Highest total publish rate at which at least ``floor`` of the messages come back.

    Doubling until a rate fails (or the publisher itself cannot go faster), then bisection.
    Returns (rate, trials)."""
    trials = []
    good, bad = 0.0, None
    rate = start_hz
    while rate <= max_hz:
        achieved, frac = trial(bench, rate, duration_s)
        trials.append({'target_hz': rate, 'published_hz': achieved, 'delivered': frac})
        if frac >= floor and achieved >= 0.9 * rate:
            good = achieved
            rate *= 2
        else:
            bad = rate if frac < floor else achieved
            break
    if bad is not None:
        lo, hi = good, bad
        for _ in range(4):
            mid = 0.5 * (lo + hi)
            achieved, frac = trial(bench, mid, duration_s)
            trials.append({'target_hz': mid, 'published_hz': achieved, 'delivered': frac})
            if frac >= floor and achieved >= 0.9 * mid:
                lo = good = max(good, achieved)
            else:
                hi = mid
    return good, trials


def cpu_per_message(bench, pid, rate_hz, duration_s):
    """CPU milliseconds per message of process ``pid`` and of this driver at ``rate_hz``."""
    c0, d0 = cpu_seconds(pid), time.process_time()
    achieved, frac = trial(bench, rate_hz, duration_s)
    c1, d1 = cpu_seconds(pid), time.process_time()
    sent = achieved * duration_s
    return {'rate_hz': rate_hz, 'delivered': frac,
            'process_ms_per_msg': (c1 - c0) * 1e3 / sent,
            'driver_ms_per_msg': (d1 - d0) * 1e3 / sent}


FRAME_CONFIG = """
/**:
  ros__parameters:
    platform: xavier
    backend: emulated
    slo_scale: 20.0
    plan_samples: 12
    plan_duration_s: 1.0
    replan_period_s: 3600.0
    applications: [cam]
    apps:
      cam: {input_topic: cam/image, input_type: image, model: resnet18, rate_hz: 30.0}
"""


def large_frames(tmp, seconds, procs):
    """640x480 and 1280x720 rgb8 at 30 Hz from test/frame_client.py into a node (emulated
    resnet18), without and with the package's Fast DDS profile (both processes alike)."""
    cfg = os.path.join(tmp, 'frames.yaml')
    with open(cfg, 'w') as f:
        f.write(FRAME_CONFIG)
    client = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, 'test',
                          'frame_client.py')
    env = {k: v for k, v in os.environ.items()
           if k not in ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')}
    out = {}
    for label, choice in (('fastdds_defaults', 'none'), ('package_profile', '')):
        log = open(os.path.join(tmp, 'frames_%s.log' % label), 'w')
        node = subprocess.Popen([sys.executable, '-m', 'hetero_infer.cli', 'serve', '--config',
                                 cfg, '--log-level', 'warn', '--dds-profile', choice],
                                stdout=log, stderr=log, env=env)
        procs.append(node)
        try:
            run = subprocess.run([sys.executable, client, '--sizes', '640x480,1280x720',
                                  '--rate', '30', '--seconds', str(seconds),
                                  '--dds-profile', choice],
                                 capture_output=True, text=True, timeout=120 + 4 * seconds,
                                 env=env)
            if run.returncode != 0:
                raise RuntimeError('frame_client (%s): %s' % (label, run.stderr[-1000:]))
            out[label] = json.loads(run.stdout.strip().splitlines()[-1])
        finally:
            node.terminate()
            node.wait(15)
            log.close()
    return out


def pct(values, q):
    return float(np.percentile(values, q)) if values else float('nan')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--duration', type=float, default=10.0,
                    help='seconds of the 30 Hz x 3 latency run')
    ap.add_argument('--trial', type=float, default=2.0,
                    help='seconds per rate trial of the sustained-rate search')
    ap.add_argument('--width', type=int, default=320)
    ap.add_argument('--height', type=int, default=240)
    ap.add_argument('--frames-seconds', type=float, default=10.0,
                    help='seconds per size of the large-frame runs (3.); 0 skips them')
    ap.add_argument('--json', default=None, metavar='FILE')
    args = ap.parse_args(argv)
    topics = ['bench/cam0', 'bench/cam1', 'bench/cam2']
    out = {'ros_domain_id': int(os.environ['ROS_DOMAIN_ID'])}
    tmp = tempfile.mkdtemp(prefix='hetero_bench_')
    cfg = os.path.join(tmp, 'serve.yaml')
    with open(cfg, 'w') as f:
        f.write(CONFIG)
    rclpy.init()
    procs = []
    try:
        # -- raw DDS relay ------------------------------------------------------------------
        relay = subprocess.Popen([sys.executable, '-c', RELAY] + topics)
        procs.append(relay)
        bench = Bench(topics, args.width, args.height)
        bench.wait_connected()
        raw = {}
        raw['sustained_hz'], raw['trials'] = sustained_rate(bench, duration_s=args.trial)
        raw['cpu'] = cpu_per_message(bench, relay.pid, CPU_RATE_HZ, args.trial)
        bench.reset()
        bench.paced(30.0, 3.0)
        time.sleep(0.5)
        with bench.lock:
            raw['p50_ms'], raw['p99_ms'] = pct(bench.lat, 50), pct(bench.lat, 99)
        bench.close()
        relay.kill()  # it only relays; nothing to flush
        relay.wait(10)
        out['raw_dds'] = raw
        # -- the node -------------------------------------------------------------------------
        log = open(os.path.join(tmp, 'node.log'), 'w')
        node = subprocess.Popen([sys.executable, '-m', 'hetero_infer.cli', 'serve', '--config',
                                 cfg, '--log-level', 'warn', '--dds-profile', 'none'],
                                stdout=log, stderr=log)
        procs.append(node)
        bench = Bench(topics, args.width, args.height)
        bench.wait_connected()
        out['node_plan'] = bench.wait_planned()
        bench.reset()
        sent = bench.paced(30.0, args.duration)
        time.sleep(0.5)
        with bench.lock:
            lat = list(bench.lat)
        out['node_latency'] = {'rate_hz_per_app': 30.0, 'image': [args.width, args.height],
                               'apps': 3, 'sent': sent,
                               'results': len(lat), 'added_p50_ms': pct(lat, 50),
                               'added_p99_ms': pct(lat, 99), 'added_max_ms': max(lat)}
        rate, trials = sustained_rate(bench, duration_s=args.trial)
        out['node_rate'] = {'sustained_hz': rate, 'trials': trials,
                            'cpu': cpu_per_message(bench, node.pid, CPU_RATE_HZ, args.trial)}
        bench.close()
        node.terminate()
        node.wait(15)
        log.close()
        if args.frames_seconds > 0:
            out['large_frames'] = large_frames(tmp, args.frames_seconds, procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        rclpy.try_shutdown()
    out['rate_ratio'] = out['node_rate']['sustained_hz'] / out['raw_dds']['sustained_hz']
    out['targets'] = {'added_p99_under_2ms': out['node_latency']['added_p99_ms'] < 2.0,
                      'rate_ratio_at_least_0.8': out['rate_ratio'] >= 0.8}
    # Both processes share this machine's cores with the driver, so with every core busy the
    # rates stand in about the ratio of (driver + relay) to (driver + node) CPU per message.
    rc, nc = out['raw_dds']['cpu'], out['node_rate']['cpu']
    out['cpu_bound_ratio'] = ((rc['driver_ms_per_msg'] + rc['process_ms_per_msg'])
                              / (nc['driver_ms_per_msg'] + nc['process_ms_per_msg']))
    nl, nr, rd = out['node_latency'], out['node_rate'], out['raw_dds']
    print('%-44s %10s' % ('measure (%dx%d rgb8, 3 topics)' % (args.width, args.height),
                           'value'))
    print('-' * 56)
    print('%-44s %10.3f' % ('node added latency p50 ms (30 Hz x 3)', nl['added_p50_ms']))
    print('%-44s %10.3f' % ('node added latency p99 ms (30 Hz x 3)', nl['added_p99_ms']))
    print('%-44s %10.3f' % ('raw DDS relay latency p99 ms (30 Hz x 3)', rd['p99_ms']))
    print('%-44s %10.1f' % ('raw DDS relay sustained msg/s (>=98% back)', rd['sustained_hz']))
    print('%-44s %10.1f' % ('node, zero-time backend, sustained req/s', nr['sustained_hz']))
    print('%-44s %10.2f' % ('node / raw', out['rate_ratio']))
    print('%-44s %10.3f' % ('relay CPU ms per message (%d msg/s)' % CPU_RATE_HZ,
                             rc['process_ms_per_msg']))
    print('%-44s %10.3f' % ('node CPU ms per request (%d msg/s)' % CPU_RATE_HZ,
                             nc['process_ms_per_msg']))
    print('%-44s %10.3f' % ('driver CPU ms per message, with relay', rc['driver_ms_per_msg']))
    print('%-44s %10.3f' % ('driver CPU ms per message, with node', nc['driver_ms_per_msg']))
    print('%-44s %10.2f' % ('(driver+relay) / (driver+node) CPU', out['cpu_bound_ratio']))
    for label, sizes in out.get('large_frames', {}).items():
        for size, c in sizes.items():
            print('%-44s %10s' % ('%s rgb8 30 Hz results, %s' % (size, label),
                                   '%d/%d' % (c['results'], c['sent'])))
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
