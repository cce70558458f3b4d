"""Planners as SB3 policies: model-predictive control over a world model."""

from mbwrap.planners.base import Objective, Planner
from mbwrap.planners.objective import predicted_returns
from mbwrap.planners.random_shooting import RandomShooting

__all__ = ["Objective", "Planner", "RandomShooting", "predicted_returns"]
