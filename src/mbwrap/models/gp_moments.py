"""Exact moments of Gaussian-process predictions at Gaussian inputs (moment matching), as
pure batched functions: what PILCO propagates state distributions with (Deisenroth &
Rasmussen 2011, Section 2.2; Deisenroth 2010, "Efficient Reinforcement Learning using
Gaussian Processes", Sections 2.3.2-2.3.3).

The functions here are of ``E`` independent GPs (or RBF networks) on ``D`` inputs, each
with a squared-exponential kernel ``k_a(x, x') = alpha_a^2 exp(-1/2 (x - x')^T Lambda_a^-1
(x - x'))``, ``Lambda_a = diag(lengthscales_a^2)``, whose posterior mean is ``m_a(x) =
sum_i beta_ai k_a(x_i, x)``. For an input ``x ~ N(mean, cov)`` they return the mean and
covariance of ``f(x)`` (marginalising both ``x`` and, for GPs, the posterior over ``f``) and
the covariance between ``x`` and ``f(x)``. All are differentiable, so a controller's
parameters can be optimised through them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class KernelExpansion:
    """``E`` functions ``m_a(x) = sum_i beta_ai k_a(x_i, x)`` over ``n`` points.

    :ivar points: ``[n, D]``, the training (or basis) inputs ``x_i``.
    :ivar beta: ``[E, n]``, the weights (a GP's ``(K_a + sigma_a^2 I)^-1 y_a``).
    :ivar lengthscales: ``[E, D]``.
    :ivar signal_var: ``[E]``, ``alpha_a^2``.
    :ivar inv_k: ``[E, n, n]``, ``(K_a + sigma_a^2 I)^-1`` for a GP, whose posterior
        variance then adds to the output's; ``None`` for a deterministic RBF network.
    """

    points: torch.Tensor
    beta: torch.Tensor
    lengthscales: torch.Tensor
    signal_var: torch.Tensor
    inv_k: torch.Tensor | None = None


def se_kernel(
    x1: torch.Tensor, x2: torch.Tensor, lengthscales: torch.Tensor, signal_var: torch.Tensor
) -> torch.Tensor:
    """The squared-exponential ARD kernels ``k_a(x1_i, x2_j)``: ``[E, n, m]`` from
    ``x1: [n, D]``, ``x2: [m, D]``, ``lengthscales: [E, D]``, ``signal_var: [E]``."""
    a = x1.unsqueeze(0) / lengthscales.unsqueeze(1)  # [E, n, D]
    b = x2.unsqueeze(0) / lengthscales.unsqueeze(1)  # [E, m, D]
    sq = (a * a).sum(-1).unsqueeze(2) + (b * b).sum(-1).unsqueeze(1) - 2 * a @ b.transpose(1, 2)
    return signal_var[:, None, None] * torch.exp(-0.5 * sq.clamp(min=0.0))


def expansion_mean(expansion: KernelExpansion, x: torch.Tensor) -> torch.Tensor:
    """``m_a(x)`` at points: ``[B, E]`` from ``x: [B, D]``."""
    k = se_kernel(expansion.points, x, expansion.lengthscales, expansion.signal_var)
    return torch.einsum("en,enb->be", expansion.beta, k)


def moment_match(
    expansion: KernelExpansion, mean: torch.Tensor, cov: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, covariance and input-output covariance of ``f(x)`` for ``x ~ N(mean, cov)``.

    :param mean: ``[B, D]``, one Gaussian input per row.
    :param cov: ``[B, D, D]``.
    :return: ``(out_mean [B, E], out_cov [B, E, E], input_output [B, D, E])``:
        ``E[f(x)]``, ``Cov[f(x)]`` and ``Cov[x, f(x)]``. For a GP (``inv_k`` given),
        ``out_cov`` includes the posterior variance of ``f`` (not the noise).
    """
    points, beta = expansion.points, expansion.beta
    ell, alpha2 = expansion.lengthscales, expansion.signal_var
    dim = points.shape[1]
    eye = torch.eye(dim, dtype=mean.dtype, device=mean.device)
    nu = points.unsqueeze(0) - mean.unsqueeze(1)  # [B, n, D]
    inv_ell = 1.0 / ell  # [E, D]
    # Deisenroth (2010), eqs. 2.66-2.68: q_ai = alpha_a^2 |S Lambda_a^-1 + I|^-1/2
    # exp(-1/2 nu_i^T (S + Lambda_a)^-1 nu_i), in coordinates scaled by Lambda_a^-1/2.
    scaled = nu.unsqueeze(1) * inv_ell[None, :, None, :]  # [B, E, n, D]
    b_mat = inv_ell[None, :, :, None] * cov.unsqueeze(1) * inv_ell[None, :, None, :] + eye
    solved = torch.linalg.solve(b_mat, scaled.transpose(-1, -2)).transpose(-1, -2)
    weights = torch.exp(-0.5 * (scaled * solved).sum(-1)) * beta.unsqueeze(0)  # [B, E, n]
    scale = alpha2.unsqueeze(0) / torch.sqrt(torch.linalg.det(b_mat))  # [B, E]
    out_mean = scale * weights.sum(-1)
    # Eq. 2.70: Cov[x, f_a] = S (S + Lambda_a)^-1 sum_i beta_ai q_ai nu_i.
    v = scale.unsqueeze(-1) * torch.einsum("ben,bend->bed", weights, solved) * inv_ell
    input_output = cov @ v.transpose(1, 2)  # [B, D, E]

    # Eqs. 2.53-2.55: E[m_a(x) m_b(x)] = beta_a^T Q_ab beta_b with
    # Q_ab,ij = k_a(x_i, mu) k_b(x_j, mu) |R|^-1/2 exp(1/2 z^T R^-1 S z),
    # R = S (Lambda_a^-1 + Lambda_b^-1) + I, z = Lambda_a^-1 nu_i + Lambda_b^-1 nu_j.
    log_k = torch.log(alpha2)[None, :, None] - 0.5 * (scaled * scaled).sum(-1)  # [B, E, n]
    inv_lambda = inv_ell * inv_ell  # [E, D]
    z = nu.unsqueeze(1) * inv_lambda[None, :, None, :]  # [B, E, n, D]
    pair = inv_lambda.unsqueeze(1) + inv_lambda.unsqueeze(0)  # [E, E, D]
    r_mat = cov[:, None, None] * pair[None, :, :, None, :] + eye  # [B, E, E, D, D]
    half = torch.linalg.solve(r_mat, cov[:, None, None].expand_as(r_mat)) / 2  # R^-1 S / 2
    za = torch.einsum("baid,bacde->bacie", z, half)  # [B, E, E, n, D]
    quad = (
        (za * z.unsqueeze(2)).sum(-1).unsqueeze(-1)
        + torch.einsum("bacje,bcje->bacj", _swap(half, z), z).unsqueeze(-2)
        + 2 * za @ z.unsqueeze(1).transpose(-1, -2)
    )  # [B, E, E, n, n]
    big_q = torch.exp(log_k[:, :, None, :, None] + log_k[:, None, :, None, :] + quad)
    big_q = big_q / torch.sqrt(torch.linalg.det(r_mat))[..., None, None]
    second = torch.einsum("ai,bacij,cj->bac", beta, big_q, beta)
    out_cov = second - out_mean.unsqueeze(2) * out_mean.unsqueeze(1)
    if expansion.inv_k is not None:
        # Eq. 2.56: the GP's expected posterior variance, alpha_a^2 - tr((K_a + s^2 I)^-1 Q_aa).
        own = torch.diagonal(big_q, dim1=1, dim2=2).permute(0, 3, 1, 2)  # [B, E, n, n]
        trace = (expansion.inv_k.unsqueeze(0) * own).sum((-1, -2))
        out_cov = out_cov + torch.diag_embed(alpha2.unsqueeze(0) - trace)
    out_cov = (out_cov + out_cov.transpose(1, 2)) / 2
    return out_mean, out_cov, input_output


def _swap(half: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``z_c (R_ac^-1 S / 2)`` for every pair: ``[B, E, E, n, D]``."""
    return torch.einsum("bcjd,bacde->bacje", z, half)


def trig_augment(
    mean: torch.Tensor, cov: torch.Tensor, angles: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact mean and covariance of ``y = (z, sin z_angles, cos z_angles)`` for ``z ~
    N(mean, cov)``: how PILCO feeds an angle to its GPs and controller, which see its sine
    and cosine, while the state distribution keeps the angle itself (Deisenroth 2010,
    Appendix A.1, "trigonometric functions of Gaussians").

    ``E[sin a] = exp(-v/2) sin m``; second moments from ``sin a sin b = (cos(a - b) -
    cos(a + b)) / 2`` and its kin, ``a +- b`` Gaussian; and ``Cov[z, sin a] = Cov[z, a]
    E[cos a]``, ``Cov[z, cos a] = -Cov[z, a] E[sin a]`` (Stein's lemma).

    :param mean: ``[B, D]``; :param cov: ``[B, D, D]``.
    :param angles: ``[k]`` long, the dimensions of ``z`` that are angles.
    :return: ``(mean [B, D + 2k], cov [B, D + 2k, D + 2k])``, sines then cosines.
    """
    if angles.numel() == 0:
        return mean, cov
    m = mean[:, angles]  # [B, k]
    cross = cov[:, :, angles]  # Cov[z, angles], [B, D, k]
    s = cross[:, angles]  # [B, k, k]
    var = torch.diagonal(s, dim1=-2, dim2=-1)
    damp = torch.exp(-var / 2)
    e_sin, e_cos = damp * torch.sin(m), damp * torch.cos(m)
    vi, vj = var.unsqueeze(2), var.unsqueeze(1)
    mi, mj = m.unsqueeze(2), m.unsqueeze(1)
    minus_damp = torch.exp(-(vi + vj - 2 * s) / 2)  # of a_i - a_j
    plus_damp = torch.exp(-(vi + vj + 2 * s) / 2)  # of a_i + a_j
    cos_minus, cos_plus = minus_damp * torch.cos(mi - mj), plus_damp * torch.cos(mi + mj)
    sin_minus, sin_plus = minus_damp * torch.sin(mi - mj), plus_damp * torch.sin(mi + mj)
    outer = lambda a, b: a.unsqueeze(2) * b.unsqueeze(1)  # noqa: E731
    ss = (cos_minus - cos_plus) / 2 - outer(e_sin, e_sin)
    cc = (cos_minus + cos_plus) / 2 - outer(e_cos, e_cos)
    sc = (sin_plus + sin_minus) / 2 - outer(e_sin, e_cos)  # Cov[sin a_i, cos a_j]
    z_sin = cross * e_cos.unsqueeze(1)
    z_cos = -cross * e_sin.unsqueeze(1)
    top = torch.cat([cov, z_sin, z_cos], -1)
    middle = torch.cat([z_sin.transpose(1, 2), ss, sc], -1)
    bottom = torch.cat([z_cos.transpose(1, 2), sc.transpose(1, 2), cc], -1)
    return torch.cat([mean, e_sin, e_cos], -1), torch.cat([top, middle, bottom], -2)


def with_inactive_inputs(expansion: KernelExpansion, at: int, count: int) -> KernelExpansion:
    """``expansion`` on ``count`` more inputs, inserted before input ``at``, that it does
    not depend on (points 0, infinite lengthscales: ``1 / lengthscale`` is exactly 0 in
    :func:`moment_match`). Moment matching on the wider input then also gives the
    covariance of those inputs with the output: how PILCO's angles, seen by the functions
    only through their sines and cosines, still covary with what the functions return."""
    if count == 0:
        return expansion
    points, ell = expansion.points, expansion.lengthscales
    zeros = points.new_zeros(points.shape[0], count)
    infinite = ell.new_full((ell.shape[0], count), float("inf"))
    return KernelExpansion(
        torch.cat([points[:, :at], zeros, points[:, at:]], 1),
        expansion.beta,
        torch.cat([ell[:, :at], infinite, ell[:, at:]], 1),
        expansion.signal_var,
        expansion.inv_k,
    )
