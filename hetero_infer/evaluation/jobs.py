"""Where the evaluation's jobs run: this process, a local process pool, or a Dask cluster.

One small interface (``submit(fn, *args) -> future``, ``wait_any(futures) -> done``,
``close()``) over three engines, so the evaluation's pipeline (plan jobs, then scenario x
replication measurement jobs, submitted as their inputs become ready) is written once:

* :class:`SerialJobs`: in this process (one worker, or no usable process pool);
* :class:`PoolJobs`: ``concurrent.futures.ProcessPoolExecutor`` (fork where available), the
  default, needing nothing beyond the package;
* :class:`DaskJobs`: a Dask distributed cluster (the optional ``cluster`` extra): an address
  (``tcp://host:8786``, from ``dask scheduler`` + ``dask worker`` on each machine), ``local`` /
  ``local:N`` for a ``LocalCluster`` of N single-threaded worker processes on this machine, or a
  ``distributed.Client`` object (tests pass one on an in-process cluster).

Every job is a module-level function of picklable arguments whose result depends only on its
arguments (all randomness is seeded), so the engines give identical results.
"""

from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Callable, Iterable, Set

from hetero_infer.errors import ConfigError


class SerialJobs:
    """Runs each job at submission, in this process."""

    name = 'serial'
    workers = 1

    def submit(self, fn: Callable, *args) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - delivered through future.result(), like a pool's
            fut.set_exception(exc)
        return fut

    def wait_any(self, futures: Iterable) -> Set:
        return {f for f in futures if f.done()}

    def close(self) -> None:
        pass


class PoolJobs:
    """A local process pool (fork start method where the platform has it)."""

    name = 'process pool'

    def __init__(self, workers: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        ctx = multiprocessing.get_context('fork') \
            if 'fork' in multiprocessing.get_all_start_methods() else None
        self.workers = workers
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)

    def submit(self, fn: Callable, *args) -> Future:
        return self.pool.submit(fn, *args)

    def wait_any(self, futures: Iterable) -> Set:
        done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
        return set(done)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class DaskJobs:
    """Jobs on a Dask distributed cluster (``pip install hetero_infer[cluster]``)."""

    name = 'dask'

    def __init__(self, cluster) -> None:
        try:
            import distributed
        except ImportError:
            raise ConfigError('--cluster %r needs Dask distributed: pip install '
                              '"hetero_infer[cluster]" (or distributed)' % (cluster,)) from None
        self._distributed = distributed
        self._own = []
        if isinstance(cluster, distributed.Client):
            self.client = cluster
        elif isinstance(cluster, str) and (cluster == 'local' or cluster.startswith('local:')):
            n = cluster.partition(':')[2]
            try:
                n_workers = int(n) if n else None
            except ValueError:
                raise ConfigError('--cluster %r: expected local or local:N with N an integer'
                                  % cluster) from None
            if n_workers is not None and n_workers < 1:
                raise ConfigError('--cluster %r: N must be >= 1' % cluster)
            # single-threaded worker processes: the simulators are pure Python (GIL-bound)
            lc = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                          processes=True, dashboard_address=None)
            self.client = distributed.Client(lc)
            self._own = [self.client, lc]
        elif isinstance(cluster, str) and cluster:
            try:
                self.client = distributed.Client(cluster, timeout=30)
            except (OSError, TimeoutError) as exc:
                raise ConfigError('--cluster %r: cannot reach a Dask scheduler there (%s)'
                                  % (cluster, exc)) from None
            self._own = [self.client]
        else:
            raise ConfigError('--cluster: expected an address, local or local:N, got %r'
                              % (cluster,))
        info = self.client.scheduler_info()
        self.workers = sum(w.get('nthreads', 1) for w in info.get('workers', {}).values()) or 1

    def submit(self, fn: Callable, *args):
        return self.client.submit(fn, *args, pure=False)

    def wait_any(self, futures: Iterable) -> Set:
        res = self._distributed.wait(list(futures), return_when='FIRST_COMPLETED')
        return set(res.done)

    def close(self) -> None:
        for obj in self._own:
            obj.close()


def make_jobs(workers: int = 1, cluster=None):
    """The engine for ``cluster`` (see the module doc) or, without one, a pool of ``workers``
    processes (serial for 1 or when no pool can be made)."""
    if cluster is not None:
        return DaskJobs(cluster)
    if workers > 1:
        try:
            return PoolJobs(workers)
        except (OSError, ValueError, ImportError, NotImplementedError):
            pass
    return SerialJobs()
