"""Model-Based Policy Optimization (MBPO; Janner, Fu, Zhang & Levine 2019, "When to Trust
Your Model: Model-Based Policy Optimization", Algorithm 2).

Short model rollouts branched from real states feed an off-policy agent (SAC) whose
every minibatch mixes a few real transitions with many imagined ones. Defaults follow the
paper's Appendix C and the official code (github.com/jannerm/mbpo: ``mbpo/algorithms/
mbpo.py``, ``examples/config/hopper/0.py``, ``examples/development/variants.py``). With
discrete actions the agent is one of the DQN family (DQN, QR-DQN), as in the
discrete-action MBPO variants of later work.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from mbwrap.algos.agent_clock import AgentClock
from mbwrap.algos.base import Algorithm
from mbwrap.algos.mbpo_config import MBPOConfig, model_buffer_capacity, rollout_length
from mbwrap.buffers import MixedReplayBuffer, ReplayBuffer
from mbwrap.envs.branched import branched_rollouts
from mbwrap.space_support import SpaceSupport
from mbwrap.spaces import action_bounds, unscale_action


class MBPO(AgentClock, Algorithm):
    """MBPO: an off-policy SB3 agent trained on branched model rollouts.

    After ``learning_starts`` uniformly random real steps, each iteration:

    - when ``model_train_freq`` real steps have passed since the last refit (and before
      the first policy step): refit the model on all real data, then branch
      ``rollout_batch_size`` rollouts of ``k = rollout_length(epoch, rollout_schedule)``
      steps from real states drawn uniformly, acting with the agent's stochastic policy,
      batched on the model's device; a rollout stops where the termination function says
      so. The model buffer keeps the rollouts of the last ``model_retain_epochs`` epochs;
    - take ``train_freq`` real steps with the agent's policy (its clock follows them: the
      DQN family's exploration rate and target-network copies go by real steps, as when
      it learns on the real env);
    - ``gradient_steps`` agent updates per ``train_freq`` real steps (``agent.train``),
      each on a minibatch of ``real_ratio`` real and ``1 - real_ratio`` model transitions
      (:class:`~mbwrap.buffers.MixedReplayBuffer` replaces the agent's ``replay_buffer``).

    An epoch is ``epoch_length`` real steps after the random ones. Logs: the real episodes
    (``rollout/...``), the model's fit (``model/...``), the rollouts (``imagination/...``)
    and the agent's losses (``train/...``), dumped at the end of each epoch.

    Settings: :class:`MBPOConfig` (``agent``, ``model`` also by position); Box actions
    (SAC, TD3, DDPG, TQC, CrossQ) or Discrete ones (DQN, QRDQN: the model takes them
    one-hot; rollouts act epsilon-greedily with the agent's current exploration rate).
    """

    registry_name = "mbpo"
    space_support = SpaceSupport(
        observations=("Box",), actions=("Box", "Discrete"), bounded_actions=True,
        action_note="Discrete actions with a DQN-family agent",
    )
    Config = MBPOConfig
    positional_settings = ("agent", "model")
    saved_state = ("agent", "model", "rng", "mixed_buffer", "agent_updates")
    saved_buffers = ("buffer", "model_buffer_state")
    config: MBPOConfig

    def __init__(self, env: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(env, *args, **kwargs)
        config = self.config
        self.model = self._make_model()
        self.buffer = self._make_buffer()
        #: Imagined transitions; allocated at the first refit, resized with ``k``.
        self.model_buffer: ReplayBuffer | None = None
        self.agent = self._make_agent()
        self.mixed_buffer = MixedReplayBuffer(
            self.buffer, None, config.real_ratio, device=self.agent.device, seed=config.seed
        )
        self.agent.replay_buffer = self.mixed_buffer  # type: ignore[assignment]
        #: Seeds each batch of rollouts.
        self.rng = np.random.default_rng(config.seed)
        self.agent_updates = 0
        self._dumped_epoch = 0

    # ------------------------------------------------------------------ schedule
    @property
    def epoch(self) -> int:
        """Epochs completed since the random steps (0 during them)."""
        config = self.config
        return max(self.real_steps - config.learning_starts, 0) // config.epoch_length

    @property
    def rollout_length(self) -> int:
        """``k`` for the current epoch."""
        return rollout_length(self.epoch, self.config.rollout_schedule)

    @property
    def model_buffer_capacity(self) -> int:
        """Capacity of the model buffer for the current ``k``."""
        c = self.config
        return model_buffer_capacity(
            c.rollout_batch_size, c.epoch_length, c.model_train_freq, self.rollout_length,
            c.model_retain_epochs,
        )

    # ------------------------------------------------------------------ checkpoints
    @property
    def model_buffer_state(self) -> dict[str, Any] | None:
        """The model buffer with its capacity (it depends on the epoch it was sized in)."""
        if self.model_buffer is None:
            return None
        return {"capacity": self.model_buffer.capacity, **self.model_buffer.state_dict()}

    @model_buffer_state.setter
    def model_buffer_state(self, state: dict[str, Any] | None) -> None:
        buffer = None
        if state is not None:
            state = dict(state)
            buffer = self._new_model_buffer(int(state.pop("capacity")))
            buffer.load_state_dict(state)
        self.model_buffer = self.mixed_buffer.model = buffer

    # ------------------------------------------------------------------ model rollouts
    def _new_model_buffer(self, capacity: int) -> ReplayBuffer:
        return ReplayBuffer(
            self.observation_space, self.action_space, capacity, device=self.model.device
        )

    def _resize_model_buffer(self) -> ReplayBuffer:
        capacity = self.model_buffer_capacity
        old = self.model_buffer
        if old is None or old.capacity != capacity:
            new = self._new_model_buffer(capacity)
            if old is not None and len(old):
                # Keeps the newest when the buffer shrinks, all of them when it grows.
                data = old.transitions()
                new.extend(*(getattr(data, f) for f in ("obs", "action", "reward", "next_obs",
                                                        "terminated", "truncated")))
            self.model_buffer = self.mixed_buffer.model = new
        assert self.model_buffer is not None
        return self.model_buffer

    @torch.no_grad()
    def _policy_actions(self, obs: torch.Tensor) -> torch.Tensor:
        """The agent's stochastic actions in env units: ``obs: [B, *obs_shape]`` ->
        ``[B, *act_shape]`` on the model's device."""
        policy = self.agent.policy
        policy.set_training_mode(False)
        action = policy(obs.to(self.agent.device), deterministic=False)
        if isinstance(self.action_space, gym.spaces.Discrete):
            return self._explore(action).to(self.model.device)
        low, high = action_bounds(self.action_space, action.device)  # type: ignore[arg-type]
        if policy.squash_output:
            action = unscale_action(action, low, high)
        return torch.clamp(action, low, high).to(self.model.device)

    def _explore(self, greedy: torch.Tensor) -> torch.Tensor:
        """Epsilon-greedy ``[B]`` actions around the greedy ones ``[B]``, with the agent's
        current ``exploration_rate`` (0 for agents without one): the rollouts follow the
        policy the agent acts with, as SAC's sampled actions do for continuous control."""
        rate = float(getattr(self.agent, "exploration_rate", 0.0))
        if rate <= 0.0:
            return greedy
        n = int(self.action_space.n)  # type: ignore[attr-defined]
        explore = torch.rand(greedy.shape, device=greedy.device) < rate
        uniform = torch.randint(n, greedy.shape, device=greedy.device)
        return torch.where(explore, uniform, greedy)

    def _rollout(self) -> dict[str, float]:
        """Branch ``rollout_batch_size`` rollouts of ``k`` steps from real states into the
        model buffer (resized for ``k`` first)."""
        return branched_rollouts(
            self.model,
            self.buffer,
            self._policy_actions,
            self._resize_model_buffer(),
            num_rollouts=self.config.rollout_batch_size,
            length=self.rollout_length,
            seed=int(self.rng.integers(2**63 - 1)),
        )

    # ------------------------------------------------------------------ the loop's hooks
    def _on_training_start(self) -> None:
        super()._on_training_start()
        self._dumped_epoch = self.epoch

    def _collect(self, callback: BaseCallback, remaining: int) -> bool:
        # The official code refits and rolls out before the real step that makes a refit
        # due (mbpo.py: `if self._timestep % self._model_train_freq == 0`), so the batch of
        # rollouts serves the agent updates that follow the next step.
        if not self._warming_up() and Algorithm._refit_due(self):
            self._refit()
        return super()._collect(callback, remaining)

    def _refit_due(self) -> bool:
        """Never after collecting: :meth:`_collect` refits before the step, as MBPO does."""
        return False

    def _refit(self) -> None:
        super()._refit()
        self._record_metrics("imagination", self._rollout())

    def _dump_logs(self) -> None:
        # An epoch is MBPO's unit of reporting: one dump when it ends.
        if self.epoch == self._dumped_epoch:
            return
        self._dumped_epoch = self.epoch
        self.logger.record("time/epoch", self.epoch)
        self.logger.record("train/agent_updates", self.agent_updates)
        super()._dump_logs()
