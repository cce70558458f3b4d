"""Losses of the neural world models, as pure functions on tensors.

Every function works on any leading batch shape ``[...]`` (e.g. ``[E, B]`` for an
ensemble of ``E`` members on a batch of ``B``) and reduces only the last, feature axis.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_nll(
    mean: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor, *, reduce: str = "mean"
) -> torch.Tensor:
    """Negative log-likelihood of ``target`` under diagonal Gaussians, per sample.

    Per feature ``d``: ``0.5 * ((target_d - mean_d)^2 * exp(-logvar_d) + logvar_d + log 2π)``,
    the exact NLL (constant included), then averaged (``reduce="mean"``, the per-dimension
    form PETS and MBPO train with) or summed (``"sum"``, the NLL of the whole vector) over
    the features.

    :param mean: ``[..., D]``.
    :param logvar: ``[..., D]``, the log-variance of each feature.
    :param target: ``[..., D]``.
    :return: ``[...]``.
    """
    per_dim = 0.5 * ((target - mean).square() * torch.exp(-logvar) + logvar + _LOG_2PI)
    return _reduce(per_dim, reduce)


def soft_clamp_logvar(
    logvar: torch.Tensor,
    max_logvar: torch.Tensor | float,
    min_logvar: torch.Tensor | float,
) -> torch.Tensor:
    """Bound a log-variance smoothly between ``min_logvar`` and ``max_logvar``.

    ``max - softplus(max - x)``, then ``min + softplus(x - min)``, as the code of PETS
    (Chua et al. 2018) and MBPO (Janner et al. 2019) bounds it. Unlike a hard clamp, the
    gradient never vanishes, so learnable bounds keep receiving one.

    :param logvar: ``[..., D]``.
    :param max_logvar: broadcastable to ``[..., D]`` (e.g. ``[D]``, or a float).
    :param min_logvar: likewise.
    :return: ``[..., D]``.
    """
    logvar = max_logvar - F.softplus(max_logvar - logvar)
    return min_logvar + F.softplus(logvar - min_logvar)


def mixture_nll(
    logits: torch.Tensor,
    means: torch.Tensor,
    logvars: torch.Tensor,
    target: torch.Tensor,
) -> torch.Tensor:
    """Negative log-likelihood of ``target`` under a mixture of diagonal Gaussians.

    ``-log sum_k pi_k N(target; mean_k, diag(exp(logvar_k)))`` with
    ``pi = softmax(logits)``, computed with ``logsumexp`` for stability (Bishop 1994,
    "Mixture Density Networks", eq. 29). The likelihood is of the whole vector (the
    features' log-densities are summed within a component).

    :param logits: ``[..., K]`` unnormalised mixture weights.
    :param means: ``[..., K, D]``.
    :param logvars: ``[..., K, D]``.
    :param target: ``[..., D]``.
    :return: ``[...]``.
    """
    log_weights = torch.log_softmax(logits, dim=-1)
    component_nll = gaussian_nll(means, logvars, target.unsqueeze(-2), reduce="sum")  # [..., K]
    return -torch.logsumexp(log_weights - component_nll, dim=-1)


def mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample: ``[..., D], [..., D] -> [...]``."""
    return (prediction - target).square().mean(-1)


def _reduce(x: torch.Tensor, reduce: str) -> torch.Tensor:
    if reduce == "mean":
        return x.mean(-1)
    if reduce == "sum":
        return x.sum(-1)
    raise ValueError(f"reduce: expected 'mean' or 'sum', got {reduce!r}")
