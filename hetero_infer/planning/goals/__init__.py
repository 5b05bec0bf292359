"""Pluggable planning goals: ``get_goal(name_or_spec)(metrics) -> float`` to maximise."""

from hetero_infer.planning.goals.base import (
                                          METRIC_NAMES,
                                          Goal,
                                          known_goals,
                                          metric_value,
                                          register_goal,
)
from hetero_infer.planning.goals.registry import (
                                          ENTRY_POINT_GROUP,
                                          entry_point_goal,
                                          get_goal,
                                          goal_names,
                                          load_entry_point_goals,
                                          weighted_goal,
)

__all__ = ['ENTRY_POINT_GROUP', 'METRIC_NAMES', 'Goal', 'entry_point_goal', 'get_goal',
           'goal_names', 'known_goals', 'load_entry_point_goals', 'metric_value',
           'register_goal', 'weighted_goal']
