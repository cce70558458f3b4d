"""MuZero's three networks (Schrittwieser et al. 2020, "Mastering Atari, Go, Chess and
Shogi by Planning with a Learned Model"): representation ``h``, dynamics ``g`` and
prediction ``f``.

``s_0 = h(o)``, ``(r_k, s_k) = g(s_{k-1}, a_k)``, ``(p_k, v_k) = f(s_k)``. Hidden states are
min-max scaled to ``[0, 1]`` after ``h`` and ``g`` (Appendix G), and the value and reward
heads are categorical over the integer support ``-S..S`` of ``h``-transformed scalars
(Appendix F). Vector observations get multilayer perceptrons; image observations
``[C, H, W]`` (or ``[H, W, C]`` with ``channels_last``) a small residual network that
downsamples as the Atari one does (Appendix F). Its convolutions and poolings are padded,
so images of any height and width are taken as they are: the hidden planes are about
``H / 16 x W / 16`` (at least 1 x 1).
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn

from mbwrap.models.layers import ResidualBlock
from mbwrap.transforms import (
    inverse_value_transform,
    scalar_to_two_hot,
    two_hot_to_scalar,
    value_transform,
)

#: MuZero Appendix F: 601 atoms (``S = 300``) for Atari; small tasks need far fewer.
DEFAULT_SUPPORT_SIZE = 300


def scale_hidden_state(state: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Min-max scale each hidden state to ``[0, 1]`` (MuZero Appendix G: the same range as
    the action input).

    :param state: ``[B, ...]``; each row is scaled over all of its features.
    :return: ``[B, ...]``, ``(s - min s) / (max s - min s)`` per row (``eps`` keeps a
        constant row finite).
    """
    flat = state.flatten(1)
    low, high = torch.aminmax(flat, dim=1, keepdim=True)
    return ((flat - low) / (high - low + eps)).view_as(state)


def scale_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward, gradient multiplied by ``scale`` backward (MuZero Appendix G)."""
    return x * scale + x.detach() * (1.0 - scale)


def support(size: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """The integer support ``-size..size``: ``[2 * size + 1]`` floats."""
    return torch.arange(-size, size + 1, dtype=torch.float32, device=device)


def logits_to_scalar(logits: torch.Tensor, support_points: torch.Tensor) -> torch.Tensor:
    """Scalar of a categorical head: ``h^-1(E[softmax(logits)])``.

    :param logits: ``[..., K]``; :param support_points: ``[K]``. :return: ``[...]``.
    """
    return inverse_value_transform(two_hot_to_scalar(torch.softmax(logits, -1), support_points))


def _mlp(sizes: list[int], *, activate_last: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2 or activate_last:
            layers += [nn.LayerNorm(fan_out), nn.ELU()]
    return nn.Sequential(*layers)


class _Downsample(nn.Module):
    """The Atari representation's stem (MuZero Appendix F): a stride-2 convolution, residual
    blocks, another stride-2 convolution, blocks, and two stride-2 average poolings, so
    ``96 x 96`` (or ``84 x 84``) frames become ``6 x 6`` planes."""

    def __init__(self, in_channels: int, channels: int, blocks: int) -> None:
        super().__init__()
        half = max(channels // 2, 1)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, half, 3, stride=2, padding=1),
            nn.ReLU(),
            *[ResidualBlock(half) for _ in range(blocks)],
            nn.Conv2d(half, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            *[ResidualBlock(channels) for _ in range(blocks)],
            nn.AvgPool2d(3, stride=2, padding=1),
            *[ResidualBlock(channels) for _ in range(blocks)],
            nn.AvgPool2d(3, stride=2, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [B, C_in, H, W]`` -> ``[B, channels, ~H/16, ~W/16]``."""
        return self.net(x)


class MuZeroNetworks(nn.Module):
    """Representation, dynamics and prediction networks with categorical heads.

    :param obs_shape: one observation's shape: ``(D,)`` (or any non-image shape, flattened)
        for the MLP networks, ``(C, H, W)`` for the residual ones (``(H, W, C)`` with
        ``channels_last``).
    :param num_actions: ``A``.
    :param kind: ``"mlp"`` or ``"resnet"``; ``"auto"`` picks ``"resnet"`` for 3-d shapes.
    :param hidden_size: MLP: size of the hidden state; resnet: its channels.
    :param layers: MLP: hidden layers of each network (of ``hidden_size`` units); resnet:
        residual blocks per stage.
    :param support_size: ``S``: value and reward heads have ``2 S + 1`` atoms.
    :param downsample: resnet: use the Atari stem (for large frames); otherwise one 3x3
        convolution keeps the input's size.
    :param channels_last: resnet: observations are ``[H, W, C]`` (Gymnasium's image
        layout), moved to ``[C, H, W]`` inside :meth:`represent`.
    """

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        num_actions: int,
        *,
        kind: str = "auto",
        hidden_size: int = 64,
        layers: int = 2,
        support_size: int = DEFAULT_SUPPORT_SIZE,
        downsample: bool = True,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if kind == "auto":
            kind = "resnet" if len(obs_shape) == 3 else "mlp"
        if kind not in ("mlp", "resnet"):
            raise ValueError(f"kind: expected 'auto', 'mlp' or 'resnet', got {kind!r}")
        if kind == "resnet" and len(obs_shape) != 3:
            raise ValueError(f"obs_shape: kind='resnet' needs (C, H, W), got {obs_shape!r}")
        if channels_last and kind != "resnet":
            raise ValueError(
                f"channels_last: only the resnet networks read images, got kind={kind!r}"
            )
        for name, value, low in (("num_actions", num_actions, 1), ("hidden_size", hidden_size, 1),
                                 ("layers", layers, 0), ("support_size", support_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.num_actions = num_actions
        self.kind = kind
        self.hidden_size = hidden_size
        self.layers = layers
        self.support_size = support_size
        self.downsample = downsample
        self.channels_last = bool(channels_last)
        atoms = 2 * support_size + 1
        self.register_buffer("support", support(support_size), persistent=False)
        if kind == "mlp":
            obs_dim = int(torch.tensor(self.obs_shape).prod())
            width = [hidden_size] * layers
            self.representation = _mlp([obs_dim, *width, hidden_size], activate_last=False)
            self.dynamics_state = _mlp(
                [hidden_size + num_actions, *width, hidden_size], activate_last=False
            )
            self.reward_head = _mlp([hidden_size, *width, atoms], activate_last=False)
            self.trunk = _mlp([hidden_size, *width], activate_last=True)
            self.policy_head = nn.Linear(hidden_size, num_actions)
            self.value_head = nn.Sequential(nn.Linear(hidden_size, atoms))
        else:
            channels = hidden_size
            image = self._channels_first_shape()
            stem: nn.Module = (
                _Downsample(image[0], channels, max(layers, 1)) if downsample
                else nn.Sequential(nn.Conv2d(image[0], channels, 3, padding=1), nn.ReLU())
            )
            self.representation = nn.Sequential(
                stem, *[ResidualBlock(channels) for _ in range(layers)]
            )
            with torch.no_grad():
                plane = self.representation(torch.zeros(1, *image)).shape[-2:]
            self.plane_shape = tuple(plane)
            flat = 2 * plane[0] * plane[1]
            self.dynamics_state = nn.Sequential(
                nn.Conv2d(channels + num_actions, channels, 3, padding=1),
                nn.ReLU(),
                *[ResidualBlock(channels) for _ in range(layers)],
            )
            self.reward_head = nn.Sequential(
                nn.Conv2d(channels, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(flat, atoms)
            )
            self.trunk = nn.Sequential(*[ResidualBlock(channels) for _ in range(layers)])
            self.policy_head = nn.Sequential(
                nn.Conv2d(channels, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(flat, num_actions)
            )
            self.value_head = nn.Sequential(
                nn.Conv2d(channels, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(flat, atoms)
            )
        # Start with zero value and reward predictions (uniform over the support is not 0).
        for layer in (self.value_head[-1], self.reward_head[-1]):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def get_config(self) -> dict[str, Any]:
        """JSON-able constructor keywords."""
        return {
            "obs_shape": list(self.obs_shape), "num_actions": self.num_actions,
            "kind": self.kind, "hidden_size": self.hidden_size, "layers": self.layers,
            "support_size": self.support_size, "downsample": self.downsample,
            "channels_last": self.channels_last,
        }

    def _channels_first_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image observation."""
        if self.channels_last:
            height, width, channels = self.obs_shape
            return channels, height, width
        channels, height, width = self.obs_shape
        return channels, height, width

    # ------------------------------------------------------------------ the three functions
    def represent(self, obs: torch.Tensor) -> torch.Tensor:
        """``h``: ``obs [B, *obs_shape]`` (float) -> scaled hidden state ``[B, *state]``."""
        x = obs.float()
        if self.kind == "mlp":
            x = x.flatten(1)
        elif self.channels_last:
            x = x.permute(0, 3, 1, 2)
        return scale_hidden_state(self.representation(x))

    def dynamics(
        self, state: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``g``: ``state [B, *state]``, ``action [B]`` long -> ``(next state, reward
        logits [B, 2S+1])``."""
        one_hot = nn.functional.one_hot(action.long(), self.num_actions).to(state.dtype)
        if self.kind == "mlp":
            x = torch.cat([state, one_hot], -1)
        else:
            planes = one_hot[:, :, None, None].expand(-1, -1, *state.shape[-2:])
            x = torch.cat([state, planes], 1)
        next_state = self.dynamics_state(x)
        if self.kind == "resnet":
            next_state = next_state + state  # the dynamics is a residual tower too
        next_state = scale_hidden_state(next_state)
        return next_state, self.reward_head(next_state)

    def predict(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``f``: ``state [B, *state]`` -> ``(policy logits [B, A], value logits [B, 2S+1])``."""
        x = self.trunk(state)
        return self.policy_head(x), self.value_head(x)

    def to_scalar(self, logits: torch.Tensor) -> torch.Tensor:
        """``[..., 2S+1]`` value or reward logits -> ``[...]`` scalars."""
        return logits_to_scalar(logits, self.support)


# ---------------------------------------------------------------------- training losses
def categorical_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``-sum_k target_k log softmax(logits)_k``: ``[..., K]`` -> ``[...]``."""
    return -(target * torch.log_softmax(logits, -1)).sum(-1)


def muzero_losses(
    policy_logits: torch.Tensor,
    value_logits: torch.Tensor,
    reward_logits: torch.Tensor,
    batch: Any,
    support: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Per-position losses of an unroll (MuZero Appendix G), each ``[B]``.

    Step ``k >= 1`` counts ``1 / K`` (the paper scales those gradients by ``1 / K``).
    Value and reward are cross-entropies against two-hot projections of ``h(z)`` and
    ``h(u)``; the policy a cross-entropy against the search policy.

    :param policy_logits: ``[B, K + 1, A]``; :param value_logits, reward_logits:
        ``[B, K + 1, 2S + 1]``; :param batch: a
        :class:`~mbwrap.buffers.prioritized.PrioritizedBatch`; :param support: ``[2S + 1]``.
    """
    steps = policy_logits.shape[1]
    scale = torch.full((steps,), 1.0 / max(steps - 1, 1), device=policy_logits.device)
    scale[0] = 1.0
    value_target = scalar_to_two_hot(value_transform(batch.target_values), support)
    reward_target = scalar_to_two_hot(value_transform(batch.target_rewards), support)
    value = categorical_cross_entropy(value_logits, value_target) * batch.value_mask
    reward = categorical_cross_entropy(reward_logits, reward_target) * batch.reward_mask
    policy = categorical_cross_entropy(policy_logits, batch.target_policies) * batch.policy_mask
    return {
        "value": (value * scale).sum(1),
        "reward": (reward * scale).sum(1),
        "policy": (policy * scale).sum(1),
    }
