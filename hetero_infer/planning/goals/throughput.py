"""Throughput: completed requests per second, SLO or not."""

from hetero_infer.planning.goals.base import Goal, metric_value


def throughput(metrics) -> float:
    return metric_value(metrics, 'throughput')


GOAL = Goal('throughput', throughput, needs=('throughput',),
            description='completed requests per second')
