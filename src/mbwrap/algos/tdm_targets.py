"""The targets of temporal difference models (TDM; Pong, Gu, Dalal & Levine 2018,
"Temporal Difference Models: Model-Free Deep RL for Model-Based Control"), as pure
functions on batches.

A TDM ``Q(s, a, g, tau)`` predicts how close to goal ``g`` the agent will be ``tau`` steps
after taking ``a`` in ``s``. Its Bellman target (the paper's Eq. 5) is the reward
``-|s' - g|`` (per goal dimension, the vectorised TDM) where ``tau = 0`` and
``max_a' Q(s', a', g, tau - 1)`` otherwise, with no discount: ``tau`` is the horizon.
"""

from __future__ import annotations

import torch

# Keys of the observations a TDM's actor and critic read (the env's ``achieved_goal`` is
# not among them: it is a function of the state).
OBSERVATION, GOAL, HORIZON = "observation", "desired_goal", "tau"


def horizon_targets(
    next_achieved: torch.Tensor,
    goal: torch.Tensor,
    tau: torch.Tensor,
    terminated: torch.Tensor,
    *,
    vectorized: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards and ends of the TDM targets of a batch of transitions.

    The horizon ends where ``tau = 0``, and where the real episode terminated (the state
    then stays put, so its distance after ``tau`` more steps is the distance now).

    :param next_achieved: ``[B, D]``, the goal the next state achieves.
    :param goal: ``[B, D]``, the (relabelled) goal.
    :param tau: ``[B]`` long, the (relabelled) horizon.
    :param terminated: ``[B]`` bool, the real transition ended in a terminal state.
    :param vectorized: one row per goal dimension, in the order ``b * D + d`` (the paper's
        vector TDM), else one row per transition with the Euclidean distance.
    :return: ``(rewards, dones)``, each ``[B * D]`` when vectorised, else ``[B]``: the
        negative distance where the horizon ends and 0 elsewhere, and float 1 where it
        ends (SB3's ``dones``: no bootstrap).
    """
    ends = (tau == 0) | terminated
    gap = next_achieved - goal
    if vectorized:
        ends = ends.repeat_interleave(goal.shape[1])
        distance = gap.abs().reshape(-1)
    else:
        distance = torch.linalg.vector_norm(gap, dim=1)
    return torch.where(ends, -distance, torch.zeros_like(distance)), ends.float()


def horizon_observation(
    observation: torch.Tensor, goal: torch.Tensor, tau: torch.Tensor
) -> dict[str, torch.Tensor]:
    """What a TDM's actor and critic read: ``{"observation": [B, *obs_shape],
    "desired_goal": [B, D], "tau": [B, 1]}`` (float32), from ``observation: [B,
    *obs_shape]``, ``goal: [B, D]``, ``tau: [B]``."""
    return {
        OBSERVATION: observation.float(),
        GOAL: goal.float(),
        HORIZON: tau.float().reshape(-1, 1),
    }


def next_horizons(tau: torch.Tensor, max_tau: int) -> torch.Tensor:
    """The horizon after one acting step: ``tau - 1``, back to ``max_tau`` after 0 (the
    cycle the paper's authors act with, so the policy keeps aiming at the goal).

    :param tau: ``[B]`` long, in ``0 .. max_tau``.
    """
    return torch.where(tau > 0, tau - 1, torch.full_like(tau, max_tau))
