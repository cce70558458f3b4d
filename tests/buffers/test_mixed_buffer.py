"""The buffer that mixes real and model transitions in each SB3 batch (MBPO): its split by
hand, the action units SB3 expects, terminations as dones, and its saved sampling state."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.type_aliases import ReplayBufferSamples

import mbwrap
from mbwrap.buffers import MixedReplayBuffer, split_batch
from mbwrap.spaces import scale_action, unscale_action


def test_split_batch_is_mbpos():
    assert split_batch(100, 0.05) == (5, 95)
    assert split_batch(256, 0.05) == (12, 244)  # int(12.8), as the official code
    assert split_batch(10, 0.0) == (0, 10)
    assert split_batch(10, 1.0) == (10, 0)
    with pytest.raises(ValueError, match="real_ratio"):
        split_batch(10, 1.5)


def test_action_scaling_by_hand():
    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0])
    action = torch.tensor([[1.0, 0.25], [-2.0, 1.0]])
    scaled = scale_action(action, low, high)
    torch.testing.assert_close(scaled, torch.tensor([[0.5, -0.5], [-1.0, 1.0]]))
    torch.testing.assert_close(unscale_action(scaled, low, high), action)


def _filled(space: gym.Space, n: int, reward: float, action: float) -> mbwrap.ReplayBuffer:
    act_space = gym.spaces.Box(-2.0, 2.0, shape=(1,), dtype=np.float32)
    buffer = mbwrap.ReplayBuffer(space, act_space, n, device="cpu")
    obs = np.full((n, 3), reward, dtype=np.float32)
    done = np.zeros(n, dtype=bool)
    buffer.extend(obs, np.full((n, 1), action), np.full(n, reward), obs, done, done)
    return buffer


def test_mixed_buffer_draws_exactly_5_percent_real():
    space = gym.spaces.Box(-10.0, 10.0, shape=(3,), dtype=np.float32)
    real = _filled(space, 50, reward=1.0, action=2.0)
    model = _filled(space, 50, reward=0.0, action=-1.0)
    mixed = MixedReplayBuffer(real, model, 0.05, device="cpu", seed=0)
    batch = mixed.sample(200)
    assert isinstance(batch, ReplayBufferSamples)
    assert batch.observations.shape == (200, 3) and batch.rewards.shape == (200, 1)
    # 10 real rows first, then 190 model rows.
    assert batch.rewards[:10].eq(1.0).all() and batch.rewards[10:].eq(0.0).all()
    # Actions in SB3's [-1, 1] units: 2 is the top of [-2, 2], -1 its quarter.
    assert batch.actions[:10].eq(1.0).all() and batch.actions[10:].eq(-0.5).all()
    assert batch.observations.device == torch.device("cpu")
    # Before any rollout, batches are all real.
    assert MixedReplayBuffer(real, None, 0.05, device="cpu").sample(20).rewards.eq(1.0).all()


def test_mixed_buffer_dones_are_terminations():
    space = gym.spaces.Box(-10.0, 10.0, shape=(3,), dtype=np.float32)
    act_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
    real = mbwrap.ReplayBuffer(space, act_space, 4, device="cpu")
    obs = np.arange(4, dtype=np.float32)[:, None].repeat(3, 1)
    terminated = np.array([True, False, False, False])
    truncated = np.array([False, True, False, False])
    real.extend(obs, np.zeros((4, 1)), np.zeros(4), obs, terminated, truncated)
    batch = MixedReplayBuffer(real, None, 1.0, device="cpu", seed=1).sample(64)
    row = batch.observations[:, 0].long()
    assert torch.equal(batch.dones.squeeze(1), (row == 0).float())


def test_state_dict_continues_the_sampling_exactly():
    space = gym.spaces.Box(-100.0, 100.0, shape=(3,), dtype=np.float32)
    act_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
    buffers = []
    for offset in (0, 50):  # distinct rows, so a different draw shows
        buffer = mbwrap.ReplayBuffer(space, act_space, 50, device="cpu")
        obs = offset + np.arange(50, dtype=np.float32)[:, None].repeat(3, 1)
        done = np.zeros(50, dtype=bool)
        buffer.extend(obs, np.zeros((50, 1)), np.zeros(50), obs, done, done)
        buffers.append(buffer)
    mixed = MixedReplayBuffer(*buffers, 0.5, device="cpu", seed=0)
    mixed.sample(8)
    state = mixed.state_dict()
    assert sorted(state) == ["model@cpu", "real@cpu"]
    expected = mixed.sample(16)
    other = MixedReplayBuffer(*buffers, 0.5, device="cpu", seed=1)
    assert not torch.equal(other.sample(16).observations, expected.observations)
    other.load_state_dict(state)
    torch.testing.assert_close(other.sample(16).observations, expected.observations)
