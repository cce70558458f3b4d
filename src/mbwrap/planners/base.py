"""The planner contract: model-predictive control as an SB3 policy."""

from __future__ import annotations

import abc
from typing import Any

import torch
from stable_baselines3.common.policies import BasePolicy

from mbwrap.models import WorldModel


class Planner(BasePolicy, abc.ABC):
    """A policy that acts by planning over a :class:`~mbwrap.models.WorldModel`.

    Being an SB3 ``BasePolicy``, ``planner.predict(obs, state, episode_start,
    deterministic)`` and ``evaluate_policy(planner, env)`` work unchanged. A subclass
    implements :meth:`plan` for a whole batch of observations at once, on the model's
    device.

    :param model: the world model planned over.
    """

    def __init__(self, model: WorldModel, **kwargs: Any) -> None:
        if not isinstance(model, WorldModel):
            raise TypeError(
                f"model: expected an mbwrap.models.WorldModel, got {type(model).__name__}"
            )
        super().__init__(model.observation_space, model.action_space, **kwargs)
        self.model = model

    @abc.abstractmethod
    def plan(self, obs: torch.Tensor) -> torch.Tensor:
        """Choose actions: ``obs: [B, *obs_shape] -> actions: [B, *act_shape]``."""

    def _predict(self, observation: Any, deterministic: bool = False) -> torch.Tensor:
        return self.plan(observation)

    def forward(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        return self.plan(obs)
