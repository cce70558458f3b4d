"""AlphaZero's policy-value network: board planes in, move logits and a value out."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# ResidualBlock lives in layers (shared with MuZero); mbwrap.models re-exports it from here.
from mbwrap.models.layers import ResidualBlock

__all__ = ["PolicyValueNet", "ResidualBlock"]


class PolicyValueNet(nn.Module):
    """``f(s) = (p, v)``: move logits and the value for the player to move.

    ``kind="resnet"`` follows AlphaZero (Silver et al. 2018, Methods; the architecture of
    AlphaGo Zero): a 3x3 convolution, a tower of residual blocks, a policy head (1x1
    convolution with 2 filters, then a linear layer to the moves) and a value head (1x1
    convolution with 1 filter, a hidden layer of 256, then ``tanh``). The paper uses 19
    or 39 blocks of 256 filters; small boards need far less (``blocks``, ``channels``).
    ``kind="mlp"`` is a multilayer perceptron on the flattened planes, for tiny boards.

    :param obs_shape: ``(H, W, planes)``, PettingZoo's board observation layout.
    :param num_actions: ``A``.
    :param channels: filters per convolution (resnet) or units per layer (mlp).
    :param blocks: residual blocks (resnet) or hidden layers (mlp).
    :param value_hidden: units of the value head's hidden layer (256 in the paper).
    """

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        num_actions: int,
        *,
        kind: str = "resnet",
        channels: int = 64,
        blocks: int = 4,
        value_hidden: int = 256,
    ) -> None:
        super().__init__()
        if kind not in ("resnet", "mlp"):
            raise ValueError(f"kind: expected 'resnet' or 'mlp', got {kind!r}")
        for name, value in (("channels", channels), ("blocks", blocks),
                            ("value_hidden", value_hidden), ("num_actions", num_actions)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
        if len(obs_shape) != 3:
            raise ValueError(f"obs_shape: expected (H, W, planes), got {tuple(obs_shape)}")
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.num_actions = int(num_actions)
        self.kind = kind
        self.channels, self.blocks, self.value_hidden = channels, blocks, value_hidden
        height, width, planes = self.obs_shape
        cells = height * width
        if kind == "resnet":
            self.stem = nn.Sequential(
                nn.Conv2d(planes, channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
            )
            self.tower = nn.Sequential(*(ResidualBlock(channels) for _ in range(blocks)))
            self.policy_head = nn.Sequential(
                nn.Conv2d(channels, 2, 1, bias=False), nn.BatchNorm2d(2), nn.ReLU(),
                nn.Flatten(), nn.Linear(2 * cells, num_actions),
            )
            self.value_head = nn.Sequential(
                nn.Conv2d(channels, 1, 1, bias=False), nn.BatchNorm2d(1), nn.ReLU(),
                nn.Flatten(), nn.Linear(cells, value_hidden), nn.ReLU(),
                nn.Linear(value_hidden, 1),
            )
        else:
            layers: list[nn.Module] = [nn.Flatten()]
            width_in = cells * planes
            for _ in range(blocks):
                layers += [nn.Linear(width_in, channels), nn.ReLU()]
                width_in = channels
            self.stem = nn.Sequential(*layers)
            self.tower = nn.Identity()
            self.policy_head = nn.Linear(channels, num_actions)
            self.value_head = nn.Sequential(
                nn.Linear(channels, value_hidden), nn.ReLU(), nn.Linear(value_hidden, 1)
            )

    def get_config(self) -> dict[str, Any]:
        """Constructor keywords (JSON-able)."""
        return {"obs_shape": list(self.obs_shape), "num_actions": self.num_actions,
                "kind": self.kind, "channels": self.channels, "blocks": self.blocks,
                "value_hidden": self.value_hidden}

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``obs: [B, H, W, planes]`` (any numeric dtype) -> logits ``[B, A]``, value ``[B]``
        in ``[-1, 1]``."""
        x = obs.float()
        if self.kind == "resnet":
            x = x.permute(0, 3, 1, 2)
        features = self.tower(self.stem(x))
        logits = self.policy_head(features)
        value = torch.tanh(self.value_head(features)).squeeze(-1)
        return logits, value
