"""A user goal that raises: reported as the goal's error, not as a traceback or a bug."""


def broken(metrics):
    return metrics.no_such_metric
