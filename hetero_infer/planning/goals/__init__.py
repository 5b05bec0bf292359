"""Pluggable planning goals: ``get_goal(name_or_spec)(metrics) -> float`` to maximise."""

from hetero_infer.planning.goals.base import METRIC_NAMES, Goal, metric_value
from hetero_infer.planning.goals.registry import (
                                          ENTRY_POINT_GROUP,
                                          GOALS,
                                          entry_point_goal,
                                          get_goal,
                                          known_goals,
                                          register_goal,
                                          weighted_goal,
)

__all__ = ['ENTRY_POINT_GROUP', 'GOALS', 'METRIC_NAMES', 'Goal', 'entry_point_goal', 'get_goal',
           'known_goals', 'metric_value', 'register_goal', 'weighted_goal']
