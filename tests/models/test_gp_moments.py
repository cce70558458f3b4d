"""Moment matching of GP predictions at Gaussian inputs, against Monte Carlo on a known GP
and against the closed forms of degenerate cases."""

from __future__ import annotations

import torch

from mbwrap.models.gp_moments import KernelExpansion, expansion_mean, moment_match, se_kernel


def known_gp(seed: int = 0, n: int = 12, dim: int = 3, outputs: int = 2) -> KernelExpansion:
    gen = torch.Generator().manual_seed(seed)
    points = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    targets = torch.randn(outputs, n, generator=gen, dtype=torch.float64)
    ell = 0.7 + torch.rand(outputs, dim, generator=gen, dtype=torch.float64)
    alpha2 = torch.tensor([1.5, 0.6], dtype=torch.float64)[:outputs]
    noise = 0.05
    k = se_kernel(points, points, ell, alpha2) + noise * torch.eye(n, dtype=torch.float64)
    inv_k = torch.linalg.inv(k)
    beta = torch.einsum("enm,em->en", inv_k, targets)
    return KernelExpansion(points, beta, ell, alpha2, inv_k)


def monte_carlo(gp: KernelExpansion, mean, cov, samples: int = 400_000, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    chol = torch.linalg.cholesky(cov)
    x = mean + torch.randn(samples, mean.shape[0], generator=gen, dtype=mean.dtype) @ chol.T
    f = expansion_mean(gp, x)  # [S, E]
    k = se_kernel(gp.points, x, gp.lengthscales, gp.signal_var)  # [E, n, S]
    variance = gp.signal_var[:, None] - torch.einsum("ens,enm,ems->es", k, gp.inv_k, k)
    centred_f, centred_x = f - f.mean(0), x - x.mean(0)
    out_cov = centred_f.T @ centred_f / samples + torch.diag(variance.mean(1))
    return f.mean(0), out_cov, centred_x.T @ centred_f / samples


def test_se_kernel_by_hand():
    ell = torch.tensor([[1.0, 2.0]])
    k = se_kernel(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 2.0]]), ell, torch.tensor([3.0]))
    assert torch.allclose(k, torch.tensor([[[3.0 * torch.exp(torch.tensor(-1.0))]]]))


def test_moments_match_monte_carlo_on_a_known_gp():
    gp = known_gp()
    mean = torch.tensor([0.2, -0.3, 0.5], dtype=torch.float64)
    a = torch.tensor([[0.5, 0.1, 0.0], [0.1, 0.4, 0.1], [0.0, 0.1, 0.3]], dtype=torch.float64)
    cov = a @ a.T + 0.05 * torch.eye(3, dtype=torch.float64)
    out_mean, out_cov, io = moment_match(gp, mean[None], cov[None])
    mc_mean, mc_cov, mc_io = monte_carlo(gp, mean, cov)
    assert torch.allclose(out_mean[0], mc_mean, atol=5e-3)
    assert torch.allclose(out_cov[0], mc_cov, atol=5e-3)
    assert torch.allclose(io[0], mc_io, atol=5e-3)
    assert torch.allclose(out_cov[0], out_cov[0].T)


def test_a_point_input_gives_the_gp_posterior():
    gp = known_gp(seed=3)
    x = torch.tensor([[0.1, 0.2, -0.4]], dtype=torch.float64)
    out_mean, out_cov, io = moment_match(gp, x, 1e-12 * torch.eye(3, dtype=torch.float64)[None])
    k = se_kernel(gp.points, x, gp.lengthscales, gp.signal_var)[:, :, 0]  # [E, n]
    variance = gp.signal_var - torch.einsum("en,enm,em->e", k, gp.inv_k, k)
    assert torch.allclose(out_mean[0], expansion_mean(gp, x)[0], atol=1e-8)
    assert torch.allclose(out_cov[0], torch.diag(variance), atol=1e-6)
    assert torch.allclose(io, torch.zeros_like(io), atol=1e-8)


def test_a_batch_of_inputs_is_each_input_alone():
    gp = known_gp(seed=4)
    means = torch.randn(3, 3, dtype=torch.float64)
    covs = torch.stack([torch.eye(3, dtype=torch.float64) * s for s in (0.1, 0.3, 0.6)])
    batched = moment_match(gp, means, covs)
    for i in range(3):
        alone = moment_match(gp, means[i : i + 1], covs[i : i + 1])
        for b, a in zip(batched, alone, strict=True):
            assert torch.allclose(b[i], a[0])


def test_a_deterministic_rbf_network_has_no_posterior_variance():
    gp = known_gp(seed=5)
    rbf = KernelExpansion(gp.points, gp.beta, gp.lengthscales, gp.signal_var)
    mean = torch.zeros(1, 3, dtype=torch.float64)
    cov = 0.2 * torch.eye(3, dtype=torch.float64)[None]
    _, rbf_cov, _ = moment_match(rbf, mean, cov)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(400_000, 3, generator=gen, dtype=torch.float64) * 0.2**0.5
    f = expansion_mean(rbf, x)
    assert torch.allclose(rbf_cov[0], torch.cov(f.T), atol=3e-3)


def test_gradients_flow_to_the_input_distribution_and_the_weights():
    gp = known_gp(seed=6)
    beta = gp.beta.clone().requires_grad_(True)
    mean = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    rbf = KernelExpansion(gp.points, beta, gp.lengthscales, gp.signal_var, gp.inv_k)
    out_mean, out_cov, _ = moment_match(rbf, mean, 0.1 * torch.eye(3, dtype=torch.float64)[None])
    (out_mean.sum() + out_cov.sum()).backward()
    assert beta.grad is not None and mean.grad is not None
    assert torch.all(torch.isfinite(beta.grad)) and mean.grad.abs().sum() > 0


def test_trig_augment_matches_monte_carlo():
    from mbwrap.models.gp_moments import trig_augment

    mean = torch.tensor([0.3, 2.5, -0.7], dtype=torch.float64)
    a = torch.tensor([[0.4, 0.2, 0.1], [0.0, 0.6, 0.2], [0.1, 0.0, 0.5]], dtype=torch.float64)
    cov = a @ a.T
    angles = torch.tensor([1, 2])
    out_mean, out_cov = trig_augment(mean[None], cov[None], angles)
    gen = torch.Generator().manual_seed(0)
    z = mean + torch.randn(400_000, 3, generator=gen, dtype=torch.float64) @ a.T
    y = torch.cat([z, torch.sin(z[:, angles]), torch.cos(z[:, angles])], 1)
    assert out_mean.shape == (1, 7) and out_cov.shape == (1, 7, 7)
    assert torch.allclose(out_mean[0], y.mean(0), atol=5e-3)
    assert torch.allclose(out_cov[0], torch.cov(y.T), atol=5e-3)
    same_mean, same_cov = trig_augment(mean[None], cov[None], torch.tensor([], dtype=torch.long))
    assert torch.equal(same_mean, mean[None]) and torch.equal(same_cov, cov[None])


def test_inactive_inputs_change_nothing_but_covary_with_the_output():
    from mbwrap.models.gp_moments import with_inactive_inputs

    gp = known_gp(seed=2)
    wide = with_inactive_inputs(gp, 1, 1)  # inputs (x0, ignored, x1, x2)
    mean = torch.tensor([0.2, 1.0, -0.3, 0.5], dtype=torch.float64)
    a = torch.tensor(
        [[0.5, 0.0, 0.1, 0.0], [0.3, 0.4, 0.0, 0.1], [0.1, 0.2, 0.4, 0.1], [0.0, 0.1, 0.1, 0.3]],
        dtype=torch.float64,
    )
    cov = a @ a.T
    keep = torch.tensor([0, 2, 3])
    out_mean, out_cov, io = moment_match(wide, mean[None], cov[None])
    narrow = moment_match(gp, mean[keep][None], cov[keep][:, keep][None])
    assert torch.allclose(out_mean, narrow[0]) and torch.allclose(out_cov, narrow[1])
    assert torch.allclose(io[:, keep], narrow[2])
    _, _, mc_io = monte_carlo(wide, mean, cov)
    assert torch.allclose(io[0, 1], mc_io[1], atol=5e-3) and io[0, 1].abs().max() > 0.01
