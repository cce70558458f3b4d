"""PaddedLinear: the same map, gradients and parameters as nn.Linear."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mbwrap.models.padded_linear import MIN_OUT_FEATURES, PaddedLinear, padding_for


def test_padding_rounds_wide_layers_up_to_the_multiple() -> None:
    assert padding_for(255) == 1
    assert padding_for(256) == 0
    assert padding_for(601) == 7
    assert padding_for(MIN_OUT_FEATURES - 1) == 0  # narrow layers are left alone
    assert padding_for(100, multiple=8) == 4


@pytest.mark.parametrize("bias", [True, False])
def test_output_and_gradients_equal_a_linear_layers(bias) -> None:
    torch.manual_seed(0)
    padded = PaddedLinear(12, 255, bias=bias)
    assert padded.padding == 1
    plain = nn.Linear(12, 255, bias=bias)
    plain.load_state_dict(padded.state_dict())
    x = torch.randn(3, 7, 12)
    x_padded, x_plain = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out = padded(x_padded)
    assert out.shape == (3, 7, 255) and out.is_contiguous()
    torch.testing.assert_close(out, plain(x_plain))
    weights = torch.randn(3, 7, 255)
    (out * weights).sum().backward()
    (plain(x_plain) * weights).sum().backward()
    torch.testing.assert_close(x_padded.grad, x_plain.grad)
    torch.testing.assert_close(padded.weight.grad, plain.weight.grad)
    if bias:
        torch.testing.assert_close(padded.bias.grad, plain.bias.grad)


def test_parameters_and_checkpoints_are_a_linear_layers() -> None:
    layer = PaddedLinear(4, 255)
    assert isinstance(layer, nn.Linear)
    assert {k: tuple(v.shape) for k, v in layer.state_dict().items()} == {
        "weight": (255, 4), "bias": (255,)}
