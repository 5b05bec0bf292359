"""Pluggable planning goals: ``get_goal(name_or_spec)(metrics) -> float`` to maximise."""

from hetero_infer.core.goals.base import (METRIC_NAMES, Goal, known_goals, metric_value,
                                          register_goal)
from hetero_infer.core.goals.registry import entry_point_goal, get_goal, weighted_goal

__all__ = ['METRIC_NAMES', 'Goal', 'entry_point_goal', 'get_goal', 'known_goals',
           'metric_value', 'register_goal', 'weighted_goal']
