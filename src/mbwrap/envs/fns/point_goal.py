"""Reward of ``mbwrap/PointGoal-v0`` on batched ``Dict`` observations (dicts of leaves)."""

from __future__ import annotations

import torch

from mbwrap.envs.fns.base import EnvFns

# mbwrap/envs/point_goal.py, PointGoalEnv's default distance_threshold (FetchReach's).
_DISTANCE_THRESHOLD = 0.05


def _point_goal_reward(
    obs: dict[str, torch.Tensor], action: torch.Tensor, next_obs: dict[str, torch.Tensor]
) -> torch.Tensor:
    """``0`` where ``next_obs["achieved_goal"]`` is within the threshold of
    ``next_obs["desired_goal"]``, else ``-1``: ``[B]`` float32."""
    distance = torch.linalg.vector_norm(
        next_obs["achieved_goal"] - next_obs["desired_goal"], dim=-1
    )
    return -(distance > _DISTANCE_THRESHOLD).float()


def _never_terminates(
    obs: dict[str, torch.Tensor], action: torch.Tensor, next_obs: dict[str, torch.Tensor]
) -> torch.Tensor:
    """All ``False``, ``[B]``: episodes end by the time limit only."""
    return torch.zeros(action.shape[0], dtype=torch.bool, device=action.device)


POINT_GOAL_FNS = EnvFns(reward=_point_goal_reward, termination=_never_terminates)
