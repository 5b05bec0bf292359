"""Weighted goodput: requests completed within their SLO per second, each counted at its
application's ``weight`` (the same as goodput when every weight is 1)."""

from hetero_infer.planning.goals.base import Goal, metric_value


def weighted_goodput(metrics) -> float:
    return metric_value(metrics, 'weighted_goodput')


GOAL = Goal('weighted_goodput', weighted_goodput, needs=('weighted_goodput',),
            description="requests finished within their SLO per second, times their "
                        "application's weight")
