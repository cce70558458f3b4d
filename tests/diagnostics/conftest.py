"""Fixtures for the diagnostics: a drift system whose open-loop errors are worked out by
hand, world models of it with a known error, and buffers of its episodes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces

import mbwrap
from mbwrap.models import WorldModel
from mbwrap.types import ModelStep

OBS = spaces.Box(-1e4, 1e4, (3,), np.float32)
ACT = spaces.Box(-1.0, 1.0, (3,), np.float32)
#: Episode ``k`` (counted over all streams) starts near ``EPISODE_OFFSET * (k + 1)``, so a
#: rollout that ran from one episode into the next would be off by about this much.
EPISODE_OFFSET = 100.0


class DriftModel(WorldModel):
    """A model of the drift system ``x' = x + a``, ``r = x[0]`` (the state before the step),
    that adds a constant error ``bias: [3]`` to every step it predicts.

    Run open loop from a real ``x_0`` under the real actions, it predicts
    ``x_h + h * bias`` after ``h`` steps, and the reward ``r_t + t * bias[0]`` at step
    ``t = 0, 1, ...``; ``bias = 0`` makes it exact.

    :param member_biases: ``[M, 3]``, one bias per ensemble member (replaces ``bias``);
        :meth:`sample_members` then draws members uniformly and :meth:`step` follows them.
    :param noise: standard deviation of Gaussian noise added to every predicted step.
    :param reward_head: ``False`` predicts no reward.
    """

    def __init__(
        self,
        bias: Any = (0.0, 0.0, 0.0),
        *,
        member_biases: Any = None,
        noise: float = 0.0,
        reward_head: bool = True,
        observation_space: spaces.Space = OBS,
    ) -> None:
        super().__init__(observation_space, ACT, device="cpu")
        biases = np.atleast_2d(bias if member_biases is None else member_biases)
        self.register_buffer("biases", torch.as_tensor(biases, dtype=torch.float32))
        self.ensemble = member_biases is not None
        self.noise = noise
        self.reward_head = reward_head
        self.members_seen: list[torch.Tensor | None] = []

    def fit(self, buffer: Any, **kwargs: Any) -> dict[str, Any]:
        return {}

    def get_config(self) -> dict[str, Any]:
        return {}

    def sample_members(self, n: int, generator: torch.Generator | None = None) -> Any:
        if not self.ensemble:
            return None
        return torch.randint(self.biases.shape[0], (n,), generator=generator)

    def step(
        self, state: torch.Tensor, action: torch.Tensor, *, generator=None, member=None
    ) -> ModelStep:
        self.members_seen.append(member)
        bias = self.biases[member] if member is not None else self.biases[0]
        next_state = state + action.float() + bias
        if self.noise:
            next_state = next_state + self.noise * torch.randn(
                next_state.shape, generator=generator
            )
        reward = state[:, 0] if self.reward_head else None
        return ModelStep(next_state=next_state, reward=reward, terminated=None)


def drift_buffer(stream_lengths: list[list[int]], seed: int = 0) -> mbwrap.ReplayBuffer:
    """Episodes of the drift system under uniformly random actions, in float32 arithmetic
    (as :class:`DriftModel` computes, so the exact model matches them bit for bit).

    :param stream_lengths: per stream, the lengths of its consecutive episodes; every
        stream's lengths sum to the same number of steps. Each episode ends terminated.
    """
    n_envs, steps = len(stream_lengths), sum(stream_lengths[0])
    assert all(sum(lengths) == steps for lengths in stream_lengths)
    rng = np.random.default_rng(seed)
    obs = np.zeros((steps, n_envs, 3), np.float32)
    action = rng.uniform(-1.0, 1.0, (steps, n_envs, 3)).astype(np.float32)
    terminated = np.zeros((steps, n_envs), bool)
    episode = 0
    for stream, lengths in enumerate(stream_lengths):
        t = 0
        for length in lengths:
            obs[t, stream] = EPISODE_OFFSET * (episode + 1) + rng.uniform(-1.0, 1.0, 3)
            for k in range(t, t + length - 1):
                obs[k + 1, stream] = obs[k, stream] + action[k, stream]
            terminated[t + length - 1, stream] = True
            t, episode = t + length, episode + 1
    next_obs = obs + action
    buffer = mbwrap.ReplayBuffer(OBS, ACT, steps * n_envs, device="cpu", n_envs=n_envs)
    for t in range(steps):
        buffer.add(obs[t], action[t], obs[t, :, 0], next_obs[t], terminated[t], [False] * n_envs)
    return buffer


@pytest.fixture
def make_drift_model() -> Callable[..., DriftModel]:
    return DriftModel


@pytest.fixture
def make_drift_buffer() -> Callable[..., mbwrap.ReplayBuffer]:
    return drift_buffer
