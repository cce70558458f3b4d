"""A wrapper that shows an agent the latent state a recurrent world model infers."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from mbwrap.device import make_generator
from mbwrap.models import WorldModel
from mbwrap.spaces import check_same_space


class LatentFilterWrapper(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Runs the model's posterior online; observations become its latent features.

    At ``reset`` the state is the posterior after the first observation; at every
    ``step`` the model advances its state with the action taken and corrects it with the
    new observation (``model.obs_step``). The features are exactly those the model's
    imagination environments emit (``model.dream_observation_space``), so an SB3 agent
    trained in :class:`~mbwrap.DreamVecEnv` over ``model`` acts in the real env unchanged.

    The wrapper filters in ``torch.no_grad`` on the model's device; it never trains the
    model. Wrap each env of a vector env separately (each keeps its own state).

    :param env: the real env, with the model's observation and action spaces.
    :param model: a latent world model with ``first_posterior``, ``obs_step``, ``embed``
        and ``action_vector`` (e.g. :class:`~mbwrap.models.RSSM`).
    :param sample: sample the stochastic state (as in training) or take its mode.
    :param seed: seed of the wrapper's sampling generator (``reset(seed=...)`` reseeds).
    """

    def __init__(
        self, env: gym.Env, model: WorldModel, *, sample: bool = True, seed: int | None = None
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, model=model, sample=sample, seed=seed)
        gym.ObservationWrapper.__init__(self, env)
        if not isinstance(model, WorldModel):
            raise TypeError(
                f"model: expected an mbwrap.models.WorldModel, got {type(model).__name__}"
            )
        missing = [
            name
            for name in ("first_posterior", "obs_step", "embed", "action_vector")
            if not callable(getattr(model, name, None))
        ]
        if missing:
            raise TypeError(
                f"model: {type(model).__name__} is not a latent filtering model (it lacks "
                f"{', '.join(missing)}); use a recurrent latent model such as 'rssm'"
            )
        check_same_space(
            model.observation_space, env.observation_space, name="env.observation_space"
        )
        check_same_space(model.action_space, env.action_space, name="env.action_space")
        self.model = model
        self.sample = bool(sample)
        self.observation_space = model.dream_observation_space
        self._generator = make_generator(model.device, seed)
        self._state: torch.Tensor | None = None
        self._action: torch.Tensor | None = None

    @property
    def latent_state(self) -> torch.Tensor | None:
        """The current posterior state ``[1, F]`` (``None`` before the first reset)."""
        return self._state

    def _embed(self, obs: Any) -> torch.Tensor:
        if isinstance(obs, dict):
            batch = {
                k: torch.as_tensor(np.asarray(v), device=self.model.device)[None]
                for k, v in obs.items()
            }
        else:
            batch = torch.as_tensor(np.asarray(obs), device=self.model.device)[None]
        return self.model.embed(batch)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self._generator = make_generator(self.model.device, seed)
        self._state, self._action = None, None
        return super().reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        if self._state is None:
            raise gym.error.ResetNeeded("LatentFilterWrapper: call reset() before step()")
        self._action = torch.as_tensor(np.asarray(action), device=self.model.device)[None]
        return super().step(action)

    @torch.no_grad()
    def observation(self, observation: Any) -> np.ndarray:
        embed = self._embed(observation)
        if self._state is None or self._action is None:
            self._state = self.model.first_posterior(embed, self._generator, self.sample)
        else:
            action = self.model.action_vector(self._action)
            self._state, _, _ = self.model.obs_step(
                self._state, action, embed, self._generator, self.sample
            )
        return self._state[0].cpu().numpy().astype(np.float32)
