"""Planners as SB3 policies: model-predictive control over a world model."""

from mbwrap.planners.base import Objective, Planner
from mbwrap.planners.cem import CEM
from mbwrap.planners.icem import ICEM
from mbwrap.planners.ilqr import ILQR
from mbwrap.planners.lqg import (
    KLStep,
    LinearGaussianController,
    LinearGaussianDynamics,
    NotPositiveDefiniteError,
    QuadraticCost,
    controller_kl,
    controller_penalty,
    expected_cost,
    kl_step,
    lqg_backward,
    quadratic_expansion,
    trajectory_marginals,
)
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
    "KLStep",
    "LinearGaussianController",
    "LinearGaussianDynamics",
    "MCTSPlanner",
    "NotPositiveDefiniteError",
    "Objective",
    "Planner",
    "QuadraticCost",
    "RandomShooting",
    "controller_kl",
    "controller_penalty",
    "expected_cost",
    "kl_step",
    "lqg_backward",
    "predicted_returns",
    "quadratic_expansion",
    "trajectory_marginals",
]
