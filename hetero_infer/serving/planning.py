"""The planner process of the serving core.

The policy search is CPU-bound Python; run in the serving process it would hold the GIL for seconds
and stall conversion, routing and publishing (latency spikes while re-planning). So the service
keeps one worker process, ``python -m hetero_infer.serving.planning``, and talks to it with one
JSON line per job on its stdin / stdout; the worker rebuilds platform, models, predictor and goal
from plain data. A plain subprocess rather than multiprocessing: forking a process that runs DDS
threads is unsafe, and ``spawn`` re-imports the caller's ``__main__`` (a user script without a main
guard would start a second node). The worker exits when its stdin closes, so it never outlives the
service.
"""

import json
import subprocess
import sys
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

from hetero_infer.errors import ConfigError


def plan_request(*, platform: str, power_mode: str, apps: Sequence[Tuple[str, str, float, float,
                                                                          Tuple[str, ...]]],
                 goal: Any, n_samples: int, duration_s: float, seed: int,
                 max_queue: int) -> Dict[str, Any]:
    """Plain-data description of one planning job (see :func:`run_plan`)."""
    return {'platform': platform, 'power_mode': power_mode, 'apps': [tuple(a) for a in apps],
            'goal': goal, 'n_samples': int(n_samples), 'duration_s': float(duration_s),
            'seed': int(seed), 'max_queue': int(max_queue)}


#: The scheduler the service plans with, as ``hetero-infer plan`` does by default; the one it
#: falls back to when the platform has no trained interference model; the one that gives the
#: policy serving starts with, before the first plan is done.
PLANNING_SCHEDULER = 'interference_aware'
FALLBACK_SCHEDULER = 'no_interference'
INITIAL_SCHEDULER = 'base'


def plan_context(req: Dict[str, Any]):
    """The :class:`~hetero_infer.planning.schedulers.PlanContext` of a job: what ``hetero-infer
    plan`` builds from a scenario, built from the service's applications."""
    from hetero_infer.models.zoo import load_model
    from hetero_infer.planning import search
    from hetero_infer.planning.schedulers import PlanContext
    from hetero_infer.platform.spec import Platform
    from hetero_infer.workload.requests import App

    platform = Platform.load(req['platform'], power_mode=req['power_mode'] or None)
    apps = [App(name, load_model(model), max(float(rate), 0.1), float(slo), tuple(procs))
            for name, model, rate, slo, procs in req['apps']]
    settings = search.SimSettings(duration_s=req['duration_s'],
                                  warmup_s=min(0.3, req['duration_s'] / 10.0), seed=req['seed'],
                                  max_queue=req['max_queue'])
    return PlanContext(platform=platform, apps=apps, goal=req['goal'], seed=req['seed'],
                       settings=settings, n_samples=req['n_samples'], workers=1,
                       max_refine_evals=max(10, req['n_samples'] // 4))


def initial_policy(req: Dict[str, Any]):
    """The policy serving starts with: the scheduler registry's ``base`` plan (shares in
    proportion to each processor's isolated throughput), made in the calling process (it
    searches nothing)."""
    from hetero_infer.planning.schedulers import get_scheduler
    return get_scheduler(INITIAL_SCHEDULER).plan(plan_context(req)).policy


def run_plan(req: Dict[str, Any]) -> Dict[str, Any]:
    """Plan ``req`` through the scheduler registry, as ``hetero-infer plan`` does: the
    interference-aware scheduler, or the no-interference one when the platform has no trained
    interference model (``predictor_note`` says why). Returns the policy as a dict and what the
    search found."""
    from hetero_infer.errors import HeteroInferError
    from hetero_infer.interference.predictors import load_latency_predictor
    from hetero_infer.planning.schedulers import get_scheduler

    ctx = plan_context(req)
    scheduler, note = PLANNING_SCHEDULER, ''
    try:
        load_latency_predictor(ctx.platform)  # as `hetero-infer plan` checks it first
    except HeteroInferError as exc:
        scheduler, note = FALLBACK_SCHEDULER, str(exc)
    plan = get_scheduler(scheduler).plan(ctx)
    result = plan.search
    return {'policy': plan.policy.to_dict(), 'mask': plan.policy.mask.tolist(),
            'scheduler': scheduler, 'goal': result.goal, 'predictor': result.predictor,
            'score': result.score, 'search_time_s': plan.plan_time_s,
            'metrics': dict(result.metrics), 'predictor_note': note}


class Planner:
    """One background worker process that runs :func:`run_plan` jobs, one at a time.

    :param in_process: run jobs in the calling thread instead (tests, or where processes cannot
        be started).
    """

    def __init__(self, *, in_process: bool = False) -> None:
        self._proc: Optional[subprocess.Popen] = None
        self._in_process = in_process
        self._lock = threading.Lock()

    def plan(self, req: Dict[str, Any]) -> Dict[str, Any]:
        """Run one job and wait for it.

        :raises ConfigError: the job failed (the worker's message included).
        """
        if self._in_process:
            return run_plan(req)
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = subprocess.Popen(
                    [sys.executable, '-m', 'hetero_infer.serving.planning'], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, universal_newlines=True, bufsize=1)
            proc = self._proc
            try:
                proc.stdin.write(json.dumps(req) + '\n')
                proc.stdin.flush()
                line = proc.stdout.readline()
            except (OSError, ValueError) as exc:
                line = ''
                err = str(exc)
            else:
                err = 'worker exited with %s' % proc.poll()
        if not line:
            raise ConfigError('planning failed: %s' % err)
        answer = json.loads(line)
        if 'error' in answer:
            raise ConfigError('planning failed: %s' % answer['error'])
        return answer

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()


def _worker_main() -> int:
    """Serve JSON-line jobs on stdin until it closes (or Ctrl-C, which reaches the whole
    process group: the service closes the worker itself)."""
    try:
        return _serve_jobs()
    except KeyboardInterrupt:
        return 0


def _serve_jobs() -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = run_plan(json.loads(line))
        except Exception as exc:  # noqa: BLE001 - reported to the node, which keeps its current policy
            answer = {'error': '%s: %s' % (type(exc).__name__, exc)}
        sys.stdout.write(json.dumps(answer) + '\n')
        sys.stdout.flush()
    return 0


def policy_from_answer(answer: Dict[str, Any]):
    from hetero_infer.planning.policy import Policy
    return Policy.from_dict(answer['policy'], mask=answer['mask'])


def app_rows(apps: Sequence[Any], procs: Sequence[str], mask, rates: Sequence[float]
             ) -> List[Tuple[str, str, float, float, Tuple[str, ...]]]:
    """Plain rows (name, model, rate_hz, slo_ms, processors) of the node's applications."""
    out = []
    for app, rate in zip(apps, rates):
        allowed = tuple(p for j, p in enumerate(procs) if mask[app.index][j])
        out.append((app.cfg.name, app.cfg.model, float(rate), float(app.slo_ms), allowed))
    return out


if __name__ == '__main__':
    sys.exit(_worker_main())
