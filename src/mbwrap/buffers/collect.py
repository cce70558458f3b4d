"""Running a real environment into a :class:`ReplayBuffer`."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3.common.type_aliases import PolicyPredictor
from stable_baselines3.common.vec_env import VecEnv

from mbwrap.buffers.replay import ReplayBuffer
from mbwrap.spaces import check_same_space


def copy_obs(obs: Any) -> Any:
    """A copy of a batch of observations: an array, or the nested ``dict``/``tuple`` of
    arrays of a Dict/Tuple space."""
    if isinstance(obs, dict):
        return {key: copy_obs(value) for key, value in obs.items()}
    if isinstance(obs, tuple):
        return tuple(copy_obs(value) for value in obs)
    return np.array(obs, copy=True)


def set_obs_row(batch: Any, row: int, value: Any) -> None:
    """``batch[row] = value`` for an array or a nested ``dict``/``tuple`` of arrays."""
    if isinstance(batch, dict):
        for key in batch:
            set_obs_row(batch[key], row, value[key])
    elif isinstance(batch, tuple):
        for entry, entry_value in zip(batch, value, strict=True):
            set_obs_row(entry, row, entry_value)
    else:
        batch[row] = value


def obs_arrays(obs: Any) -> list[np.ndarray]:
    """The arrays of an observation batch (one, or every leaf of a nested one)."""
    if isinstance(obs, dict):
        return [a for value in obs.values() for a in obs_arrays(value)]
    if isinstance(obs, tuple):
        return [a for value in obs for a in obs_arrays(value)]
    return [np.asarray(obs)]


class Collector:
    """Steps a real env with a policy and stores every transition in a buffer.

    Unlike :func:`collect`, a collector keeps the env's current episode between calls, so
    interleaving collection with training does not cut episodes short.

    Accepted envs: a ``gymnasium.Env``, a ``gymnasium.vector.VectorEnv`` whose autoreset
    mode is ``SAME_STEP`` (so final observations are reported), or an SB3 ``VecEnv``.

    :param env: the real env.
    :param buffer: where transitions go; its ``n_envs`` must equal the env's count.
    :param seed: seeds the first reset and the random-action sampler.
    """

    def __init__(self, env: Any, buffer: ReplayBuffer, seed: int | None = None) -> None:
        self.env = env
        self.buffer = buffer
        self.seed = seed
        if isinstance(env, VecEnv):
            self._mode, num_envs = "sb3", env.num_envs
            obs_space, act_space = env.observation_space, env.action_space
        elif isinstance(env, VectorEnv):
            mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
            if AutoresetMode(mode) != AutoresetMode.SAME_STEP:
                raise ValueError(
                    f"env: a gymnasium VectorEnv must report final observations "
                    f"(autoreset_mode SAME_STEP) to be collected; got {AutoresetMode(mode)}. "
                    "Build it with gymnasium.make_vec(..., vector_kwargs="
                    "{'autoreset_mode': gymnasium.vector.AutoresetMode.SAME_STEP})"
                )
            self._mode, num_envs = "gym-vector", env.num_envs
            obs_space, act_space = env.single_observation_space, env.single_action_space
        elif isinstance(env, gym.Env):
            self._mode, num_envs = "gym", 1
            obs_space, act_space = env.observation_space, env.action_space
        else:
            raise TypeError(
                "env: expected a gymnasium.Env, gymnasium.vector.VectorEnv or SB3 VecEnv, "
                f"got {type(env).__name__}"
            )
        check_same_space(buffer.observation_space, obs_space, name="env.observation_space")
        check_same_space(buffer.action_space, act_space, name="env.action_space")
        if buffer.n_envs != num_envs:
            raise ValueError(
                f"buffer: has n_envs={buffer.n_envs} but the env runs {num_envs} copies; "
                f"build the buffer with n_envs={num_envs}"
            )
        self.num_envs = num_envs
        self._action_space = act_space
        self._obs: Any = None
        self._policy_state: Any = None
        self._episode_start = np.ones(num_envs, dtype=bool)
        self._returns = np.zeros(num_envs)
        self._lengths = np.zeros(num_envs, dtype=np.int64)

    def _reset(self) -> None:
        self.buffer.end_episodes()
        if self._mode == "sb3":
            if self.seed is not None:
                self.env.seed(self.seed)
            self._obs = self.env.reset()
        else:
            self._obs, _ = self.env.reset(seed=self.seed)
        if self.seed is not None:
            self._action_space.seed(self.seed)
        self.seed = None  # later resets continue the seeded streams
        self._episode_start[:] = True
        self._returns[:] = 0.0
        self._lengths[:] = 0

    def _act(self, policy: PolicyPredictor | None, deterministic: bool) -> np.ndarray:
        if policy is None:
            samples = [self._action_space.sample() for _ in range(self.num_envs)]
            return samples[0] if self._mode == "gym" else np.stack(samples)
        actions, self._policy_state = policy.predict(
            self._obs,
            state=self._policy_state,
            episode_start=self._episode_start,
            deterministic=deterministic,
        )
        return actions

    def collect(
        self, steps: int, policy: PolicyPredictor | None = None, deterministic: bool = False
    ) -> dict[str, Any]:
        """Add at least ``steps`` transitions (rounded up to whole vector steps).

        :param policy: anything with SB3's ``predict(obs, state, episode_start,
            deterministic)``; ``None`` samples uniformly random actions.
        :return: ``{"steps", "episodes", "episode_returns", "episode_lengths"}`` for the
            episodes that finished during this call.
        """
        if steps < 0:
            raise ValueError(f"steps: expected a non-negative int, got {steps!r}")
        if self._obs is None:
            self._reset()
        returns: list[float] = []
        lengths: list[int] = []
        added = 0
        while added < steps:
            actions = self._act(policy, deterministic)
            next_obs, rewards, terminated, truncated, final_obs = self._step(actions)
            self.buffer.add(self._obs, actions, rewards, final_obs, terminated, truncated)
            added += self.num_envs
            done = np.asarray(terminated) | np.asarray(truncated)
            self._returns += np.asarray(rewards, dtype=np.float64).reshape(-1)
            self._lengths += 1
            for i in np.flatnonzero(done):
                returns.append(float(self._returns[i]))
                lengths.append(int(self._lengths[i]))
            self._returns[done] = 0.0
            self._lengths[done] = 0
            self._episode_start = done.reshape(-1)
            self._obs = next_obs
        return {
            "steps": added,
            "episodes": len(returns),
            "episode_returns": returns,
            "episode_lengths": lengths,
        }

    def _step(self, actions: np.ndarray) -> tuple[Any, Any, Any, Any, Any]:
        """Step the env; return ``(next_obs, reward, terminated, truncated, final_obs)``
        where ``next_obs`` is what the policy sees next (after any reset) and
        ``final_obs`` the observation the step produced."""
        if self._mode == "gym":
            obs, reward, terminated, truncated, _ = self.env.step(actions)
            final = obs
            if terminated or truncated:
                obs, _ = self.env.reset()
            return obs, reward, terminated, truncated, final
        if self._mode == "gym-vector":
            obs, reward, terminated, truncated, info = self.env.step(actions)
            final = copy_obs(obs)
            mask = info.get("_final_obs", np.zeros(self.num_envs, dtype=bool))
            for i in np.flatnonzero(mask):
                set_obs_row(final, int(i), info["final_obs"][i])
            return obs, reward, terminated, truncated, final
        obs, reward, terminated, truncated, final, _ = step_vec_env(self.env, actions)
        return obs, reward, terminated, truncated, final


def step_vec_env(
    env: VecEnv, actions: np.ndarray
) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, Any, list[dict[str, Any]]]:
    """Step an SB3 ``VecEnv`` and split what it reports the way a replay buffer stores it.

    SB3's ``VecEnv`` resets finished envs inside ``step`` and hides the observation the
    step produced in ``infos[i]["terminal_observation"]``; a time limit marks
    ``infos[i]["TimeLimit.truncated"]``.

    :param actions: ``[n_envs, *act_shape]``.
    :return: ``(next_obs, reward, terminated, truncated, final_obs, infos)``: ``next_obs``
        is what the policy sees next (after any reset), ``final_obs`` what the step
        produced; ``terminated`` and ``truncated`` are ``[n_envs]`` bool and never both.
    """
    obs, reward, dones, infos = env.step(actions)
    dones = np.asarray(dones, dtype=bool)
    final = copy_obs(obs)
    truncated = np.array([info.get("TimeLimit.truncated", False) for info in infos], dtype=bool)
    for i in np.flatnonzero(dones):
        set_obs_row(final, int(i), infos[i]["terminal_observation"])
    return obs, reward, dones & ~truncated, truncated & dones, final, infos


def collect(
    env: Any,
    buffer: ReplayBuffer,
    steps: int,
    policy: PolicyPredictor | None = None,
    seed: int | None = None,
    deterministic: bool = False,
) -> dict[str, Any]:
    """Reset ``env`` and store at least ``steps`` of its transitions in ``buffer``.

    :param env: a ``gymnasium.Env``, a ``SAME_STEP`` ``gymnasium.vector.VectorEnv``, or an
        SB3 ``VecEnv``.
    :param policy: anything with SB3's ``predict()``; ``None`` acts uniformly at random.
    :param seed: seeds the reset and the random actions.
    :return: see :meth:`Collector.collect`.
    """
    return Collector(env, buffer, seed=seed).collect(steps, policy, deterministic)


def check_finite_step(next_obs: np.ndarray, rewards: np.ndarray, step: int) -> None:
    """Raise if a real env step returned NaN or infinite observations or rewards.

    :param next_obs: ``[n_envs, *obs_shape]`` (or the nested dict/tuple of a Dict/Tuple space).
    :param rewards: ``[n_envs]``.
    :param step: the real step count, named in the error.
    :raises ValueError: naming ``env``, what was not finite and the step.
    """
    bad = []
    if any(
        np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all()
        for array in obs_arrays(next_obs)
    ):
        bad.append("observations")
    if not np.isfinite(np.asarray(rewards, dtype=np.float64)).all():
        bad.append("rewards")
    if bad:
        raise ValueError(
            f"env: returned NaN or infinite {' and '.join(bad)} at real step {step}; "
            "a model cannot be fitted to them"
        )
