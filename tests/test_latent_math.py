"""The pure math of latent world models: symlog, two-hot, lambda returns, latents, KL."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import distributions as td

from mbwrap.models.stochastic import (
    balanced_kl,
    categorical_kl,
    gaussian_kl,
    gaussian_stats,
    mode_one_hot,
    sample_gaussian,
    sample_one_hot,
    unimix_logits,
)
from mbwrap.returns import lambda_returns, percentile_range
from mbwrap.transforms import scalar_to_two_hot, symexp, symlog, symlog_bins, two_hot_to_scalar

# ---------------------------------------------------------------- symlog, two-hot


def test_symexp_inverts_symlog_over_a_wide_range():
    magnitude = torch.logspace(-8, 8, 401, dtype=torch.float64)
    x = torch.cat([-magnitude.flip(0), torch.zeros(1, dtype=torch.float64), magnitude])
    torch.testing.assert_close(symexp(symlog(x)), x, rtol=1e-6, atol=1e-6)
    y = torch.linspace(-15, 15, 301, dtype=torch.float64)
    torch.testing.assert_close(symlog(symexp(y)), y, rtol=1e-6, atol=1e-6)


def test_symlog_worked_values():
    e = math.e
    x = torch.tensor([0.0, e - 1.0, -(e**2 - 1.0), 1.0, -1e6], dtype=torch.float64)
    expected = torch.tensor(
        [0.0, 1.0, -2.0, math.log(2.0), -math.log(1e6 + 1.0)], dtype=torch.float64
    )
    torch.testing.assert_close(symlog(x), expected, rtol=0, atol=1e-12)
    # Odd and monotone: small values pass almost unchanged, large ones are compressed.
    assert symlog(torch.tensor(1e-4)).item() == pytest.approx(1e-4, rel=1e-4)
    assert symexp(torch.tensor(-2.0)).item() == pytest.approx(-(e**2 - 1.0))


def test_symlog_bins_are_dreamerv3_support():
    bins = symlog_bins()
    assert bins.shape == (255,) and bins.dtype == torch.float32
    assert bins[0].item() == -20.0 and bins[-1].item() == 20.0
    torch.testing.assert_close(bins.diff(), torch.full((254,), 40.0 / 254), rtol=1e-5, atol=1e-5)
    assert bins[127].item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="num_bins"):
        symlog_bins(1)
    with pytest.raises(ValueError, match="low < high"):
        symlog_bins(5, 1.0, 1.0)


def test_two_hot_weights_by_hand():
    support = torch.arange(5.0)
    probs = scalar_to_two_hot(torch.tensor(2.3), support)
    torch.testing.assert_close(probs, torch.tensor([0.0, 0.0, 0.7, 0.3, 0.0]))
    assert two_hot_to_scalar(probs, support).item() == pytest.approx(2.3, abs=1e-6)
    # On a support point all weight goes to it, the last one included; outside, the end.
    batch = scalar_to_two_hot(torch.tensor([[1.0, 4.0], [-3.0, 9.0]]), support)
    assert batch.shape == (2, 2, 5)
    torch.testing.assert_close(batch[0, 0], torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(batch[0, 1], torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0]))
    torch.testing.assert_close(batch[1, 0], torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(batch[1, 1], torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0]))


def test_two_hot_round_trip_in_symlog_space():
    bins = symlog_bins()
    x = torch.tensor([-1234.5, -3.0, 0.0, 0.25, 1.0, 500.0])
    probs = scalar_to_two_hot(symlog(x), bins)
    torch.testing.assert_close(probs.sum(-1), torch.ones(6))
    assert ((probs > 0).sum(-1) <= 2).all()
    torch.testing.assert_close(symexp(two_hot_to_scalar(probs, bins)), x, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="support's size"):
        two_hot_to_scalar(probs[:, :-1], bins)
    with pytest.raises(ValueError, match="support"):
        scalar_to_two_hot(x, bins[None])


# ---------------------------------------------------------------- lambda returns


def _recursive_lambda_returns(reward, value, continues, discount, lambda_):
    """``R_t = r_t + gamma c_t ((1 - lambda) v_{t+1} + lambda R_{t+1})``, ``R_H = v_H``,
    one trajectory, Python floats."""
    horizon = len(reward)
    returns = [0.0] * horizon
    next_return = value[horizon]
    for t in reversed(range(horizon)):
        next_return = reward[t] + discount * continues[t] * (
            (1.0 - lambda_) * value[t + 1] + lambda_ * next_return
        )
        returns[t] = next_return
    return returns


@pytest.mark.parametrize("lambda_", [0.0, 0.5, 0.95, 1.0])
def test_lambda_returns_match_the_recursion(lambda_):
    generator = torch.Generator().manual_seed(int(lambda_ * 100))
    horizon, batch, discount = 7, 3, 0.9
    reward = torch.randn(horizon, batch, generator=generator, dtype=torch.float64)
    value = torch.randn(horizon + 1, batch, generator=generator, dtype=torch.float64)
    continues = torch.rand(horizon, batch, generator=generator, dtype=torch.float64)
    continues[2, 0] = 0.0
    out = lambda_returns(reward, value, continues, discount=discount, lambda_=lambda_)
    assert out.shape == (horizon, batch)
    for b in range(batch):
        expected = _recursive_lambda_returns(
            reward[:, b].tolist(), value[:, b].tolist(), continues[:, b].tolist(), discount, lambda_
        )
        torch.testing.assert_close(out[:, b], torch.tensor(expected, dtype=torch.float64))


def test_lambda_returns_special_cases():
    reward = torch.tensor([[1.0], [2.0], [3.0]])
    value = torch.tensor([[10.0], [20.0], [30.0], [40.0]])
    ones, gamma = torch.ones(3, 1), 0.5
    # lambda 0: one-step TD targets r_t + gamma v_{t+1}.
    td0 = lambda_returns(reward, value, ones, discount=gamma, lambda_=0.0)
    torch.testing.assert_close(td0[:, 0], torch.tensor([11.0, 17.0, 23.0]))
    # lambda 1: the discounted sum bootstrapped with v_H = 40.
    mc = lambda_returns(reward, value, ones, discount=gamma, lambda_=1.0)
    torch.testing.assert_close(mc[:, 0], torch.tensor([1 + 1 + 0.75 + 5, 2 + 1.5 + 10, 3 + 20.0]))
    # No continuation: every return is its own reward.
    zero = lambda_returns(reward, value, torch.zeros(3, 1), discount=gamma, lambda_=0.7)
    torch.testing.assert_close(zero, reward)


def test_lambda_returns_reject_mismatched_shapes():
    reward, continues = torch.zeros(4, 2), torch.ones(4, 2)
    with pytest.raises(ValueError, match="value"):
        lambda_returns(reward, torch.zeros(4, 2), continues, discount=0.9, lambda_=0.9)
    with pytest.raises(ValueError, match="continues"):
        lambda_returns(reward, torch.zeros(5, 2), torch.ones(4, 3), discount=0.9, lambda_=0.9)
    with pytest.raises(ValueError, match="lambda_"):
        lambda_returns(reward, torch.zeros(5, 2), continues, discount=0.9, lambda_=1.5)


# ---------------------------------------------------------------- latents


def test_percentile_range_is_numpys_95th_minus_5th_over_all_elements():
    # DreamerV3's return scale S: the 5th-95th percentile range of all imagined returns.
    x = torch.arange(101.0).reshape(1, 101)
    torch.testing.assert_close(percentile_range(x), torch.tensor(90.0))
    generator = torch.Generator().manual_seed(0)
    returns = torch.randn(15, 16, 33, generator=generator) * 7.0 + 3.0
    returns[0, 0, 0] = 1e6  # an outlier: the range stays near 2 x 1.645 x 7, not 1e6
    expected = np.percentile(returns.numpy(), 95) - np.percentile(returns.numpy(), 5)
    torch.testing.assert_close(percentile_range(returns), torch.tensor(expected).float())
    assert 20.0 < percentile_range(returns).item() < 26.0
    low, high = np.percentile(returns.numpy(), [10, 80])
    torch.testing.assert_close(
        percentile_range(returns, low=0.1, high=0.8), torch.tensor(high - low, dtype=torch.float32)
    )


def test_percentile_range_passes_no_gradient_and_checks_its_bounds():
    x = torch.randn(64, requires_grad=True)
    assert not percentile_range(x).requires_grad
    with pytest.raises(ValueError, match="low, high"):
        percentile_range(x, low=0.9, high=0.1)
    with pytest.raises(ValueError, match="low, high"):
        percentile_range(x, low=-0.1)


def test_unimix_keeps_every_class_above_its_floor():
    logits = torch.tensor([[1e4, -1e4, 0.0, -50.0], [-1e4, -1e4, -1e4, 3e4], [0.0, 0.0, 0.0, 0.0]])
    probs = unimix_logits(logits, 0.01).exp()
    assert torch.isfinite(probs.log()).all()
    assert (probs >= 0.01 / 4 * (1 - 1e-5)).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(3))
    # The dominant class keeps the rest: 0.99 + 0.0025.
    assert probs[0, 0].item() == pytest.approx(0.9925, abs=1e-6)
    torch.testing.assert_close(unimix_logits(logits, 0.0), torch.log_softmax(logits, -1))
    with pytest.raises(ValueError, match="unimix"):
        unimix_logits(logits, 1.0)


def test_straight_through_one_hot_forward_softmax_gradient():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 3, 6, generator=generator, requires_grad=True)
    weights = torch.randn(5, 3, 6, generator=generator)
    sample = sample_one_hot(logits, generator)
    assert sample.shape == (5, 3, 6)
    torch.testing.assert_close(sample.detach().round(), sample.detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(sample.detach().sum(-1), torch.ones(5, 3))
    (sample * weights).sum().backward()
    reference = logits.detach().clone().requires_grad_(True)
    (torch.softmax(reference, -1) * weights).sum().backward()
    torch.testing.assert_close(logits.grad, reference.grad)


def test_one_hot_samples_follow_the_probabilities_and_the_mode_is_argmax():
    logits = torch.log(torch.tensor([0.1, 0.6, 0.3])).expand(20_000, 3)
    counts = sample_one_hot(logits, torch.Generator().manual_seed(1)).detach().sum(0) / 20_000
    torch.testing.assert_close(counts, torch.tensor([0.1, 0.6, 0.3]), rtol=0, atol=0.015)
    mode = mode_one_hot(torch.tensor([[0.1, 2.0, -1.0], [5.0, 0.0, 0.0]]))
    torch.testing.assert_close(mode, torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))


def test_categorical_kl_matches_torch_distributions():
    generator = torch.Generator().manual_seed(2)
    lhs = torch.log_softmax(torch.randn(4, 8, 5, generator=generator), -1)
    rhs = torch.log_softmax(torch.randn(4, 8, 5, generator=generator), -1)
    expected = td.kl_divergence(td.Categorical(logits=lhs), td.Categorical(logits=rhs)).sum(-1)
    torch.testing.assert_close(categorical_kl(lhs, rhs), expected)
    torch.testing.assert_close(categorical_kl(lhs, lhs), torch.zeros(4), rtol=0, atol=1e-6)


def test_gaussian_stats_sampling_and_kl():
    generator = torch.Generator().manual_seed(3)
    stats = gaussian_stats(torch.randn(4, 2 * 6, generator=generator) * 3)
    mean, std = stats.chunk(2, -1)
    assert (std >= 0.1).all()
    other = gaussian_stats(torch.randn(4, 12, generator=generator))
    mean2, std2 = other.chunk(2, -1)
    expected = td.kl_divergence(td.Normal(mean, std), td.Normal(mean2, std2)).sum(-1)
    torch.testing.assert_close(gaussian_kl(stats, other), expected)
    draws = sample_gaussian(stats[:1].expand(50_000, -1), torch.Generator().manual_seed(4))
    torch.testing.assert_close(draws.mean(0), mean[0], rtol=0, atol=0.05 * std[0].max().item())
    torch.testing.assert_close(draws.std(0), std[0], rtol=0.03, atol=0)


def _leaf(x: torch.Tensor) -> torch.Tensor:
    return x.detach().clone().requires_grad_(True)


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_balanced_kl_free_bits_clamp_the_loss_and_stop_gradients(kind):
    if kind == "categorical":
        base = torch.log_softmax(torch.randn(3, 4, 5), -1)
        near = torch.log_softmax(base + 0.01 * torch.randn(3, 4, 5), -1)
    else:
        base = gaussian_stats(torch.randn(3, 8))
        near = base + 0.01
    posterior, prior = _leaf(base), _leaf(near)
    loss, parts = balanced_kl(posterior, prior, kind=kind)
    assert (parts["kl"] < 1.0).all()
    # 0.5 * max(1, KL) + 0.1 * max(1, KL) with KL below the free nat.
    torch.testing.assert_close(loss, torch.full((3,), 0.6))
    loss.sum().backward()
    assert not posterior.grad.any() and not prior.grad.any()


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_balanced_kl_sends_each_term_to_its_side_with_its_weight(kind):
    generator = torch.Generator().manual_seed(5)
    if kind == "categorical":
        base = torch.log_softmax(3 * torch.randn(3, 4, 5, generator=generator), -1)
        far = torch.log_softmax(3 * torch.randn(3, 4, 5, generator=generator), -1)
        kl = categorical_kl
    else:
        base = gaussian_stats(3 * torch.randn(3, 8, generator=generator))
        far = gaussian_stats(3 * torch.randn(3, 8, generator=generator))
        kl = gaussian_kl
    posterior, prior = _leaf(base), _leaf(far)
    loss, parts = balanced_kl(posterior, prior, kind=kind)
    assert (parts["kl"] > 1.0).all()
    raw = kl(base, far)
    torch.testing.assert_close(loss, 0.6 * raw)
    loss.sum().backward()
    # Dynamics: only the prior learns, at 0.5; representation: only the posterior, at 0.1.
    prior_ref, post_ref = _leaf(far), _leaf(base)
    kl(base, prior_ref).sum().backward()
    kl(post_ref, far).sum().backward()
    torch.testing.assert_close(prior.grad, 0.5 * prior_ref.grad)
    torch.testing.assert_close(posterior.grad, 0.1 * post_ref.grad)
    assert prior.grad.abs().sum() > 0 and posterior.grad.abs().sum() > 0


def test_balanced_kl_rejects_an_unknown_kind():
    x = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="kind"):
        balanced_kl(x, x, kind="bernoulli")


def test_sampling_from_log_probabilities_draws_the_same_one_hots() -> None:
    # normalised=True reads log-probabilities with one exp; the draws from the same
    # generator are those of the softmax route.
    logits = unimix_logits(torch.randn(64, 4, 8, generator=torch.Generator().manual_seed(3)))
    fast = sample_one_hot(logits, torch.Generator().manual_seed(4), normalised=True)
    slow = sample_one_hot(logits, torch.Generator().manual_seed(4))
    torch.testing.assert_close(fast, slow)


def test_a_sample_without_gradient_is_an_exact_one_hot() -> None:
    # Without a gradient to carry, no straight-through terms are added, whose rounding
    # would move the ones and zeros by an ulp.
    logits = torch.randn(256, 4, 8, generator=torch.Generator().manual_seed(5))
    sample = sample_one_hot(logits, torch.Generator().manual_seed(6))
    assert sample.grad_fn is None
    assert set(sample.unique().tolist()) == {0.0, 1.0}
    assert (sample.sum(-1) == 1).all()
