"""An env that only has spaces: what an SB3 agent is built on when it never steps one (its
policy trained from other data, or loaded for prediction)."""

from __future__ import annotations

import gymnasium as gym
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv


class SpacesOnlyEnv(gym.Env):
    """Holds ``observation_space`` and ``action_space``; it cannot be reset or stepped."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space


def spaces_only_vec_env(observation_space: spaces.Space, action_space: spaces.Space) -> VecEnv:
    """A one-env ``DummyVecEnv`` of :class:`SpacesOnlyEnv`."""
    return DummyVecEnv([lambda: SpacesOnlyEnv(observation_space, action_space)])
