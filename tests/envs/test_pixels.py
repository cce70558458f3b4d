"""PixelObservation: rendered frames as observations, resized by area averaging."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from mbwrap.envs.pixels import PixelObservation, resize_frames

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


def cartpole_pixels(**kwargs) -> PixelObservation:
    return PixelObservation(gym.make("CartPole-v1", render_mode="rgb_array"), **kwargs)


def test_observations_are_64x64_uint8_frames_of_the_render():
    env = cartpole_pixels()
    obs, _ = env.reset(seed=0)
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert obs in env.observation_space
    expected = resize_frames(torch.from_numpy(env.render())[None], (64, 64), grayscale=False)[0]
    np.testing.assert_array_equal(obs, expected.numpy())
    # The cart moves, so the frames do: the observation follows the state, not a constant.
    frames = [env.step(1)[0] for _ in range(8)]
    assert not np.array_equal(frames[0], frames[-1])


def test_grayscale_has_one_channel():
    env = cartpole_pixels(grayscale=True, size=(48, 32))
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == (48, 32, 1)
    assert obs.shape == (48, 32, 1) and obs.dtype == np.uint8


def test_area_resize_averages_blocks():
    frame = np.zeros((4, 6, 3), dtype=np.uint8)
    frame[:2, :3] = 255  # top-left block
    frame[2:, 3:] = [100, 0, 0]  # bottom-right block, red only
    frame[2, :3] = 100  # bottom-left block: half 100, half 0, so 50 on average
    out = resize_frames(torch.from_numpy(frame)[None], (2, 2), grayscale=False)[0].numpy()
    np.testing.assert_array_equal(out[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(out[0, 1], [0, 0, 0])
    np.testing.assert_array_equal(out[1, 0], [50, 50, 50])
    np.testing.assert_array_equal(out[1, 1], [100, 0, 0])
    gray = resize_frames(torch.from_numpy(frame)[None], (2, 2), grayscale=True)[0].numpy()
    assert gray.shape == (2, 2, 1)
    assert gray[1, 1, 0] == round(0.299 * 100)  # BT.601 luma of pure red 100
    assert gray[0, 0, 0] == 255


def test_passes_gymnasium_and_sb3_env_checkers():
    gym_check_env(cartpole_pixels(), skip_render_check=False)
    sb3_check_env(cartpole_pixels(), warn=True)
    sb3_check_env(cartpole_pixels(grayscale=True), warn=True)


def test_refuses_an_env_without_rgb_array_rendering():
    with pytest.raises(ValueError, match=r"env:.*render_mode='rgb_array'.*None"):
        PixelObservation(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="size:"):
        PixelObservation(gym.make("CartPole-v1", render_mode="rgb_array"), size=(64,))


def _mujoco_pixels() -> PixelObservation:
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        env = gym.make("InvertedPendulum-v5", render_mode="rgb_array", width=64, height=64)
        env.reset(seed=0)
        env.render()
    except Exception as err:  # no MuJoCo, or no OpenGL context (EGL/OSMesa) on this machine
        pytest.skip(f"MuJoCo rgb_array rendering is unavailable here: {type(err).__name__}: {err}")
    return PixelObservation(env)


def test_works_on_a_mujoco_env():
    env = _mujoco_pixels()
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert obs.std() > 0  # a real picture, not a blank buffer
    gym_check_env(env, skip_render_check=True)
