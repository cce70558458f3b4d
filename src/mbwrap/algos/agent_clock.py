"""An SB3 off-policy agent trained by a model-based algorithm that steps the real env for
it: the agent's clock, logger and exploration follow the algorithm's real steps."""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3 import TD3
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.vec_env import VecEnv

from mbwrap.algos.agents import resolve_agent
from mbwrap.envs import DreamVecEnv, as_vec_env


class AgentClock:
    """Mixin of :class:`~mbwrap.algos.base.Algorithm` subclasses whose ``agent`` (an SB3
    off-policy algorithm) acts in the real env and trains through its own ``train()``
    (MBPO, MVE, STEVE), but never runs its own ``learn()``: its clock follows the real
    steps each iteration collects, and it makes ``gradient_steps`` updates per
    ``train_freq`` of them (config fields of those names, and ``learning_starts``)."""

    agent: Any
    config: Any
    num_timesteps: int
    real_steps: int
    _total_timesteps: int
    #: Agent gradient updates done.
    agent_updates: int = 0
    _collected = 0  # real steps of the current iteration

    def _collect(self, callback: Any, remaining: int) -> bool:
        before = self.real_steps
        keep_going = super()._collect(callback, remaining)  # type: ignore[misc]
        self._collected = self.real_steps - before
        self._advance_agent(self._collected)
        return keep_going

    def _train(self) -> None:
        """``gradient_steps`` agent updates per ``train_freq`` real steps taken with the
        policy; none for the random steps (SB3 trains once ``num_timesteps >
        learning_starts``)."""
        config = self.config
        if self.real_steps - self._collected < config.learning_starts:
            return
        updates = config.gradient_steps * self._collected // config.train_freq
        if updates:
            self.agent.train(gradient_steps=updates, batch_size=self.agent.batch_size)
            self.agent_updates += updates

    def _make_agent(self, **extra_kwargs: Any) -> Any:
        """The agent named (or given) by ``config.agent``, with ``config.agent_kwargs`` and
        ``extra_kwargs``; the config then names it in JSON form. The agent never steps an
        env: :meth:`_placeholder_env` gives it its spaces, and its own replay buffer,
        replaced by the algorithm, is made as small as SB3 allows."""
        config = self.config
        agent, config.agent, config.agent_kwargs = resolve_agent(
            config.agent,
            config.agent_kwargs,
            self._placeholder_env(),
            seed=config.seed,
            device=self.device,  # type: ignore[attr-defined]
            verbose=max(self.verbose - 1, 0),  # type: ignore[attr-defined]
            extra_kwargs={"buffer_size": 1, **extra_kwargs},
        )
        return agent

    def _placeholder_env(self) -> VecEnv:
        """An env with the agent's spaces, never stepped: one dream episode of
        ``self.model`` over ``self.buffer``."""
        placeholder = DreamVecEnv(self.model, 1, start_states=self.buffer, horizon=1)  # type: ignore[attr-defined]
        return as_vec_env(placeholder)

    def _on_training_start(self) -> None:
        super()._on_training_start()  # type: ignore[misc]
        self.agent.set_logger(self.logger)  # type: ignore[attr-defined]

    def _default_action_noise(self, std: float) -> None:
        """Give a TD3 or DDPG agent without its own ``action_noise`` Gaussian noise of
        ``std`` (in its ``[-1, 1]`` units); they explore only through it."""
        if isinstance(self.agent, TD3) and self.agent.action_noise is None and std:
            dim = self.agent.action_space.shape
            self.agent.action_noise = NormalActionNoise(
                np.zeros(dim, np.float32), np.full(dim, std, np.float32)
            )

    _dumped_episode = 0  # the episode count at the last log dump

    def _dump_per_episode(self, prefix: str, metrics: dict[str, float]) -> None:
        """Dump the logs, with ``metrics`` under ``prefix/`` and the agent's update count,
        once per finished episode (as SB3's off-policy agents report), not per step."""
        if self._episode_num == self._dumped_episode:  # type: ignore[attr-defined]
            return
        self._dumped_episode = self._episode_num  # type: ignore[attr-defined]
        self._record_metrics(prefix, metrics)  # type: ignore[attr-defined]
        self.logger.record("train/agent_updates", self.agent_updates)  # type: ignore[attr-defined]
        super()._dump_logs()  # type: ignore[misc]

    def _behaviour_policy(self) -> Any:
        if getattr(self.agent, "action_noise", None) is not None:
            return NoisyPolicy(self.agent)
        return self.agent

    def _advance_agent(self, steps: int) -> None:
        """Move the agent's clock by ``steps`` real steps as SB3's ``collect_rollouts``
        would have: its count, its progress (learning-rate and exploration schedules) and
        its per-step hook (``_on_step``: the DQN family's exploration rate and target-network
        copies; nothing for SAC, TD3, TQC, whose targets move in ``train``)."""
        agent = self.agent
        start = self.num_timesteps - steps
        for i in range(1, steps + 1):
            agent.num_timesteps += 1
            agent._update_current_progress_remaining(start + i, self._total_timesteps)
            agent._on_step()

    def _after_restore(self) -> None:
        super()._after_restore()  # type: ignore[misc]
        # SB3 does not save the exploration rate: it follows from the restored progress.
        schedule = getattr(self.agent, "exploration_schedule", None)
        if schedule is not None:
            self.agent.exploration_rate = schedule(self.agent._current_progress_remaining)


class NoisyPolicy:
    """An SB3 off-policy agent's ``predict`` plus its ``action_noise``, as its own
    ``collect_rollouts`` acts (``_sample_action``): the noise is added in the policy's
    ``[-1, 1]`` units, clipped there, and mapped back to the env's bounds. TD3 and DDPG
    explore only through this noise; their ``predict`` is deterministic."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent

    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        action, state = self.agent.predict(observation, state, episode_start, deterministic)
        if deterministic:
            return action, state
        policy, noise = self.agent.policy, self.agent.action_noise
        scaled = policy.scale_action(action)
        draws = np.stack([noise() for _ in range(scaled.shape[0])]).reshape(scaled.shape)
        scaled = np.clip(scaled + draws, -1.0, 1.0)
        return policy.unscale_action(scaled).astype(action.dtype), state
