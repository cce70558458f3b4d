"""Tests of mbwrap.models.layers: ensemble layers equal independent per-member layers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mbwrap.models.layers import EnsembleLinear, EnsembleMLP, layer_decays


def test_ensemble_linear_equals_a_loop_of_nn_linear():
    torch.manual_seed(0)
    layer = EnsembleLinear(3, 4, 5)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(3, 7, 4)
    out = layer(x)
    assert out.shape == (3, 7, 5)
    for e in range(3):
        linear = nn.Linear(4, 5)
        with torch.no_grad():
            linear.weight.copy_(layer.weight[e].T)
            linear.bias.copy_(layer.bias[e, 0])
        torch.testing.assert_close(out[e], linear(x[e]))


def test_shared_input_is_given_to_every_member():
    torch.manual_seed(0)
    layer = EnsembleLinear(2, 3, 4)
    x = torch.randn(6, 3)
    torch.testing.assert_close(layer(x), layer(x.expand(2, 6, 3)))


def test_members_learn_independently():
    torch.manual_seed(0)
    layer = EnsembleLinear(2, 3, 4)
    layer(torch.randn(2, 5, 3))[0].sum().backward()
    assert layer.weight.grad[0].abs().sum() > 0
    assert layer.weight.grad[1].abs().sum() == 0


def test_initialisation_is_the_truncated_normal_of_pets():
    torch.manual_seed(0)
    layer = EnsembleLinear(4, 100, 200)
    std = 1 / (2 * math.sqrt(100))  # 0.05
    assert layer.weight.abs().max() <= 2 * std + 1e-7
    # A normal truncated at 2 std has a standard deviation of about 0.88 std.
    assert layer.weight.std().item() == pytest.approx(0.88 * std, rel=0.05)
    assert torch.count_nonzero(layer.bias) == 0


def test_decay_loss_is_half_the_squared_weights_times_the_coefficient():
    layer = EnsembleLinear(2, 3, 4, weight_decay=1e-4)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.fill_(5.0)  # biases are not penalised
    # 2 * 3 * 4 = 24 ones: 1e-4 * 24 / 2
    assert layer.decay_loss().item() == pytest.approx(1.2e-3)


def test_ensemble_mlp_equals_per_member_networks():
    torch.manual_seed(0)
    mlp = EnsembleMLP(2, 3, [8, 8], 2, activation="silu")
    x = torch.randn(2, 5, 3)
    out = mlp(x)
    assert out.shape == (2, 5, 2)
    for e in range(2):
        h = x[e]
        for i, layer in enumerate(mlp.layers):
            h = h @ layer.weight[e] + layer.bias[e]
            if i < len(mlp.layers) - 1:
                h = torch.nn.functional.silu(h)
        torch.testing.assert_close(out[e], h)


def test_ensemble_mlp_per_layer_decays_in_order():
    mbpo = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)
    mlp = EnsembleMLP(7, 10, [200] * 4, 12, weight_decay=mbpo)
    assert [layer.weight_decay for layer in mlp.layers] == list(mbpo)
    assert [tuple(layer.weight.shape) for layer in mlp.layers] == [
        (7, 10, 200),
        (7, 200, 200),
        (7, 200, 200),
        (7, 200, 200),
        (7, 200, 12),
    ]
    expected = sum(
        d * 0.5 * layer.weight.square().sum() for d, layer in zip(mbpo, mlp.layers, strict=True)
    )
    torch.testing.assert_close(mlp.decay_loss(), expected)


def test_ensemble_mlp_without_hidden_layers_is_affine():
    mlp = EnsembleMLP(1, 3, [], 2)
    assert len(mlp.layers) == 1


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match=r"^weight_decay: expected one value or 3"):
        EnsembleMLP(2, 3, [4, 4], 1, weight_decay=[1e-4, 1e-4])
    with pytest.raises(ValueError, match=r"^weight_decay: expected finite values >= 0"):
        layer_decays(-1.0, 2)
    with pytest.raises(ValueError, match=r"^activation:"):
        EnsembleMLP(2, 3, [4], 1, activation="sigmoidish")
    assert layer_decays(0.5, 3) == [0.5, 0.5, 0.5]


def test_residual_block_is_a_skip_around_two_convolutions():
    from mbwrap.models import muzero_nets
    from mbwrap.models.layers import ResidualBlock
    from mbwrap.networks import policy_value

    # One class for AlphaZero's and MuZero's towers.
    assert policy_value.ResidualBlock is ResidualBlock is muzero_nets.ResidualBlock
    torch.manual_seed(0)
    block = ResidualBlock(4).eval()
    x = torch.randn(2, 4, 5, 6)
    assert block(x).shape == (2, 4, 5, 6)
    with torch.no_grad():
        block.conv2.weight.zero_()  # the second convolution adds nothing: relu(x) is left
    torch.testing.assert_close(block(x), torch.relu(x))
