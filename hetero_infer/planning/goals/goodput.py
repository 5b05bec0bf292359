"""Goodput: requests completed within their SLO per second (Clockwork's definition)."""

from hetero_infer.planning.goals.base import Goal, metric_value


def goodput(metrics) -> float:
    return metric_value(metrics, 'goodput')


GOAL = Goal('goodput', goodput, needs=('goodput',),
            description='requests finished within their SLO per second')
