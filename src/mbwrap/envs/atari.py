"""Atari games as an SB3 ``VecEnv`` with the standard preprocessing, from Gymnasium's own
wrappers: no-op starts, frame skip with max-pooling, 84x84 grayscale frames, and a stack of
the last frames, channels first (``[stack, 84, 84]`` uint8), as image networks take them.

Rewards are not clipped: MuZero squashes values and rewards with ``h`` instead
(Schrittwieser et al. 2020, Appendix F).
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv


def _register_ale() -> None:
    try:
        import ale_py
        import cv2  # noqa: F401  (AtariPreprocessing resizes frames with it)
    except ImportError as err:
        raise ImportError(
            f"env_id: Atari games need ale-py and opencv-python ({err.name} is missing); "
            "install them with `pip install ale-py opencv-python-headless`"
        ) from err
    gym.register_envs(ale_py)


def make_atari_env(
    env_id: str,
    *,
    frame_stack: int = 4,
    screen_size: int = 84,
    noop_max: int = 30,
    frame_skip: int = 4,
    **make_kwargs: object,
) -> gym.Env:
    """One Atari env (e.g. ``"ALE/Pong-v5"``) with the standard preprocessing.

    Machado et al. 2018's settings of ``v5`` ids (sticky actions, full action set off) are
    kept; the frame skip moves from the emulator to :class:`AtariPreprocessing` so that it
    can max-pool the last two frames.

    :param frame_stack: frames per observation (DQN, Mnih et al. 2015: 4).
    :return: an env whose observations are ``[frame_stack, screen_size, screen_size]`` uint8.
    """
    _register_ale()
    env = gym.make(env_id, frameskip=1, **make_kwargs)
    env = AtariPreprocessing(
        env, noop_max=noop_max, frame_skip=frame_skip, screen_size=screen_size,
        grayscale_obs=True, scale_obs=False,
    )
    return FrameStackObservation(env, frame_stack)


def make_atari_vec_env(
    env_id: str, n_envs: int = 1, *, seed: int | None = None, **kwargs: object
) -> VecEnv:
    """``n_envs`` copies of :func:`make_atari_env`, each under SB3's ``Monitor``, in a
    ``DummyVecEnv`` (seeded ``seed``, ``seed + 1``, ...)."""
    def factory(rank: int) -> Callable[[], gym.Env]:
        def make() -> gym.Env:
            return Monitor(make_atari_env(env_id, **kwargs))  # type: ignore[arg-type]
        return make

    venv = DummyVecEnv([factory(i) for i in range(n_envs)])
    if seed is not None:
        venv.seed(seed)
    return venv
