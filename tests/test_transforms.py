"""MuZero's value transform, the two-hot projection and the categorical head's scalar."""

from __future__ import annotations

import math

import pytest
import torch

from mbwrap.models.muzero_nets import logits_to_scalar, support
from mbwrap.transforms import (
    inverse_value_transform,
    scalar_to_two_hot,
    two_hot_to_scalar,
    value_transform,
)


def test_value_transform_by_hand():
    x = torch.tensor([0.0, 3.0, -8.0], dtype=torch.float64)
    expected = [0.0, (math.sqrt(4) - 1) + 0.003, -((math.sqrt(9) - 1) + 0.008)]
    assert value_transform(x).tolist() == pytest.approx(expected)


def test_inverse_value_transform_is_exact():
    x = torch.cat([torch.linspace(-5000, 5000, 20001, dtype=torch.float64),
                   torch.tensor([1e-6, -1e-6], dtype=torch.float64)])
    assert torch.allclose(inverse_value_transform(value_transform(x)), x, rtol=1e-9, atol=1e-9)
    y = torch.linspace(-300, 300, 1001, dtype=torch.float64)
    assert torch.allclose(value_transform(inverse_value_transform(y)), y, rtol=1e-9, atol=1e-9)
    assert torch.allclose(inverse_value_transform(value_transform(x, eps=0.0), eps=0.0), x)


def test_two_hot_by_hand():
    support = torch.arange(-5.0, 6.0)
    probs = scalar_to_two_hot(torch.tensor([2.3, -5.0, 5.0, 9.0]), support)
    assert probs[0, 7].item() == pytest.approx(0.7)  # support point 2
    assert probs[0, 8].item() == pytest.approx(0.3)  # support point 3
    assert probs[0].sum().item() == pytest.approx(1.0)
    assert probs[1, 0].item() == 1.0 and probs[2, -1].item() == 1.0
    assert probs[3, -1].item() == 1.0  # clamped to the support
    assert two_hot_to_scalar(probs, support).tolist() == pytest.approx([2.3, -5.0, 5.0, 5.0])


def test_two_hot_round_trip_on_a_wide_support_and_batch_shape():
    support = torch.linspace(-300, 300, 601)
    x = torch.empty(4, 7).uniform_(-300, 300, generator=torch.Generator().manual_seed(0))
    probs = scalar_to_two_hot(x, support)
    assert probs.shape == (4, 7, 601)
    assert torch.allclose(two_hot_to_scalar(probs, support), x, atol=1e-3)


def test_bad_support_and_mismatched_probs():
    with pytest.raises(ValueError, match="support"):
        scalar_to_two_hot(torch.zeros(2), torch.zeros(1))
    with pytest.raises(ValueError, match="probs"):
        two_hot_to_scalar(torch.zeros(2, 5), torch.arange(4.0))


def test_two_hot_log_likelihood_is_the_dense_two_hot_dot_product() -> None:
    from mbwrap.transforms import scalar_to_two_hot, symlog_bins, two_hot_log_likelihood

    generator = torch.Generator().manual_seed(0)
    support = symlog_bins(21, -3.0, 3.0)
    log_probs = torch.log_softmax(torch.randn(4, 5, 21, generator=generator), -1)
    # Inside, on the points, at both ends and beyond them (clamped).
    x = torch.randn(4, 5, generator=generator) * 2
    x[0, :4] = torch.tensor([-3.0, 3.0, -7.0, 9.0])
    x[1, 0] = support[7]
    expected = (scalar_to_two_hot(x, support) * log_probs).sum(-1)
    torch.testing.assert_close(two_hot_log_likelihood(log_probs, x, support), expected)
    # Gradients reach only the two log-probabilities each target weights.
    leaf = log_probs.clone().requires_grad_(True)
    two_hot_log_likelihood(leaf, x, support).sum().backward()
    torch.testing.assert_close(leaf.grad, scalar_to_two_hot(x, support))
    with pytest.raises(ValueError, match="log_probs: expected a last dimension of 21"):
        two_hot_log_likelihood(log_probs[..., :20], x, support)


def test_two_hot_to_scalar_promotes_like_the_elementwise_product() -> None:
    support = torch.tensor([0.0, 1.0, 2.0])
    probs = torch.tensor([[0.25, 0.5, 0.25], [0.0, 0.0, 1.0]], dtype=torch.float64)
    out = two_hot_to_scalar(probs, support)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, torch.tensor([1.0, 2.0], dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inverse_value_transform_in_place_route_matches_the_formula_bit_for_bit(dtype) -> None:
    # Without a gradient to record, the inverse runs in place; with one, out of place
    # (autograd saves sqrt's output). Both must give the formula's bits.
    y = torch.cat([torch.linspace(-300, 300, 10001, dtype=dtype),
                   torch.randn(1000, dtype=dtype) * 1e3, torch.tensor([0.0, -0.0], dtype=dtype)])
    eps = 0.001
    formula = torch.sign(y) * (
        ((torch.sqrt(1.0 + 4.0 * eps * (torch.abs(y) + 1.0 + eps)) - 1.0) / (2.0 * eps)) ** 2
        - 1.0)
    before = y.clone()
    assert torch.equal(inverse_value_transform(y), formula)
    assert torch.equal(y, before)  # the input is left alone
    leaf = y.clone().requires_grad_(True)
    out = inverse_value_transform(leaf)
    assert torch.equal(out.detach(), formula)
    out.sum().backward()
    assert torch.isfinite(leaf.grad).all()


def test_logits_to_scalar_is_the_inverse_transform_of_the_expected_support_point():
    points = support(10)  # -10..10
    # All the mass on the point 3: h^-1(3), the reward or value whose transform is 3.
    logits = torch.full((21,), -1e4)
    logits[13] = 0.0
    expected = inverse_value_transform(torch.tensor(3.0))
    torch.testing.assert_close(logits_to_scalar(logits, points), expected)
    # Equal logits on -2 and 4: the expectation is 1 in transformed space, then h^-1(1).
    logits = torch.full((2, 21), -1e4)
    logits[:, 8] = logits[:, 14] = 0.5
    out = logits_to_scalar(logits, points)
    assert out.shape == (2,)
    torch.testing.assert_close(out, inverse_value_transform(torch.ones(2)))
    assert value_transform(out).tolist() == pytest.approx([1.0, 1.0], abs=1e-4)  # float32
