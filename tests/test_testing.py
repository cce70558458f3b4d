"""mbwrap.testing: the resume checks fail when anything of a run differs."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

import mbwrap
from mbwrap.testing import assert_same_checkpoints


def _pendulum() -> gym.Env:
    return gym.make("Pendulum-v1", max_episode_steps=50)


def _dyna() -> mbwrap.Dyna:
    return mbwrap.Dyna(
        _pendulum(), "PPO", "linear", learning_starts=50,
        train_freq=50, imagined_steps=32, num_imagined_envs=2, seed=0, device="cpu",
        agent_kwargs={"n_steps": 16, "batch_size": 32, "policy_kwargs": {"net_arch": [8]}},
    )


def test_checkpoints_that_differ_in_a_weight_a_counter_or_a_random_state_are_told_apart(
    tmp_path,
):
    algo = _dyna()
    algo.learn(100)
    algo.save(tmp_path / "a.pt")
    assert_same_checkpoints(tmp_path / "a.pt", tmp_path / "a.pt")
    with torch.no_grad():
        next(algo.agent.policy.parameters()).add_(1.0)
    algo.save(tmp_path / "weight.pt")
    with pytest.raises(AssertionError, match="values differ"):
        assert_same_checkpoints(tmp_path / "a.pt", tmp_path / "weight.pt")
    algo = mbwrap.Dyna.load(tmp_path / "a.pt", env=_pendulum(), device="cpu")
    algo.real_steps += 1
    algo.save(tmp_path / "counter.pt")
    with pytest.raises(AssertionError, match="real_steps"):
        assert_same_checkpoints(tmp_path / "a.pt", tmp_path / "counter.pt")
    algo = mbwrap.Dyna.load(tmp_path / "a.pt", env=_pendulum(), device="cpu")
    torch.rand(1)  # the global torch generator moves on
    algo.save(tmp_path / "rng.pt")
    with pytest.raises(AssertionError, match="rng"):
        assert_same_checkpoints(tmp_path / "a.pt", tmp_path / "rng.pt")
