"""A learned world model as a single ``gymnasium.Env``."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from mbwrap.envs.action_masks import ActionMasks
from mbwrap.envs.fns.base import ActionMaskFn, BatchedFn
from mbwrap.envs.imagination import ImaginationCore, NonFinitePolicy, StartStates
from mbwrap.models import WorldModel
from mbwrap.spaces import to_numpy
from mbwrap.tree import tree_index


def _check_horizon(horizon: Any) -> int:
    if not isinstance(horizon, (int, np.integer)) or isinstance(horizon, bool) or horizon < 1:
        raise ValueError(f"horizon: expected a positive int, got {horizon!r}")
    return int(horizon)


class DreamEnv(gym.Env):
    """An imagined environment: ``reset`` draws a start state, ``step`` runs the model.

    Reward and termination come from ``reward_fn``/``termination_fn`` when given, else from
    the functions registered for ``model.env_id`` (group ``mbwrap.fns``), else from the
    model's heads. ``terminated`` comes from those; ``truncated`` from the horizon (or from
    a non-finite model output, flagged as ``info["model_nonfinite"]``).

    :param model: the world model.
    :param start_states: a :class:`~mbwrap.ReplayBuffer` (its observations), an array of
        observations ``[K, *obs_shape]``, or a callable ``(n, generator) -> [n, *obs_shape]``.
    :param horizon: imagined episode length before truncation.
    :param reward_fn: batched ``(obs, action, next_obs) -> [B]`` reward.
    :param termination_fn: batched ``(obs, action, next_obs) -> [B]`` termination.
    :param on_nonfinite: ``"truncate"`` (warn and cut the episode) or ``"raise"``.
    :param member: follow this ensemble member in every episode (``None``: the model's own
        propagation, see :meth:`~mbwrap.models.WorldModel.sample_members`).
    :param action_mask_fn: batched ``(obs) -> [B, n]`` bool valid actions for
        :meth:`action_masks` (else the registered one, the model's head, or all valid).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        model: WorldModel,
        start_states: StartStates,
        horizon: int,
        reward_fn: BatchedFn | None = None,
        termination_fn: BatchedFn | None = None,
        on_nonfinite: NonFinitePolicy = "truncate",
        member: int | None = None,
        action_mask_fn: ActionMaskFn | None = None,
    ) -> None:
        self.horizon = _check_horizon(horizon)
        self.core = ImaginationCore(
            model, 1, start_states, reward_fn, termination_fn, on_nonfinite, member
        )
        #: Where :meth:`action_masks` come from (settable, e.g. after loading).
        self.action_masker = ActionMasks(model, action_mask_fn)
        self.model = model
        self.observation_space = model.dream_observation_space
        self.action_space = model.action_space
        self.render_mode = None
        self._elapsed = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict]:
        super().reset(seed=seed)
        # Derive the torch seeds from np_random so that reset(seed=s) reproduces a rollout
        # and later unseeded resets continue the seeded stream.
        self.core.seed(int(self.np_random.integers(2**63 - 1)))
        obs = self.core.reset()
        self._elapsed = 0
        return to_numpy(tree_index(obs, 0), self.observation_space), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self.core.state is None:
            raise gym.error.ResetNeeded("DreamEnv: call reset() before step()")
        action = np.asarray(action) if not isinstance(action, torch.Tensor) else action
        obs, reward, terminated, nonfinite = self.core.step(action[None])
        self._elapsed += 1
        bad = bool(nonfinite[0])
        self.core.report_nonfinite(int(bad))
        truncated = self._elapsed >= self.horizon or bad
        info = {"model_nonfinite": True} if bad else {}
        return (
            to_numpy(tree_index(obs, 0), self.observation_space),
            float(reward[0]),
            bool(terminated[0]),
            truncated,
            info,
        )

    def action_masks(self) -> np.ndarray:
        """Which actions are valid now, as sb3-contrib's ``MaskablePPO`` asks: ``[n]`` bool
        for ``Discrete(n)``, the per-dimension masks concatenated for ``MultiDiscrete``
        (see :mod:`mbwrap.envs.action_masks`)."""
        return self.action_masker.current(self.core)[0]
