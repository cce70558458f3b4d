"""A Gaussian mixture fitted by expectation-maximisation, batched over points, in float64:
the prior over ``(x, u, x')`` that guided policy search fits its local dynamics under
(Levine & Abbeel 2014, Section 3)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: Added to every covariance after each M-step, so that clusters stay positive definite
#: however few points they hold (the GPS code's ``1e-6 * eye``, ``gps/utility/gmm.py``).
COVARIANCE_REGULARISATION = 1e-6
#: EM stops once the mean log likelihood per point improves by less than this many nats.
TOLERANCE = 1e-6


def gaussian_log_densities(
    data: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor
) -> torch.Tensor:
    """``log N(data | means[k], covariances[k])`` of every point under every component.

    :param data: ``[..., D]``.
    :param means: ``[K, D]``.
    :param covariances: ``[K, D, D]`` positive definite.
    :return: ``[..., K]``.
    """
    batch, dim = data.shape[:-1], data.shape[-1]
    points = data.reshape(-1, dim)
    chol = torch.linalg.cholesky(covariances)  # [K, D, D]
    diff = (points.unsqueeze(0) - means.unsqueeze(1)).transpose(-1, -2)  # [K, D, N]
    white = torch.linalg.solve_triangular(chol, diff, upper=False)
    mahalanobis = white.pow(2).sum(-2)  # [K, N]
    log_det = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # [K]
    log_density = -0.5 * (dim * math.log(2 * math.pi) + log_det.unsqueeze(-1) + mahalanobis)
    return log_density.T.reshape(*batch, -1)


def kmeans_plus_plus(
    data: torch.Tensor, clusters: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Indices of ``clusters`` rows of ``data: [N, D]`` drawn by k-means++ seeding (Arthur
    & Vassilvitskii 2007): the first uniformly, each next with probability proportional to
    its squared distance from the nearest row already drawn. Returns ``[clusters]`` int64.
    """
    n = data.shape[0]
    chosen = torch.empty(clusters, dtype=torch.long, device=data.device)
    chosen[0] = torch.randint(n, (1,), generator=generator, device=data.device)[0]
    distance = (data - data[chosen[0]]).pow(2).sum(-1)
    for i in range(1, clusters):
        # Fewer distinct rows than clusters leaves no distance: draw uniformly then.
        weights = distance if bool(distance.sum() > 0) else torch.ones_like(distance)
        chosen[i] = torch.multinomial(weights, 1, generator=generator)[0]
        distance = torch.minimum(distance, (data - data[chosen[i]]).pow(2).sum(-1))
    return chosen


def maximisation(
    data: torch.Tensor,
    responsibilities: torch.Tensor,
    *,
    regularisation: float = COVARIANCE_REGULARISATION,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EM's M-step: the mixture that maximises the expected log likelihood.

    :param data: ``[N, D]``.
    :param responsibilities: ``[N, K]``, rows summing to one.
    :param regularisation: added to every covariance's diagonal.
    :return: ``(weights [K], means [K, D], covariances [K, D, D])``.
    """
    n, dim = data.shape
    counts = responsibilities.sum(0)  # [K]
    weights = counts / n
    # A cluster that lost (almost) all its points refits to all of them, as the GPS code
    # reboots clusters of mass below 1e-4 / K, rather than collapsing onto one point.
    share = responsibilities / counts.clamp(min=torch.finfo(data.dtype).tiny)
    empty = weights < 1e-4 / weights.shape[0]
    share = torch.where(empty, torch.full_like(share, 1.0 / n), share)  # [N, K]
    means = share.T @ data  # [K, D]
    diff = data.unsqueeze(0) - means.unsqueeze(1)  # [K, N, D]
    covariances = torch.einsum("nk,kni,knj->kij", share, diff, diff)
    covariances = 0.5 * (covariances + covariances.transpose(-1, -2))
    eye = torch.eye(dim, dtype=data.dtype, device=data.device)
    return weights, means, covariances + regularisation * eye


def mixture_moments(
    weights: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of a mixture with component ``weights``:
    ``mu = sum_k w_k mu_k``, ``Sigma = sum_k w_k (Sigma_k + (mu_k - mu)(mu_k - mu)^T)``.

    :param weights: ``[..., K]``, summing to one.
    :param means: ``[K, D]``.
    :param covariances: ``[K, D, D]``.
    :return: ``(mean [..., D], covariance [..., D, D])``.
    """
    mean = weights @ means
    diff = means - mean.unsqueeze(-2)  # [..., K, D]
    spread = torch.einsum("...k,...ki,...kj->...ij", weights, diff, diff)
    return mean, torch.einsum("...k,kij->...ij", weights, covariances) + spread


@dataclass(frozen=True)
class GaussianMixture:
    """``p(y) = sum_k weights[k] N(y | means[k], covariances[k])``.

    :ivar weights: ``[K]``, summing to one.
    :ivar means: ``[K, D]``.
    :ivar covariances: ``[K, D, D]`` positive definite.
    """

    weights: torch.Tensor
    means: torch.Tensor
    covariances: torch.Tensor

    @classmethod
    def fit(
        cls,
        data: torch.Tensor,
        clusters: int,
        *,
        iterations: int = 100,  # the GPS code's max_iterations
        generator: torch.Generator | None = None,
    ) -> GaussianMixture:
        """Fit ``clusters`` components to ``data: [N, D]`` by EM, in float64.

        Means start at k-means++ seeds drawn with ``generator``, every covariance at the
        pooled within-cluster covariance of the points assigned to their nearest seed (the
        k-means model, which is positive definite wherever the data spread). EM runs until
        the mean log likelihood per point improves by less than :data:`TOLERANCE`, or for
        ``iterations`` M-steps.

        :raises ValueError: for fewer points than ``clusters`` or ``clusters < 1``.
        """
        if data.ndim != 2:
            raise ValueError(f"data: expected [N, D], got shape {tuple(data.shape)}")
        if isinstance(clusters, bool) or not isinstance(clusters, int) or clusters < 1:
            raise ValueError(f"clusters: expected a positive int, got {clusters!r}")
        if data.shape[0] < clusters:
            raise ValueError(
                f"data: {data.shape[0]} points cannot be split into {clusters} clusters"
            )
        data = data.to(torch.float64)
        n, dim = data.shape
        means = data[kmeans_plus_plus(data, clusters, generator)]
        nearest = torch.cdist(data, means).argmin(-1)
        within = data - means[nearest]
        pooled = within.T @ within / n + COVARIANCE_REGULARISATION * torch.eye(
            dim, dtype=data.dtype, device=data.device
        )
        mixture = cls(
            torch.full((clusters,), 1.0 / clusters, dtype=data.dtype, device=data.device),
            means,
            pooled.expand(clusters, dim, dim).clone(),
        )
        previous, last = -math.inf, mixture
        for _ in range(iterations):
            joint = mixture._joint_log_densities(data)  # [N, K]
            mean_log_likelihood = float(torch.logsumexp(joint, -1).mean())
            if mean_log_likelihood < previous:
                # The regulariser and the reboot of empty clusters can cost likelihood.
                return last
            if mean_log_likelihood - previous < TOLERANCE:
                break
            previous, last = mean_log_likelihood, mixture
            mixture = cls(*maximisation(data, torch.softmax(joint, -1)))
        return mixture

    def _joint_log_densities(self, data: torch.Tensor) -> torch.Tensor:
        """``log w_k + log N(y | mu_k, Sigma_k)``: ``[..., K]`` from ``data: [..., D]``."""
        densities = gaussian_log_densities(data.to(self.means.dtype), self.means, self.covariances)
        return densities + self.weights.log()

    def log_prob(self, data: torch.Tensor) -> torch.Tensor:
        """``log p(y)`` of ``data: [..., D]``: ``[...]``."""
        return torch.logsumexp(self._joint_log_densities(data), -1)

    def responsibilities(self, data: torch.Tensor) -> torch.Tensor:
        """``p(k | y)`` of ``data: [..., D]``: ``[..., K]``, summing to one over ``K``."""
        return torch.softmax(self._joint_log_densities(data), -1)

    def moments(
        self, data: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixture's moments given a set of points: the clusters weighted by their mean
        responsibility over the points (:func:`mixture_moments`), as the GPS prior is read
        at the samples of one time step (Levine & Abbeel 2014, Section 3).

        :param data: ``[..., N, D]``, a set of ``N`` points per leading index.
        :param mask: ``[..., N]`` bool, the points that count (all when ``None``); each set
            needs at least one.
        :return: ``(mean [..., D], covariance [..., D, D])``.
        """
        resp = self.responsibilities(data)  # [..., N, K]
        if mask is None:
            weights = resp.mean(-2)
        else:
            keep = mask.to(resp.dtype).unsqueeze(-1)
            weights = (resp * keep).sum(-2) / keep.sum(-2)
        return mixture_moments(weights, self.means, self.covariances)
