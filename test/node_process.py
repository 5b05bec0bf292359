"""Starting and stopping `hetero-infer serve` in its own process for the test_ros_* files."""

import os
import subprocess
import sys
import time


def start_serve(config_path: str, log_path: str, *extra: str):
    """The node process and its open log file (stdout and stderr go to ``log_path``)."""
    log = open(log_path, 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'hetero_infer.cli', 'serve', '--config',
                             str(config_path)] + list(extra), stdout=log,
                            stderr=subprocess.STDOUT, env=dict(os.environ))
    return proc, log


def stop_serve(proc, log, timeout_s: float = 15.0) -> bool:
    """Ask the node to stop (SIGTERM), kill it if it hangs, close its log.

    :returns: True when the node had to be killed (it did not end within ``timeout_s``), so a
        caller can tell a clean exit on SIGTERM (then ``proc.returncode`` is the node's own
        exit status) from a hang.
    """
    proc.terminate()
    killed = False
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        killed = True
    log.close()
    return killed


def probe_until_answered(pub, msg, spin_once, answered, timeout_s: float = 30.0) -> None:
    """Publish ``msg`` on ``pub`` until ``answered()``, spinning the caller's executor.

    Best-effort (sensor-data) inputs can lose what is published while discovery is still
    completing (the first frame, typically), so tests that count frames probe first.
    """
    end = time.monotonic() + timeout_s
    while not answered() and time.monotonic() < end:
        pub.publish(msg)
        stop = time.monotonic() + 0.2
        while not answered() and time.monotonic() < stop:
            spin_once(0.05)
    assert answered(), 'the node never answered a probe on %s' % pub.topic_name


def driver_node(name: str):
    """``rclpy.init()`` and this process's node with its executor (close with
    ``node.destroy_node(); rclpy.try_shutdown()``)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    rclpy.init()
    node = rclpy.create_node(name)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    return node, executor
