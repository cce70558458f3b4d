"""Tests of mbwrap.models.MDNModel (Bishop 1994; World Models, Ha & Schmidhuber 2018)."""

from __future__ import annotations

import inspect
import json
import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

import mbwrap
from mbwrap import ReplayBuffer, WorldModel
from mbwrap.models import MDNModel, MLPModel, mixture_nll

OBS = spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = spaces.Box(-1.0, 1.0, (2,), np.float32)
A = np.array([[0.9, 0.1, 0.0], [0.0, 0.9, 0.1], [0.1, 0.0, 0.9]], np.float32)
B = np.array([[0.5, 0.0], [0.0, 0.5], [0.2, 0.2]], np.float32)
C = np.array([1.0, -1.0, 0.5], np.float32)
SMALL = {"hidden_sizes": (32, 32), "batch_size": 64, "num_components": 3, "device": "cpu"}


@pytest.fixture(scope="module")
def fitted() -> tuple[MDNModel, dict]:
    """An MDN fitted to ``s' = A s + B a``, ``r = c . s``."""
    rng = np.random.default_rng(0)
    n = 800
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    action = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    buffer = ReplayBuffer(OBS, ACT, n, device="cpu")
    done = np.zeros(n, bool)
    buffer.extend(obs, action, obs @ C, obs @ A.T + action @ B.T, done, done)
    torch.manual_seed(0)
    model = MDNModel(OBS, ACT, **SMALL)
    return model, model.fit(buffer, epochs=30)


def test_defaults():
    model = MDNModel(OBS, ACT, device="cpu")
    config = model.get_config()
    assert config["num_components"] == 5 and config["temperature"] == 1.0
    assert config["max_grad_norm"] == 1.0 and config["learning_rate"] == 1e-3
    assert model.ensemble_size == 1 and model.sample_members(3) is None
    # K logits + K means + K log-variances of [delta (3), reward (1)]
    assert model.net.layers[-1].out_features == 5 * (1 + 2 * 4)


def test_config_holds_every_constructor_keyword_as_json():
    model = MDNModel(OBS, ACT, device="cpu")
    keywords = set(inspect.signature(MDNModel).parameters)
    expected = keywords - {"observation_space", "action_space", "env_id", "device"}
    assert set(model.get_config()) == expected
    json.dumps(model.get_config())


def test_constructor_checks_its_own_arguments():
    with pytest.raises(ValueError, match=r"^num_components:"):
        MDNModel(OBS, ACT, num_components=0, device="cpu")
    with pytest.raises(ValueError, match=r"^temperature:"):
        MDNModel(OBS, ACT, temperature=-1.0, device="cpu")


def test_make_model_builds_it_by_name():
    model = mbwrap.make_model("mdn", OBS, ACT, num_components=2)
    assert isinstance(model, MDNModel) and model.num_components == 2


def test_loss_is_the_mixture_nll_of_the_split_head():
    model = MDNModel(OBS, ACT, **SMALL)
    head = torch.randn(1, 6, model.head_width, generator=torch.Generator().manual_seed(0))
    target = torch.randn(1, 6, 4, generator=torch.Generator().manual_seed(1))
    logits, means, logvars = model.mixture(head)
    assert logits.shape == (1, 6, 3) and means.shape == logvars.shape == (1, 6, 3, 4)
    torch.testing.assert_close(
        model._loss(head, target), mixture_nll(logits, means, logvars, target)
    )
    torch.testing.assert_close(model._holdout_loss(head, target), model._loss(head, target))


def test_fit_learns_linear_dynamics(fitted):
    model, metrics = fitted
    assert metrics["holdout_mse"] < 1e-2  # the mixture mean's error, normalised units
    obs = torch.randn(200, 3, generator=torch.Generator().manual_seed(3))
    action = torch.zeros(200, 2)
    pred = model.step(obs, action, generator=torch.Generator().manual_seed(0))
    assert (pred.next_state - obs @ torch.from_numpy(A.T)).square().mean() < 0.05


def head_for(model: MDNModel, weights, means, logvar: float) -> torch.Tensor:
    """A head of ``[1, H]`` whose mixture has these weights, component means (one value
    for every feature) and raw log-variance."""
    k, t = model.num_components, model.target_dim
    logits = torch.log(torch.tensor(weights))
    mu = torch.tensor(means)[:, None].expand(k, t)
    return torch.cat([logits, mu.reshape(-1), torch.full((k * t,), logvar)])[None]


def test_sampling_with_temperature():
    model = MDNModel(OBS, ACT, num_components=2, hidden_sizes=(4,), device="cpu")
    head = head_for(model, [0.9, 0.1], [0.0, 5.0], -20.0).expand(4000, -1)  # tiny spread

    def share_of_second(temperature: float) -> float:
        model.temperature = temperature
        draws = model._sample(head, torch.Generator().manual_seed(0))
        return float((draws[:, 0] > 2.5).float().mean())

    assert share_of_second(1.0) == pytest.approx(0.1, abs=0.02)
    # Logits divided by tau = 100: the weights become nearly uniform.
    assert share_of_second(100.0) == pytest.approx(0.5, abs=0.03)
    # tau = 0: the most likely component's mean, exactly.
    model.temperature = 0.0
    assert torch.equal(model._sample(head, None), torch.zeros(4000, 4))


def test_temperature_scales_the_spread_by_its_square_root():
    model = MDNModel(OBS, ACT, num_components=1, hidden_sizes=(4,), device="cpu")
    head = head_for(model, [1.0], [0.0], 0.0).expand(8000, -1)
    _, _, logvars = model.mixture(head[:1])
    std = math.exp(0.5 * float(logvars[0, 0, 0]))
    model.temperature = 4.0
    draws = model._sample(head, torch.Generator().manual_seed(0))
    assert draws.std(0).tolist() == pytest.approx([2 * std] * 4, rel=0.05)


def test_an_mdn_represents_two_outcomes_that_an_mlp_averages():
    # s' = s + 1 or s - 1 with equal probability, whatever s and a.
    rng = np.random.default_rng(1)
    space = spaces.Box(-np.inf, np.inf, (1,), np.float32)
    act = spaces.Box(-1.0, 1.0, (1,), np.float32)
    n = 800
    obs = rng.normal(size=(n, 1)).astype(np.float32)
    jump = rng.choice([-1.0, 1.0], size=(n, 1)).astype(np.float32)
    buffer = ReplayBuffer(space, act, n, device="cpu")
    done = np.zeros(n, bool)
    buffer.extend(obs, np.zeros((n, 1), np.float32), np.zeros(n), obs + jump, done, done)
    torch.manual_seed(0)
    mdn = MDNModel(
        space, act, num_components=2, hidden_sizes=(16,), batch_size=32, learning_rate=3e-3
    )
    mdn.fit(buffer, epochs=25)
    mlp = MLPModel(space, act, hidden_sizes=(16,), batch_size=32)
    mlp.fit(buffer, epochs=10)
    state, action = torch.zeros(2000, 1), torch.zeros(2000, 1)
    delta = mdn.step(state, action, generator=torch.Generator().manual_seed(0)).next_state
    assert float((delta - 1).abs().lt(0.3).float().mean()) == pytest.approx(0.5, abs=0.1)
    assert float((delta + 1).abs().lt(0.3).float().mean()) == pytest.approx(0.5, abs=0.1)
    assert float(delta.abs().lt(0.5).float().mean()) < 0.05
    # The expectation model predicts the average jump, an outcome that never happens.
    assert mlp.step(state[:1], action[:1]).next_state.abs().item() < 0.3


def test_predict_mixture_in_environment_units(fitted):
    model = fitted[0]
    obs, action = torch.randn(5, 3), torch.zeros(5, 2)
    logits, means, logvars = model.predict_mixture(obs, action)
    assert logits.shape == (5, 3) and means.shape == logvars.shape == (5, 3, 4)
    weights = torch.softmax(logits, -1)[..., None]
    torch.testing.assert_close((weights * means).sum(1), model.predict_mean(obs, action)[0])


@pytest.mark.parametrize("loader", [MDNModel.load, WorldModel.load], ids=["cls", "base"])
def test_save_load_round_trip_predicts_identically(fitted, tmp_path, loader):
    model = fitted[0]
    path = tmp_path / "mdn.pt"
    model.save(path)
    loaded = loader(path, device="cpu")
    assert type(loaded) is MDNModel and loaded.get_config() == model.get_config()
    obs, action = torch.randn(16, 3), torch.rand(16, 2)
    a = model.step(obs, action, generator=torch.Generator().manual_seed(3))
    b = loaded.step(obs, action, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a.next_state, b.next_state, rtol=0, atol=0)
    torch.testing.assert_close(a.reward, b.reward, rtol=0, atol=0)
