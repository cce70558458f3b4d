"""DreamVecEnv over a model on the device: each ``step`` reads a fixed number of values
back to the host, however long the episodes have run, and the model stays on the device."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

import mbwrap
from mbwrap import DreamVecEnv
from mbwrap.device_watch import DeviceWatch

from .conftest import on_device, random_buffer

pytestmark = pytest.mark.gpu

OBS = spaces.Box(-2.0, 2.0, (3,), np.float32)
ACT = spaces.Box(-1.0, 1.0, (2,), np.float32)
NUM_ENVS = 4


def test_each_step_reads_the_same_number_of_values_back_to_the_host(device):
    """Stepping a batch of imagined episodes over a fitted ensemble on the device, the 5th
    ``step`` call reads as many values back to the host as the 2nd (and copies as many
    tensors between host and device): nothing grows with the episode. The imagined states
    and the model's parameters are on the device."""
    torch.manual_seed(0)
    model = mbwrap.make_model(
        "gaussian-ensemble",
        OBS,
        ACT,
        device=device,
        ensemble_size=2,
        num_elites=2,
        hidden_sizes=(8,),
        batch_size=32,
    )
    buffer = random_buffer(OBS, ACT, device)
    model.fit(buffer, epochs=1)
    # Episodes longer than the steps taken: no env restarts in between, whose extra work
    # would be a reason for other reads.
    venv = DreamVecEnv(model, NUM_ENVS, buffer, horizon=50)
    venv.reset(seed=0)
    venv.action_space.seed(0)
    reads = []
    for _ in range(5):
        with DeviceWatch(device) as watch:
            obs, reward, terminated, truncated, _ = venv.step(venv.action_space.sample())
        reads.append(watch)
        assert obs.shape == (NUM_ENVS, 3) and reward.shape == (NUM_ENVS,)
        assert not (terminated | truncated).any()
    assert len(reads[1].host_reads) == len(reads[4].host_reads), (
        f"2nd step: {reads[1].summary()}; 5th step: {reads[4].summary()}"
    )
    # The copies between host and device (the actions in; observations, rewards and flags
    # out) are operations on host tensors: their number per step is fixed as well.
    assert len(reads[1].foreign) == len(reads[4].foreign), (
        f"2nd step: {reads[1].summary()}; 5th step: {reads[4].summary()}"
    )
    assert on_device(venv.core.state, device)
    assert all(on_device(p, device) for p in model.parameters())
