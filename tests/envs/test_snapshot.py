"""Snapshots of an env and its wrappers: restore replays the same future, wrappers included."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from mbwrap.envs.snapshot import env_layers, restore_env, snapshot_env


def _play(env: gym.Env, actions: list[int]) -> list[tuple]:
    out = []
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        out.append((obs.copy(), reward, terminated, truncated))
    return out


def test_restore_replays_the_same_steps_and_the_wrappers_state():
    env = gym.make("CartPole-v1", max_episode_steps=6)
    env.reset(seed=0)
    layers = env_layers(env)
    assert layers[0] is env and type(layers[-1]).__name__ == "CartPoleEnv"
    env.step(0)
    snapshot = snapshot_env(env)
    actions = [1, 1, 0, 1, 0]
    first = _play(env, actions)
    assert first[-1][3]  # TimeLimit truncates at its 6th step
    for _ in range(2):  # a snapshot can be restored more than once
        restore_env(env, snapshot)
        again = _play(env, actions)
        for (obs_a, *rest_a), (obs_b, *rest_b) in zip(first, again, strict=True):
            np.testing.assert_array_equal(obs_a, obs_b)
            assert rest_a == rest_b


def test_restore_refuses_what_is_not_a_snapshot_of_this_env():
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    other = gym.make("MountainCar-v0")
    other.reset(seed=0)
    with pytest.raises(TypeError, match="snapshot: expected a snapshot of an env with layers"):
        restore_env(env, snapshot_env(other))
    with pytest.raises(TypeError, match="snapshot: expected a Snapshot"):
        restore_env(env, {"state": 1})
