"""PlaNet (Hafner, Lillicrap, Fischer, Villegas, Ha, Lee & Davidson 2019, "Learning Latent
Dynamics for Planning from Pixels", Algorithm 1).

A recurrent state-space model (:class:`~mbwrap.models.RSSM`) is trained on sequence chunks
of all real experience, and the agent acts by CEM planning in its latent space: at every
decision the belief over the latent state is filtered with the new observation, the
planner optimises action sequences from it through the model's prior and reward head,
and the first action, plus exploration noise, is executed. There is no policy network.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common import utils as sb3_utils
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.vec_env import VecEnv

from mbwrap.algos.base import (
    Algorithm,
    _check_finite,
    buffer_tensors,
    env_id,
    model_config,
    resolve_model,
    restore_buffer,
)
from mbwrap.buffers import ReplayBuffer
from mbwrap.device import make_generator
from mbwrap.models import WorldModel
from mbwrap.planners import Planner
from mbwrap.registry import make_planner
from mbwrap.spaces import as_batch

#: Model keywords of the RSSM that PlaNet builds by default (Hafner et al. 2019, Appendix
#: A): a Gaussian latent of 30 variables, a GRU of 200 units, hidden layers of 200; Adam
#: with learning rate 1e-3 and gradients clipped at norm 1000; chunks as PlaNet trains on.
PLANET_MODEL_KWARGS: dict[str, Any] = {
    "latent": "gaussian",
    "stoch": 30,
    "deter": 200,
    "hidden": 200,
    "learning_rate": 1e-3,
    "grad_clip": 1000.0,
    "batch_size": 50,
    "sequence_length": 50,
}

#: CEM keywords PlaNet plans with (Hafner et al. 2019, Section 3 and Appendix A): horizon
#: 12, 10 iterations of 1000 candidates refitted to the best 100, one rollout per
#: candidate, and a fresh belief over action sequences at every decision (no warm start
#: and no smoothing of the refit).
PLANET_CEM_KWARGS: dict[str, Any] = {
    "horizon": 12,
    "iterations": 10,
    "population": 1000,
    "num_elites": 100,
    "particles": 1,
    "alpha": 0.0,
    "warm_start": False,
}

_FILTER_METHODS = ("embed", "first_posterior", "obs_step", "action_vector", "train_step")


def _int_at_least(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


class _Belief:
    """The filtered latent states of a batch of envs and what acting keeps between calls.

    PlaNet keeps one for collecting experience and one for :meth:`PlaNet.predict`, so that
    an evaluation during learning (SB3's ``EvalCallback``) leaves the training envs'
    beliefs and planner memory alone.
    """

    def __init__(self, planner: Planner, generator: torch.Generator) -> None:
        self.planner = planner
        #: Samples the posterior and the exploration noise.
        self.generator = generator
        #: ``[B, F]`` posterior states, ``None`` before the first observation.
        self.state: torch.Tensor | None = None
        #: ``[B, *act_shape]`` the action executed since :attr:`state` was filtered.
        self.action: torch.Tensor | None = None
        #: ``[B, *act_shape]`` the last decision, repeated between decisions.
        self.decided: np.ndarray | None = None
        #: ``[B]`` bool: envs whose episode started since the last decision.
        self.pending: np.ndarray | None = None
        #: Env steps since the last decision, modulo the action repeat.
        self.phase = 0

    def forget(self) -> None:
        """Drop every env's belief; the next decision starts from the observation alone."""
        self.state = self.action = self.decided = self.pending = None
        self.phase = 0
        self.planner.reset()


class PlaNet(Algorithm):
    """PlaNet: a recurrent state-space model and CEM planning from its filtered belief.

    ``learn(total_timesteps)`` (Algorithm 1 of the paper):

    1. ``seed_episodes`` episodes with uniformly random actions;
    2. then, repeatedly: ``gradient_steps`` updates of the model on ``batch_size`` chunks
       of ``sequence_length`` steps drawn from every real step so far (chunks may span
       episodes; the model restarts its state where one ends), and collect experience
       until the next update is due (``train_every`` real steps, or by default the end of
       an episode, as the paper collects one episode per ``gradient_steps`` updates).

    At every decision the belief of each env is filtered with its new observation
    (``model.obs_step`` after the previous action; ``model.first_posterior`` where an
    episode starts), batched over the VecEnv's envs; the planner optimises from the
    beliefs (:meth:`~mbwrap.planners.Planner.plan_states`) with the model's reward and
    continuation heads; the first action, with exploration noise while learning, is
    repeated for ``action_repeat`` env steps, whose rewards the model sees as one. A
    transition stops where its episode ends; with several envs the others finish the
    repeat, and the ended env starts its next episode with the rest of it (counted, not
    stored), so that every env decides at the same time.

    :meth:`predict` keeps each env's belief between calls, as SB3's recurrent policies
    keep their state, and restarts it where ``episode_start`` is true (``evaluate_policy``
    passes it): the ``state`` argument is not used. With ``action_repeat > 1`` it decides
    every ``action_repeat`` calls and repeats the decision in between.

    :param env: the real env (a ``gymnasium.Env`` or SB3 ``VecEnv``).
    :param model: a registered model name (built with ``model_kwargs``) or a
        :class:`~mbwrap.models.WorldModel` that filters (``embed``, ``first_posterior``,
        ``obs_step``, ``action_vector``, ``train_step``), such as ``"rssm"``.
    :param planner: a registered planner name, built over the model with
        ``planner_kwargs``.
    :param model_kwargs: keywords of the model; for ``"rssm"`` they update
        :data:`PLANET_MODEL_KWARGS` (PlaNet's sizes).
    :param planner_kwargs: keywords of the planner; for ``"cem"`` they update
        :data:`PLANET_CEM_KWARGS` (PlaNet's CEM).
    :param seed_episodes: episodes of uniformly random actions before the first update.
    :param train_every: real steps between rounds of updates; ``None``: after every step
        at which an episode ended.
    :param gradient_steps: model updates per round (the paper's collect interval C).
    :param batch_size: chunks per update (B).
    :param sequence_length: steps per chunk (L).
    :param action_repeat: env steps per decision (R); the paper uses 2 to 8 per task.
    :param exploration_noise: for Box actions, the standard deviation of the Gaussian
        noise added to the planned action while learning, in units of half the action
        range; for Discrete actions, the probability of a uniformly random action instead.
    :param buffer_capacity: real transitions kept (of ``action_repeat`` env steps each).
        Observations are stored twice (``obs`` and ``next_obs``): 100,000 steps of 64 x 64
        RGB images take about 2.5 GB.
    Other parameters as :class:`~mbwrap.algos.Algorithm`.
    """

    registry_name = "planet"

    def __init__(
        self,
        env: gym.Env | VecEnv | None,
        model: str | WorldModel = "rssm",
        planner: str = "cem",
        *,
        model_kwargs: dict[str, Any] | None = None,
        planner_kwargs: dict[str, Any] | None = None,
        seed_episodes: int = 5,  # Hafner et al. 2019, Appendix A: S = 5 seed episodes
        train_every: int | None = None,
        gradient_steps: int = 100,  # Appendix A: collect interval C = 100
        batch_size: int = 50,  # Appendix A: batch size B = 50
        sequence_length: int = 50,  # Appendix A: chunk length L = 50
        action_repeat: int = 1,  # Appendix A: R = 2 to 8 per task; 1 leaves the env as is
        exploration_noise: float = 0.3,  # Appendix A: Normal(0, 0.3) on the action
        buffer_capacity: int = 100_000,
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
        self.seed_episodes = _int_at_least(seed_episodes, "seed_episodes", 0)
        self.train_every = (
            None if train_every is None else _int_at_least(train_every, "train_every", 1)
        )
        self.gradient_steps = _int_at_least(gradient_steps, "gradient_steps", 1)
        self.batch_size = _int_at_least(batch_size, "batch_size", 1)
        self.sequence_length = _int_at_least(sequence_length, "sequence_length", 1)
        self.action_repeat = _int_at_least(action_repeat, "action_repeat", 1)
        self.discrete = isinstance(self.action_space, spaces.Discrete)
        noise_ok = (
            isinstance(exploration_noise, (int, float, np.integer, np.floating))
            and not isinstance(exploration_noise, bool)
            and math.isfinite(exploration_noise)
            and 0 <= exploration_noise <= (1 if self.discrete else math.inf)
        )
        if not noise_ok:
            expected = "a probability in [0, 1]" if self.discrete else "a finite float >= 0"
            raise ValueError(f"exploration_noise: expected {expected}, got {exploration_noise!r}")
        self.exploration_noise = float(exploration_noise)
        if model_kwargs is not None and not isinstance(model_kwargs, dict):
            raise TypeError(f"model_kwargs: expected a dict or None, got {model_kwargs!r}")
        if isinstance(model, str) and model == "rssm":
            model_kwargs = {**PLANET_MODEL_KWARGS, **(model_kwargs or {})}
        self.model = resolve_model(
            model,
            model_kwargs,
            self.observation_space,
            self.action_space,
            env_id=env_id(env),
            device=self.device,
        )
        missing = [m for m in _FILTER_METHODS if not callable(getattr(self.model, m, None))]
        if missing:
            raise TypeError(
                f"model: PlaNet filters and trains a recurrent latent model, but "
                f"{type(self.model).__name__} lacks {', '.join(missing)}; use 'rssm'"
            )
        if not isinstance(planner, str):
            raise TypeError(
                f"planner: expected a registered planner name such as 'cem', got {planner!r}"
            )
        if planner_kwargs is not None and not isinstance(planner_kwargs, dict):
            raise TypeError(f"planner_kwargs: expected a dict or None, got {planner_kwargs!r}")
        for key in ("reward_fn", "termination_fn"):
            if key in (planner_kwargs or {}):
                raise ValueError(
                    f"planner_kwargs: PlaNet plans with the model's reward and continuation "
                    f"heads in latent space; {key} (a function of observations) does not apply"
                )
        self.planner_name = planner
        self.planner_kwargs = {
            **(PLANET_CEM_KWARGS if planner == "cem" else {}),
            **(planner_kwargs or {}),
        }
        #: The planner :meth:`predict` acts with.
        self.planner: Planner = self._make_planner()
        self._collect = _Belief(self._make_planner(), make_generator(self.model.device, None))
        self._eval = _Belief(self.planner, make_generator(self.model.device, None))
        self.buffer = ReplayBuffer(
            self.observation_space,
            self.action_space,
            _int_at_least(buffer_capacity, "buffer_capacity", 1),
            device=self.model.device,
            n_envs=self.n_envs,
        )
        self._low, self._high = self._action_bounds()
        #: Real episodes finished over every ``learn`` call.
        self.real_episodes = 0
        #: Rounds of ``gradient_steps`` model updates done.
        self.train_rounds = 0
        self._steps_since_train = 0
        self._episodes_since_train = 0
        self._seed_generators(seed)

    def _make_planner(self) -> Planner:
        planner = make_planner(self.planner_name, self.model, **self.planner_kwargs)
        if not callable(getattr(planner, "plan_states", None)):
            raise TypeError(
                f"planner: PlaNet plans from filtered latent states, which needs a "
                f"mbwrap.planners.Planner (plan_states); {self.planner_name!r} built a "
                f"{type(planner).__name__}"
            )
        # The planner takes reward and termination from the RSSM's heads: registered
        # functions read real observations, which its latent states are not.
        return planner

    def _action_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Box bounds ``[*act_shape]`` on the model's device (unused for Discrete)."""
        if self.discrete:
            empty = torch.zeros(0, device=self.model.device)
            return empty, empty
        assert isinstance(self.action_space, spaces.Box)
        low = torch.as_tensor(self.action_space.low, dtype=torch.float32)
        high = torch.as_tensor(self.action_space.high, dtype=torch.float32)
        return low.to(self.model.device), high.to(self.model.device)

    def _seed_generators(self, seed: int | None) -> None:
        def offset(k: int) -> int | None:
            return None if seed is None else int(seed) + k

        device = self.model.device
        self.planner.generator = make_generator(device, offset(0))
        self._collect.planner.generator = make_generator(device, offset(1))
        self._eval.generator = make_generator(device, offset(2))
        self._collect.generator = make_generator(device, offset(3))
        self._data_generator = make_generator(self.buffer.device, offset(4))
        self._model_generator = make_generator(device, offset(5))

    def set_random_seed(self, seed: int | None = None) -> None:
        """Seed Python, NumPy, torch, the action space, the env (at its next reset) and
        PlaNet's own generators (filtering, exploration, planning, replay), as SB3's
        ``set_random_seed`` does; ``None`` leaves the global generators and env alone and
        reseeds PlaNet's from fresh entropy."""
        if seed is not None:
            sb3_utils.set_random_seed(seed)
            self.action_space.seed(seed)
            if self.env is not None:
                self.env.seed(seed)
        self._seed_generators(seed)

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
            "seed_episodes": self.seed_episodes,
            "train_every": self.train_every,
            "gradient_steps": self.gradient_steps,
            "batch_size": self.batch_size,
            "sequence_length": self.sequence_length,
            "action_repeat": self.action_repeat,
            "exploration_noise": self.exploration_noise,
            "buffer_capacity": self.buffer.capacity,
        }

    def get_tensors(self) -> dict[str, torch.Tensor]:
        """The model's tensors, the real transitions and the learning progress."""
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update(buffer_tensors(self.buffer, "buffer"))
        tensors["progress"] = torch.tensor([self.real_episodes, self.train_rounds])
        return tensors

    def set_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        model = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict({k: v.to(self.model.device) for k, v in model.items()})
        restore_buffer(self.buffer, tensors, "buffer")
        if "progress" in tensors:
            self.real_episodes, self.train_rounds = (int(v) for v in tensors["progress"])

    # ------------------------------------------------------------------ acting
    @property
    def latent_state(self) -> torch.Tensor | None:
        """The beliefs :meth:`predict` keeps: ``[B, F]`` posterior states after the last
        decision's observations (``None`` before the first)."""
        return self._eval.state

    @torch.no_grad()
    def _decide(
        self, belief: _Belief, observation: Any, restart: np.ndarray, explore: bool
    ) -> torch.Tensor:
        """Filter every env's belief with its new observation and plan from it.

        :param observation: ``[B, *obs_shape]``.
        :param restart: ``[B]`` bool, envs whose episode started since the last decision.
        :return: ``[B, *act_shape]`` actions on the model's device, noisy if ``explore``.
        """
        obs, _ = as_batch(
            observation, self.observation_space, name="observation", device=self.model.device
        )
        embed = self.model.embed(obs)
        first = self.model.first_posterior(embed, belief.generator)
        if belief.state is None or belief.state.shape[0] != obs.shape[0]:
            belief.planner.reset()
            state = first
        else:
            belief.planner.reset(restart)
            after, _, _ = self.model.obs_step(
                belief.state, self.model.action_vector(belief.action), embed, belief.generator
            )
            restart_rows = torch.as_tensor(restart, device=self.model.device)
            state = torch.where(restart_rows[:, None], first, after)
        action = belief.planner.plan_states(state)
        if explore and self.exploration_noise > 0:
            action = self._explore(action, belief.generator)
        belief.state, belief.action = state, action
        return action

    def _explore(self, action: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``[B, *act_shape]`` planned actions -> the ones executed while learning."""
        if self.discrete:
            assert isinstance(self.action_space, spaces.Discrete)
            n = int(self.action_space.n)
            uniform = torch.randint(
                n, action.shape, device=action.device, generator=generator, dtype=action.dtype
            )
            swap = torch.rand(action.shape, device=action.device, generator=generator)
            return torch.where(swap < self.exploration_noise, uniform, action)
        noise = torch.randn(action.shape, device=action.device, generator=generator)
        scale = self.exploration_noise * (self._high - self._low) / 2
        return torch.clamp(action + scale * noise, self._low, self._high)

    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Actions for a batch of observations ``[B, *obs_shape]`` (or one), planned from
        each env's belief; ``deterministic=False`` adds the exploration noise.

        :param state: not used (the beliefs are kept here); returned unchanged.
        :param episode_start: ``[B]`` bool, envs whose episode starts with ``observation``;
            ``None``: none does. A new batch size restarts every env.
        """
        obs, batched = as_batch(
            observation, self.observation_space, name="observation", device=self.model.device
        )
        batch = obs.shape[0]
        belief = self._eval
        if episode_start is None:
            starts = np.zeros(batch, dtype=bool)
        else:
            starts = np.asarray(episode_start, dtype=bool).reshape(-1)
            if starts.shape != (batch,):
                raise ValueError(
                    f"episode_start: expected {batch} booleans, one per observation, got "
                    f"shape {np.shape(episode_start)}"
                )
        if belief.decided is None or belief.decided.shape[0] != batch:
            belief.forget()
            starts = np.ones(batch, dtype=bool)
        belief.pending = starts if belief.pending is None else belief.pending | starts
        if starts.all():
            belief.phase = 0
        if belief.phase == 0:
            action = self._decide(belief, obs, belief.pending, explore=not deterministic)
            belief.decided = action.cpu().numpy()
            belief.pending = np.zeros(batch, dtype=bool)
        belief.phase = (belief.phase + 1) % self.action_repeat
        assert belief.decided is not None
        actions = belief.decided.copy()
        return (actions if batched else actions[0]), state

    # ------------------------------------------------------------------ learning
    def _train_due(self) -> bool:
        if self.buffer.stored_rows < self.sequence_length:
            return False
        if self.train_rounds == 0:
            return True
        if self.train_every is None:
            return self._episodes_since_train > 0
        return self._steps_since_train >= self.train_every

    def _train(self) -> None:
        self.model.train()
        metrics: dict[str, Any] = {}
        for _ in range(self.gradient_steps):
            sequence = self.buffer.sample_sequences(
                self.batch_size,
                self.sequence_length,
                generator=self._data_generator,
                cross_episodes=True,
            )
            metrics, _ = self.model.train_step(sequence, self._model_generator)
        self.train_rounds += 1
        self._steps_since_train = self._episodes_since_train = 0
        self._record_metrics("train", metrics)
        self.logger.record("train/rounds", self.train_rounds)
        self.logger.record("train/n_updates", self.train_rounds * self.gradient_steps)

    def _collect_decision(self, callback: BaseCallback, random: bool) -> bool:
        """Decide once for every env and act for ``action_repeat`` env steps, storing one
        transition per env (its rewards summed, cut where its episode ends).

        :return: ``False`` when a callback asked to stop training.
        """
        assert self.env is not None and self._last_obs is not None, "call _setup_learn() first"
        n_envs = self.env.num_envs
        if self._last_obs is not self._collected_obs:
            # learn() reset the env: the stored pieces end here, every belief restarts.
            self.buffer.end_episodes()
            self._collect.forget()
            self._episode_starts = np.ones(n_envs, dtype=bool)
        assert self._episode_starts is not None
        callback.on_rollout_start()
        obs = self._last_obs
        if random:
            self._collect.forget()
            actions = np.stack([self.action_space.sample() for _ in range(n_envs)])
        else:
            actions = self._decide(self._collect, obs, self._episode_starts, True).cpu().numpy()
        reward = np.zeros(n_envs, dtype=np.float64)
        ended = np.zeros(n_envs, dtype=bool)
        truncated = np.zeros(n_envs, dtype=bool)
        terminal: dict[int, Any] = {}
        continue_training = True
        for _ in range(self.action_repeat):
            new_obs, rewards, dones, infos = self.env.step(actions)
            self.num_timesteps += n_envs
            self._steps_since_train += n_envs
            reward += np.where(ended, 0.0, rewards)
            for i in np.flatnonzero(dones & ~ended):
                terminal[int(i)] = infos[i]["terminal_observation"]
                truncated[i] = bool(infos[i].get("TimeLimit.truncated", False))
            ended |= np.asarray(dones, dtype=bool)
            self._update_info_buffer(infos)
            callback.update_locals(
                {
                    "new_obs": new_obs,
                    "rewards": rewards,
                    "dones": dones,
                    "infos": infos,
                    "actions": actions,
                }
            )
            if not callback.on_step():
                continue_training = False
                break
            if ended.all():
                break
        next_obs = np.array(new_obs, copy=True)
        for i, final in terminal.items():
            next_obs[i] = final
        _check_finite(next_obs, reward, self.num_timesteps)
        self.buffer.add(obs, actions, reward, next_obs, ended & ~truncated, ended & truncated)
        self._last_obs = self._collected_obs = new_obs
        self._episode_starts = ended
        self.real_episodes += int(ended.sum())
        self._episodes_since_train += int(ended.sum())
        callback.on_rollout_end()
        return continue_training

    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "PlaNet",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> PlaNet:
        """Run for ``total_timesteps`` real env steps (or until a callback stops it).

        :param log_interval: rounds of updates between log dumps (``None`` or 0: never).
        """
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        callback.on_training_start(locals(), globals())
        while self.num_timesteps < total_timesteps:
            random = self.real_episodes < self.seed_episodes
            if not random and self._train_due():
                self._train()
                if log_interval and self.train_rounds % log_interval == 0:
                    self._dump_logs()
            if not self._collect_decision(callback, random):
                break
        callback.on_training_end()
        return self


__all__ = ["PLANET_CEM_KWARGS", "PLANET_MODEL_KWARGS", "PlaNet"]
