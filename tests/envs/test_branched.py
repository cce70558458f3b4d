"""Branched model rollouts (MBPO's): one batched model call per step, rollouts that end at
a termination, and transitions stored as the model predicted them."""

from __future__ import annotations

import numpy as np
import torch

import mbwrap
from mbwrap.envs.branched import branched_rollouts

from .conftest import LineModel


def _starts(positions: list[float]) -> mbwrap.ReplayBuffer:
    model = LineModel()
    buffer = mbwrap.ReplayBuffer(model.observation_space, model.action_space, 16, device="cpu")
    obs = np.array([[p, 0.0] for p in positions], dtype=np.float32)
    done = np.zeros(len(positions), dtype=bool)
    buffer.extend(obs, np.zeros((len(positions), 1)), np.zeros(len(positions)), obs, done, done)
    return buffer


def test_rollouts_stop_at_termination_and_store_every_step():
    # From x = 0 moving +1 a step with the goal at 2: each rollout terminates on step 2,
    # so 3 steps are asked for but 2 per rollout are stored and the model is called twice.
    model = LineModel(goal=2.0)
    buffer = mbwrap.ReplayBuffer(model.observation_space, model.action_space, 100, device="cpu")
    metrics = branched_rollouts(
        model, _starts([0.0]), lambda obs: torch.ones(obs.shape[0], 1), buffer,
        num_rollouts=4, length=3, seed=0,
    )
    assert model.batch_sizes == [4, 4]
    data = buffer.transitions()
    assert len(data) == 8 and metrics["added"] == 8 and metrics["mean_rollout_length"] == 2
    # First steps of the 4 rollouts, then their second steps continuing them.
    torch.testing.assert_close(data.obs[4:], data.next_obs[:4])
    assert data.terminated.tolist() == [False] * 4 + [True] * 4
    assert not data.truncated.any()
    assert metrics["reward_mean"] == 1.5  # rewards 1 and 2 (reward = next position)


def test_the_same_seed_draws_the_same_start_states():
    starts = _starts([float(i) for i in range(10)])
    runs = []
    for _ in range(2):
        model = LineModel()
        buffer = mbwrap.ReplayBuffer(model.observation_space, model.action_space, 8, device="cpu")
        branched_rollouts(
            model, starts, lambda obs: torch.zeros(obs.shape[0], 1), buffer,
            num_rollouts=8, length=1, seed=3,
        )
        runs.append(buffer.transitions().obs)
    assert torch.equal(runs[0], runs[1]) and len(set(runs[0][:, 0].tolist())) > 1
