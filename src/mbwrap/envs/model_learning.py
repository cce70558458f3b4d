"""A wrapper that learns a world model of the real env it wraps."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from mbwrap.buffers import ReplayBuffer
from mbwrap.envs.dream_vec_env import DreamVecEnv
from mbwrap.models import WorldModel
from mbwrap.spaces import check_same_space


class ModelLearningWrapper(gym.Wrapper):
    """Records every real transition and refits ``model`` every ``fit_every`` steps.

    The wrapped env behaves exactly as before; :meth:`dream` hands out an imagination env
    that starts from the recorded real states.

    :param env: the real env.
    :param model: a world model with the env's spaces; if its ``env_id`` is unset it
        becomes ``env.spec.id``, so registered reward/termination functions are found.
    :param buffer: where transitions go (default: a new buffer of ``capacity`` on the
        model's device).
    :param fit_every: real steps between refits; ``info["model_fit"]`` carries the fit
        metrics on the step that triggered one.
    :param capacity: size of the default buffer.
    """

    def __init__(
        self,
        env: gym.Env,
        model: WorldModel,
        buffer: ReplayBuffer | None = None,
        fit_every: int = 1000,
        capacity: int = 100_000,
    ) -> None:
        super().__init__(env)
        if not isinstance(model, WorldModel):
            raise TypeError(
                f"model: expected an mbwrap.models.WorldModel, got {type(model).__name__}"
            )
        if fit_every < 1:
            raise ValueError(f"fit_every: expected a positive int, got {fit_every!r}")
        check_same_space(
            env.observation_space, model.observation_space, name="model.observation_space"
        )
        check_same_space(env.action_space, model.action_space, name="model.action_space")
        if buffer is None:
            buffer = ReplayBuffer(
                env.observation_space, env.action_space, capacity, device=model.device
            )
        check_same_space(
            env.observation_space, buffer.observation_space, name="buffer.observation_space"
        )
        check_same_space(env.action_space, buffer.action_space, name="buffer.action_space")
        if model.env_id is None and env.spec is not None:
            model.env_id = env.spec.id
        self.model = model
        self.buffer = buffer
        self.fit_every = int(fit_every)
        self.real_steps = 0
        self.fit_metrics: dict[str, Any] | None = None
        self._last_obs: Any = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.buffer.end_episodes()
        self._last_obs = obs
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.buffer.add(self._last_obs, action, reward, obs, terminated, truncated)
        self._last_obs = obs
        self.real_steps += 1
        if self.real_steps % self.fit_every == 0:
            info = {**info, "model_fit": self.fit()}
        return obs, reward, terminated, truncated, info

    def fit(self, **kwargs: Any) -> dict[str, Any]:
        """Refit the model on every recorded transition now; return its metrics."""
        self.fit_metrics = self.model.fit(self.buffer, **kwargs)
        return self.fit_metrics

    def dream(self, num_envs: int, horizon: int, **kwargs: Any) -> DreamVecEnv:
        """A :class:`DreamVecEnv` of ``num_envs`` episodes starting from recorded states.

        :param kwargs: passed to :class:`DreamVecEnv` (``reward_fn``, ``autoreset_mode``...).
        """
        return DreamVecEnv(
            self.model, num_envs, start_states=self.buffer, horizon=horizon, **kwargs
        )
