"""Start, spin and stop ROS nodes: the one lifecycle every entry point uses.

:func:`ros_session` initialises rclpy, destroys the nodes created in it (last first) and shuts
rclpy down; it swallows only the ways a node is asked to stop (Ctrl-C, an external shutdown).
:func:`spin_nodes` spins nodes in a real executor on a thread of its own, so the caller keeps
its thread (progress lines, a duration). :func:`run_main` is the whole ``main`` of a node
executable: errors a user can act on (a bad parameter) become one line and exit status 1.
"""

import contextlib
import sys
import threading
import time
from typing import Callable, Iterator, List, Optional, Sequence

import rclpy
import rclpy.exceptions
from rclpy.executors import (
    ExternalShutdownException,
    MultiThreadedExecutor,
    ShutdownException,
    SingleThreadedExecutor,
)
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.node import Node

from hetero_infer.errors import ConfigError, HeteroInferError

#: What rcl raises for arguments it cannot parse (a bad ``-p`` value, a broken parameter file).
RCLError = rclpy_implementation.RCLError

#: What ends a node on purpose: Ctrl-C, or rclpy shut down from elsewhere (a signal handler).
SHUTDOWN_EXCEPTIONS = (KeyboardInterrupt, ExternalShutdownException, ShutdownException)

#: rclpy's errors about a parameter value (a declared range or type); reported like ours.
PARAMETER_EXCEPTIONS = (rclpy.exceptions.InvalidParameterException,
                        rclpy.exceptions.InvalidParameterTypeException,
                        rclpy.exceptions.InvalidParameterValueException)


def init(args: Optional[Sequence[str]] = None, *, context=None) -> None:
    """``rclpy.init``: rcl parses ``args`` (``--ros-args --params-file F -p name:=value``...).

    :raises ConfigError: rcl cannot parse them (its message, on one line).
    """
    try:
        rclpy.init(args=list(args) if args is not None else None, context=context)
    except RCLError as exc:
        text = ' '.join(str(exc).split('[ERROR]')[0].split())
        raise ConfigError('ROS arguments %s: %s' % (' '.join(args or ()), text)) from None


@contextlib.contextmanager
def ros_session(args: Optional[Sequence[str]] = None) -> Iterator[List[Node]]:
    """``with ros_session(argv) as nodes:`` -- rclpy initialised with ``argv`` (``--ros-args``
    and the rest, parsed by rcl), the nodes appended to ``nodes`` destroyed at the end (last
    first), rclpy shut down. Ctrl-C and external shutdowns end the block quietly; anything else
    propagates.

    :raises ConfigError: rcl cannot parse ``argv``.
    """
    init(args)
    nodes: List[Node] = []
    try:
        yield nodes
    except SHUTDOWN_EXCEPTIONS:
        pass
    finally:
        for n in reversed(nodes):
            n.destroy_node()
        rclpy.try_shutdown()


def make_executor(num_threads: int = 1):
    """The executor the nodes spin in: single-threaded unless more threads are asked for.

    (rclpy's experimental ``EventsExecutor`` would cost less per message, but in Jazzy's rclpy
    7.1 its timers never fired when spun from a thread and ``shutdown`` hung, so it is not used.)
    """
    if num_threads > 1:
        return MultiThreadedExecutor(num_threads=num_threads)
    return SingleThreadedExecutor()


def spin_nodes(nodes: Sequence[Node], *, duration_s: Optional[float] = None,
               num_threads: int = 1, on_tick: Optional[Callable[[], None]] = None,
               tick_s: float = 0.1) -> None:
    """Spin ``nodes`` in one executor until Ctrl-C, shutdown or ``duration_s``.

    One thread is the default: the executor serves parameters, timers and, with
    ``intake: executor``, the input callbacks, which are short (validation and routing;
    preprocessing and inference run on the processors' workers). ``on_tick()`` is called from
    the calling thread every ``tick_s``.
    """
    executor = make_executor(num_threads)
    for n in nodes:
        executor.add_node(n)
    spinner = threading.Thread(target=_spin, args=(executor,), name='hetero-infer-spin',
                               daemon=True)
    spinner.start()
    end = None if duration_s is None else time.monotonic() + duration_s
    try:
        while rclpy.ok() and spinner.is_alive() and (end is None or time.monotonic() < end):
            time.sleep(tick_s if end is None else max(0.0, min(tick_s, end - time.monotonic())))
            if on_tick is not None:
                on_tick()
    finally:
        executor.shutdown(timeout_sec=1.0)
        spinner.join(timeout=2.0)
        for n in nodes:
            executor.remove_node(n)


def _spin(executor) -> None:
    try:
        executor.spin()
    except SHUTDOWN_EXCEPTIONS[1:]:  # the main thread notices and ends too
        pass


def run_main(prog: str, make_nodes: Callable[[], Sequence[Node]],
             args: Optional[Sequence[str]] = None) -> int:
    """The ``main`` of a node executable: init, ``make_nodes()``, spin until stopped, shutdown.

    :returns: 0, or 1 after printing ``<prog>: error: ...`` for a bad configuration.
    """
    try:
        with ros_session(args) as nodes:
            try:
                nodes.extend(make_nodes())
            except PARAMETER_EXCEPTIONS as exc:
                print('%s: error: parameter: %s' % (prog, ' '.join(str(exc).split())),
                      file=sys.stderr)
                return 1
            spin_nodes(nodes)
    except HeteroInferError as exc:
        print('%s: error: %s' % (prog, ' '.join(str(exc).split())), file=sys.stderr)
        return 1
    return 0
