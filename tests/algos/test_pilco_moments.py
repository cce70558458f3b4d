"""PILCO's propagation pieces against Monte Carlo: the sine squashing, the expected
saturating cost, and one full step through a controller and a known GP."""

from __future__ import annotations

import torch

from mbwrap.algos.pilco_moments import (
    expected_saturating_cost,
    propagate,
    sin_squash_moments,
    state_action,
)
from mbwrap.models.gp_moments import KernelExpansion, expansion_mean, se_kernel

F64 = torch.float64


def gaussian(mean: torch.Tensor, cov: torch.Tensor, n: int = 400_000, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    chol = torch.linalg.cholesky(cov)
    return mean + torch.randn(n, mean.shape[0], generator=gen, dtype=F64) @ chol.T


def test_sin_squash_moments_match_monte_carlo():
    mean = torch.tensor([0.4, -1.2], dtype=F64)
    cov = torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=F64)
    scale = torch.tensor([2.0, 10.0], dtype=F64)
    out_mean, out_cov, gain = sin_squash_moments(mean[None], cov[None], scale)
    u = gaussian(mean, cov)
    y = scale * torch.sin(u)
    assert torch.allclose(out_mean[0], y.mean(0), atol=0.02)
    assert torch.allclose(out_cov[0], torch.cov(y.T), atol=0.1, rtol=0.01)
    # Cov[u, y] = Cov[u, u] * gain (Stein's lemma).
    centred = torch.cat([u - u.mean(0), y - y.mean(0)], 1)
    joint = centred.T @ centred / len(u)
    assert torch.allclose(joint[:2, 2:], cov * gain[0], atol=0.02)


def test_expected_saturating_cost_matches_monte_carlo_and_zero_at_the_target():
    mean = torch.tensor([0.3, -0.2, 0.1], dtype=F64)
    cov = torch.diag(torch.tensor([0.2, 0.1, 0.3], dtype=F64))
    f = torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.0, 1.0]], dtype=F64)
    weight = f.T @ f / 0.5**2
    target = torch.tensor([0.1, 0.0, -0.2], dtype=F64)
    x = gaussian(mean, cov)
    gap = x - target
    mc = (1 - torch.exp(-0.5 * ((gap @ weight) * gap).sum(1))).mean()
    cost = expected_saturating_cost(mean[None], cov[None], target, weight)
    assert torch.allclose(cost[0], mc, atol=2e-3)
    at_target = expected_saturating_cost(
        target[None], torch.zeros(1, 3, 3, dtype=F64), target, weight
    )
    assert at_target.abs().item() < 1e-12


def test_one_propagation_step_matches_monte_carlo():
    gen = torch.Generator().manual_seed(3)
    # A known GP on (x [2], u [1]) -> Delta [2], and an RBF controller on x.
    points = torch.randn(15, 3, generator=gen, dtype=F64)
    ell = torch.full((2, 3), 1.2, dtype=F64)
    alpha2 = torch.tensor([0.4, 0.3], dtype=F64)
    k = se_kernel(points, points, ell, alpha2) + 0.01 * torch.eye(15, dtype=F64)
    inv_k = torch.linalg.inv(k)
    beta = torch.einsum("enm,em->en", inv_k, torch.randn(2, 15, generator=gen, dtype=F64))
    dynamics = KernelExpansion(points, beta, ell, alpha2, inv_k)
    centers = torch.randn(5, 2, generator=gen, dtype=F64)
    controller = KernelExpansion(
        centers,
        torch.randn(1, 5, generator=gen, dtype=F64),
        torch.full((1, 2), 0.8, dtype=F64),
        torch.ones(1, dtype=F64),
    )
    scale = torch.tensor([1.5], dtype=F64)
    noise = torch.tensor([1e-3, 2e-3], dtype=F64)
    mean = torch.tensor([0.1, -0.3], dtype=F64)
    cov = torch.tensor([[0.2, 0.05], [0.05, 0.1]], dtype=F64)
    next_mean, next_cov = propagate(dynamics, noise, controller, scale, mean[None], cov[None])

    # The joint of state and action: exact moments of the true (non-Gaussian) joint.
    x = gaussian(mean, cov, n=300_000)
    u = scale * torch.sin(expansion_mean(controller, x))
    joint_mean, joint_cov = state_action(controller, scale, mean[None], cov[None])
    z = torch.cat([x, u], 1)
    assert torch.allclose(joint_mean[0], z.mean(0), atol=5e-3)
    assert torch.allclose(joint_cov[0], torch.cov(z.T), atol=5e-3)

    # The GP step is exact for a Gaussian joint: sample that Gaussian.
    z = gaussian(joint_mean[0], joint_cov[0], n=300_000, seed=1)
    kz = se_kernel(points, z, ell, alpha2)
    variance = alpha2[:, None] - torch.einsum("enb,enm,emb->eb", kz, inv_k, kz)
    nxt = z[:, :2] + expansion_mean(dynamics, z)
    mc_cov = torch.cov(nxt.T) + torch.diag(variance.mean(1)) + torch.diag(noise)
    assert torch.allclose(next_mean[0], nxt.mean(0), atol=5e-3)
    assert torch.allclose(next_cov[0], mc_cov, atol=5e-3)


def test_a_propagation_step_with_an_angle_matches_monte_carlo():
    """The state (x, angle); the controller and the GPs see (x, sin, cos); the GPs give
    the change of (x, angle)."""
    from mbwrap.models.gp import StateLayout
    from mbwrap.models.gp_moments import trig_augment, with_inactive_inputs

    gen = torch.Generator().manual_seed(5)
    points = torch.randn(15, 4, generator=gen, dtype=F64)  # (x, sin, cos, u)
    ell = torch.full((2, 4), 1.1, dtype=F64)
    alpha2 = torch.tensor([0.3, 0.2], dtype=F64)
    k = se_kernel(points, points, ell, alpha2) + 0.01 * torch.eye(15, dtype=F64)
    inv_k = torch.linalg.inv(k)
    beta = torch.einsum("enm,em->en", inv_k, torch.randn(2, 15, generator=gen, dtype=F64))
    dynamics = KernelExpansion(points, beta, ell, alpha2, inv_k)
    controller = KernelExpansion(
        torch.randn(5, 3, generator=gen, dtype=F64),
        torch.randn(1, 5, generator=gen, dtype=F64),
        torch.full((1, 3), 0.9, dtype=F64),
        torch.ones(1, dtype=F64),
    )
    scale, noise = torch.tensor([1.5], dtype=F64), torch.tensor([1e-3, 2e-3], dtype=F64)
    # y = (x, angle, sin, cos); inputs = (x, sin, cos, angle); the state sits at 0 and 3.
    layout = StateLayout(torch.tensor([1]), torch.tensor([0, 2, 3, 1]), torch.tensor([0, 3]))
    mean = torch.tensor([0.1, 2.8], dtype=F64)
    cov = torch.tensor([[0.05, 0.02], [0.02, 0.08]], dtype=F64)
    next_mean, next_cov = propagate(
        dynamics, noise, controller, scale, mean[None], cov[None], layout=layout
    )
    # Exact up to the Gaussian approximation of (x, sin, cos, angle, u): sample that joint.
    y_mean, y_cov = trig_augment(mean[None], cov[None], layout.angles)
    inputs_mean, inputs_cov = y_mean[:, layout.inputs], y_cov[:, layout.inputs][:, :, layout.inputs]
    joint_mean, joint_cov = state_action(
        with_inactive_inputs(controller, 3, 1), scale, inputs_mean, inputs_cov
    )
    z = gaussian(joint_mean[0], joint_cov[0], n=300_000, seed=2)
    seen = z[:, [0, 1, 2, 4]]  # what the GPs see: (x, sin, cos, u)
    ks = se_kernel(points, seen, ell, alpha2)
    variance = alpha2[:, None] - torch.einsum("enb,enm,emb->eb", ks, inv_k, ks)
    nxt = z[:, [0, 3]] + expansion_mean(dynamics, seen)
    mc_cov = torch.cov(nxt.T) + torch.diag(variance.mean(1)) + torch.diag(noise)
    assert torch.allclose(next_mean[0], nxt.mean(0), atol=5e-3)
    assert torch.allclose(next_cov[0], mc_cov, atol=5e-3)
