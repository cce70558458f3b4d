"""Layers the models share: ensemble layers (``E`` independent networks evaluated in one
batched matrix product) and the residual block of AlphaZero's and MuZero's networks."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

#: Activation names accepted by :class:`EnsembleMLP` (and the models' ``activation``).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,  # "swish" in PETS and MBPO
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
}


class EnsembleLinear(nn.Module):
    """``E`` independent affine maps, applied together with one ``torch.baddbmm``.

    Member ``e`` computes ``x[e] @ weight[e] + bias[e]``; the result equals a loop over
    ``E`` ``nn.Linear`` layers whose ``weight`` is ``self.weight[e].T``.

    Weights are drawn from a normal truncated at two standard deviations with
    ``std = 1 / (2 sqrt(in_features))`` and biases start at zero, the initialisation of
    PETS (Chua et al. 2018) and MBPO (Janner et al. 2019).

    :param ensemble_size: number of members ``E``.
    :param in_features: input width.
    :param out_features: output width.
    :param weight_decay: coefficient of this layer's L2 penalty (see :meth:`decay_loss`).
    """

    def __init__(
        self,
        ensemble_size: int,
        in_features: int,
        out_features: int,
        *,
        weight_decay: float = 0.0,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.ensemble_size = int(ensemble_size)
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.weight_decay = float(weight_decay)
        self.weight = nn.Parameter(
            torch.empty(self.ensemble_size, self.in_features, self.out_features, device=device)
        )
        self.bias = nn.Parameter(
            torch.zeros(self.ensemble_size, 1, self.out_features, device=device)
        )
        std = 1.0 / (2.0 * math.sqrt(self.in_features))
        nn.init.trunc_normal_(self.weight, std=std, a=-2.0 * std, b=2.0 * std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [E, B, in]`` (or ``[B, in]``, shared by every member) -> ``[E, B, out]``."""
        if x.ndim == 2:
            x = x.unsqueeze(0).expand(self.ensemble_size, -1, -1)
        return torch.baddbmm(self.bias, x, self.weight)

    def decay_loss(self) -> torch.Tensor:
        """``weight_decay * sum(weight^2) / 2`` over every member (TensorFlow's
        ``l2_loss``, as MBPO adds it to the loss); biases are not penalised."""
        return self.weight_decay * 0.5 * self.weight.square().sum()

    def extra_repr(self) -> str:
        return (
            f"ensemble_size={self.ensemble_size}, in_features={self.in_features}, "
            f"out_features={self.out_features}, weight_decay={self.weight_decay}"
        )


class EnsembleMLP(nn.Module):
    """``E`` multilayer perceptrons of the same shape, evaluated together.

    ``in -> hidden_sizes[0] -> ... -> hidden_sizes[-1] -> out``, the activation after every
    hidden layer and none after the output layer.

    :param ensemble_size: number of members ``E``.
    :param in_features: input width.
    :param hidden_sizes: widths of the hidden layers.
    :param out_features: output width.
    :param activation: a name in :data:`ACTIVATIONS`.
    :param weight_decay: one L2 coefficient per layer (``len(hidden_sizes) + 1`` of them,
        the output layer last) or one for all layers.
    """

    def __init__(
        self,
        ensemble_size: int,
        in_features: int,
        hidden_sizes: Sequence[int],
        out_features: int,
        *,
        activation: str = "silu",
        weight_decay: float | Sequence[float] = 0.0,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation: expected one of {sorted(ACTIVATIONS)}, got {activation!r}"
            )
        widths = [int(in_features), *(int(h) for h in hidden_sizes), int(out_features)]
        if any(w < 1 for w in widths):
            raise ValueError(f"hidden_sizes: expected positive widths, got {list(hidden_sizes)}")
        decays = layer_decays(weight_decay, len(widths) - 1)
        self.ensemble_size = int(ensemble_size)
        self.layers = nn.ModuleList(
            EnsembleLinear(ensemble_size, fan_in, fan_out, weight_decay=decay, device=device)
            for fan_in, fan_out, decay in zip(widths[:-1], widths[1:], decays, strict=True)
        )
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [E, B, in]`` (or ``[B, in]``, shared) -> ``[E, B, out]``."""
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)

    def decay_loss(self) -> torch.Tensor:
        """Sum of the layers' L2 penalties (a scalar)."""
        return torch.stack([layer.decay_loss() for layer in self.layers]).sum()


def layer_decays(weight_decay: float | Sequence[float], num_layers: int) -> list[float]:
    """Expand ``weight_decay`` (one value, or one per layer) to ``num_layers`` values.

    :raises ValueError: for a sequence of the wrong length or a negative value.
    """
    if isinstance(weight_decay, (int, float)):
        decays = [float(weight_decay)] * num_layers
    else:
        decays = [float(d) for d in weight_decay]
        if len(decays) != num_layers:
            raise ValueError(
                f"weight_decay: expected one value or {num_layers} (one per layer, "
                f"len(hidden_sizes) + 1), got {len(decays)}: {list(weight_decay)}"
            )
    if any(not math.isfinite(d) or d < 0 for d in decays):
        raise ValueError(f"weight_decay: expected finite values >= 0, got {decays}")
    return decays


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a skip connection: the residual tower of
    AlphaGo Zero and AlphaZero (Silver et al. 2017, "Mastering the game of Go without human
    knowledge", Methods) and of MuZero's networks (Schrittwieser et al. 2020, Appendix F).

    :param channels: ``C``, filters of both convolutions (input and output).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [B, C, H, W]`` -> ``[B, C, H, W]``."""
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(y)))
