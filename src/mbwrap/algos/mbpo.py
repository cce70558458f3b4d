"""Model-Based Policy Optimization (MBPO; Janner, Fu, Zhang & Levine 2019, "When to Trust
Your Model: Model-Based Policy Optimization", Algorithm 2).

Short model rollouts branched from real states feed an off-policy agent (SAC) whose
every minibatch mixes a few real transitions with many imagined ones. Defaults follow the
paper's Appendix C and the official code (github.com/jannerm/mbpo: ``mbpo/algorithms/
mbpo.py``, ``examples/config/hopper/0.py``, ``examples/development/variants.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.vec_env import VecEnv

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
from mbwrap.algos.mixed_buffer import MixedReplayBuffer, split_batch, unscale_action
from mbwrap.buffers import ReplayBuffer
from mbwrap.envs import DreamVecEnv, as_vec_env
from mbwrap.envs.imagination import ImaginationCore
from mbwrap.errors import UnsupportedSpaceError
from mbwrap.models import WorldModel
from mbwrap.spaces import check_same_space


def rollout_length(epoch: int, schedule: Sequence[float]) -> int:
    """MBPO's model rollout length ``k`` at ``epoch``.

    ``schedule = [min_epoch, max_epoch, min_length, max_length]``: ``min_length`` up to
    ``min_epoch``, then linear in the epoch up to ``max_length`` at ``max_epoch``, constant
    after; truncated to an int (``MBPO._set_rollout_length`` in the official code).
    """
    min_epoch, max_epoch, min_length, max_length = schedule
    if epoch <= min_epoch:
        return int(min_length)
    progress = min((epoch - min_epoch) / (max_epoch - min_epoch), 1.0)
    return int(progress * (max_length - min_length) + min_length)


def model_buffer_capacity(
    rollout_batch_size: int,
    epoch_length: int,
    model_train_freq: int,
    rollout_length: int,
    model_retain_epochs: int,
) -> int:
    """Imagined transitions kept: those generated in the last ``model_retain_epochs``
    epochs, ``rollout_batch_size`` rollouts of ``rollout_length`` steps every
    ``model_train_freq`` real steps (``MBPO._reallocate_model_pool``)."""
    rollouts_per_epoch = rollout_batch_size * epoch_length / model_train_freq
    return model_retain_epochs * int(rollout_length * rollouts_per_epoch)


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def _check_schedule(schedule: Sequence[float]) -> list[float]:
    values = list(schedule)
    if len(values) != 4 or not all(isinstance(v, (int, float, np.number)) for v in values):
        raise ValueError(
            "rollout_schedule: expected [min_epoch, max_epoch, min_length, max_length], "
            f"got {schedule!r}"
        )
    min_epoch, max_epoch, min_length, max_length = values
    if max_epoch <= min_epoch or min_length < 1 or max_length < 1:
        raise ValueError(
            f"rollout_schedule: needs max_epoch > min_epoch and lengths >= 1, got {schedule!r}"
        )
    return values


class MBPO(Algorithm):
    """MBPO: an off-policy SB3 agent trained on branched model rollouts.

    After ``initial_random_steps`` uniformly random real steps, each real step:

    - every ``model_train_freq`` real steps: refit the model on all real data, then
      branch ``rollout_batch_size`` rollouts of ``k = rollout_length(epoch,
      rollout_schedule)`` steps from real states drawn uniformly, acting with the agent's
      stochastic policy, batched on the model's device; a rollout stops where the
      termination function says so. The model buffer keeps the rollouts of the last
      ``model_retain_epochs`` epochs;
    - take one real step with the agent's policy;
    - ``updates_per_step`` agent updates (``agent.train``), each on a minibatch of
      ``real_ratio`` real and ``1 - real_ratio`` model transitions
      (:class:`~mbwrap.algos.MixedReplayBuffer` replaces the agent's ``replay_buffer``).

    An epoch is ``epoch_length`` real steps after the initial random ones. Logs: the real
    episodes (``rollout/...``), the model's fit (``model/...``), the rollouts
    (``imagination/...``) and the agent's losses (``train/...``), dumped every
    ``log_interval`` epochs.

    :param env: the real env; its action space must be a ``Box``.
    :param agent: an SB3 off-policy algorithm with a Box action space (SAC, TD3, TQC...)
        as a name, a class or an instance. A name or class is built with
        ``agent_kwargs``; its own replay buffer is never used.
    :param model: a registered model name (built with ``model_kwargs``) or a
        :class:`~mbwrap.models.WorldModel`.
    :param epoch_length: real steps per epoch.
    :param model_train_freq: real steps between model refits (and rollout batches).
    :param rollout_batch_size: rollouts branched at each refit.
    :param rollout_schedule: ``[min_epoch, max_epoch, min_length, max_length]`` of
        :func:`rollout_length`.
    :param model_retain_epochs: epochs of rollouts the model buffer keeps.
    :param real_ratio: share of real transitions in each agent minibatch.
    :param updates_per_step: agent gradient updates per real step (``G``).
    :param initial_random_steps: real steps with uniformly random actions first.
    :param buffer_capacity: real transitions kept.
    :param fit_kwargs: passed to ``model.fit``.
    Other parameters as :class:`~mbwrap.algos.Algorithm`.
    """

    registry_name = "mbpo"

    def __init__(
        self,
        env: gym.Env | VecEnv | None,
        agent: str | type[BaseAlgorithm] | BaseAlgorithm = "SAC",
        model: str | WorldModel = "gaussian-ensemble",
        *,
        agent_kwargs: dict[str, Any] | None = None,
        model_kwargs: dict[str, Any] | None = None,
        # Janner et al. 2019, Appendix C (E = 1000 steps per epoch, M = 400 model rollouts
        # and G = 20 updates per real step), as the official examples/config/hopper/0.py
        # sets them: epoch_length 1000, model_train_freq 250, rollout_batch_size 1e5
        # (1e5 / 250 = 400 per real step), n_train_repeat 20, real_ratio 0.05,
        # model_retain_epochs 1.
        epoch_length: int = 1000,
        model_train_freq: int = 250,
        rollout_batch_size: int = 100_000,
        # Appendix C, Hopper: k from 1 to 15 over epochs 20 to 100 (the released
        # hopper/0.py reaches 15 at epoch 150: [20, 150, 1, 15]); its HalfCheetah and
        # Walker2d configs keep k = 1, InvertedPendulum's is [1, 15, 1, 1].
        rollout_schedule: Sequence[float] = (20, 100, 1, 15),
        model_retain_epochs: int = 1,
        real_ratio: float = 0.05,
        updates_per_step: int = 20,  # G; halfcheetah/0.py uses 40
        # examples/development/variants.py: 5000 initial exploration steps for MBPO, and a
        # 1e6-transition real replay pool.
        initial_random_steps: int = 5000,
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
        is_off_policy = isinstance(agent, OffPolicyAlgorithm) or (
            isinstance(agent, type) and issubclass(agent, OffPolicyAlgorithm)
        )
        if not is_off_policy:
            name = agent.__name__ if isinstance(agent, type) else type(agent).__name__
            raise TypeError(
                f"agent: MBPO trains its agent from a replay buffer; expected an SB3 "
                f"off-policy algorithm (SAC, TD3, TQC...), got {name}"
            )
        if not isinstance(self.action_space, gym.spaces.Box):
            raise UnsupportedSpaceError(
                f"env.action_space: MBPO needs a Box action space, got {self.action_space!r}"
            )
        self.epoch_length = _positive_int(epoch_length, "epoch_length")
        self.model_train_freq = _positive_int(model_train_freq, "model_train_freq")
        self.rollout_batch_size = _positive_int(rollout_batch_size, "rollout_batch_size")
        self.rollout_schedule = _check_schedule(rollout_schedule)
        self.model_retain_epochs = _positive_int(model_retain_epochs, "model_retain_epochs")
        split_batch(1, real_ratio)
        self.real_ratio = float(real_ratio)
        self.updates_per_step = _positive_int(updates_per_step, "updates_per_step", 0)
        self.initial_random_steps = _positive_int(initial_random_steps, "initial_random_steps", 0)
        self.fit_kwargs = dict(fit_kwargs or {})
        self.model = resolve_model(
            model,
            model_kwargs,
            self.observation_space,
            self.action_space,
            env_id=env_id(env),
            device=self.device,
        )
        self.real_buffer = ReplayBuffer(
            self.observation_space,
            self.action_space,
            _positive_int(buffer_capacity, "buffer_capacity"),
            device=self.model.device,
            n_envs=self.n_envs,
        )
        #: Imagined transitions; allocated at the first refit, resized with ``k``.
        self.model_buffer: ReplayBuffer | None = None
        if isinstance(agent, BaseAlgorithm) and agent_kwargs:
            raise ValueError("agent_kwargs: only used when agent is a name or class")
        if isinstance(agent, BaseAlgorithm):
            check_same_space(
                self.observation_space, agent.observation_space, name="agent.observation_space"
            )
            check_same_space(self.action_space, agent.action_space, name="agent.action_space")
            self.agent = agent
            self.agent_kwargs: dict[str, Any] | None = None
        else:
            # The agent never steps an env; one dream episode gives it its spaces. Its own
            # replay buffer is replaced, so it is made as small as SB3 allows.
            self.agent_kwargs = {**decode_kwargs(agent_kwargs or {}), "buffer_size": 1}
            placeholder = DreamVecEnv(self.model, 1, start_states=self.real_buffer, horizon=1)
            self.agent = build_agent(
                agent,
                as_vec_env(placeholder),
                self.agent_kwargs,
                seed=seed,
                device=self.device,
                verbose=max(verbose - 1, 0),
            )
        self.mixed_buffer = MixedReplayBuffer(
            self.real_buffer, None, self.real_ratio, device=self.agent.device, seed=seed
        )
        self.agent.replay_buffer = self.mixed_buffer  # type: ignore[assignment]
        self.rng = np.random.default_rng(seed)
        #: Real steps taken over every ``learn`` call (epochs count from these).
        self.real_steps = 0
        #: Agent gradient updates done.
        self.agent_updates = 0
        self._steps_since_fit: int | None = None

    # ------------------------------------------------------------------ schedule
    @property
    def epoch(self) -> int:
        """Epochs completed since the initial random steps (0 during them)."""
        return max(self.real_steps - self.initial_random_steps, 0) // self.epoch_length

    @property
    def rollout_length(self) -> int:
        """``k`` for the current epoch."""
        return rollout_length(self.epoch, self.rollout_schedule)

    @property
    def model_buffer_capacity(self) -> int:
        """Capacity of the model buffer for the current ``k``."""
        return model_buffer_capacity(
            self.rollout_batch_size,
            self.epoch_length,
            self.model_train_freq,
            self.rollout_length,
            self.model_retain_epochs,
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
            "epoch_length": self.epoch_length,
            "model_train_freq": self.model_train_freq,
            "rollout_batch_size": self.rollout_batch_size,
            "rollout_schedule": self.rollout_schedule,
            "model_retain_epochs": self.model_retain_epochs,
            "real_ratio": self.real_ratio,
            "updates_per_step": self.updates_per_step,
            "initial_random_steps": self.initial_random_steps,
            "buffer_capacity": self.real_buffer.capacity,
            "fit_kwargs": self.fit_kwargs,
        }

    def get_tensors(self) -> dict[str, torch.Tensor]:
        """The agent's policy weights, the model's tensors, the real transitions and the
        step counters. The model buffer is not kept (the next step after :meth:`load`
        refits the model and rolls it out again), nor the agent's optimizer state."""
        tensors = {f"agent.{k}": v for k, v in self.agent.policy.state_dict().items()}
        tensors.update({f"model.{k}": v for k, v in self.model.state_dict().items()})
        tensors.update(buffer_tensors(self.real_buffer, "real_buffer"))
        tensors["counters"] = torch.tensor([self.real_steps, self.agent_updates])
        return tensors

    def set_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

        self.agent.policy.load_state_dict(part("agent."))
        self.model.load_state_dict({k: v.to(self.model.device) for k, v in part("model.").items()})
        restore_buffer(self.real_buffer, tensors, "real_buffer")
        self.real_steps, self.agent_updates = (int(v) for v in tensors["counters"].tolist())

    # ------------------------------------------------------------------ model rollouts
    def _resize_model_buffer(self) -> ReplayBuffer:
        capacity = self.model_buffer_capacity
        old = self.model_buffer
        if old is None or old.capacity != capacity:
            new = ReplayBuffer(
                self.observation_space, self.action_space, capacity, device=self.model.device
            )
            if old is not None and len(old):
                # Keeps the newest when the buffer shrinks, all of them when it grows.
                data = old.transitions()
                new.extend(
                    data.obs,
                    data.action,
                    data.reward,
                    data.next_obs,
                    data.terminated,
                    data.truncated,
                )
            self.model_buffer = self.mixed_buffer.model = new
        assert self.model_buffer is not None
        return self.model_buffer

    @torch.no_grad()
    def _policy_actions(self, obs: torch.Tensor) -> torch.Tensor:
        """The agent's stochastic actions in env units for ``obs: [B, *obs_shape]``."""
        policy = self.agent.policy
        policy.set_training_mode(False)
        action = policy(obs.to(self.agent.device), deterministic=False)
        space = self.action_space
        low = torch.as_tensor(space.low, dtype=torch.float32, device=action.device)
        high = torch.as_tensor(space.high, dtype=torch.float32, device=action.device)
        if policy.squash_output:
            action = unscale_action(action, low, high)
        return torch.clamp(action, low, high).to(self.model.device)

    def _rollout(self) -> dict[str, float]:
        """Branch ``rollout_batch_size`` rollouts of ``k`` steps from real states into the
        model buffer; every rollout is stepped in one batched model call per step."""
        buffer = self._resize_model_buffer()
        length = self.rollout_length
        batch = self.rollout_batch_size
        core = ImaginationCore(self.model, batch, start_states=self.real_buffer)
        core.seed(int(self.rng.integers(2**63 - 1)))
        obs = core.reset()
        alive = torch.ones(batch, dtype=torch.bool, device=self.model.device)
        added, reward_sum = 0, 0.0
        for _ in range(length):
            action = self._policy_actions(obs)
            # Ended rollouts are stepped too (one batched call) and their output dropped;
            # the core keeps any non-finite state at its last finite value.
            next_obs, reward, terminated, nonfinite = core.step(action)
            keep = alive & ~nonfinite
            count = int(keep.sum())
            core.report_nonfinite(int((alive & nonfinite).sum()))
            if count:
                buffer.extend(
                    obs[keep],
                    action[keep],
                    reward[keep],
                    next_obs[keep],
                    terminated[keep],
                    torch.zeros(count, dtype=torch.bool, device=keep.device),
                )
                added += count
                reward_sum += float(reward[keep].sum())
            alive = keep & ~terminated
            if not bool(alive.any()):
                break
            obs = next_obs
        return {
            "rollout_length": length,
            "mean_rollout_length": added / batch,
            "reward_mean": reward_sum / max(added, 1),
            "added": added,
            "model_buffer_size": len(buffer),
            "model_buffer_capacity": buffer.capacity,
        }

    def _refit_and_rollout(self) -> None:
        self._record_metrics("model", self.model.fit(self.real_buffer, **self.fit_kwargs))
        self._record_metrics("imagination", self._rollout())
        self._steps_since_fit = 0

    # ------------------------------------------------------------------ learning
    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "MBPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> MBPO:
        """Run for ``total_timesteps`` real env steps (or until a callback stops it).

        :param log_interval: epochs between log dumps (``None`` or 0: never).
        """
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        callback.on_training_start(locals(), globals())
        self.agent.set_logger(self.logger)
        while self.num_timesteps < total_timesteps:
            exploring = self.real_steps < self.initial_random_steps
            if not exploring and (
                self._steps_since_fit is None or self._steps_since_fit >= self.model_train_freq
            ):
                self._refit_and_rollout()
            epoch = self.epoch
            policy = None if exploring else self.agent
            keep_going = self._collect_real_steps(self.real_buffer, 1, callback, policy)

            if not keep_going:
                break
            if not exploring:
                assert self._steps_since_fit is not None
                self._steps_since_fit += self.n_envs
                gradient_steps = self.updates_per_step * self.n_envs
                if gradient_steps:
                    self.agent.train(
                        gradient_steps=gradient_steps, batch_size=self.agent.batch_size
                    )
                    self.agent_updates += gradient_steps
            if self.epoch > epoch and log_interval and self.epoch % log_interval == 0:
                self.logger.record("time/epoch", self.epoch)
                self.logger.record("train/agent_updates", self.agent_updates)
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
