"""Tests of mbwrap.models.Normalizer."""

from __future__ import annotations

import pytest
import torch

from mbwrap.models import Normalizer


def test_identity_before_fit():
    norm = Normalizer(2)
    x = torch.tensor([[3.0, -4.0]])
    torch.testing.assert_close(norm.normalize(x), x)


def test_fit_by_hand_and_constant_features_keep_unit_std():
    norm = Normalizer(3)
    # Column 0: mean 2, std 1 (population); column 1 constant; column 2: mean 0, std 2.
    x = torch.tensor([[1.0, 10.0, -2.0], [3.0, 10.0, 2.0]])
    norm.fit(x)
    assert norm.mean.tolist() == [2.0, 10.0, 0.0]
    assert norm.std.tolist() == [1.0, 1.0, 2.0]
    assert norm.normalize(x).tolist() == [[-1.0, 0.0, -1.0], [1.0, 0.0, 1.0]]
    # A deviation in the constant column stays at its own scale, not blown up by 1/1e-12.
    assert norm.normalize(torch.tensor([[2.0, 10.5, 0.0]])).tolist() == [[0.0, 0.5, 0.0]]


def test_std_below_the_floor_counts_as_constant():
    norm = Normalizer(1, min_std=1e-6)
    norm.fit(torch.tensor([[1.0], [1.0 + 1e-7]]))
    assert norm.std.item() == 1.0


def test_denormalize_inverts_normalize():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 4, generator=gen) * torch.tensor([1.0, 10.0, 0.1, 3.0]) + 5.0
    norm = Normalizer(4)
    norm.fit(x)
    z = norm.normalize(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(0, correction=0), torch.ones(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(norm.denormalize(z), x, atol=1e-5, rtol=1e-5)


def test_statistics_are_saved_in_the_state_dict():
    norm = Normalizer(2)
    norm.fit(torch.tensor([[0.0, 1.0], [2.0, 5.0]]))
    other = Normalizer(2)
    other.load_state_dict(norm.state_dict())
    assert set(norm.state_dict()) == {"mean", "std"}
    assert other.mean.tolist() == [1.0, 3.0] and other.std.tolist() == [1.0, 2.0]


def test_fit_checks_its_input():
    with pytest.raises(ValueError, match=r"^x: expected shape \(N, 2\)"):
        Normalizer(2).fit(torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"zero samples"):
        Normalizer(2).fit(torch.zeros(0, 2))
