"""Known models for planner tests: the optimum of every objective is known by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces

from mbwrap.models import WorldModel
from mbwrap.types import ModelStep


class ShiftModel(WorldModel):
    """``s' = s + a`` with reward ``-||s' - goal||^2``: known, deterministic, differentiable.

    With Box actions in ``[-1, 1]^D`` the best first action from ``s`` is
    ``clip(goal - s, -1, 1)``. With ``discrete=True`` the action space is Discrete(3),
    meaning a move of ``-1, 0, +1`` along every dimension.
    """

    def __init__(
        self, dim: int = 2, *, discrete: bool = False, env_id: Any = None, device: Any = "cpu"
    ) -> None:
        obs = spaces.Box(-10.0, 10.0, (dim,), np.float32)
        act = spaces.Discrete(3) if discrete else spaces.Box(-1.0, 1.0, (dim,), np.float32)
        super().__init__(obs, act, env_id=env_id, device=device)
        self.discrete = discrete
        self.register_buffer("goal", torch.zeros(dim, device=self.device))
        self.calls = 0

    def get_config(self) -> dict[str, Any]:
        return {"dim": int(self.goal.shape[0]), "discrete": self.discrete}

    def fit(self, buffer: Any, **kwargs: Any) -> dict[str, Any]:
        return {}

    def _move(self, action: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            return (action.to(like.dtype) - 1.0).unsqueeze(-1).expand_as(like)
        return action.reshape(like.shape).to(like.dtype)

    def step(self, state, action, *, generator=None, member=None) -> ModelStep:
        self.calls += 1
        next_state = state + self._move(action, state)
        reward = -(next_state - self.goal).square().sum(-1)
        return ModelStep(next_state=next_state, reward=reward, terminated=None)

    def mean_step(self, state, action):
        next_state = state + self._move(action, state)
        return next_state, -(next_state - self.goal).square().sum(-1)


@pytest.fixture
def shift_model() -> ShiftModel:
    return ShiftModel(2)


@pytest.fixture
def discrete_shift_model() -> ShiftModel:
    return ShiftModel(1, discrete=True)
