"""Acting in the real env in process: the steps every algorithm's loop stores and counts."""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import PolicyPredictor

from mbwrap.algos import state as saved
from mbwrap.buffers import ReplayBuffer, check_finite_step, step_vec_env


class RealCollection:
    """Mixin of :class:`~mbwrap.algos.base.Algorithm`: real steps taken here or, with
    ``num_workers``, gathered from Ray workers, and one bookkeeping rule for both
    (counters, replay, episode infos, callbacks)."""

    #: Real episodes finished over every ``learn`` call (counted by :meth:`_collect_steps`).
    real_episodes: int = 0

    def _collect_real_steps(
        self,
        buffer: ReplayBuffer,
        steps: int,
        callback: BaseCallback,
        policy: PolicyPredictor | None = None,
        deterministic: bool = False,
    ) -> bool:
        """Act in the real env for at least ``steps`` steps, storing every transition.

        Each vector step adds ``n_envs`` to :attr:`num_timesteps` and :attr:`real_steps`,
        stores the transitions in ``buffer`` (the observation the step produced, not the
        reset one, with ``terminated`` and ``truncated`` apart), updates
        :attr:`ep_info_buffer` and calls ``callback.on_step()`` with SB3's locals
        (``new_obs``, ``rewards``, ``dones``, ``infos``, ``actions``). Episodes continue
        across calls; when :meth:`learn` reset the env in between, the buffer's streams
        are ended there.

        :param buffer: a :class:`~mbwrap.ReplayBuffer` with ``n_envs`` equal to the env's.
        :param steps: real steps to take, rounded up to whole vector steps.
        :param policy: anything with SB3's ``predict()``; ``None`` samples uniformly.
        :return: ``False`` when a callback asked to stop training.
        :raises ValueError: when the env returns NaN or infinite observations or rewards.
        """
        assert self.env is not None and self._last_obs is not None, "call _start_learning() first"
        if self.config.num_workers:
            return self._collect_on_workers(buffer, steps, callback, policy, deterministic)
        n_envs = self.env.num_envs
        if self._last_obs is not self._collected_obs:
            # learn() reset the env: the stored pieces end here, a recurrent state restarts.
            buffer.end_episodes()
            self._policy_state = None
            self._episode_starts = np.ones(n_envs, dtype=bool)
        callback.on_rollout_start()
        continue_training = True
        for _ in range(-(-steps // n_envs)):
            if policy is None:
                actions = np.stack([self.action_space.sample() for _ in range(n_envs)])
            else:
                actions, self._policy_state = policy.predict(
                    self._last_obs,
                    state=self._policy_state,
                    episode_start=self._episode_starts,
                    deterministic=deterministic,
                )
            # A checkpoint taken where every episode just ended restarts them from these
            # states, as the uninterrupted run's autoreset did.
            self._env_rngs_before_step = saved.env_rng_states(self.env)
            new_obs, rewards, terminated, truncated, next_obs, infos = step_vec_env(
                self.env, actions
            )
            step = (self._last_obs, actions, rewards, next_obs, terminated, truncated)
            if not self._record_real_step(buffer, step, new_obs, infos, callback):
                continue_training = False
                break
        callback.on_rollout_end()
        return continue_training

    def _record_real_step(
        self,
        buffer: ReplayBuffer,
        step: tuple[Any, np.ndarray, np.ndarray, Any, np.ndarray, np.ndarray],
        new_obs: Any,
        infos: list[dict[str, Any]],
        callback: BaseCallback,
    ) -> bool:
        """Count, store and report one vector step of the real env (here or on workers).

        :param step: ``(obs, actions, rewards, next_obs, terminated, truncated)`` of every
            stream, as :meth:`ReplayBuffer.add` takes them.
        :param new_obs: what the policy sees next (after resets).
        :return: ``False`` when a callback asked to stop.
        """
        obs, actions, rewards, next_obs, terminated, truncated = step
        n_envs = len(rewards)
        self.num_timesteps += n_envs
        self.real_steps += n_envs
        if self._steps_since_refit is not None:
            self._steps_since_refit += n_envs
        check_finite_step(next_obs, rewards, self.num_timesteps)
        buffer.add(obs, actions, rewards, next_obs, terminated, truncated)
        self._last_obs = self._collected_obs = new_obs
        dones = terminated | truncated
        self._episode_starts = dones
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
        return bool(callback.on_step())

    def _collect_steps(
        self, callback: BaseCallback, steps: int, policy: Any, until_episode_end: bool = False
    ) -> bool:
        """``steps`` real steps into :attr:`buffer`, one vector step at a time to count the
        episodes that end in :attr:`real_episodes` (and stop at the first with
        ``until_episode_end``), for algorithms that act a whole episode at a time (PETS,
        PILCO)."""
        while steps > 0:
            if not self._collect_real_steps(self.buffer, 1, callback, policy):  # type: ignore[attr-defined]
                return False
            steps -= self.n_envs
            assert self._episode_starts is not None
            ended = int(self._episode_starts.sum())
            self.real_episodes += ended
            if ended and until_episode_end:
                break
        return True
