"""Algorithms that act in a real Gymnasium env: the one training loop they all run."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import MaybeCallback, PolicyPredictor
from stable_baselines3.common.vec_env import VecEnv

from mbwrap.algos import state as saved
from mbwrap.algos.collection import RealCollection
from mbwrap.algos.config import AlgoConfig
from mbwrap.algos.core import AlgorithmCore
from mbwrap.algos.workers import WorkerCollection
from mbwrap.buffers import ReplayBuffer
from mbwrap.checkpoint import check_count
from mbwrap.envs.sb3_vec_env import env_id, wrap_env
from mbwrap.models import WorldModel
from mbwrap.models.build import model_config, resolve_model
from mbwrap.spaces import check_same_space


class Algorithm(RealCollection, WorkerCollection, AlgorithmCore):
    """Base of the algorithms that act in a real env, with SB3's
    ``learn``/``predict``/``save``/``load`` surface and one training loop.

    ``learn(total_timesteps)`` counts real env steps; SB3 callbacks (``EvalCallback``,
    ``StopTrainingOnMaxEpisodes``, ``CheckpointCallback``...) and ``progress_bar=True``
    work as in SB3; logs go through SB3's logger (stdout, CSV, TensorBoard).

    The loop (:meth:`learn`): set up, then repeat {:meth:`_collect` real steps ->
    :meth:`_refit` the model when :meth:`_refit_due` -> :meth:`_train` the agent ->
    callbacks and logs} until ``total_timesteps`` real steps. An algorithm is its
    :attr:`Config` (a typed dataclass, each setting once with its paper default) plus the
    hooks it overrides, and it declares what a checkpoint holds (:attr:`saved_state`,
    :attr:`saved_buffers`); the run's counters and random states (the env's too, for
    in-process envs) are always kept.

    :param env: the real env (a ``gymnasium.Env`` or SB3 ``VecEnv``); ``None`` only when
        loading for prediction, with ``observation_space`` and ``action_space`` given.
    :param args: the :attr:`positional_settings`, in order.
    :param config: a :attr:`Config`; keywords override its fields.
    :param kwargs: the settings of :attr:`Config`.
    """

    def __init__(
        self,
        env: gym.Env | VecEnv | None,
        *args: Any,
        config: AlgoConfig | None = None,
        observation_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
        **kwargs: Any,
    ) -> None:
        if env is not None:
            if not isinstance(env, (gym.Env, VecEnv)):
                raise TypeError(
                    f"env: expected a gymnasium.Env or SB3 VecEnv, got {type(env).__name__}"
                )
            # The env's own spaces: the shared construction checks them before SB3 wraps it.
            observation_space, action_space = env.observation_space, env.action_space
        elif observation_space is None or action_space is None:
            raise ValueError("env: pass a real env, or observation_space and action_space")
        spaces = {"observation_space": observation_space, "action_space": action_space}
        super().__init__(args, kwargs, config=config, **spaces)
        self.env: VecEnv | None = None if env is None else wrap_env(env)
        self.n_envs = self.env.num_envs if self.env is not None else 1
        if self.config.num_workers:
            # The learner's streams are the workers' envs, not this process's copy.
            per_worker = self.config.envs_per_worker or self.n_envs
            self.n_envs = self.config.num_workers * per_worker
        #: Real env steps over the algorithm's whole life (never reset; schedules use it).
        self.real_steps = 0
        self._last_obs: Any = None
        #: Real steps since the model was last refitted (``None``: never fitted).
        self._steps_since_refit: int | None = None
        # What _collect_real_steps needs between calls: a recurrent policy's state, which
        # envs just started an episode, and the observation it left the env at.
        self._policy_state: tuple[np.ndarray, ...] | None = None
        self._episode_starts: np.ndarray | None = None
        self._collected_obs: Any = None
        self._env_rngs_before_step: list[dict[str, Any]] | None = None
        if self.seed is not None and self.env is not None:
            self.env.seed(self.seed)

    # ------------------------------------------------------------------ env
    def get_env(self) -> VecEnv | None:
        """The real env as an SB3 ``VecEnv`` (what callbacks see as ``training_env``)."""
        return self.env

    def get_vec_normalize_env(self) -> None:
        """SB3 callbacks ask for it (``EvalCallback``); mbwrap never normalises the real env."""
        return None

    def set_env(self, env: gym.Env | VecEnv) -> None:
        """Use another real env with the same spaces."""
        wrapped = wrap_env(env)
        check_same_space(
            self.observation_space, wrapped.observation_space, name="env.observation_space"
        )
        check_same_space(self.action_space, wrapped.action_space, name="env.action_space")
        self.env, self.n_envs, self._last_obs = wrapped, wrapped.num_envs, None

    def _prepare_learning(self, reset_num_timesteps: bool) -> None:
        """Before the loop: the env must exist; a new count (or a first call) resets it."""
        if self.env is None:
            raise ValueError("env: this algorithm has no env; pass one to load() or call set_env()")
        if reset_num_timesteps or self._last_obs is None:
            self._last_obs = self.env.reset()

    # ------------------------------------------------------------------ the loop and its hooks
    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int | None = 1,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> Algorithm:
        """Train for ``total_timesteps`` real env steps (or until a callback stops it).

        :param callback: SB3 callback(s), called after every real step.
        :param log_interval: iterations between log dumps (``None`` or 0: never).
        :param tb_log_name: TensorBoard run name; default the class name.
        :param reset_num_timesteps: ``False`` continues the count (and the run, after
            :meth:`load`) instead of starting at 0.
        :param progress_bar: show SB3's progress bar over real steps.
        :return: ``self``.
        """
        name = tb_log_name or type(self).__name__
        total_timesteps, callback = self._start_learning(
            total_timesteps, callback, reset_num_timesteps, name, progress_bar
        )
        callback.on_training_start(locals(), globals())
        self._on_training_start()
        iteration = 0
        while self.num_timesteps < total_timesteps:
            if not self._collect(callback, total_timesteps - self.num_timesteps):
                break
            if self._warming_up():
                continue
            if self._refit_due():
                self._refit()
            self._train()
            iteration += 1
            if log_interval and iteration % log_interval == 0:
                self._dump_logs()
        self._on_training_end()
        callback.on_training_end()
        return self

    def _on_training_start(self) -> None:
        """Called once per :meth:`learn`, after the logger and callbacks are set up."""

    def _on_training_end(self) -> None:
        """Called once per :meth:`learn`, before ``callback.on_training_end()``."""

    def _warming_up(self) -> bool:
        """Whether the real steps so far are still the ``learning_starts`` random ones."""
        return self.real_steps < getattr(self.config, "learning_starts", 0)

    def _collect(self, callback: BaseCallback, remaining: int) -> bool:
        """Collect one iteration's real steps into :attr:`buffer`: uniformly random
        actions up to ``learning_starts``, then ``train_freq`` steps with
        :meth:`_behaviour_policy`.

        :param remaining: real steps left in this :meth:`learn` call.
        :return: ``False`` when a callback asked to stop.
        """
        if self._warming_up():
            steps = self.config.learning_starts - self.real_steps  # type: ignore[attr-defined]
            policy = None
        else:
            steps = self.config.train_freq  # type: ignore[attr-defined]
            policy = self._behaviour_policy()
        return self._collect_real_steps(
            self.buffer,  # type: ignore[attr-defined]
            min(steps, remaining),
            callback,
            policy,
        )

    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """SB3's ``predict``, by what the algorithm trains to act: its ``agent`` (an SB3
        algorithm), else its ``planner`` (model-predictive control)."""
        actor = getattr(self, "agent", None) or getattr(self, "planner", None)
        if actor is not None:
            return actor.predict(observation, state, episode_start, deterministic)
        raise NotImplementedError(f"{type(self).__name__} has no agent or planner to act")

    def _behaviour_policy(self) -> PolicyPredictor | None:
        """What acts in the real env after the random steps (default: :meth:`predict`)."""
        return self

    def _refit_due(self) -> bool:
        """Whether to refit the model now: never fitted, or ``model_train_freq`` real steps
        since the last fit (every iteration when the config has no ``model_train_freq``
        or it is ``None``)."""
        if not hasattr(self, "model"):
            return False
        every = getattr(self.config, "model_train_freq", None)
        return (
            self._steps_since_refit is None or every is None or (self._steps_since_refit >= every)
        )

    def _fit_kwargs(self) -> dict[str, Any]:
        """The keywords of this refit's ``model.fit`` (default: ``config.fit_kwargs``)."""
        return getattr(self.config, "fit_kwargs", None) or {}

    def _refit(self) -> None:
        """Fit the model on all real data (:meth:`_fit_kwargs`), log ``model/...``."""
        metrics = self.model.fit(self.buffer, **self._fit_kwargs())  # type: ignore[attr-defined]
        self._record_metrics("model", metrics)
        self._steps_since_refit = 0

    def _make_model(self) -> WorldModel:
        """The world model named by ``config.model`` (built with ``config.model_kwargs``)
        or given there as an instance; the config then names it in JSON form (registry
        name and constructor keywords), as checkpoints store it. An instance of an
        unregistered class stays in the config: saving then raises, naming the fix."""
        config: Any = self.config
        model = resolve_model(
            config.model,
            config.model_kwargs or None,
            self.observation_space,
            self.action_space,
            env_id=env_id(self.env),
            device=self.device,
        )
        if type(model).registry_name:
            config.model, config.model_kwargs = model_config(model)
        # else the instance stays: usable, and saving names what is missing (get_config).
        return model

    def _make_buffer(self) -> ReplayBuffer:
        """The real-experience buffer: ``config.buffer_size`` transitions of the env's
        ``n_envs`` streams, on the model's device (the algorithm's without a model)."""
        device = self.model.device if hasattr(self, "model") else self.device
        return ReplayBuffer(
            self.observation_space,
            self.action_space,
            self.config.buffer_size,  # type: ignore[attr-defined]
            device=device,
            n_envs=self.n_envs,
        )

    def _train(self) -> None:
        """Train the agent by the algorithm's rule for how much per real step."""

    # ------------------------------------------------------------------ checkpoints
    def _run_state(self) -> dict[str, Any]:
        state = super()._run_state()
        state["real_steps"] = self.real_steps
        state["steps_since_refit"] = self._steps_since_refit
        at_boundary = self._episode_starts is not None and bool(np.all(self._episode_starts))
        if at_boundary and self._env_rngs_before_step is not None:
            state["env_rngs"] = self._env_rngs_before_step
        else:
            state["env_rngs"] = saved.env_rng_states(self.env)
        return state

    def _set_run_state(self, state: dict[str, Any]) -> None:
        super()._set_run_state(state)
        self.real_steps = check_count(state["real_steps"], name="run.real_steps")
        since = state["steps_since_refit"]
        self._steps_since_refit = (
            None if since is None else check_count(since, name="run.steps_since_refit")
        )
        saved.set_env_rng_states(self.env, state.get("env_rngs"))

    @classmethod
    def _rebuild(
        cls,
        env: Any,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: dict[str, Any],
    ) -> Algorithm:
        if env is not None:
            wrapped = wrap_env(env)
            check_same_space(
                observation_space, wrapped.observation_space, name="env.observation_space"
            )
            check_same_space(action_space, wrapped.action_space, name="env.action_space")
        return super()._rebuild(env, observation_space, action_space, config)
