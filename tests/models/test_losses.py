"""Tests of mbwrap.models.losses against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from mbwrap.models.losses import gaussian_nll, mixture_nll, mse, soft_clamp_logvar

LOG_2PI = 1.8378770664093453  # log(2π)


def test_gaussian_nll_by_hand():
    # dim 0: mean 0, var 1, target 1 -> 0.5 * (1 + 0 + log 2π)
    # dim 1: mean 1, var 4, target 3 -> 0.5 * (4 / 4 + log 4 + log 2π)
    mean = torch.tensor([0.0, 1.0])
    logvar = torch.tensor([0.0, math.log(4.0)])
    target = torch.tensor([1.0, 3.0])
    total = 1.0 + math.log(2.0) + LOG_2PI  # = 3.5310242...
    assert gaussian_nll(mean, logvar, target, reduce="sum").item() == pytest.approx(total)
    assert gaussian_nll(mean, logvar, target).item() == pytest.approx(total / 2)  # 1.76551...
    assert gaussian_nll(mean, logvar, target).item() == pytest.approx(1.7655121)


def test_gaussian_nll_is_per_sample_over_leading_axes():
    mean = torch.zeros(3, 4, 2)
    logvar = torch.zeros(3, 4, 2)
    target = torch.zeros(3, 4, 2)
    target[1, 2] = torch.tensor([2.0, 0.0])  # squared error 4 in one feature
    nll = gaussian_nll(mean, logvar, target)
    assert nll.shape == (3, 4)
    assert nll[0, 0].item() == pytest.approx(0.5 * LOG_2PI)
    assert nll[1, 2].item() == pytest.approx(0.5 * LOG_2PI + 0.5 * 4 / 2)


def test_gaussian_nll_matches_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    mean, logvar, target = torch.randn(3, 5, 4, generator=gen).unbind(0)
    expected = -torch.distributions.Normal(mean, torch.exp(0.5 * logvar)).log_prob(target)
    torch.testing.assert_close(gaussian_nll(mean, logvar, target, reduce="sum"), expected.sum(-1))


def test_gaussian_nll_rejects_unknown_reduction():
    with pytest.raises(ValueError, match=r"^reduce:"):
        gaussian_nll(torch.zeros(2), torch.zeros(2), torch.zeros(2), reduce="max")


def test_soft_clamp_logvar_by_hand():
    # Inside wide bounds the clamp is (nearly) the identity; at the upper bound it gives
    # max - log 2, at the lower bound min + log 2 (float32: a few ulps of 100 off).
    x = torch.tensor([0.0, 0.5, -10.0])
    assert soft_clamp_logvar(x[:1], 100.0, -100.0).item() == pytest.approx(0.0, abs=1e-5)
    upper = soft_clamp_logvar(x[1:2], 0.5, -100.0).item()
    assert upper == pytest.approx(0.5 - math.log(2), abs=1e-5)
    lower = soft_clamp_logvar(x[2:], 100.0, -10.0).item()
    assert lower == pytest.approx(-10 + math.log(2), abs=1e-5)
    # max 1, min -1, x 0: 1 - softplus(1) = -0.3132617, then -1 + softplus(0.6867383) = 0.0943443
    mid = soft_clamp_logvar(torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([-1.0]))
    assert mid.item() == pytest.approx(0.0943443, abs=1e-6)


def test_soft_clamp_logvar_bounds_extremes_and_passes_gradients():
    max_logvar = torch.tensor([0.5, 0.5], requires_grad=True)
    min_logvar = torch.tensor([-10.0, -10.0], requires_grad=True)
    x = torch.tensor([1e4, -1e4], requires_grad=True)
    out = soft_clamp_logvar(x, max_logvar, min_logvar)
    assert out[0].item() == pytest.approx(0.5, abs=1e-4)
    assert out[1].item() == pytest.approx(-10.0, abs=1e-4)
    out.sum().backward()
    # The bounds themselves receive gradient (they are learned in PETS/MBPO).
    assert max_logvar.grad[0].item() == pytest.approx(1.0, abs=1e-4)
    assert min_logvar.grad[1].item() == pytest.approx(1.0, abs=1e-4)


def test_mixture_nll_by_hand():
    # Two equal components at 0 and 2 (var 1), target 1: each density is
    # exp(-1/2)/sqrt(2π), so the NLL is 0.5 + 0.5 log 2π = 1.4189385.
    logits = torch.tensor([0.0, 0.0])
    means = torch.tensor([[0.0], [2.0]])
    logvars = torch.zeros(2, 1)
    assert mixture_nll(logits, means, logvars, torch.tensor([1.0])).item() == pytest.approx(
        1.4189385
    )
    # Weights 3/4, 1/4, target 0: -log(0.75 + 0.25 e^-2) + 0.5 log 2π = 1.1624968.
    logits = torch.tensor([math.log(3.0), 0.0])
    assert mixture_nll(logits, means, logvars, torch.tensor([0.0])).item() == pytest.approx(
        1.1624968
    )


def test_mixture_of_one_component_is_the_gaussian_nll_of_the_vector():
    gen = torch.Generator().manual_seed(1)
    mean, logvar, target = torch.randn(3, 6, 3, generator=gen).unbind(0)
    got = mixture_nll(torch.zeros(6, 1), mean[:, None], logvar[:, None], target)
    torch.testing.assert_close(got, gaussian_nll(mean, logvar, target, reduce="sum"))


def test_mixture_nll_is_stable_far_from_every_component():
    logits = torch.tensor([[0.0, 0.0]])
    means = torch.tensor([[[0.0], [1.0]]])
    logvars = torch.full((1, 2, 1), -10.0)
    nll = mixture_nll(logits, means, logvars, torch.tensor([[1e3]]))
    assert torch.isfinite(nll).all() and nll.item() > 1e9


def test_mse_per_sample():
    assert mse(torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 0.0]])).tolist() == [5.0]
