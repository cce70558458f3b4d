"""The real env seen through a recurrent world model's posterior, from both sides: as an
env whose observations are latent features (:class:`LatentFilterWrapper`), and as a
policy over real observations for an agent of latent features
(:class:`LatentFilterPolicy`), so that real data is collected with that agent as is."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from mbwrap.models import WorldModel
from mbwrap.models.latent_filter import LatentFilter, observation_batch
from mbwrap.spaces import check_same_space


def _check_model(model: Any) -> WorldModel:
    if not isinstance(model, WorldModel):
        raise TypeError(f"model: expected an mbwrap.models.WorldModel, got {type(model).__name__}")
    return model


class LatentFilterWrapper(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Runs the model's posterior online; observations become its latent features.

    At ``reset`` the state is the posterior after the first observation; at every
    ``step`` the model advances its state with the action taken and corrects it with the
    new observation (a :class:`~mbwrap.models.latent_filter.LatentFilter` of one env).
    The features are exactly those the model's imagination environments emit
    (``model.dream_observation_space``), so an SB3 agent trained in
    :class:`~mbwrap.DreamVecEnv` over ``model`` acts in the real env unchanged.

    The wrapper never trains the model. Wrap each env of a vector env separately (each
    keeps its own state). To store real transitions while such an agent acts, collect
    from the unwrapped env with :class:`LatentFilterPolicy` instead.

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
        self.filter = LatentFilter(_check_model(model), sample=sample, seed=seed)
        check_same_space(
            model.observation_space, env.observation_space, name="env.observation_space"
        )
        check_same_space(model.action_space, env.action_space, name="env.action_space")
        self.model = model
        self.observation_space = model.dream_observation_space
        self._action: torch.Tensor | None = None
        self._started = False

    @property
    def latent_state(self) -> torch.Tensor | None:
        """The current posterior state ``[1, F]`` (``None`` before the first reset)."""
        return self.filter.state

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self.filter.generator.manual_seed(seed)
        self.filter.reset()
        self._action, self._started = None, True
        return super().reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        if not self._started:
            raise gym.error.ResetNeeded("LatentFilterWrapper: call reset() before step()")
        taken = torch.as_tensor(np.asarray(action), device=self.model.device)[None]
        self._action = self.model.action_vector(taken)
        return super().step(action)

    def observation(self, observation: Any) -> np.ndarray:
        obs, _ = observation_batch(
            observation, self.model.observation_space, self.model.device, name="observation"
        )
        state = self.filter.observe(obs, self._action)
        return state[0].cpu().numpy().astype(np.float32)


class LatentFilterPolicy:
    """An agent that acts on a model's latent features, as a policy over real
    observations (SB3's ``predict``): the other side of :class:`LatentFilterWrapper`.

    Each call filters the batch of observations with the actions this policy chose last
    (restarting the envs where ``episode_start``) and asks the agent for actions on the
    features. Pass it wherever mbwrap or SB3 takes a policy, e.g. to collect real
    transitions while the agent acts: ``mbwrap.collect(env, buffer, steps,
    policy=LatentFilterPolicy(agent, model))``.

    Use one instance per stream of episodes (it keeps each env's state between calls,
    as SB3's recurrent policies do; the ``state`` argument is passed through).

    :param agent: anything with SB3's ``predict`` over ``model.dream_observation_space``.
    :param model: the latent world model the agent's features come from.
    :param sample: sample the stochastic state or take its mode.
    :param seed: seed of the filter's sampling generator.
    """

    def __init__(
        self, agent: Any, model: WorldModel, *, sample: bool = True, seed: int | None = None
    ) -> None:
        if not callable(getattr(agent, "predict", None)):
            raise TypeError(f"agent: expected an object with predict(), got {agent!r}")
        self.agent = agent
        self.model = _check_model(model)
        self.filter = LatentFilter(model, sample=sample, seed=seed)
        self._action: torch.Tensor | None = None

    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Actions for real observations ``[B, *obs_shape]`` (or one).

        :param episode_start: ``[B]`` bool, envs whose episode starts with
            ``observation``; a batch of another size restarts every env.
        :return: ``(actions [B, *act_shape] (or one), state)``.
        """
        model = self.model
        obs, batched = observation_batch(observation, model.observation_space, model.device)
        features = self.filter.observe(obs, self._action, episode_start)
        actions, _ = self.agent.predict(features.cpu().numpy(), deterministic=deterministic)
        actions = np.asarray(actions)
        taken = torch.as_tensor(actions, device=self.model.device)
        self._action = self.model.action_vector(taken)
        return (actions if batched else actions[0]), state
