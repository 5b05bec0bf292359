"""Least expected finish time: each request goes where it would finish first, judged from
isolated latencies (``view.expected_free_ms(p)`` + the model's isolated latency on ``p``)."""

from hetero_infer.planning.schedulers.interface import Plan, PlanContext, Scheduler


class LeastFinishTimeDispatcher:
    name = 'least_finish_time'

    def __init__(self, procs, iso_ms, mask):
        self.options = [[(p, float(iso_ms[i][j])) for j, p in enumerate(procs) if mask[i][j]]
                        for i in range(len(iso_ms))]

    def reset(self, apps, platform):
        pass

    def dispatch(self, app_index, now_ms, view):
        best, best_t = None, float('inf')
        for p, lat in self.options[app_index]:
            t = view.expected_free_ms(p) + lat
            if t < best_t:
                best, best_t = p, t
        return best

    def completed(self, app_index, proc_id, latency_ms):
        pass


class LeastFinishTimeScheduler(Scheduler):
    name = 'least_finish_time'
    description = 'send each request where it is expected to finish first (isolated latencies)'
    evaluated = True

    def _plan(self, ctx: PlanContext) -> Plan:
        procs = ctx.platform.processor_ids
        iso, mask = ctx.isolated_ms(), ctx.mask()
        return Plan(self.name, lambda: LeastFinishTimeDispatcher(procs, iso, mask))


SCHEDULER = LeastFinishTimeScheduler()
