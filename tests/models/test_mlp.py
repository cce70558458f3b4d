"""Tests of mbwrap.models.MLPModel (Nagabandi et al. 2018), single and as an ensemble."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch
from gymnasium import spaces

import mbwrap
from mbwrap import ReplayBuffer, WorldModel
from mbwrap.models import MLPModel

OBS = spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = spaces.Discrete(3)
A = np.array([[0.9, 0.1, 0.0], [0.0, 0.9, 0.1], [0.1, 0.0, 0.9]], np.float32)
B = np.array([[0.5, 0.0, -0.5], [0.0, 0.5, 0.5], [0.2, 0.2, 0.0]], np.float32)
C = np.array([1.0, -1.0, 0.5], np.float32)
SMALL = {"hidden_sizes": (32, 32), "batch_size": 64, "device": "cpu"}


@pytest.fixture(scope="module")
def buffer() -> ReplayBuffer:
    """``s' = A s + B[:, a]``, ``r = c . s``, with a Discrete(3) action."""
    rng = np.random.default_rng(0)
    n = 800
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    action = rng.integers(0, 3, n)
    buffer = ReplayBuffer(OBS, ACT, n, device="cpu")
    done = np.zeros(n, bool)
    buffer.extend(obs, action, obs @ C, obs @ A.T + B[:, action].T, done, done)
    return buffer


@pytest.fixture(scope="module")
def fitted(buffer) -> tuple[MLPModel, dict]:
    torch.manual_seed(0)
    model = MLPModel(OBS, ACT, **SMALL)
    return model, model.fit(buffer, epochs=40)


def test_defaults_are_nagabandi_et_al():
    config = MLPModel(OBS, ACT, device="cpu").get_config()
    assert config["hidden_sizes"] == [500, 500] and config["activation"] == "relu"
    assert config["learning_rate"] == 1e-3 and config["batch_size"] == 512
    assert config["ensemble_size"] == 1 and config["num_elites"] == 1
    assert config["weight_decay"] == 0.0 and config["max_epochs"] == 60


def test_config_holds_every_constructor_keyword_as_json():
    model = MLPModel(OBS, ACT, device="cpu")
    keywords = set(inspect.signature(MLPModel).parameters)
    expected = keywords - {"observation_space", "action_space", "env_id", "device"}
    assert set(model.get_config()) == expected
    json.dumps(model.get_config())


def test_make_model_builds_it_by_name():
    model = mbwrap.make_model("mlp", OBS, ACT, hidden_sizes=[8])
    assert isinstance(model, MLPModel) and model.hidden_sizes == [8]


def test_fit_learns_linear_dynamics_with_discrete_actions(fitted):
    model, metrics = fitted
    assert metrics["holdout_mse"] < 1e-2  # normalised units
    obs = torch.randn(300, 3, generator=torch.Generator().manual_seed(3))
    action = torch.arange(300) % 3
    pred = model.step(obs, action)
    expected = obs @ torch.from_numpy(A.T) + torch.from_numpy(B[:, action.numpy()].T)
    assert (pred.next_state - expected).square().mean() < 0.01
    assert (pred.reward - obs @ torch.from_numpy(C)).square().mean() < 0.01


def test_step_is_deterministic(fitted):
    model = fitted[0]
    obs, action = torch.randn(10, 3), torch.zeros(10, dtype=torch.long)
    a = model.step(obs, action, generator=torch.Generator().manual_seed(0))
    b = model.step(obs, action, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a.next_state, b.next_state, rtol=0, atol=0)
    assert model.sample_members(4) is None


def test_an_ensemble_of_expectation_models(buffer):
    torch.manual_seed(0)
    model = MLPModel(OBS, ACT, ensemble_size=3, **SMALL)
    metrics = model.fit(buffer, epochs=2)
    assert len(metrics["holdout_loss"]) == 3 and model.num_elites == 3
    obs = torch.tensor([[0.3, 0.2, 0.1]]).expand(100, 3)
    action = torch.zeros(100, dtype=torch.long)
    means = model.predict_mean(obs[:1], action[:1])[:, 0, 3]  # [E] rewards
    reward = model.step(obs, action, generator=torch.Generator().manual_seed(0)).reward
    member_of = (reward[:, None] - means).abs().argmin(-1)
    torch.testing.assert_close(reward, means[member_of])
    assert len(set(member_of.tolist())) == 3  # TS1: a member per row


@pytest.mark.parametrize("loader", [MLPModel.load, WorldModel.load], ids=["cls", "base"])
def test_save_load_round_trip_predicts_identically(fitted, tmp_path, loader):
    model = fitted[0]
    path = tmp_path / "mlp.pt"
    model.save(path)
    loaded = loader(path, device="cpu")
    assert type(loaded) is MLPModel and loaded.get_config() == model.get_config()
    obs, action = torch.randn(16, 3), torch.arange(16) % 3
    torch.testing.assert_close(
        loaded.step(obs, action).next_state, model.step(obs, action).next_state, rtol=0, atol=0
    )
    torch.testing.assert_close(loaded.target_normalizer.std, model.target_normalizer.std)
