"""Dict and Tuple observations end to end: collect, fit a feed-forward model through its
flat features, imagine with DreamEnv / DreamVecEnv in the same Dict structure, and train an
SB3 agent with MultiInputPolicy in imagination."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3 import SAC
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import mbwrap
from mbwrap.device import force_accelerator_paths


@pytest.fixture(scope="module")
def goal_data():
    env = gym.make("mbwrap/PointGoal-v0")
    buffer = mbwrap.ReplayBuffer(env.observation_space, env.action_space, 1_000, device="cpu")
    mbwrap.collect(env, buffer, 600, seed=0)
    torch.manual_seed(0)
    model = mbwrap.make_model(
        "gaussian-ensemble",
        env.observation_space,
        env.action_space,
        env_id="mbwrap/PointGoal-v0",
        ensemble_size=2,
        num_elites=2,
        hidden_sizes=[64, 64],
        propagation="mean",  # the mean prediction: the direction test below is not noisy
        device="cpu",
    )
    model.fit(buffer, epochs=30)
    return env, buffer, model


def test_a_goal_conditioned_model_dreams_in_the_env_s_own_dict_structure(goal_data):
    env, buffer, model = goal_data
    assert model.feature_states and model.state_space.shape == (6,)
    dream = mbwrap.DreamEnv(model, buffer, horizon=20)
    assert dream.observation_space == env.observation_space
    gym_check_env(dream, skip_render_check=True)
    sb3_check_env(dream)
    # The reward comes from the function registered for the env id, on dicts of leaves.
    assert dream.core.reward_source == "registered"
    obs, _ = dream.reset(seed=0)
    action = obs["desired_goal"] - obs["achieved_goal"]
    step_obs, reward, *_ = dream.step(np.clip(action * 10, -1, 1))
    assert env.observation_space.contains(step_obs)
    # A fitted model moves the point toward the action's direction, not elsewhere.
    moved = step_obs["achieved_goal"] - obs["achieved_goal"]
    assert float(np.dot(moved, action)) > 0
    assert step_obs["desired_goal"] == pytest.approx(obs["desired_goal"], abs=0.05)
    assert reward in (0.0, -1.0)


def test_dream_vec_env_returns_dict_batches_and_dict_final_observations(goal_data):
    env, buffer, model = goal_data
    venv = mbwrap.DreamVecEnv(model, 3, buffer, horizon=2)
    obs, _ = venv.reset(seed=0)
    assert set(obs) == {"observation", "achieved_goal", "desired_goal"}
    assert obs["observation"].shape == (3, 2)
    venv.step(np.zeros((3, 2), np.float32))
    _, _, _, truncated, info = venv.step(np.zeros((3, 2), np.float32))
    assert truncated.all() and info["_final_obs"].all()
    assert all(env.observation_space.contains(final) for final in info["final_obs"])


def test_dream_vec_env_copies_dict_batches_to_the_host_alike_on_the_accelerator_paths(
    goal_data,
):
    """The accelerator's one packed copy to the host (forced on the CPU) gives the same
    nested observations, final observations and flags as the CPU's copies."""
    _, buffer, model = goal_data
    actions = [np.random.default_rng(t).uniform(-1, 1, (3, 2)).astype(np.float32) for t in range(5)]

    def run(forced: bool) -> list:
        venv = mbwrap.DreamVecEnv(model, 3, buffer, horizon=2)
        with force_accelerator_paths(forced):
            return [venv.reset(seed=1)] + [venv.step(action) for action in actions]

    cpu, accelerator = run(False), run(True)
    for (obs, *rest), (obs_acc, *rest_acc) in zip(cpu, accelerator, strict=True):
        for key in obs:
            assert obs[key].dtype == obs_acc[key].dtype
            np.testing.assert_array_equal(obs[key], obs_acc[key])
        if len(rest) == 4:  # a step: reward, terminated, truncated, info
            for a, b in zip(rest[:3], rest_acc[:3], strict=True):
                assert a.dtype == b.dtype
                np.testing.assert_array_equal(a, b)
            info, info_acc = rest[3], rest_acc[3]
            assert info.keys() == info_acc.keys()
            for final, final_acc in zip(
                info.get("final_obs", []), info_acc.get("final_obs", []), strict=True
            ):
                for key in final:
                    np.testing.assert_array_equal(final[key], final_acc[key])


def test_sac_with_multi_input_policy_trains_in_imagination(goal_data):
    _, buffer, model = goal_data
    venv = mbwrap.DreamVecEnv(model, 4, buffer, horizon=10)
    agent = SAC(
        "MultiInputPolicy",
        mbwrap.sb3.as_vec_env(venv),
        learning_starts=16,
        batch_size=32,
        seed=0,
        device="cpu",
    )
    agent.learn(64)
    assert agent.num_timesteps == 64 and agent.replay_buffer.pos > 0
    action, _ = agent.predict(venv.reset(seed=1)[0], deterministic=True)
    assert action.shape == (4, 2)


def test_model_learning_wrapper_records_and_dreams_dict_observations():
    env = gym.make("mbwrap/PointGoal-v0")
    model = mbwrap.make_model(
        "mlp", env.observation_space, env.action_space, hidden_sizes=[16], device="cpu"
    )
    wrapped = mbwrap.ModelLearningWrapper(env, model, fit_every=100)
    buffer = mbwrap.ReplayBuffer(env.observation_space, env.action_space, 200, device="cpu")
    mbwrap.collect(wrapped, buffer, 120, seed=0)
    dream = wrapped.dream(num_envs=2, horizon=5)
    obs, _ = dream.reset(seed=0)
    assert obs["desired_goal"].shape == (2, 2)


def test_tuple_and_discrete_leaves_are_snapped_to_their_spaces():
    env = gym.make("Blackjack-v1")  # Tuple(Discrete(32), Discrete(11), Discrete(2))
    buffer = mbwrap.ReplayBuffer(env.observation_space, env.action_space, 600, device="cpu")
    mbwrap.collect(env, buffer, 400, seed=0)
    torch.manual_seed(0)
    model = mbwrap.make_model(
        "mlp",
        env.observation_space,
        env.action_space,
        hidden_sizes=[32],
        learn_termination=True,
        device="cpu",
    )
    model.fit(buffer, epochs=3)
    dream = mbwrap.DreamEnv(model, buffer, horizon=30)
    gym_check_env(dream, skip_render_check=True)
    obs, _ = dream.reset(seed=0)
    for _ in range(30):
        obs, _, terminated, truncated, _ = dream.step(1)
        assert isinstance(obs, tuple) and env.observation_space.contains(obs)
        if terminated or truncated:
            obs, _ = dream.reset()
    # The state stays one-hot per Discrete leaf: decoding and encoding it changes nothing.
    state = dream.core.state
    assert torch.equal(model.encode(model.decode(state)), state)


def test_atari_ram_is_a_vector_of_features():
    ram = spaces.Box(0, 255, (128,), np.uint8)
    model = mbwrap.make_model("mlp", ram, spaces.Discrete(6), hidden_sizes=[16], device="cpu")
    assert model.feature_states
    state = model.encode(np.arange(128, dtype=np.uint8))
    assert state.dtype == torch.float32 and state.shape == (1, 128)
    step = model.step(state, torch.tensor([3]))
    decoded = model.decode(step.next_state)
    assert decoded.dtype == torch.uint8 and ram.contains(decoded[0].numpy())
