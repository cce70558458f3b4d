"""The Gaussian-process model: its fit recovers a known smooth system, predictions and
samples agree with its posterior, the sparse subset covers the data, and it saves and
loads exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

import mbwrap
from mbwrap.buffers import ReplayBuffer
from mbwrap.models import WorldModel
from mbwrap.models.gp import GPModel, farthest_points
from mbwrap.models.gp_moments import moment_match

OBS = spaces.Box(-5.0, 5.0, (2,), np.float32)
ACT = spaces.Box(-1.0, 1.0, (1,), np.float32)


def known_step(s: np.ndarray, a: np.ndarray) -> np.ndarray:
    """A smooth nonlinear system: a damped pendulum-like map."""
    return np.stack(
        [s[:, 0] + 0.1 * s[:, 1], 0.9 * s[:, 1] + 0.3 * np.sin(s[:, 0]) + 0.2 * a[:, 0]], 1
    )


def buffer_of(n: int, seed: int = 0) -> ReplayBuffer:
    rng = np.random.default_rng(seed)
    s = rng.uniform(-2, 2, (n, 2)).astype(np.float32)
    a = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    nxt = (known_step(s, a) + 0.01 * rng.standard_normal((n, 2))).astype(np.float32)
    buffer = ReplayBuffer(OBS, ACT, n, device="cpu", n_envs=n)
    buffer.add(s, a, np.zeros(n), nxt, np.zeros(n, bool), np.zeros(n, bool))
    return buffer


def test_fit_recovers_a_known_system():
    model = GPModel(OBS, ACT, device="cpu")
    metrics = model.fit(buffer_of(150))
    rng = np.random.default_rng(1)
    s = rng.uniform(-1.5, 1.5, (200, 2))
    a = rng.uniform(-1, 1, (200, 1))
    predicted, _ = model.mean_step(torch.as_tensor(s), torch.as_tensor(a))
    error = np.abs(predicted.numpy() - known_step(s, a)).max()
    assert error < 0.05 and metrics["points"] == 150
    _, _, noise = model.hyperparameters()
    assert torch.all(noise < 1e-3)  # the 0.01 noise (variance 1e-4) is found, not inflated


def test_samples_follow_the_predictive_distribution():
    model = GPModel(OBS, ACT, device="cpu")
    model.fit(buffer_of(60))
    s = torch.tensor([[0.3, -0.2]], dtype=torch.float64).expand(20_000, 2)
    a = torch.tensor([[0.5]], dtype=torch.float64).expand(20_000, 1)
    samples = model.step(s, a, generator=torch.Generator().manual_seed(0)).next_state
    mean, variance = model.predict_delta(torch.cat([s[:1], a[:1]], 1))
    assert torch.allclose(
        samples.mean(0), s[0] + mean[0], atol=3 * (variance[0] / 20_000).sqrt().max()
    )
    assert torch.allclose(samples.var(0), variance[0], rtol=0.05)


def test_moment_matching_at_a_point_is_the_posterior_mean():
    model = GPModel(OBS, ACT, device="cpu")
    model.fit(buffer_of(60))
    x = torch.tensor([[0.3, -0.2, 0.5]], dtype=torch.float64)
    mean, _, _ = moment_match(model.expansion(), x, 1e-12 * torch.eye(3, dtype=torch.float64)[None])
    assert torch.allclose(mean, model.predict_delta(x)[0], atol=1e-8)


def test_past_max_points_a_covering_subset_is_kept():
    points = torch.tensor([[0.0, 0.0], [0.01, 0.0], [5.0, 5.0], [0.0, 5.0], [5.0, 0.0]])
    chosen = farthest_points(points, 4).tolist()
    # The newest first; of the two near-duplicates only one is kept.
    assert chosen[0] == 4 and {2, 3} <= set(chosen) and not {0, 1} <= set(chosen)
    model = GPModel(OBS, ACT, device="cpu", max_points=40)
    assert model.fit(buffer_of(200))["points"] == 40


def test_save_and_load_restore_the_fitted_gps(tmp_path):
    model = mbwrap.make_model("gp", OBS, ACT, device="cpu", max_points=50)
    assert isinstance(model, GPModel)
    model.fit(buffer_of(80))
    model.save(tmp_path / "gp.pt")
    loaded = WorldModel.load(tmp_path / "gp.pt", device="cpu")
    x = torch.randn(5, 3, dtype=torch.float64)
    for a, b in zip(model.predict_delta(x), loaded.predict_delta(x), strict=True):
        assert torch.allclose(a, b)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="observation_space"):
        GPModel(spaces.Discrete(3), ACT)
    with pytest.raises(ValueError, match="max_points"):
        GPModel(OBS, ACT, max_points=1)
    with pytest.raises(RuntimeError, match="fit"):
        GPModel(OBS, ACT, device="cpu").predict_delta(torch.zeros(1, 3))
