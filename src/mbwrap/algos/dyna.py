"""Dyna with any SB3 agent: real experience fits a world model, and the agent learns only
from experience the model imagines.

Sutton (1991), "Dyna, an integrated architecture for learning, planning, and reacting",
and Sutton & Barto (2018), chapter 8: acting, model learning and planning interleave.
Here the planning updates are an unmodified SB3 agent training on a
:class:`~mbwrap.DreamVecEnv` whose episodes start from real states, as in ME-TRPO
(Kurutach et al. 2018) without the ensemble-based stopping.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from mbwrap.algos.agents import (
    agent_config,
    agent_name,
    build_agent,
    check_agent,
    decode_kwargs,
    encode_kwargs,
)
from mbwrap.algos.base import (
    Algorithm,
    buffer_tensors,
    env_id,
    model_config,
    resolve_model,
    restore_buffer,
)
from mbwrap.algos.callbacks import EpisodeStatsCallback
from mbwrap.buffers import ReplayBuffer
from mbwrap.envs import DreamVecEnv, as_vec_env
from mbwrap.models import WorldModel
from mbwrap.spaces import check_same_space


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


class Dyna(Algorithm):
    """Dyna with an SB3 agent that trains only in imagination.

    Each iteration:

    1. act in the real env with the agent's policy for ``real_steps_per_iteration`` steps
       (uniformly random actions for the first ``initial_random_steps``) and store them;
    2. refit the world model on every stored real transition;
    3. train the agent for ``imagined_steps_per_iteration`` steps on ``num_envs`` imagined
       episodes of at most ``horizon`` steps, each starting from a stored real state
       (``agent.set_env(dream)`` then ``agent.learn(..., reset_num_timesteps=False)``).

    Reward and termination in imagination come from the functions registered for the
    env's id (group ``mbwrap.fns``) when there are any, else from the model's heads.
    The agent's own training metrics (``train/...``) go to this algorithm's logger, with
    the real rollout statistics (``rollout/...``), the model's fit metrics
    (``model/...``) and the imagined episodes' statistics (``imagination/...``).

    :param env: the real env.
    :param agent: any SB3 algorithm: a name (``"PPO"``, ``"SAC"``, ``"DQN"``... see
        :func:`~mbwrap.algos.available_agents`), a class, or an instance. A name or class
        is built on the imagination env with ``agent_kwargs`` (``policy`` among them,
        default ``"MlpPolicy"``); an instance keeps its settings and its ``n_envs`` sets
        the number of imagined episodes.
    :param model: a registered model name (built with ``model_kwargs``) or a
        :class:`~mbwrap.models.WorldModel` with the env's spaces.
    :param num_envs: imagined episodes stepped together (when ``agent`` is not an
        instance).
    :param horizon: imagined episodes are truncated after this many steps (the agent
        bootstraps there, as at a time limit).
    :param real_steps_per_iteration: real steps between model refits.
    :param imagined_steps_per_iteration: the agent's training budget per iteration; SB3
        rounds it up to whole rollouts (``n_steps * num_envs`` for PPO).
    :param initial_random_steps: real steps taken with uniformly random actions before
        the first fit.
    :param buffer_capacity: real transitions kept.
    :param fit_kwargs: passed to ``model.fit``.
    Other parameters as :class:`~mbwrap.algos.Algorithm`.
    """

    registry_name = "dyna"

    def __init__(
        self,
        env: gym.Env | VecEnv | None,
        agent: str | type[BaseAlgorithm] | BaseAlgorithm = "PPO",
        model: str | WorldModel = "mlp",
        *,
        agent_kwargs: dict[str, Any] | None = None,
        model_kwargs: dict[str, Any] | None = None,
        # Not from a paper: none runs arbitrary SB3 agents in imagination. Imagined episodes
        # are short and start from real states, which keeps compounding model error small
        # (the argument of MBPO, Janner et al. 2019); 20 imagined steps per real step; the
        # real buffer has SB3's default replay size.
        num_envs: int = 16,
        horizon: int = 100,
        real_steps_per_iteration: int = 1_000,
        imagined_steps_per_iteration: int = 20_000,
        initial_random_steps: int = 1_000,
        buffer_capacity: int = 1_000_000,
        fit_kwargs: dict[str, Any] | None = None,
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
        agent = check_agent(agent)
        self.horizon = _positive_int(horizon, "horizon")
        self.real_steps_per_iteration = _positive_int(
            real_steps_per_iteration, "real_steps_per_iteration"
        )
        self.imagined_steps_per_iteration = _positive_int(
            imagined_steps_per_iteration, "imagined_steps_per_iteration"
        )
        self.initial_random_steps = _positive_int(initial_random_steps, "initial_random_steps", 0)
        buffer_capacity = _positive_int(buffer_capacity, "buffer_capacity")
        if buffer_capacity < self.initial_random_steps:
            raise ValueError(
                f"buffer_capacity: {buffer_capacity} cannot hold the "
                f"{self.initial_random_steps} initial random steps"
            )
        self.fit_kwargs = dict(fit_kwargs or {})
        self.model = resolve_model(
            model,
            model_kwargs,
            self.observation_space,
            self.action_space,
            env_id=env_id(env),
            device=self.device,
        )
        self.buffer = ReplayBuffer(
            self.observation_space,
            self.action_space,
            buffer_capacity,
            device=self.model.device,
            n_envs=self.n_envs,
        )
        if isinstance(agent, BaseAlgorithm) and agent_kwargs:
            raise ValueError("agent_kwargs: only used when agent is a name or class")
        if isinstance(agent, BaseAlgorithm):
            check_same_space(
                self.observation_space, agent.observation_space, name="agent.observation_space"
            )
            check_same_space(self.action_space, agent.action_space, name="agent.action_space")
            self.num_envs = agent.n_envs
            self.agent_kwargs: dict[str, Any] | None = None
        else:
            self.num_envs = _positive_int(num_envs, "num_envs")
            self.agent_kwargs = decode_kwargs(agent_kwargs or {})
        self.dream = DreamVecEnv(
            self.model, self.num_envs, start_states=self.buffer, horizon=self.horizon
        )
        # VecMonitor puts the imagined episodes' returns in infos, for the agent's stats.
        self.dream_env = VecMonitor(as_vec_env(self.dream))
        if seed is not None:
            self.dream_env.seed(seed)
        if isinstance(agent, BaseAlgorithm):
            self.agent = agent
        else:
            self.agent = build_agent(
                agent,
                self.dream_env,
                self.agent_kwargs,
                seed=seed,
                device=self.device,
                verbose=max(verbose - 1, 0),
            )

    # ------------------------------------------------------------------ persistence
    def get_config(self) -> dict[str, Any]:
        model_name, model_kwargs = model_config(self.model)
        if self.agent_kwargs is None:
            agent_kwargs = agent_config(self.agent)
        else:
            agent_kwargs = encode_kwargs(self.agent_kwargs, name="agent_kwargs")
        return {
            "agent": agent_name(type(self.agent)),
            "model": model_name,
            "agent_kwargs": agent_kwargs,
            "model_kwargs": model_kwargs,
            "num_envs": self.num_envs,
            "horizon": self.horizon,
            "real_steps_per_iteration": self.real_steps_per_iteration,
            "imagined_steps_per_iteration": self.imagined_steps_per_iteration,
            "initial_random_steps": self.initial_random_steps,
            "buffer_capacity": self.buffer.capacity,
            "fit_kwargs": self.fit_kwargs,
        }

    def get_tensors(self) -> dict[str, torch.Tensor]:
        """The agent's policy weights, the model's tensors and the real transitions.

        The agent's optimizer state and its own buffers are not kept: learning after
        :meth:`load` restarts them.
        """
        tensors = {f"agent.{k}": v for k, v in self.agent.policy.state_dict().items()}
        tensors.update({f"model.{k}": v for k, v in self.model.state_dict().items()})
        tensors.update(buffer_tensors(self.buffer, "buffer"))
        return tensors

    def set_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

        self.agent.policy.load_state_dict(part("agent."))
        self.model.load_state_dict({k: v.to(self.model.device) for k, v in part("model.").items()})
        restore_buffer(self.buffer, tensors, "buffer")

    # ------------------------------------------------------------------ learning
    def _train_in_imagination(self) -> None:
        """Refit the model on all real data, then train the agent in imagination."""
        self._record_metrics("model", self.model.fit(self.buffer, **self.fit_kwargs))
        self.agent.set_env(self.dream_env)
        episodes = EpisodeStatsCallback()
        before = self.agent.num_timesteps
        self.agent.learn(
            self.imagined_steps_per_iteration,
            callback=episodes,
            log_interval=None,
            reset_num_timesteps=False,
        )
        self.logger.record("imagination/steps", self.agent.num_timesteps - before)
        self.logger.record("imagination/total_timesteps", self.agent.num_timesteps)
        if episodes.episode_returns:
            self.logger.record("imagination/ep_rew_mean", float(np.mean(episodes.episode_returns)))
            self.logger.record("imagination/ep_len_mean", float(np.mean(episodes.episode_lengths)))

    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "Dyna",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> Dyna:
        """Run for ``total_timesteps`` real env steps (or until a callback stops it).

        :param log_interval: iterations between log dumps (``None`` or 0: never).
        """
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        callback.on_training_start(locals(), globals())
        self.agent.set_logger(self.logger)
        iteration = 0
        while self.num_timesteps < total_timesteps:
            exploring = len(self.buffer) < self.initial_random_steps
            steps = (
                self.initial_random_steps - len(self.buffer)
                if exploring
                else self.real_steps_per_iteration
            )
            steps = min(steps, total_timesteps - self.num_timesteps)
            policy = None if exploring else self.agent
            if not self._collect_real_steps(self.buffer, steps, callback, policy):
                break
            if len(self.buffer) < self.initial_random_steps:
                continue
            self._train_in_imagination()
            iteration += 1
            if log_interval and iteration % log_interval == 0:
                self._dump_logs()
        callback.on_training_end()
        return self

    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """The agent's ``predict``."""
        return self.agent.predict(
            observation, state=state, episode_start=episode_start, deterministic=deterministic
        )
