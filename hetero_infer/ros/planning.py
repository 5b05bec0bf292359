"""Planning for the node, in a separate process.

The policy search is CPU-bound Python; run in the node's process it would hold the GIL for
seconds and stall conversion, routing and publishing (latency spikes while re-planning). So the
node keeps one spawned worker process (``spawn``: forking a process that runs DDS threads is not
safe) and sends it plain data; the worker rebuilds platform, models, predictor and goal.
"""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
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


def run_plan(req: Dict[str, Any]) -> Dict[str, Any]:
    """Search a policy for ``req``; returns the policy as a dict and what the search found.

    Uses the committed interference model of the platform when there is one, else isolated
    latencies (``predictor`` in the answer says which).
    """
    from hetero_infer.core import search
    from hetero_infer.core.model import load_model
    from hetero_infer.core.platform import Platform
    from hetero_infer.core.predictors import InterferencePredictor, IsolatedPredictor
    from hetero_infer.core.workload import App
    from hetero_infer.errors import HeteroInferError

    platform = Platform.load(req['platform'], power_mode=req['power_mode'] or None)
    apps = [App(name, load_model(model), max(float(rate), 0.1), float(slo), tuple(procs))
            for name, model, rate, slo, procs in req['apps']]
    note = ''
    try:
        predictor = InterferencePredictor(platform)
    except HeteroInferError as exc:
        predictor = IsolatedPredictor(platform)
        note = str(exc)
    settings = search.SimSettings(duration_s=req['duration_s'],
                                  warmup_s=min(0.3, req['duration_s'] / 10.0), seed=req['seed'],
                                  max_queue=req['max_queue'])
    result = search.plan(platform, apps, req['goal'], predictor, settings=settings,
                         n_samples=req['n_samples'], seed=req['seed'], workers=1,
                         max_refine_evals=max(10, req['n_samples'] // 4))
    return {'policy': result.policy.to_dict(), 'mask': result.policy.mask.tolist(),
            'goal': result.goal, 'predictor': result.predictor, 'score': result.score,
            'search_time_s': result.search_time_s, 'metrics': dict(result.metrics),
            'predictor_note': note}


class Planner:
    """One background process that runs :func:`run_plan` jobs, one at a time.

    :param in_process: run jobs in the calling thread instead (tests, or where processes cannot
        be spawned).
    """

    def __init__(self, *, in_process: bool = False) -> None:
        self._pool: Optional[ProcessPoolExecutor] = None
        self._in_process = in_process

    def plan(self, req: Dict[str, Any], *, timeout_s: Optional[float] = None) -> Dict[str, Any]:
        """Run one job and wait for it.

        :raises ConfigError: the job failed (the worker's message included).
        """
        if self._in_process:
            return run_plan(req)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1,
                                             mp_context=multiprocessing.get_context('spawn'))
        try:
            return self._pool.submit(run_plan, req).result(timeout=timeout_s)
        except Exception as exc:
            if type(exc).__name__ == 'BrokenProcessPool':
                self._pool = None
            raise ConfigError('planning failed: %s: %s' % (type(exc).__name__, exc)) from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def policy_from_answer(answer: Dict[str, Any]):
    from hetero_infer.core.policy import Policy
    return Policy.from_dict(answer['policy'], mask=answer['mask'])


def app_rows(apps: Sequence[Any], procs: Sequence[str], mask, rates: Sequence[float]
             ) -> List[Tuple[str, str, float, float, Tuple[str, ...]]]:
    """Plain rows (name, model, rate_hz, slo_ms, processors) of the node's applications."""
    out = []
    for app, rate in zip(apps, rates):
        allowed = tuple(p for j, p in enumerate(procs) if mask[app.index][j])
        out.append((app.cfg.name, app.cfg.model, float(rate), float(app.slo_ms), allowed))
    return out
