"""Round-robin: each application cycles through the processors its model can run on."""

from hetero_infer.planning.schedulers.interface import Plan, PlanContext, Scheduler


class RoundRobinDispatcher:
    name = 'round_robin'

    def __init__(self, allowed):
        self.allowed = [list(a) for a in allowed]
        self.next = [0] * len(self.allowed)

    def reset(self, apps, platform):
        self.next = [0] * len(self.allowed)

    def dispatch(self, app_index, now_ms, view):
        procs = self.allowed[app_index]
        k = self.next[app_index]
        self.next[app_index] = (k + 1) % len(procs)
        return procs[k]

    def completed(self, app_index, proc_id, latency_ms):
        pass


class RoundRobinScheduler(Scheduler):
    name = 'round_robin'
    description = 'cycle over the processors each model can run on'
    evaluated = True

    def _plan(self, ctx: PlanContext) -> Plan:
        procs = ctx.platform.processor_ids
        mask = ctx.mask()
        allowed = [[p for j, p in enumerate(procs) if mask[i, j]] for i in range(mask.shape[0])]
        return Plan(self.name, lambda: RoundRobinDispatcher(allowed))


SCHEDULER = RoundRobinScheduler()
