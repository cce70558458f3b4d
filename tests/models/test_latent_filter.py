"""The one latent filter: per-env posterior states of a recurrent model, restarted where
episodes start, with a checkpointable state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from mbwrap.models import RSSM
from mbwrap.models.latent_filter import LatentFilter, observation_batch

OBS = spaces.Box(-1.0, 1.0, (3,), np.float32)


@pytest.fixture
def model() -> RSSM:
    torch.manual_seed(0)
    return RSSM(
        OBS, spaces.Discrete(2), device="cpu", deter=8, hidden=8, layers=1, stoch=2, classes=3
    )


def _obs(batch: int, seed: int) -> torch.Tensor:
    values = np.random.default_rng(seed).uniform(-1, 1, (batch, 3))
    return torch.as_tensor(values, dtype=torch.float32)


def test_observe_restarts_where_episodes_start_and_advances_elsewhere(model):
    latent = LatentFilter(model, sample=False)
    first_obs, next_obs = _obs(3, 0), _obs(3, 1)
    start = latent.observe(first_obs)
    with torch.no_grad():
        expected = model.first_posterior(model.embed(first_obs), sample=False)
    torch.testing.assert_close(start, expected)
    action = model.action_vector(torch.tensor([0, 1, 1]))
    after = latent.observe(next_obs, action, episode_start=np.array([False, True, False]))
    assert after.shape == (3, model.feature_size) and latent.state is after
    with torch.no_grad():
        embed = model.embed(next_obs)
        advanced, _, _ = model.obs_step(start, action, embed, sample=False)
        fresh = model.first_posterior(embed, sample=False)
    torch.testing.assert_close(after[[0, 2]], advanced[[0, 2]])
    torch.testing.assert_close(after[1], fresh[1])
    assert not torch.allclose(after[0], fresh[0])
    # Without the action taken (or with another batch size) every env starts afresh.
    torch.testing.assert_close(latent.observe(next_obs), fresh)
    assert latent.observe(_obs(2, 1)).shape == (2, model.feature_size)


def test_samples_depend_on_the_episode_starts_alone(model):
    # Where every env starts, the state before does not matter, nor does its absence: a
    # run that forgot its state (a loaded checkpoint) draws what a run that kept it draws.
    obs = _obs(2, 3)
    action = model.action_vector(torch.tensor([1, 0]))
    kept, forgot = LatentFilter(model, seed=4), LatentFilter(model, seed=4)
    kept.state = torch.randn(2, model.feature_size)
    a = kept.observe(obs, action, episode_start=np.array([True, True]))
    b = forgot.observe(obs, action, episode_start=np.array([True, True]))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    a, b = kept.observe(obs, action), forgot.observe(obs, action)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_state_dict_round_trip_continues_the_same_samples(model):
    latent = LatentFilter(model, seed=1)
    latent.observe(_obs(2, 0))
    saved = latent.state_dict()
    other = LatentFilter(model, seed=99)
    other.load_state_dict(saved)
    action = model.action_vector(torch.tensor([1, 1]))
    a, b = latent.observe(_obs(2, 5), action), other.observe(_obs(2, 5), action)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    other.load_state_dict({**saved, "state": None})
    assert other.state is None


def test_non_filtering_models_and_dict_observations():
    from mbwrap.models import MLPModel

    box = spaces.Box(-1.0, 1.0, (2,), np.float32)
    with pytest.raises(TypeError, match=r"not a latent filtering model .* lacks embed"):
        LatentFilter(MLPModel(box, box, device="cpu"))
    space = spaces.Dict({"a": box, "b": spaces.Box(0, 255, (4,), np.uint8)})
    batch, batched = observation_batch(space.sample(), space, "cpu")
    assert not batched and batch["a"].shape == (1, 2) and batch["b"].dtype == torch.uint8
    with pytest.raises(TypeError, match="observation: expected a dict"):
        observation_batch(np.zeros(2), space, "cpu")
