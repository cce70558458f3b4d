"""The stochastic latent of a recurrent state-space model: distributions, samples, KL.

Two kinds of latent, both as plain tensors so that whole batches of states move through
one op:

- **categorical** (DreamerV2/V3): ``S`` independent categoricals of ``K`` classes,
  parameterised by logits ``[..., S, K]``; samples are one-hot ``[..., S, K]`` with
  straight-through gradients (Hafner et al. 2021, Algorithm 1), and the logits are mixed
  with 1% uniform so that no class has probability 0 (DreamerV3, Section 3);
- **gaussian** (PlaNet, Dreamer v1): a diagonal normal ``[..., S]`` per latent with a
  floor on its standard deviation (PlaNet, Hafner et al. 2019: 0.1), parameterised by
  ``[..., 2 S]`` (mean, raw std).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mbwrap.softmax import log_softmax, softmax

#: DreamerV3, Section 3: "we parameterize the categorical distributions ... as mixtures
#: of 1% uniform and 99% neural network output".
UNIMIX = 0.01
#: PlaNet's minimum standard deviation of the Gaussian latent.
MIN_STD = 0.1


def unimix_logits(logits: torch.Tensor, unimix: float = UNIMIX) -> torch.Tensor:
    """Logits of ``(1 - unimix) softmax(logits) + unimix / K`` over the last dimension.

    Every class keeps probability at least ``unimix / K``, which bounds the KL terms and
    the log-likelihoods away from infinity.

    :param logits: ``[..., K]``.
    :return: ``[..., K]`` log-probabilities (normalised logits).
    """
    if not 0.0 <= unimix < 1.0:
        raise ValueError(f"unimix: expected a value in [0, 1), got {unimix!r}")
    if unimix == 0.0:
        return log_softmax(logits)
    probs = softmax(logits)
    probs = (1.0 - unimix) * probs + unimix / logits.shape[-1]
    return torch.log(probs)


def sample_one_hot(
    logits: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    normalised: bool = False,
) -> torch.Tensor:
    """One-hot samples of categoricals with straight-through gradients.

    The forward value is the one-hot sample; the gradient is that of the probabilities
    (``sample + probs - probs.detach()``), added only when ``logits`` require one.

    :param logits: ``[..., K]``.
    :param normalised: ``logits`` are log-probabilities already (as :func:`unimix_logits`
        returns), so the probabilities are their ``exp``, one operation instead of a
        softmax's five.
    :return: ``[..., K]`` one-hot, the dtype of ``logits``.
    """
    probs = logits.exp() if normalised else softmax(logits)
    # Inverse-CDF sampling: one uniform per categorical, compared against the cumulative
    # probabilities (several times cheaper than torch.multinomial on many small rows).
    cdf = probs.detach().cumsum(-1)
    u = torch.rand(
        (*probs.shape[:-1], 1), device=probs.device, dtype=probs.dtype, generator=generator
    )
    index = (cdf < u * cdf[..., -1:]).sum(-1, keepdim=True).clamp(max=probs.shape[-1] - 1)
    one_hot = torch.zeros_like(probs).scatter_(-1, index, 1.0)
    if not probs.requires_grad:
        return one_hot
    return one_hot + probs - probs.detach()


def mode_one_hot(logits: torch.Tensor) -> torch.Tensor:
    """The most likely class of each categorical as a one-hot ``[..., K]``."""
    return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)


def categorical_kl(lhs: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``KL(lhs || rhs)`` of ``S`` independent categoricals, summed over them.

    :param lhs: ``[..., S, K]`` log-probabilities.
    :param rhs: ``[..., S, K]`` log-probabilities.
    :return: ``[...]`` nats.
    """
    return (lhs.exp() * (lhs - rhs)).sum((-2, -1))


def gaussian_stats(params: torch.Tensor, min_std: float = MIN_STD) -> torch.Tensor:
    """``[..., 2 S]`` raw outputs -> ``[..., 2 S]`` (mean, std) with ``std >= min_std``."""
    mean, raw = params.chunk(2, -1)
    return torch.cat([mean, F.softplus(raw) + min_std], -1)


def sample_gaussian(stats: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A reparameterised sample ``mean + std * eps`` of ``[..., 2 S]`` (mean, std) stats."""
    mean, std = stats.chunk(2, -1)
    noise = torch.randn(mean.shape, device=mean.device, dtype=mean.dtype, generator=generator)
    return mean + std * noise


def gaussian_kl(lhs: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``KL(lhs || rhs)`` of diagonal normals given as ``[..., 2 S]`` (mean, std), summed."""
    mean1, std1 = lhs.chunk(2, -1)
    mean2, std2 = rhs.chunk(2, -1)
    ratio = (std1 / std2) ** 2
    return 0.5 * (ratio + ((mean1 - mean2) / std2) ** 2 - 1.0 - torch.log(ratio)).sum(-1)


def balanced_kl(
    posterior: torch.Tensor,
    prior: torch.Tensor,
    *,
    kind: str,
    dynamics_scale: float = 0.5,
    representation_scale: float = 0.1,
    free_nats: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DreamerV3's KL balancing with free bits (Section 3, eq. 5).

    ``dynamics_scale * max(free, KL(sg(post) || prior)) +
    representation_scale * max(free, KL(post || sg(prior)))``: the prior is pulled
    towards the posterior five times harder than the other way round, and neither term
    is minimised below ``free_nats``, where its gradient stops.

    :param posterior: ``[...]`` + distribution parameters (log-probabilities
        ``[S, K]`` for ``kind="categorical"``, ``[2 S]`` (mean, std) for ``"gaussian"``).
    :param prior: the same shape.
    :param kind: ``"categorical"`` or ``"gaussian"``.
    :return: ``(loss [...], {"kl": raw KL [...], "dyn": ..., "rep": ...})``.
    """
    kl = categorical_kl if kind == "categorical" else gaussian_kl
    if kind not in ("categorical", "gaussian"):
        raise ValueError(f"kind: expected 'categorical' or 'gaussian', got {kind!r}")
    dyn = kl(posterior.detach(), prior)
    rep = kl(posterior, prior.detach())
    loss = dynamics_scale * dyn.clamp(min=free_nats) + representation_scale * rep.clamp(
        min=free_nats
    )
    return loss, {"kl": dyn.detach(), "dyn": dyn, "rep": rep}
