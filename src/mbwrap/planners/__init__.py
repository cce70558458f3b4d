"""Planners as SB3 policies: model-predictive control over a world model."""

from mbwrap.planners.base import Objective, Planner
from mbwrap.planners.cem import CEM
from mbwrap.planners.icem import ICEM
from mbwrap.planners.ilqr import ILQR
from mbwrap.planners.mcts import MCTSPlanner
from mbwrap.planners.mppi import MPPI
from mbwrap.planners.objective import NONFINITE_RETURN, predicted_returns
from mbwrap.planners.poplin import POPLINA
from mbwrap.planners.random_shooting import RandomShooting

__all__ = [
    "CEM",
    "ICEM",
    "ILQR",
    "MPPI",
    "NONFINITE_RETURN",
    "POPLINA",
    "MCTSPlanner",
    "Objective",
    "Planner",
    "RandomShooting",
    "predicted_returns",
]
