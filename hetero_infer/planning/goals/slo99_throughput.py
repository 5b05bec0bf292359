"""Throughput at SLO99: the largest offered load (rates scaled together) at which every
application still meets its SLO for at least 99% of its requests (found by bisection)."""

from hetero_infer.planning.goals.base import Goal, metric_value


def slo99_throughput(metrics) -> float:
    return metric_value(metrics, 'slo99_throughput')


GOAL = Goal('slo99_throughput', slo99_throughput, needs=('slo99_throughput',),
            description='largest total rate (req/s) with 99% of every application within SLO')
