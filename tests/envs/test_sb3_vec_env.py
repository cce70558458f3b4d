"""mbwrap.sb3.as_vec_env: a SAME_STEP gymnasium VectorEnv seen through SB3's VecEnv API."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor

import mbwrap
from mbwrap import DreamEnv, DreamVecEnv
from mbwrap.sb3 import SB3VecEnv

MAZE_ID = "mbwrap/DynaMaze-v0"
ZERO = np.zeros((1, 2), np.float32)


def _compare_with_dummy(make_model, start, horizon, actions):
    model = make_model()
    n = actions.shape[1]
    ours = mbwrap.sb3.as_vec_env(DreamVecEnv(model, n, start, horizon=horizon))
    ref = DummyVecEnv([lambda: DreamEnv(model, start, horizon=horizon)] * n)
    assert ours.num_envs == ref.num_envs
    assert ours.observation_space == ref.observation_space
    assert ours.action_space == ref.action_space
    np.testing.assert_array_equal(ours.reset(), ref.reset())
    counts = {"terminated": 0, "truncated": 0, "nonfinite": 0}
    for action in actions:
        obs, rewards, dones, infos = ours.step(action)
        ref_obs, ref_rewards, ref_dones, ref_infos = ref.step(action)
        np.testing.assert_array_equal(obs, ref_obs)
        assert obs.dtype == ref_obs.dtype
        np.testing.assert_array_equal(rewards, ref_rewards)
        assert rewards.dtype == ref_rewards.dtype == np.float32
        np.testing.assert_array_equal(dones, ref_dones)
        assert dones.dtype == ref_dones.dtype == np.bool_
        for info, ref_info in zip(infos, ref_infos, strict=True):
            assert info.keys() == ref_info.keys()
            assert info["TimeLimit.truncated"] == ref_info["TimeLimit.truncated"]
            if "terminal_observation" in ref_info:
                np.testing.assert_array_equal(
                    info["terminal_observation"], ref_info["terminal_observation"]
                )
                counts["truncated" if ref_info["TimeLimit.truncated"] else "terminated"] += 1
            if "model_nonfinite" in ref_info:
                assert info["model_nonfinite"] == ref_info["model_nonfinite"]
                counts["nonfinite"] += 1
    return counts


def test_matches_dummy_vec_env_on_a_box_model(make_line_model):
    actions = np.random.default_rng(0).uniform(-1, 1, (100, 4, 1)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mbwrap.errors.NonFiniteModelWarning)
        counts = _compare_with_dummy(
            # Termination at +1.5, a NaN below -1.5, truncation at 6 steps.
            lambda: make_line_model(goal=1.5, nan_when=lambda s, n: n[:, 0] < -1.5),
            ZERO,
            6,
            actions,
        )
    assert all(count > 3 for count in counts.values()), counts


def test_matches_dummy_vec_env_on_the_maze(make_maze_oracle):
    actions = np.random.default_rng(1).integers(0, 4, (100, 3))
    counts = _compare_with_dummy(
        lambda: make_maze_oracle(env_id=MAZE_ID), np.array([17]), 8, actions
    )
    assert counts["terminated"] > 3 and counts["truncated"] > 3


def test_seed_then_reset_is_reproducible(maze_model, maze_buffer):
    venv = mbwrap.sb3.as_vec_env(DreamVecEnv(maze_model, 3, maze_buffer, horizon=5))
    actions = np.random.default_rng(0).integers(0, 4, (30, 3))

    def run(seed):
        venv.seed(seed)
        out = [venv.reset().tolist()]
        for action in actions:
            obs, rewards, dones, _ = venv.step(action)
            out.append((obs.tolist(), rewards.tolist(), dones.tolist()))
        return out

    first = run(7)
    assert run(7) == first
    assert run(8) != first


def test_reset_infos_are_per_env(make_line_model):
    venv = mbwrap.sb3.as_vec_env(DreamVecEnv(make_line_model(), 3, ZERO, horizon=2))
    venv.reset()
    assert venv.reset_infos == [{}, {}, {}]


def test_next_step_vector_env_is_rejected(make_line_model):
    venv = DreamVecEnv(
        make_line_model(), 2, ZERO, horizon=3, autoreset_mode=AutoresetMode.NEXT_STEP
    )
    with pytest.raises(ValueError, match=r"venv.*SAME_STEP"):
        mbwrap.sb3.as_vec_env(venv)
    # A gymnasium vector env that declares no mode uses gymnasium's default, NEXT_STEP.
    sync = SyncVectorEnv([lambda: DreamEnv(make_line_model(), ZERO, horizon=3)] * 2)
    sync.metadata.pop("autoreset_mode", None)
    with pytest.raises(ValueError, match="SAME_STEP"):
        mbwrap.sb3.as_vec_env(sync)


def test_a_same_step_sync_vector_env_is_accepted(make_line_model):
    sync = SyncVectorEnv(
        [lambda: DreamEnv(make_line_model(), ZERO, horizon=2)] * 2,
        autoreset_mode=AutoresetMode.SAME_STEP,
    )
    venv = mbwrap.sb3.as_vec_env(sync)
    venv.reset()
    venv.step(np.ones((2, 1), np.float32))
    _, _, dones, infos = venv.step(np.ones((2, 1), np.float32))
    assert dones.tolist() == [True, True]
    np.testing.assert_array_equal(infos[0]["terminal_observation"], [2.0, 2.0])


def test_a_single_env_is_rejected(make_line_model):
    with pytest.raises(TypeError, match="venv"):
        mbwrap.sb3.as_vec_env(DreamEnv(make_line_model(), ZERO, horizon=3))


def test_is_an_sb3_vec_env(make_line_model):
    venv = mbwrap.sb3.as_vec_env(DreamVecEnv(make_line_model(), 2, ZERO, horizon=3))
    assert isinstance(venv, VecEnv) and isinstance(venv, SB3VecEnv)
    assert venv.render_mode is None
    assert venv.get_images() == [None, None]


def test_attribute_and_method_access(make_line_model):
    dream = DreamVecEnv(make_line_model(), 3, ZERO, horizon=4)
    venv = mbwrap.sb3.as_vec_env(dream)
    assert venv.get_attr("horizon") == [4, 4, 4]
    assert venv.get_attr("horizon", indices=[0, 2]) == [4, 4]
    assert venv.get_attr("horizon", indices=1) == [4]
    venv.set_attr("horizon", 2)
    assert dream.horizon == 2
    venv.reset()
    venv.step(np.zeros((3, 1), np.float32))
    assert venv.step(np.zeros((3, 1), np.float32))[2].tolist() == [True] * 3  # new horizon
    results = venv.env_method("reset", seed=0)
    assert len(results) == 3
    np.testing.assert_array_equal(results[0][0], np.zeros((3, 2)))
    assert venv.env_method("reset", seed=0, indices=[1]).__len__() == 1
    assert venv.env_is_wrapped(gym.Wrapper) == [False, False, False]
    assert venv.env_is_wrapped(gym.Wrapper, indices=[2]) == [False]
    with pytest.raises(AttributeError):
        venv.get_attr("no_such_attribute")


def test_composes_with_sb3_vec_wrappers(make_line_model):
    venv = VecMonitor(mbwrap.sb3.as_vec_env(DreamVecEnv(make_line_model(), 2, ZERO, horizon=3)))
    venv.reset()
    for _ in range(2):
        venv.step(np.ones((2, 1), np.float32))
    _, _, dones, infos = venv.step(np.ones((2, 1), np.float32))
    assert dones.all()
    # Rewards 1 + 2 + 3 (the head rewards the next position), length = horizon.
    assert [info["episode"]["r"] for info in infos] == [6.0, 6.0]
    assert [info["episode"]["l"] for info in infos] == [3, 3]


def test_ppo_trains_in_imagination(make_line_model, line_starts):
    venv = mbwrap.sb3.as_vec_env(DreamVecEnv(make_line_model(goal=5.0), 4, line_starts, horizon=16))
    agent = PPO("MlpPolicy", venv, n_steps=32, batch_size=32, n_epochs=2, seed=0, device="cpu")
    agent.learn(256)
    assert agent.num_timesteps >= 256
    action, _ = agent.predict(line_starts, deterministic=True)
    assert action.shape == (3, 1)


def test_dqn_trains_in_a_maze_dream(maze_model, maze_buffer):
    maze_model.env_id = MAZE_ID
    venv = mbwrap.sb3.as_vec_env(DreamVecEnv(maze_model, 2, maze_buffer, horizon=20))
    agent = DQN(
        "MlpPolicy",
        venv,
        learning_starts=50,
        buffer_size=1000,
        train_freq=4,
        batch_size=32,
        seed=0,
        device="cpu",
    )
    agent.learn(200)
    assert agent.num_timesteps >= 200
    assert agent.replay_buffer.size() * venv.num_envs >= 200
    action, _ = agent.predict(np.array([18, 17]), deterministic=True)
    assert action.shape == (2,) and set(action.tolist()) <= {0, 1, 2, 3}
