"""SimPLe's discrete latent: the saturating sigmoid, straight-through bits and the LSTM that
predicts them (mbwrap.models.discrete_latent)."""

from __future__ import annotations

import math

import pytest
import torch

from mbwrap.models.discrete_latent import (
    BitPredictor,
    bits_to_int,
    discretise_bits,
    int_to_bits,
    saturating_sigmoid,
)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_saturating_sigmoid_reaches_zero_and_one_at_ln_11():
    # 1.2 sigmoid(x) - 0.1 is 0 at sigmoid = 1/12 (x = -ln 11) and 1 at 11/12 (x = ln 11).
    x = torch.tensor([-10.0, -math.log(11.0), 0.0, 1.0, math.log(11.0), 10.0])
    expected = torch.tensor([0.0, 0.0, 0.5, 1.2 * sigmoid(1.0) - 0.1, 1.0, 1.0])
    torch.testing.assert_close(saturating_sigmoid(x), expected)


def test_out_of_training_the_bits_are_the_signs_of_the_logits():
    logits = torch.tensor([[0.3, -0.2, 5.0, -7.0]])
    bits, hard = discretise_bits(logits, noise_std=1.0, training=False)
    assert bits.tolist() == hard.tolist() == [[1.0, -1.0, 1.0, -1.0]]


def test_hard_bits_pass_the_gradient_of_the_saturating_sigmoid_straight_through():
    logits = torch.tensor([[0.5, 3.0, -1.0]], requires_grad=True)
    bits, hard = discretise_bits(logits, noise_std=0.0, training=True, hard_probability=1.0)
    assert bits.tolist() == hard.tolist() == [[1.0, 1.0, -1.0]]
    bits.sum().backward()
    # d(2 s - 1)/dx = 2 * 1.2 * sigmoid'(x) inside the unclamped range; 1.2 sigmoid(3) - 0.1
    # = 1.043 is clamped, so logit 3 gets none.
    slope = [2.4 * sigmoid(x) * (1 - sigmoid(x)) for x in (0.5, -1.0)]  # 0.5640, 0.4719
    torch.testing.assert_close(logits.grad, torch.tensor([[slope[0], 0.0, slope[1]]]))
    assert not hard.requires_grad


def test_soft_values_are_the_saturating_sigmoid_mapped_to_minus_one_one():
    logits = torch.tensor([[0.5, 3.0, -1.0]])
    bits, hard = discretise_bits(logits, noise_std=0.0, training=True, hard_probability=0.0)
    soft = [2 * (1.2 * sigmoid(x) - 0.1) - 1 for x in (0.5, -1.0)]  # 0.2939, -0.5545
    torch.testing.assert_close(bits, torch.tensor([[soft[0], 1.0, soft[1]]]))
    assert hard.tolist() == [[1.0, 1.0, -1.0]]


def test_noise_and_the_hard_soft_mix_follow_the_generator():
    logits = torch.zeros(2000, 8)
    first = discretise_bits(
        logits, noise_std=0.5, generator=torch.Generator().manual_seed(3), training=True
    )
    again = discretise_bits(
        logits, noise_std=0.5, generator=torch.Generator().manual_seed(3), training=True
    )
    torch.testing.assert_close(first, again)
    bits, hard = first
    is_hard = bits.abs() == 1.0  # soft values of logits near 0 are never exactly +-1
    assert is_hard.float().mean().item() == pytest.approx(0.5, abs=0.02)
    assert torch.equal(bits[is_hard], hard[is_hard])
    # The noise alone decides the hard bits of zero logits: about half are +1.
    assert (hard > 0).float().mean().item() == pytest.approx(0.5, abs=0.02)


def test_groups_of_bits_read_as_integers_least_significant_first():
    assert int_to_bits(torch.tensor(5), 4).tolist() == [1.0, -1.0, 1.0, -1.0]
    assert bits_to_int(torch.tensor([1.0, -1.0, 1.0, -1.0])).item() == 5
    every = torch.arange(256)
    assert torch.equal(bits_to_int(int_to_bits(every, 8)), every)


def test_bit_predictor_learns_a_two_mode_distribution_autoregressively():
    torch.manual_seed(0)
    predictor = BitPredictor(4, 16, hidden_size=32, bits_at_once=8, dropout=0.0)
    assert predictor.groups == 2
    # Two patterns of two groups each; a mix of their groups never occurs.
    patterns = int_to_bits(torch.tensor([[3, 200], [77, 9]]), 8).flatten(1)  # [2, 16]
    context = torch.zeros(64, 4)
    optimizer = torch.optim.Adam(predictor.parameters(), lr=1e-2)
    for _ in range(150):
        bits = patterns[torch.randint(2, (64,))]
        loss = -predictor.log_prob(context, bits).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        log_prob = predictor.log_prob(context[:2], patterns)
        samples = predictor.sample(torch.zeros(2000, 4), torch.Generator().manual_seed(0))
    groups = bits_to_int(samples.reshape(2000, 2, 8))
    share_a = (groups == torch.tensor([3, 200])).all(-1).float().mean().item()
    share_b = (groups == torch.tensor([77, 9])).all(-1).float().mean().item()
    assert share_a == pytest.approx(0.5, abs=0.1) and share_b == pytest.approx(0.5, abs=0.1)
    # The second group follows the first: the mixed patterns stay (almost) unseen.
    assert share_a + share_b > 0.98
    # Teacher forcing and sampling agree: the likelihoods are the sampled shares.
    probability = log_prob.exp().tolist()
    assert probability == pytest.approx([share_a, share_b], abs=0.04)


def test_sampling_is_reproducible_and_temperature_zero_takes_the_mode():
    torch.manual_seed(0)
    predictor = BitPredictor(3, 12, hidden_size=8, bits_at_once=4)
    context = torch.randn(32, 3)
    first = predictor.sample(context, torch.Generator().manual_seed(1))
    assert first.shape == (32, 12) and set(first.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(first, predictor.sample(context, torch.Generator().manual_seed(1)))
    assert not torch.equal(first, predictor.sample(context, torch.Generator().manual_seed(2)))
    mode = predictor.sample(context, temperature=0.0)
    assert torch.equal(mode, predictor.sample(context, temperature=0.0))


def test_bits_at_once_must_divide_the_bits():
    with pytest.raises(ValueError, match="bits_at_once"):
        BitPredictor(4, 12, bits_at_once=8)
    assert BitPredictor(4, 4, bits_at_once=8).group_bits == 4  # fewer bits than a group
