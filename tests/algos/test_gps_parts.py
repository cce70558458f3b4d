"""Guided policy search's parts: the local controllers acting in the conditions, the
episodes read back from replay, the global policy's linearisation, supervised loss and
covariance, and mirror descent's step-size rule, each against numbers worked out here."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import PPO

from mbwrap.algos.gps_global import (
    linearise_policy,
    policy_actions,
    policy_covariance,
    precision_weighted_loss,
    step_multiplier,
    train_global_policy,
)
from mbwrap.algos.gps_local import LocalControllers, latest_episodes
from mbwrap.buffers import ReplayBuffer
from mbwrap.envs.fixed_start import FixedStart, condition_vec_env, rollout_conditions
from mbwrap.planners.lqg import LinearGaussianController

OBS = spaces.Box(-10.0, 10.0, (2,), np.float32)
ACT = spaces.Box(-1.0, 1.0, (1,), np.float32)


def controller(count: int = 2, horizon: int = 3, variance: float = 0.5) -> LinearGaussianController:
    gain = torch.zeros(count, horizon, 1, 2, dtype=torch.float64)
    gain[..., 0, 0] = torch.arange(horizon, dtype=torch.float64) * 0.1  # K_t = [0.1 t, 0]
    offset = torch.arange(count, dtype=torch.float64)[:, None, None].expand(count, horizon, 1)
    cov = variance * torch.ones(count, horizon, 1, 1, dtype=torch.float64)
    return LinearGaussianController(gain=gain, offset=offset.clone() * 0.2, cov=cov)


def test_local_controllers_act_per_condition_and_time():
    local = LocalControllers(controller(), ACT, torch.Generator().manual_seed(0))
    obs = np.array([[2.0, 5.0], [3.0, -1.0]], np.float32)
    action, (t,) = local.predict(obs, deterministic=True)
    np.testing.assert_allclose(action, [[0.0], [0.2]])  # t = 0: K = 0, offsets 0 and 0.2
    action, (t,) = local.predict(obs, state=(t,), deterministic=True)
    np.testing.assert_allclose(action, [[0.2], [0.5]], rtol=1e-6)  # t = 1: 0.1 x_0 + k
    assert t.tolist() == [2, 2]
    action, (t,) = local.predict(
        obs, state=(t,), episode_start=np.array([True, False]), deterministic=True
    )
    np.testing.assert_allclose(action, [[0.0], [0.8]], rtol=1e-6)  # restarted / t = 2
    assert t.tolist() == [1, 3]


def test_local_controllers_sample_their_covariance_and_clip():
    local = LocalControllers(
        controller(count=1, variance=0.04), ACT, torch.Generator().manual_seed(0)
    )
    obs = np.zeros((1, 2), np.float32)
    draws = np.array([local.predict(obs)[0][0, 0] for _ in range(4000)])
    assert abs(draws.std() - 0.2) < 0.01 and abs(draws.mean()) < 0.01
    wide = LocalControllers(
        controller(count=1, variance=100.0), ACT, torch.Generator().manual_seed(0)
    )
    draws = np.array([wide.predict(obs)[0][0, 0] for _ in range(200)])
    assert draws.min() >= -1.0 and draws.max() <= 1.0 and (np.abs(draws) == 1.0).any()
    with pytest.raises(ValueError, match="observation: expected one row per condition"):
        local.predict(np.zeros((3, 2), np.float32))


def test_latest_episodes_regroup_replay_by_condition():
    buffer = ReplayBuffer(OBS, ACT, 100, device="cpu", n_envs=2)
    horizon = 3
    for episode in range(3):
        for t in range(horizon):
            obs = np.array([[episode, t], [10 + episode, t]], np.float32)
            end = np.full(2, t == horizon - 1)
            buffer.add(obs, np.zeros((2, 1)), np.zeros(2), obs + 0.5, np.zeros(2, bool), end)
    x, u, x_next = latest_episodes(buffer, 2, horizon)
    assert x.shape == (2, 2, 3, 2) and u.shape == (2, 2, 3, 1) and x.dtype == torch.float64
    assert x[1, 0, 2].tolist() == [11.0, 2.0]  # condition 1, its 2nd-to-last episode, t = 2
    assert x[0, 1, 0].tolist() == [2.0, 0.0]
    assert torch.equal(x_next, x + 0.5)
    with pytest.raises(ValueError, match="not 3 whole episodes"):
        latest_episodes(buffer, 3, 2)


def test_linearise_policy_recovers_a_linear_policy():
    env = condition_vec_env(lambda: gym.make("Pendulum-v1"), [0])
    agent = PPO("MlpPolicy", env, policy_kwargs={"net_arch": []}, seed=0, device="cpu")
    weight = agent.policy.action_net.weight.detach().double()  # [1, 3]
    bias = agent.policy.action_net.bias.detach().double()
    x = torch.randn(2, 6, 5, 3, dtype=torch.float64)
    actions = policy_actions(agent.policy, x)
    assert actions.shape == (2, 6, 5, 1)
    assert torch.allclose(actions, x @ weight.T + bias, atol=1e-5)
    cov = torch.tensor([[0.3]], dtype=torch.float64)
    linear = linearise_policy(x, actions, cov)
    assert linear.gain.shape == (2, 5, 1, 3)
    assert torch.allclose(linear.gain, weight.expand(2, 5, 1, 3), atol=1e-4)
    assert torch.allclose(linear.offset, bias.expand(2, 5, 1), atol=1e-4)
    assert torch.equal(linear.cov, cov.expand(2, 5, 1, 1))


def test_precision_weighted_loss_by_hand():
    predicted = torch.tensor([[1.0, 2.0]])
    target = torch.tensor([[0.0, 0.0]])
    precision = torch.tensor([[[2.0, 1.0], [1.0, 3.0]]])
    # gap (1, 2): 2 + 2 * 1 * 2 + 3 * 4 = 18, halved.
    assert float(precision_weighted_loss(predicted, target, precision)) == pytest.approx(9.0)


def test_policy_covariance_inverts_the_mean_precision():
    local = controller(count=2, horizon=2)
    cov = local.cov.clone()
    cov[0] = 0.5
    cov[1] = 2.0  # precisions 2 and 0.5: mean 1.25
    local = LinearGaussianController(gain=local.gain, offset=local.offset, cov=cov)
    assert float(policy_covariance(local)) == pytest.approx(1 / 1.25)


def test_train_global_policy_fits_the_controllers_and_their_spread():
    env = condition_vec_env(lambda: gym.make("Pendulum-v1"), [0])
    agent = PPO("MlpPolicy", env, policy_kwargs={"net_arch": [32]}, seed=0, device="cpu")
    gain = torch.tensor([[[[0.5, -0.3, 0.1]]]], dtype=torch.float64).expand(1, 4, 1, 3)
    local = LinearGaussianController(
        gain=gain.clone(),
        offset=torch.full((1, 4, 1), 0.2, dtype=torch.float64),
        cov=torch.full((1, 4, 1, 1), 0.09, dtype=torch.float64),
    )
    x = torch.randn(1, 50, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.Adam(agent.policy.parameters(), lr=3e-3)
    loss = train_global_policy(
        agent.policy,
        optimizer,
        x,
        local,
        steps=600,
        batch_size=64,
        generator=torch.Generator().manual_seed(0),
    )
    probe = torch.randn(20, 3, generator=torch.Generator().manual_seed(2)).clamp(-1.5, 1.5)
    expected = probe.double() @ gain[0, 0].T + 0.2
    action, _ = agent.predict(probe.numpy(), deterministic=True)
    assert np.abs(action - expected.numpy()).max() < 0.1 and loss < 0.05
    assert float(agent.policy.log_std.exp()) == pytest.approx(0.3, rel=1e-5)


def test_step_multiplier_by_hand():
    previous = torch.tensor([10.0, 10.0, 10.0, 10.0])
    predicted = torch.tensor([8.0, 8.0, 8.0, 11.0])
    actual = torch.tensor([8.0, 9.0, 12.0, 9.0])
    mult = step_multiplier(previous, predicted, actual, torch.ones(4), low=0.01, high=10.0)
    # 1: all of the predicted 2 realised: 2 / (2 * 1e-4) clipped to 5;
    # 2: 1 of 2: 2 / (2 * 1) = 1; 3: worse: 2 / (2 * 4) = 0.25;
    # 4: predicted a loss: the factor's floor 0.1.
    assert mult.tolist() == pytest.approx([5.0, 1.0, 0.25, 0.1])
    capped = step_multiplier(previous, predicted, actual, torch.full((4,), 4.0), low=0.5, high=10.0)
    assert capped.tolist() == pytest.approx([10.0, 4.0, 1.0, 0.5])


def test_fixed_start_resets_to_one_condition():
    env = FixedStart(gym.make("Reacher-v5"), seed=3)
    first, _ = env.reset()
    env.step(env.action_space.sample())
    again, _ = env.reset(seed=99)  # a passed seed does not move the condition
    np.testing.assert_array_equal(first, again)
    venv = condition_vec_env("Reacher-v5", [3, 4])
    obs = venv.reset()
    np.testing.assert_array_equal(obs[0], first)
    assert not np.array_equal(obs[0], obs[1])
    with pytest.raises(ValueError, match="seed: expected a non-negative int"):
        FixedStart(gym.make("Reacher-v5"), seed=-1)
    with pytest.raises(ValueError, match="seeds: conditions must differ"):
        condition_vec_env("Reacher-v5", [1, 1])


def test_rollout_conditions_plays_one_episode_from_each():
    class Zero:
        def predict(self, obs, state=None, episode_start=None, deterministic=False):
            return np.zeros((len(obs), 2), np.float32), state

    observations, returns = rollout_conditions(Zero(), "Reacher-v5", [3, 4])
    assert observations.shape == (2, 51, 10) and returns.shape == (2,)
    first, _ = FixedStart(gym.make("Reacher-v5"), seed=3).reset()
    np.testing.assert_array_equal(observations[0, 0], first)
    # Doing nothing: the reward is minus the distance to the target, which stays put.
    distance = np.linalg.norm(observations[:, 1:, 8:10], axis=-1).sum(1)
    np.testing.assert_allclose(returns, -distance, rtol=1e-5)
