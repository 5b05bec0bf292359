"""Fairness: Jain's index over the applications' normalised throughput (throughput / rate)."""

from hetero_infer.planning.goals.base import Goal, metric_value


def fairness(metrics) -> float:
    return metric_value(metrics, 'fairness')


GOAL = Goal('fairness', fairness, needs=('fairness',),
            description="Jain's index of throughput / offered rate over the applications")
