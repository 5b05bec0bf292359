"""Processor faults end to end: the demo configuration served by a node in its own process (real
rclpy, real DDS, emulated Xavier) while dla1 fails with errors at 5 s for 5 s and dla0 hangs at
12 s for 5 s. This process publishes the demo's three streams at their rates and checks that
every message it published is answered exactly once, that results keep flowing through both
faults, that ``~/status`` and ``/diagnostics`` name the broken processor and why, and that both
processors serve again after they recover. conftest.py keeps DDS on localhost.
"""

import collections
import json
import os
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from node_process import driver_node, probe_until_answered, start_serve, stop_serve  # noqa: E402,E501
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Float32MultiArray, String  # noqa: E402

from hetero_infer.ros.conversions import array_to_image_fields  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CONFIG = os.path.join(ROOT, 'config', 'serve.yaml')
# (application, input topic, rate Hz) as in config/serve.yaml
STREAMS = (('detect', 'camera/front/image_raw', 30.0), ('classify', 'camera/rear/image_raw', 30.0),
           ('speech', 'audio/pcm', 10.0))
FAULTS = ('dla1:error@5+5', 'dla0:hang@12+5')
PUBLISH_UNTIL_S = 21.0   # node uptime: dla0 rejoins at ~17 + 3 probes x 0.5 s


def _image(seq):
    msg = Image(**array_to_image_fields(np.full((48, 64, 3), seq % 251, np.uint8), 'rgb8'))
    msg.header.stamp.sec = seq
    return msg


def test_faults_fail_over_with_every_message_answered_and_processors_come_back(tmp_path):
    log_path = str(tmp_path / 'node.log')
    # classify runs on the two DLAs only, so both get its requests whatever router options the
    # plan chooses (with share_tracking false a light load leaves dla1 idle while dla0 is free,
    # and a processor that receives nothing during its fault cannot be found failing)
    args = ['--set', 'plan_samples=12', '--set', 'plan_duration_s=1.0',
            '--set', 'status_period_s=0.25', '--set', 'probe_period_s=0.5',
            '--set', 'apps.classify.processors=[dla0, dla1]']
    for f in FAULTS:
        args += ['--fault', f]
    proc, log = start_serve(DEMO_CONFIG, log_path, *args)
    node, ex = driver_node('faults_test_driver')
    answers = {app: [] for app, _, _ in STREAMS}
    got_at = []     # (receipt time, application, document)
    status = []
    diag_errors = []

    def on_result(app, msg):
        doc = json.loads(msg.data)
        answers[app].append(doc)
        got_at.append((time.monotonic(), app, doc))

    def on_diag(msg):
        for s in msg.status:
            if s.level == DiagnosticStatus.ERROR:
                diag_errors.append((s.name, s.message))

    for app, _, _ in STREAMS:
        node.create_subscription(String, 'results/' + app,
                                 lambda m, app=app: on_result(app, m), QoSProfile(depth=1000))
    node.create_subscription(String, '/scheduler/status',
                             lambda m: status.append((time.monotonic(), json.loads(m.data))), 50)
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 50)
    pubs = {'detect': node.create_publisher(Image, STREAMS[0][1], 100),
            'classify': node.create_publisher(Image, STREAMS[1][1], 100),
            'speech': node.create_publisher(Float32MultiArray, STREAMS[2][1], 100)}
    published = {app: 0 for app in pubs}

    def message(app, seq):
        if app == 'speech':
            return Float32MultiArray(data=(0.1 * np.sin(np.arange(1600) * 0.01 * (1 + seq % 7))
                                           ).astype(np.float32))
        return _image(seq)

    try:
        end = time.monotonic() + 60.0
        while (not status or any(p.get_subscription_count() == 0 for p in pubs.values())) \
                and time.monotonic() < end and proc.poll() is None:
            ex.spin_once(timeout_sec=0.05)
        assert proc.poll() is None, open(log_path).read()[-3000:]
        for app, pub in pubs.items():
            before = len(answers[app])
            probe_until_answered(
                pub, message(app, 0), ex.spin_once,
                lambda app=app, before=before: len(answers[app]) > before)
        # the probes (possibly several copies each) count as published: only what was
        # published before the node answered is uncertain, so start the count from here
        ex.spin_once(timeout_sec=0.3)
        for app in answers:
            del answers[app][:]
        del got_at[:]
        uptime0 = status[-1][1]['uptime_s']
        t0 = status[-1][0]
        # dla1's fault (5-10 s) must still be on when traffic flows
        assert uptime0 < 8.0, 'the node took %.1f s to answer: the faults started first' % uptime0
        next_at = {app: t0 for app in pubs}
        period = {app: 1.0 / rate for app, _, rate in STREAMS}
        seq = {app: 1 for app in pubs}
        stop = t0 + (PUBLISH_UNTIL_S - uptime0)
        while time.monotonic() < stop:
            now = time.monotonic()
            for app, pub in pubs.items():
                if now >= next_at[app]:
                    pub.publish(message(app, seq[app]))
                    seq[app] += 1
                    published[app] += 1
                    next_at[app] += period[app]
            ex.spin_once(timeout_sec=max(0.0, min(next_at.values()) - time.monotonic()))
        drain = time.monotonic() + 10.0
        while (any(len(answers[a]) < published[a] for a in pubs)
               and time.monotonic() < drain):
            ex.spin_once(timeout_sec=0.05)
        ex.spin_once(timeout_sec=0.5)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        stop_serve(proc, log)
    text = open(log_path).read()

    # every message published is answered exactly once
    for app in pubs:
        ids = [d['request_id'] for d in answers[app]]
        assert len(ids) == len(set(ids)) == published[app], (app, len(ids), len(set(ids)),
                                                             published[app], text[-3000:])
        if app != 'speech':
            assert sorted(d['stamp']['sec'] for d in answers[app]) == \
                list(range(1, published[app] + 1))
    docs = [d for a in answers.values() for d in a]
    results = [d for d in docs if d['outcome'] == 'result']
    drops = [d for d in docs if d['outcome'] == 'dropped']
    print('published %s; results %d, drops %s' % (
        published, len(results), collections.Counter(d['drop_reason'] for d in drops)))
    assert len(results) >= 0.9 * len(docs), [(d['drop_reason'], d['detail']) for d in drops]
    # results keep flowing: every second of publishing brought some
    times = [t for t, _, d in got_at if d['outcome'] == 'result']
    for k in range(int(PUBLISH_UNTIL_S - uptime0) - 1):
        assert any(t0 + k <= t < t0 + k + 1 for t in times), 'no result in second %d' % k

    # the status and /diagnostics named the processor and why
    def health(proc_id):
        return [(t, s['uptime_s'], s['processors'][proc_id]['health']) for t, s in status]

    down1 = [h for _, _, h in health('dla1') if not h['healthy']]
    down0 = [h for _, _, h in health('dla0') if not h['healthy']]
    assert down1 and '3 consecutive failures' in down1[0]['reason'] \
        and 'injected fault (error)' in down1[0]['reason'], down1[:1]
    assert down0 and down0[0]['reason'].startswith('hang: '), down0[:1]
    assert any('dla1' in name and 'unhealthy' in m for name, m in diag_errors), diag_errors[:3]
    assert any('dla0' in name and 'hang' in m for name, m in diag_errors), diag_errors[:3]
    assert status[-1][1]['late_discarded'] >= 1  # dla0's hung inference came back at 17 s

    # both processors healthy and used again after they recovered
    for proc_id in ('dla1', 'dla0'):
        seen_down = False
        back_at = None
        for t, _, h in health(proc_id):
            seen_down = seen_down or not h['healthy']
            if seen_down and h['healthy']:
                back_at = t
                break
        assert back_at is not None, (proc_id, health(proc_id)[-1])
        used = [d for t, _, d in got_at
                if t > back_at and d['outcome'] == 'result' and d['processor'] == proc_id]
        assert used, '%s never used after it recovered' % proc_id
    assert status[-1][1]['unhealthy'] == {}
