"""A single-agent Gymnasium env whose state can be saved and restored, for search."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from mbwrap.envs.snapshot import Snapshot, restore_env, snapshot_env


class ClonableEnv(gym.Wrapper):
    """Adds :meth:`snapshot` and :meth:`restore` to an env whose state lives in Python
    attributes: classic control (``CartPole-v1``'s ``state``, its step counter after a
    termination and its ``np_random``), toy text, and the wrappers ``gymnasium.make``
    adds (``TimeLimit``'s elapsed steps included).

    Envs whose state lives outside Python objects (MuJoCo's ``MjData``, an emulator) need
    their own snapshot code; this wrapper does not pretend to cover them.

    :param env: a Gymnasium env.
    """

    def __init__(self, env: gym.Env) -> None:
        if not isinstance(env, gym.Env):
            raise TypeError(f"env: expected a gymnasium.Env, got {type(env).__name__}")
        super().__init__(env)
        #: Legal actions are every action of the space (none is masked).
        self.num_actions = int(env.action_space.n) if isinstance(
            env.action_space, gym.spaces.Discrete) else None

        #: The observation the last ``reset`` or ``step`` returned (part of snapshots).
        self.last_observation: Any = None

    #: Single-agent: the same player always moves.
    to_play = 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.last_observation = obs
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.last_observation = obs
        return obs, reward, terminated, truncated, info

    def current_observation(self) -> Any:
        """The observation the last ``reset`` or ``step`` returned."""
        return self.last_observation

    def snapshot(self) -> Snapshot:
        """The env's state, its RNG, its wrappers' state and the last observation."""
        return snapshot_env(self)

    def restore(self, snapshot: Snapshot) -> None:
        """Put the env back where :meth:`snapshot` recorded it."""
        restore_env(self, snapshot)

    def legal_actions(self) -> np.ndarray:
        """``[A]`` bool, all True (single-agent envs have no action mask)."""
        if self.num_actions is None:
            raise TypeError(
                f"env.action_space: expected Discrete for legal_actions, got "
                f"{self.env.action_space!r}"
            )
        return np.ones(self.num_actions, dtype=bool)
