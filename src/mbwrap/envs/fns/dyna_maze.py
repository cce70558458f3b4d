"""Reward and termination of ``mbwrap/DynaMaze-v0``: 1 and the end on reaching the goal."""

from __future__ import annotations

import torch

from mbwrap.envs.dyna_maze import DynaMazeEnv
from mbwrap.envs.fns.base import EnvFns

_GOAL = DynaMazeEnv().goal_state


def _reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    return (next_obs == _GOAL).float()


def _termination(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    return next_obs == _GOAL


DYNA_MAZE_FNS = EnvFns(reward=_reward, termination=_termination)
