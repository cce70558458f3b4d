"""Fixed initial conditions: an env that starts every episode from the same state, and a
vector env with one such env per condition, as guided policy search trains on (Levine &
Abbeel 2014, Section 5: "several initial conditions"), and one episode from each."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv


class FixedStart(gym.Wrapper):
    """Reset the wrapped env with the same ``seed`` every time, so that each episode starts
    from one initial condition (for MuJoCo envs: the same joint noise and target).

    A seed passed to :meth:`reset` is ignored: the condition is the point of the wrapper.

    :param env: the env; its reset must be a function of the seed.
    :param seed: the seed that fixes the initial condition.
    """

    def __init__(self, env: gym.Env, seed: int) -> None:
        super().__init__(env)
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed: expected a non-negative int, got {seed!r}")
        self.condition_seed = int(seed)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        return self.env.reset(seed=self.condition_seed, options=options)


def condition_vec_env(
    env: str | Callable[[], gym.Env], seeds: Sequence[int], **make_kwargs: Any
) -> DummyVecEnv:
    """A vector env whose env ``m`` always starts from condition ``seeds[m]``.

    :param env: a Gymnasium id (made with ``make_kwargs``) or a function making the env.
    :param seeds: one seed per condition, ``M`` in all.
    :return: an SB3 ``DummyVecEnv`` of ``M`` :class:`FixedStart` envs, each under
        ``Monitor``.
    """
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or not seeds:
        raise ValueError(f"seeds: expected a non-empty sequence of ints, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: conditions must differ, got {list(seeds)}")

    def factory(seed: int) -> Callable[[], gym.Env]:
        def make() -> gym.Env:
            base = gym.make(env, **make_kwargs) if isinstance(env, str) else env()
            return Monitor(FixedStart(base, seed))

        return make

    return DummyVecEnv([factory(s) for s in seeds])


def rollout_conditions(
    actor: Any,
    env: str | Callable[[], gym.Env],
    seeds: Sequence[int],
    *,
    deterministic: bool = True,
    **make_kwargs: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """One episode from each condition with ``actor`` (anything with SB3's ``predict``,
    recurrent state and episode starts passed along), side by side.

    :return: ``(observations [M, T + 1, *obs_shape], returns [M])``, ``T`` the first
        episode's length: the conditions' episodes must end together (a time limit).
    :raises ValueError: when the episodes end at different steps.
    """
    venv = condition_vec_env(env, seeds, **make_kwargs)
    obs = venv.reset()
    state, starts = None, np.ones(len(seeds), bool)
    path, total = [obs], np.zeros(len(seeds))
    while True:
        action, state = actor.predict(
            obs, state=state, episode_start=starts, deterministic=deterministic
        )
        obs, reward, dones, infos = venv.step(action)
        starts = dones
        total += reward
        if dones.any():
            if not dones.all():
                raise ValueError(
                    f"seeds: the conditions' episodes ended at different steps ({dones})"
                )
            path.append(np.stack([info["terminal_observation"] for info in infos]))
            return np.stack(path, 1), total
        path.append(obs)
