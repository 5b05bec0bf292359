"""Starting and stopping `hetero-infer serve` in its own process for the test_ros_* files."""

import os
import subprocess
import sys


def start_serve(config_path: str, log_path: str, *extra: str):
    """The node process and its open log file (stdout and stderr go to ``log_path``)."""
    log = open(log_path, 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'hetero_infer.cli', 'serve', '--config',
                             str(config_path)] + list(extra), stdout=log,
                            stderr=subprocess.STDOUT, env=dict(os.environ))
    return proc, log


def stop_serve(proc, log, timeout_s: float = 15.0) -> None:
    """Ask the node to stop (SIGTERM), kill it if it hangs, close its log."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
