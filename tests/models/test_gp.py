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
from mbwrap.models.gp import (
    GPModel,
    exact_posterior,
    farthest_points,
    fitc_negative_log_likelihood,
    fitc_posterior,
    hyperparameter_curb,
)
from mbwrap.models.gp_moments import moment_match, se_kernel

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
    metrics = model.fit(buffer_of(200))
    assert metrics["points"] == 40 and metrics["data"] == 200


def test_fitc_with_the_data_as_inducing_inputs_is_the_exact_gp():
    rng = torch.Generator().manual_seed(0)
    x = torch.rand(30, 3, dtype=torch.float64, generator=rng) * 4 - 2
    y = torch.stack([x[:, 0].sin(), x[:, 1] * x[:, 2]])  # [E=2, N]
    ell = torch.tensor([[0.8, 1.0, 1.2], [1.0, 0.7, 0.9]], dtype=torch.float64)
    alpha2 = torch.tensor([1.0, 2.0], dtype=torch.float64)
    noise = torch.tensor([1e-2, 2e-2], dtype=torch.float64)
    beta, inv_k = exact_posterior(x, y, ell, alpha2, noise)
    sparse_beta, sparse_inv_k = fitc_posterior(x, x, y, ell, alpha2, noise)
    # Predictive means and variances agree: K_uu^-1 - Q^-1 acts on k_*u as
    # (K + s^2 I)^-1 does.
    probe = torch.rand(5, 3, dtype=torch.float64, generator=rng)
    k = se_kernel(x, probe, ell, alpha2)
    exact_mean = torch.einsum("en,enb->eb", beta, k)
    assert torch.allclose(torch.einsum("en,enb->eb", sparse_beta, k), exact_mean, atol=1e-4)
    exact_var = torch.einsum("enb,enm,emb->eb", k, inv_k, k)
    sparse_var = torch.einsum("enb,enm,emb->eb", k, sparse_inv_k, k)
    assert torch.allclose(sparse_var, exact_var, atol=1e-4)
    model = GPModel(OBS, ACT, device="cpu")
    model.log_lengthscales.data, model.log_signal_var.data = ell.log(), alpha2.log()
    model.log_noise_var.data = (noise - 1e-6).log()
    exact_nll = model.negative_log_likelihood(x, y)
    sparse_nll = fitc_negative_log_likelihood(x, x, y, ell, alpha2, noise)
    assert torch.allclose(sparse_nll, exact_nll, atol=1e-4)


def test_sparse_gps_condition_on_all_the_data():
    """Past max_points, 15 inducing inputs summarise 300 transitions: the fit still
    recovers the system, and moment matching at a point is the sparse posterior mean."""
    model = GPModel(OBS, ACT, device="cpu", max_points=15)
    metrics = model.fit(buffer_of(300))
    assert metrics["points"] == 15 and metrics["data"] == 300
    rng = np.random.default_rng(1)
    s = rng.uniform(-1.5, 1.5, (200, 2))
    a = rng.uniform(-1, 1, (200, 1))
    predicted, _ = model.mean_step(torch.as_tensor(s), torch.as_tensor(a))
    assert np.abs(predicted.numpy() - known_step(s, a)).max() < 0.1
    x = torch.tensor([[0.3, -0.2, 0.5]], dtype=torch.float64)
    point = 1e-12 * torch.eye(3, dtype=torch.float64)[None]
    mean, _, _ = moment_match(model.expansion(), x, point)
    assert torch.allclose(mean, model.predict_delta(x)[0], atol=1e-8)
    _, variance = model.predict_delta(x)
    assert torch.all(variance > 0)


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
    with pytest.raises(ValueError, match="snr_limit"):
        GPModel(OBS, ACT, snr_limit=0.5)
    with pytest.raises(ValueError, match="give both"):
        GPModel(OBS, ACT, snr_limit=None)
    with pytest.raises(ValueError, match="angle_pairs"):
        GPModel(OBS, ACT, angle_pairs=[(0, 2)])
    with pytest.raises(ValueError, match="angle_pairs"):
        GPModel(OBS, ACT, angle_pairs=[0, 1])
    with pytest.raises(RuntimeError, match="fit"):
        GPModel(OBS, ACT, device="cpu").predict_delta(torch.zeros(1, 3))


def test_the_curb_is_flat_inside_its_limits_and_steep_past_them():
    zero = torch.zeros(1)
    inside = hyperparameter_curb(zero.reshape(1, 1), zero, zero - np.log(100.0), zero)
    past_snr = hyperparameter_curb(zero.reshape(1, 1), zero, zero - np.log(2_000.0), zero)
    past_length = hyperparameter_curb(
        torch.full((1, 1), np.log(1_000.0)), zero, zero - np.log(10.0), zero
    )
    by_hand = (np.log(100.0) / np.log(500.0)) ** 30 + (np.log(1.0) / np.log(100.0)) ** 30
    assert float(inside) == pytest.approx(by_hand) and float(inside) < 1e-3
    assert float(past_snr) > 100 and float(past_length) > 100


def test_the_curb_keeps_the_noise_off_its_floor_on_noiseless_data():
    rng = np.random.default_rng(0)
    s = rng.uniform(-2, 2, (80, 2)).astype(np.float32)
    a = rng.uniform(-1, 1, (80, 1)).astype(np.float32)
    buffer = ReplayBuffer(OBS, ACT, 80, device="cpu", n_envs=80)
    buffer.add(s, a, np.zeros(80), known_step(s, a).astype(np.float32), *[np.zeros(80, bool)] * 2)
    ratios = {}
    for limit in (500.0, None):
        model = GPModel(OBS, ACT, device="cpu", snr_limit=limit, lengthscale_limit=limit and 100.0)
        model.fit(buffer)
        _, signal, noise = model.hyperparameters()
        ratios[limit] = (signal / noise).sqrt().detach()
    assert torch.all(ratios[500.0] < 700) and torch.any(ratios[None] > 1_000)


PENDULUM_OBS = spaces.Box(-8.0, 8.0, (3,), np.float32)


def pendulum_buffer(n: int, seed: int = 0) -> ReplayBuffer:
    """(cos, sin, theta_dot) observations of a frictionless pendulum, 0.05 s steps."""
    rng = np.random.default_rng(seed)
    theta, speed = rng.uniform(-np.pi, np.pi, n), rng.uniform(-3, 3, n)
    torque = rng.uniform(-1, 1, n)
    new_speed = speed + 0.05 * (3 * 9.81 / 2 * np.sin(theta) + 3.0 * torque)
    new_theta = theta + 0.05 * new_speed
    obs = lambda t, v: np.stack([np.cos(t), np.sin(t), v], 1).astype(np.float32)  # noqa: E731
    buffer = ReplayBuffer(PENDULUM_OBS, ACT, n, device="cpu", n_envs=n)
    buffer.add(
        obs(theta, speed),
        torque[:, None].astype(np.float32),
        np.zeros(n),
        obs(new_theta, new_speed),
        np.zeros(n, bool),
        np.zeros(n, bool),
    )
    return buffer


def test_angle_pairs_model_the_angle_and_keep_sin_and_cos_on_the_circle():
    model = GPModel(PENDULUM_OBS, ACT, device="cpu", angle_pairs=[(1, 0)])
    assert model.state_dim == 2 and model.rest_dims == [2]
    obs = torch.tensor([[np.cos(3.1), np.sin(3.1), 0.5]], dtype=torch.float64)
    state = model.to_state(obs)
    assert torch.allclose(state, torch.tensor([[0.5, 3.1]], dtype=torch.float64))
    assert torch.allclose(model.to_observation(state), obs)
    across = torch.tensor([[np.cos(-3.1), np.sin(-3.1), 0.5]], dtype=torch.float64)
    change = model.state_change(obs, across)  # 3.1 -> -3.1 is +0.08 rad, not -6.2
    assert change[0, 1].item() == pytest.approx(2 * np.pi - 6.2, abs=1e-9)

    model.fit(pendulum_buffer(200))
    test = pendulum_buffer(50, seed=1).transitions()
    predicted, _ = model.mean_step(test.obs.double(), test.action.double())
    assert torch.allclose(predicted, test.next_obs.double(), atol=0.05)
    stepped = model.step(test.obs, test.action, generator=torch.Generator().manual_seed(0))
    radius = stepped.next_state[:, 0] ** 2 + stepped.next_state[:, 1] ** 2
    assert stepped.next_state.dtype == torch.float32
    assert torch.allclose(radius, torch.ones_like(radius), atol=1e-5)
    restored = GPModel(PENDULUM_OBS, ACT, device="cpu", **model.get_config())
    assert restored.angle_pairs == [(1, 0)]


def test_observation_moments_are_the_trig_augmented_state():
    model = GPModel(PENDULUM_OBS, ACT, device="cpu", angle_pairs=[(1, 0)])
    mean = torch.tensor([[0.4, 2.0]], dtype=torch.float64)  # (theta_dot, theta)
    cov = torch.tensor([[[0.3, 0.05], [0.05, 0.2]]], dtype=torch.float64)
    obs_mean, obs_cov = model.observation_moments(mean, cov)
    gen = torch.Generator().manual_seed(0)
    chol = torch.linalg.cholesky(cov[0])
    z = mean[0] + torch.randn(300_000, 2, generator=gen, dtype=torch.float64) @ chol.T
    obs = model.to_observation(z)
    assert torch.allclose(obs_mean[0], obs.mean(0), atol=5e-3)
    assert torch.allclose(obs_cov[0], torch.cov(obs.T), atol=5e-3)
