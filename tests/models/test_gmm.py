"""The Gaussian mixture: EM recovers a known mixture, densities and moments match hand
computations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as td

from mbwrap.models.gmm import (
    GaussianMixture,
    gaussian_log_densities,
    kmeans_plus_plus,
    maximisation,
    mixture_moments,
)

WEIGHTS = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
MEANS = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=torch.float64)
COVARIANCES = torch.tensor(
    [[[1.0, 0.5], [0.5, 1.0]], [[0.5, 0.0], [0.0, 2.0]], [[1.5, -0.6], [-0.6, 0.8]]],
    dtype=torch.float64,
)


def sample_mixture(n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    component = torch.multinomial(WEIGHTS, n, replacement=True, generator=generator)
    noise = torch.randn(n, 2, dtype=torch.float64, generator=generator)
    chol = torch.linalg.cholesky(COVARIANCES)
    return MEANS[component] + (chol[component] @ noise.unsqueeze(-1)).squeeze(-1)


def test_gaussian_log_densities_match_torch_distributions():
    points = sample_mixture(50).reshape(5, 10, 2)
    expected = torch.stack(
        [td.MultivariateNormal(MEANS[k], COVARIANCES[k]).log_prob(points) for k in range(3)], -1
    )
    out = gaussian_log_densities(points, MEANS, COVARIANCES)
    assert out.shape == (5, 10, 3)
    torch.testing.assert_close(out, expected)


def test_maximisation_with_hard_assignments_gives_each_clusters_moments():
    data = sample_mixture(300)
    labels = torch.arange(300) % 3
    responsibilities = torch.nn.functional.one_hot(labels, 3).to(data.dtype)
    weights, means, covariances = maximisation(data, responsibilities, regularisation=1e-3)
    torch.testing.assert_close(weights, torch.full((3,), 1 / 3, dtype=data.dtype))
    for k in range(3):
        members = data[labels == k]
        torch.testing.assert_close(means[k], members.mean(0))
        # The maximum-likelihood (biased) covariance, plus the regularisation on the diagonal.
        expected = torch.cov(members.T, correction=0) + 1e-3 * torch.eye(2, dtype=data.dtype)
        torch.testing.assert_close(covariances[k], expected)


def test_maximisation_refits_an_empty_cluster_to_all_the_data():
    data = sample_mixture(200)
    responsibilities = torch.zeros(200, 2, dtype=data.dtype)
    responsibilities[:, 0] = 1.0  # cluster 1 has no points
    weights, means, covariances = maximisation(data, responsibilities, regularisation=0.0)
    torch.testing.assert_close(weights, torch.tensor([1.0, 0.0], dtype=data.dtype))
    torch.testing.assert_close(means[1], data.mean(0))
    torch.testing.assert_close(covariances[1], torch.cov(data.T, correction=0))


def test_em_recovers_a_known_mixture():
    data = sample_mixture(4000)
    mixture = GaussianMixture.fit(data, 3, generator=torch.Generator().manual_seed(1))
    # Match each true component to the fitted one nearest its mean.
    match = torch.cdist(MEANS, mixture.means).argmin(-1)
    assert sorted(match.tolist()) == [0, 1, 2]
    assert torch.allclose(mixture.means[match], MEANS, atol=0.1)
    assert torch.allclose(mixture.covariances[match], COVARIANCES, atol=0.15)
    assert torch.allclose(mixture.weights[match], WEIGHTS, atol=0.03)


def test_responsibilities_are_a_distribution_and_pick_the_right_cluster():
    mixture = GaussianMixture(WEIGHTS, MEANS, COVARIANCES)
    resp = mixture.responsibilities(sample_mixture(50).reshape(5, 10, 2))
    assert resp.shape == (5, 10, 3)
    assert torch.allclose(resp.sum(-1), torch.ones(5, 10, dtype=torch.float64))
    assert torch.allclose(mixture.responsibilities(MEANS), torch.eye(3, dtype=torch.float64))


def test_log_prob_of_one_component_matches_a_hand_computation():
    # det = 1.75 and diff^T Sigma^-1 diff = 7 / 1.75 = 4 for diff = (-1, -2).
    mixture = GaussianMixture(
        torch.ones(1, dtype=torch.float64),
        torch.tensor([[1.0, 2.0]], dtype=torch.float64),
        torch.tensor([[[2.0, 0.5], [0.5, 1.0]]], dtype=torch.float64),
    )
    expected = -math.log(2 * math.pi) - 0.5 * math.log(1.75) - 2.0
    assert mixture.log_prob(torch.zeros(1, 2)).item() == pytest.approx(expected, abs=1e-12)


def test_moments_weigh_clusters_by_the_points_responsibilities():
    # Two unit-variance components at 0 and 2, equally weighted: mean 1, variance 1 + 1.
    mean, var = mixture_moments(
        torch.tensor([0.5, 0.5], dtype=torch.float64),
        torch.tensor([[0.0], [2.0]], dtype=torch.float64),
        torch.ones(2, 1, 1, dtype=torch.float64),
    )
    assert mean.item() == pytest.approx(1.0) and var.item() == pytest.approx(2.0)
    mixture = GaussianMixture(WEIGHTS, MEANS, COVARIANCES)
    # Points of the second cluster only: its own moments.
    mean, cov = mixture.moments(MEANS[1] + 0.1 * torch.randn(8, 2, dtype=torch.float64))
    assert torch.allclose(mean, MEANS[1], atol=1e-6)
    assert torch.allclose(cov, COVARIANCES[1], atol=1e-6)
    # Masked: a set of one point of each of the first two clusters, the third masked out.
    sets = MEANS.expand(4, 3, 2)
    mask = torch.tensor([True, True, False]).expand(4, 3)
    mean, cov = mixture.moments(sets, mask)
    assert mean.shape == (4, 2) and cov.shape == (4, 2, 2)
    assert torch.allclose(mean, MEANS[:2].mean(0).expand(4, 2), atol=1e-6)


def test_kmeans_plus_plus_seeds_distinct_points_and_fit_checks_its_arguments():
    data = torch.tensor([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0]], dtype=torch.float64)
    chosen = kmeans_plus_plus(data, 2, torch.Generator().manual_seed(0))
    assert 2 in chosen.tolist()  # a duplicate of the first seed has probability 0
    with pytest.raises(ValueError, match="clusters"):
        GaussianMixture.fit(data, 4)
    with pytest.raises(ValueError, match="clusters"):
        GaussianMixture.fit(data, 0)
