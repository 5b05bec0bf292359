"""The predictor base class and :class:`LatencyTable`, the memo the planner's simulator reads."""

from typing import Dict, List, Optional, Sequence, Tuple

from hetero_infer.errors import ConfigError
from hetero_infer.models.layers import ModelSpec


class Predictor:
    """Base class: ``latency_ms(model, proc, corunners) -> float``.

    A subclass sets ``name`` (its key in the registry, :mod:`.registry`) and, when it needs more
    than the platform, overrides :meth:`for_context`.
    """

    name = 'predictor'

    @classmethod
    def for_context(cls, ctx) -> 'Predictor':
        """The predictor a scheduler's search uses for plan context ``ctx`` (a
        ``PlanContext``: ``platform``, ``apps``, ``seed``, ``settings``, ``options``)."""
        return cls(ctx.platform)

    def latency_ms(self, model: ModelSpec, proc: str, corunners: Dict[str, ModelSpec]) -> float:
        raise NotImplementedError

    def latencies_ms(self, jobs: Dict[str, ModelSpec]) -> Dict[str, float]:
        """Latency of every job of one co-run configuration (``{proc: model}``)."""
        out = {}
        for proc, model in jobs.items():
            others = {p: m for p, m in jobs.items() if p != proc}
            out[proc] = self.latency_ms(model, proc, others)
        return out


class LatencyTable:
    """Memoised predictions for one application set, indexed the way the simulator asks.

    ``get(app, proc_index, running)`` where ``running`` is a tuple with, per processor, the index
    of the application running there or -1; the entry of ``proc_index`` itself is ignored.
    """

    def __init__(self, predictor: Predictor, models: Sequence[ModelSpec],
                 processor_ids: Sequence[str]) -> None:
        self.predictor = predictor
        self.models = list(models)
        self.processor_ids = tuple(processor_ids)
        self._table: Dict[Tuple, float] = {}

    def get(self, app: int, proc_index: int, running: Tuple[int, ...]) -> float:
        key = (app, proc_index) + tuple(-2 if j == proc_index else a
                                        for j, a in enumerate(running))
        hit = self._table.get(key)
        if hit is not None:
            return hit
        procs = self.processor_ids
        jobs = {procs[j]: self.models[a] for j, a in enumerate(running)
                if a >= 0 and j != proc_index}
        jobs[procs[proc_index]] = self.models[app]
        lat = self.predictor.latencies_ms(jobs)
        # one co-run configuration answers for every processor in it
        for j, p in enumerate(procs):
            if p not in jobs:
                continue
            a = app if j == proc_index else running[j]
            state = [(-1 if p2 not in jobs else (app if j2 == proc_index else running[j2]))
                     for j2, p2 in enumerate(procs)]
            state[j] = -2
            self._table[(a, j) + tuple(state)] = float(lat[p])
        return self._table[key]

    def prefill(self, allowed: List[List[int]]) -> int:
        """Fill every configuration the applications' allowed processors can produce.

        :param allowed: per application, indices of the processors it may run on.
        :returns: the number of entries.
        """
        n_procs = len(self.processor_ids)
        options = [[-1] + [a for a in range(len(self.models)) if j in allowed[a]]
                   for j in range(n_procs)]

        def rec(j, state):
            if j == n_procs:
                for k, a in enumerate(state):
                    if a >= 0:
                        self.get(a, k, tuple(state))
                return
            for a in options[j]:
                rec(j + 1, state + [a])

        rec(0, [])
        return len(self._table)

    def snapshot(self) -> Dict[Tuple, float]:
        return dict(self._table)

    @classmethod
    def from_snapshot(cls, entries: Dict[Tuple, float], models, processor_ids,
                      predictor: Optional[Predictor] = None) -> 'LatencyTable':
        table = cls(predictor or _Missing(), models, processor_ids)
        table._table.update(entries)
        return table


class _Missing(Predictor):
    name = 'missing'

    def latencies_ms(self, jobs):
        raise ConfigError('latency table has no entry for co-run %s'
                          % {p: m.name for p, m in jobs.items()})
