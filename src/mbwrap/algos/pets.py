"""Probabilistic Ensembles with Trajectory Sampling (PETS; Chua, Calandra, McAllister &
Levine 2018, "Deep Reinforcement Learning in a Handful of Trials using Probabilistic
Dynamics Models", Algorithm 1).

A probabilistic ensemble is refitted on all real data after every real episode (a
"trial"), and the agent acts by CEM model-predictive control, with particles propagated
through the ensemble (TS-inf by default). There is no policy network: the planner is the
policy.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.vec_env import VecEnv

from mbwrap.algos.base import (
    Algorithm,
    buffer_tensors,
    env_id,
    model_config,
    resolve_model,
    restore_buffer,
)
from mbwrap.buffers import ReplayBuffer
from mbwrap.envs.fns import BatchedFn
from mbwrap.models import WorldModel
from mbwrap.planners import Planner
from mbwrap.registry import make_planner


def _nonnegative_int(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


class PETS(Algorithm):
    """PETS: a probabilistic ensemble planned over by CEM with trajectory sampling.

    ``learn(total_timesteps)``:

    1. ``initial_random_episodes`` episodes with uniformly random actions (PETS starts
       from one random trial);
    2. then, repeatedly: refit the model on every real transition (``fit_kwargs``), and
       act with the planner until the next ``refit_every`` real steps have passed, or,
       by default, until an episode ends.

    The planner reads the registered (or given) reward and termination functions of the
    env, so on a task with a known reward the ensemble only learns the dynamics.

    :param env: the real env.
    :param model: a registered model name (built with ``model_kwargs``) or a
        :class:`~mbwrap.models.WorldModel`.
    :param planner: a registered planner name, built over the model with
        ``planner_kwargs``.
    :param model_kwargs: keywords of the model; by default PETS's ensemble of 5 members,
        all used (no elites), one fixed member per particle (TS-inf).
    :param planner_kwargs: keywords of the planner (for ``"cem"`` its defaults are
        PETS's: population 500, 50 elites, 5 iterations, horizon 30, 20 particles).
    :param reward_fn: batched ``(obs, action, next_obs) -> [n]`` reward the planner
        maximises, overriding the registered one and the model's head. Code, so not saved:
        pass it again to :meth:`load`'s returned algorithm via ``algo.planner.reward_fn``.
    :param termination_fn: likewise, ``[n]`` bool.
    :param initial_random_episodes: random episodes before the first fit.
    :param refit_every: real steps between refits; ``None``: after every episode.
    :param fit_kwargs: passed to ``model.fit``; PETS trains 5 epochs after each trial.
    :param buffer_capacity: real transitions kept.
    Other parameters as :class:`~mbwrap.algos.Algorithm`.
    """

    registry_name = "pets"

    def __init__(
        self,
        env: gym.Env | VecEnv | None,
        model: str | WorldModel = "gaussian-ensemble",
        planner: str = "cem",
        *,
        model_kwargs: dict[str, Any] | None = None,
        planner_kwargs: dict[str, Any] | None = None,
        reward_fn: BatchedFn | None = None,
        termination_fn: BatchedFn | None = None,
        initial_random_episodes: int = 1,  # Chua et al. 2018: one random trial first
        refit_every: int | None = None,
        fit_kwargs: dict[str, Any] | None = None,
        buffer_capacity: int = 1_000_000,
        seed: int | None = None,
        device: str | torch.device = "auto",
        verbose: int = 0,
        tensorboard_log: str | None = None,
        observation_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
    ) -> None:
        super().__init__(
            env,
            seed=seed,
            device=device,
            verbose=verbose,
            tensorboard_log=tensorboard_log,
            observation_space=observation_space,
            action_space=action_space,
        )
        if isinstance(model, str) and model == "gaussian-ensemble" and model_kwargs is None:
            # Chua et al. 2018, Section 6: an ensemble of B = 5 bootstrapped networks,
            # propagated TS-inf (each particle keeps its member for the whole horizon).
            model_kwargs = {"ensemble_size": 5, "num_elites": 5, "propagation": "ts-inf"}
        self.model = resolve_model(
            model,
            model_kwargs,
            self.observation_space,
            self.action_space,
            env_id=env_id(env),
            device=self.device,
        )
        if not isinstance(planner, str):
            raise TypeError(
                f"planner: expected a registered planner name such as 'cem', got {planner!r}"
            )
        self.planner_name = planner
        self.planner_kwargs = dict(planner_kwargs or {})
        for key in ("reward_fn", "termination_fn"):
            if key in self.planner_kwargs:
                raise ValueError(f"planner_kwargs: pass {key} to PETS itself, not to the planner")
        self.planner: Planner = make_planner(
            planner,
            self.model,
            **{
                "seed": seed,
                "reward_fn": reward_fn,
                "termination_fn": termination_fn,
                **self.planner_kwargs,
            },
        )
        self.initial_random_episodes = _nonnegative_int(
            initial_random_episodes, "initial_random_episodes"
        )
        self.refit_every = (
            None if refit_every is None else _nonnegative_int(refit_every, "refit_every", 1)
        )
        # The handful-of-trials code trains the ensemble 5 epochs after every trial
        # (model_train_cfg = {"epochs": 5} in its env configs).
        self.fit_kwargs = {"epochs": 5} if fit_kwargs is None else dict(fit_kwargs)
        self.buffer = ReplayBuffer(
            self.observation_space,
            self.action_space,
            _nonnegative_int(buffer_capacity, "buffer_capacity", 1),
            device=self.model.device,
            n_envs=self.n_envs,
        )
        #: Real episodes finished over every ``learn`` call.
        self.real_episodes = 0
        #: Model refits done.
        self.refits = 0
        self._steps_since_fit = 0

    # ------------------------------------------------------------------ persistence
    def get_config(self) -> dict[str, Any]:
        model_name, model_kwargs = model_config(self.model)
        planner_kwargs = {**self.planner.get_config(), **self.planner_kwargs}
        planner_kwargs.pop("seed", None)
        return {
            "model": model_name,
            "planner": self.planner_name,
            "model_kwargs": model_kwargs,
            "planner_kwargs": planner_kwargs,
            "initial_random_episodes": self.initial_random_episodes,
            "refit_every": self.refit_every,
            "fit_kwargs": self.fit_kwargs,
            "buffer_capacity": self.buffer.capacity,
        }

    def get_tensors(self) -> dict[str, torch.Tensor]:
        """The model's tensors and the real transitions."""
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update(buffer_tensors(self.buffer, "buffer"))
        return tensors

    def set_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        model = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict({k: v.to(self.model.device) for k, v in model.items()})
        restore_buffer(self.buffer, tensors, "buffer")
        self.refits = max(self.refits, 1)

    # ------------------------------------------------------------------ learning
    def _refit(self) -> None:
        self._record_metrics("model", self.model.fit(self.buffer, **self.fit_kwargs))
        self.refits += 1
        self.logger.record("model/refits", self.refits)

    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "PETS",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> PETS:
        """Run for ``total_timesteps`` real env steps (or until a callback stops it).

        :param log_interval: refits between log dumps (``None`` or 0: never).
        """
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        callback.on_training_start(locals(), globals())
        while self.num_timesteps < total_timesteps:
            exploring = self.real_episodes < self.initial_random_episodes
            if not exploring and (self.refits == 0 or self._refit_due()):
                self._refit()
                self._steps_since_fit = 0
                if log_interval and self.refits % log_interval == 0:
                    self._dump_logs()
            policy = None if exploring else self.planner
            if not self._collect_real_steps(self.buffer, 1, callback, policy):
                break
            self._steps_since_fit += self.n_envs
            assert self._episode_starts is not None
            self.real_episodes += int(self._episode_starts.sum())
        callback.on_training_end()
        return self

    def _refit_due(self) -> bool:
        if self.refit_every is not None:
            return self._steps_since_fit >= self.refit_every
        assert self._episode_starts is not None
        return self._steps_since_fit > 0 and bool(self._episode_starts.any())

    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """The planner's ``predict`` (model-predictive control)."""
        return self.planner.predict(
            observation, state=state, episode_start=episode_start, deterministic=deterministic
        )
