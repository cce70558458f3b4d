"""Fixtures for the envs layer: a fitted tabular model of the Dyna maze and small
deterministic world models whose every output a test controls."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import mbwrap
from mbwrap.envs.dyna_maze import DynaMazeEnv
from mbwrap.models import TabularModel, WorldModel
from mbwrap.types import ModelStep

MAZE_ID = "mbwrap/DynaMaze-v0"
MAZE_START = 2 * 9 + 0  # cell "S" of the book's maze
MAZE_GOAL = 0 * 9 + 8  # cell "G"


class LineModel(WorldModel):
    """A deterministic model of a point on a line, with a step counter.

    State and observation: ``[pos, count]`` (``Box((2,))``); action: ``Box(-1, 1, (1,))``.
    ``step`` moves ``pos += action`` and ``count += 1``. Its heads:
    reward ``= reward_scale * next_pos``, termination probability ``1`` when
    ``next_pos >= goal`` (never when ``goal`` is ``None``).

    Test hooks: :attr:`calls` counts :meth:`step` calls and :attr:`batch_sizes` records
    each call's batch; ``nan_when(state, next_state) -> [B] bool`` makes those rows of the
    next state NaN (or of the reward, with ``nan_in="reward"``); ``reward_head=False`` or
    ``termination_head=False`` drop a head.
    """

    def __init__(
        self,
        *,
        goal: float | None = None,
        reward_scale: float = 1.0,
        reward_head: bool = True,
        termination_head: bool = True,
        nan_when: Any = None,
        nan_in: str = "state",
        env_id: str | None = None,
    ) -> None:
        super().__init__(
            spaces.Box(-100.0, 100.0, (2,), np.float32),
            spaces.Box(-1.0, 1.0, (1,), np.float32),
            env_id=env_id,
            device="cpu",
        )
        self.goal = goal
        self.reward_scale = reward_scale
        self.reward_head = reward_head
        self.termination_head = termination_head
        self.nan_when = nan_when
        self.nan_in = nan_in
        self.calls = 0
        self.batch_sizes: list[int] = []

    def fit(self, buffer: Any, **kwargs: Any) -> dict[str, Any]:
        return {"transitions": len(buffer)}

    def get_config(self) -> dict[str, Any]:
        return {}

    def step(
        self, state: torch.Tensor, action: torch.Tensor, *, generator=None, member=None
    ) -> ModelStep:
        self.calls += 1
        self.batch_sizes.append(int(state.shape[0]))
        move = action.reshape(state.shape[0], 1).float()
        next_state = state + torch.cat([move, torch.ones_like(move)], dim=-1)
        reward = self.reward_scale * next_state[:, 0] if self.reward_head else None
        if not self.termination_head:
            terminated = None
        elif self.goal is None:
            terminated = torch.zeros(state.shape[0])
        else:
            terminated = (next_state[:, 0] >= self.goal).float()
        if self.nan_when is not None:
            bad = torch.as_tensor(self.nan_when(state, next_state), dtype=torch.bool)
            if self.nan_in == "state":
                next_state = torch.where(bad[:, None], torch.nan, next_state)
            else:
                reward = torch.where(bad, torch.inf, reward)
        return ModelStep(next_state=next_state, reward=reward, terminated=terminated)


def _maze_table() -> np.ndarray:
    """``next_cell[s, a]`` of the book's maze, from the env's own step function."""
    env = DynaMazeEnv()
    table = np.zeros((env.rows * env.cols, 4), dtype=np.int64)
    for cell in range(env.rows * env.cols):
        for action in range(4):
            env._pos = divmod(cell, env.cols)
            table[cell, action] = env.step(action)[0]
    return table


class MazeOracleModel(WorldModel):
    """The maze's true dynamics with heads that disagree with its registered fns:
    reward ``head_reward`` everywhere and termination probability ``head_termination``."""

    def __init__(
        self, *, head_reward: float = 7.0, head_termination: float = 0.0, env_id: str | None = None
    ) -> None:
        super().__init__(spaces.Discrete(54), spaces.Discrete(4), env_id=env_id, device="cpu")
        self.register_buffer("table", torch.as_tensor(_maze_table()), persistent=False)
        self.head_reward = head_reward
        self.head_termination = head_termination

    def fit(self, buffer: Any, **kwargs: Any) -> dict[str, Any]:
        return {}

    def get_config(self) -> dict[str, Any]:
        return {}

    def step(
        self, state: torch.Tensor, action: torch.Tensor, *, generator=None, member=None
    ) -> ModelStep:
        batch = state.shape[0]
        return ModelStep(
            next_state=self.table[state.long(), action.long()],
            reward=torch.full((batch,), self.head_reward),
            terminated=torch.full((batch,), self.head_termination),
        )


@pytest.fixture(scope="session")
def maze_buffer() -> mbwrap.ReplayBuffer:
    """4000 uniformly random steps of the real maze (several goal visits)."""
    env = gym.make(MAZE_ID)
    buffer = mbwrap.ReplayBuffer(env.observation_space, env.action_space, 10_000, device="cpu")
    mbwrap.collect(env, buffer, 4000, seed=0)
    assert bool(buffer.transitions().terminated.any()), "the fixture data must reach the goal"
    return buffer


@pytest.fixture
def maze_model(maze_buffer: mbwrap.ReplayBuffer) -> TabularModel:
    """A sampling tabular model of the maze fitted on ``maze_buffer``, ``env_id`` unset."""
    model = TabularModel(spaces.Discrete(54), spaces.Discrete(4), device="cpu")
    model.fit(maze_buffer)
    return model


@pytest.fixture
def maze_model_exact(maze_buffer: mbwrap.ReplayBuffer) -> TabularModel:
    """Like ``maze_model`` but deterministic (``mode="most-likely"``): the true maze where
    seen, since the maze itself is deterministic."""
    model = TabularModel(spaces.Discrete(54), spaces.Discrete(4), mode="most-likely", device="cpu")
    model.fit(maze_buffer)
    return model


@pytest.fixture
def line_starts() -> np.ndarray:
    """Three start observations ``[K=3, 2]`` for :class:`LineModel`."""
    return np.array([[0.0, 0.0], [10.0, 0.0], [-10.0, 0.0]], dtype=np.float32)


@pytest.fixture
def make_line_model():
    """Factory of :class:`LineModel` (keywords as its constructor)."""
    return LineModel


@pytest.fixture
def make_maze_oracle():
    """Factory of :class:`MazeOracleModel` (keywords as its constructor)."""
    return MazeOracleModel
