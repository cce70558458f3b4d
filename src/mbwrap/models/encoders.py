"""Observation encoders and decoders that route each observation entry by its space.

DreamerV3 (Hafner et al. 2023, Appendix) encodes vectors with an MLP after ``symlog``
and images with a CNN of stride-2 convolutions; the decoder mirrors them: vectors are
predicted in symlog space under a squared error, images under a squared error on pixels
scaled to ``[-0.5, 0.5]``. A ``Dict`` observation gets one encoder per entry whose
embeddings are concatenated, and one decoder head per entry.

Routing of a space (or a ``Dict`` entry), by its shape and dtype only:

==========================================  ============================================
``Box`` of rank 1, any float dtype          vector: MLP on ``symlog(x)``
``Box`` of rank 1, uint8 (e.g. Atari RAM)   bytes: MLP on ``x / 255``
``Discrete``                                one-hot, then MLP
``Box`` uint8 of rank 3, with a channel     image, ``[H, W, C]`` or ``[C, H, W]``, any
axis first or last                          height and width of at least 4 pixels
anything else                               :class:`~mbwrap.errors.UnsupportedSpaceError`
==========================================  ============================================

The channel axis of an image is found by the rule of :mod:`mbwrap.models.images`: an
end axis of at most 32 entries with at least 4 pixels along the two others; the shorter
end axis when both fit, the last on a tie. A uint8 ``Box`` of rank 3 that fits neither
layout is refused, as is a uint8 ``Box`` of rank 2 (it has no channel axis).

**Any image size.** The CNN halves the image ``stages`` times: 4 (DreamerV3's, 64 x 64
to 4 x 4) for images up to 64 pixels a side, one more per doubling of the longer side
beyond that, so that the last maps stay about 4 pixels a side (Atari's native 210 x 160
frames take 6 stages, 256 x 192 padded, to 4 x 3 maps). Frames are zero-padded at the
bottom and right to a multiple of ``2 ** stages``; the decoder produces the padded size
and crops it back, so reconstructions have exactly the space's shape.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from mbwrap.errors import SpaceMismatchError, UnsupportedSpaceError
from mbwrap.models.images import crop_to, image_layout, next_multiple, pad_to
from mbwrap.models.padded_linear import PaddedLinear
from mbwrap.transforms import symexp, symlog

Observation = torch.Tensor | Mapping[str, torch.Tensor]

#: DreamerV3: four stride-2 convolutions take a 64 x 64 image to 4 x 4.
CNN_STAGES = 4
#: DreamerV3's ``minres``: larger images get more stages, until the maps are this small.
MIN_RESOLUTION = 4
#: Channel widths double per stage up to ``depth * 2 ** (CNN_STAGES - 1)`` (DreamerV3's
#: widest), so that extra stages for large images do not keep doubling them.
MAX_WIDTH_EXPONENT = CNN_STAGES - 1


def mlp(in_features: int, hidden: int, layers: int, out_features: int | None = None) -> nn.Module:
    """``layers`` x (Linear, LayerNorm, SiLU), then an optional Linear to ``out_features``.

    DreamerV3's dense blocks: layer normalisation and SiLU after every hidden layer.
    """
    modules: list[nn.Module] = []
    width = in_features
    for _ in range(layers):
        modules += [nn.Linear(width, hidden, bias=False), nn.LayerNorm(hidden), nn.SiLU()]
        width = hidden
    if out_features is not None:
        # Padded: DreamerV3's 255-bin heads are twice as fast on the CPU at 256 outputs.
        modules.append(PaddedLinear(width, out_features))
    return nn.Sequential(*modules)


def cnn_stages(height: int, width: int) -> int:
    """Stride-2 stages of the image CNN for ``height x width`` images: :data:`CNN_STAGES`,
    plus one per doubling of the longer side beyond ``MIN_RESOLUTION * 2 ** CNN_STAGES``
    (64) pixels."""
    longest = max(height, width)
    return max(CNN_STAGES, math.ceil(math.log2(longest / MIN_RESOLUTION)))


def _stage_width(depth: int, stage: int) -> int:
    """Output channels of stage ``stage`` (0-based) of the image CNN."""
    return depth * 2 ** min(stage, MAX_WIDTH_EXPONENT)


def entry_kind(space: spaces.Space, key: str = "") -> str:
    """``"vector"``, ``"bytes"``, ``"discrete"`` or ``"image"`` for one (non-Dict) space,
    decided by its shape and dtype (see the module's table).

    :param key: the entry's label in the observation space (``"['camera']"``), for errors.
    :raises UnsupportedSpaceError: naming ``observation_space{key}`` for any other space,
        and for a uint8 image shape whose channel axis cannot be found.
    """
    if isinstance(space, spaces.Discrete):
        return "discrete"
    if isinstance(space, spaces.Box):
        if len(space.shape) == 1 and np.issubdtype(space.dtype, np.floating):
            return "vector"
        if len(space.shape) == 1 and space.dtype == np.uint8:
            return "bytes"
        if len(space.shape) == 3 and space.dtype == np.uint8:
            image_layout(space.shape, name=f"observation_space{key}")
            return "image"
    raise UnsupportedSpaceError(
        f"observation_space{key}: the encoder takes float or uint8 Box vectors [D], "
        f"Discrete values and uint8 Box images [H, W, C] or [C, H, W]; got {space!r}"
    )


def _entries(space: spaces.Space) -> dict[str, spaces.Space]:
    """The observation entries of ``space``: its own items for a Dict, else ``{"": space}``."""
    if isinstance(space, spaces.Dict):
        if not space.spaces:
            raise UnsupportedSpaceError("observation_space: got an empty Dict")
        return dict(space.spaces)
    return {"": space}


def _label(key: str) -> str:
    return f"[{key!r}]" if key else ""


class _ImageEncoder(nn.Module):
    """DreamerV3's image CNN for any image size: ``[N, *image_shape]`` uint8 ->
    ``[N, out_features]``, after zero padding to a multiple of ``2 ** stages``."""

    def __init__(self, space: spaces.Box, depth: int) -> None:
        super().__init__()
        self.layout = image_layout(space.shape, name="observation_space")
        height, width = self.layout.height, self.layout.width
        stages = cnn_stages(height, width)
        self.padded = (next_multiple(height, 2**stages), next_multiple(width, 2**stages))
        layers: list[nn.Module] = []
        width_in = self.layout.channels
        for stage in range(stages):
            out = _stage_width(depth, stage)
            layers += [nn.Conv2d(width_in, out, 4, 2, 1, bias=False), _ChannelNorm(out), nn.SiLU()]
            width_in = out
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.out_features = width_in * (self.padded[0] >> stages) * (self.padded[1] >> stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., *image_shape]`` uint8 -> ``[..., out_features]``."""
        lead = x.shape[:-3]
        x = self.layout.to_channels_first(x.reshape(-1, *x.shape[-3:]))
        x = pad_to(x.float() / 255.0 - 0.5, *self.padded)
        return self.net(x).reshape(*lead, -1)


class _ChannelNorm(nn.Module):
    """Layer normalisation over the channels of ``[N, C, H, W]`` maps (DreamerV3's CNNs)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class _ImageDecoder(nn.Module):
    """The mirror of :class:`_ImageEncoder`: features ``[..., F]`` -> the padded image,
    cropped back to the space's exact height and width."""

    def __init__(self, space: spaces.Box, in_features: int, depth: int) -> None:
        super().__init__()
        self.layout = image_layout(space.shape, name="observation_space")
        self.shape = tuple(int(d) for d in space.shape)
        height, width = self.layout.height, self.layout.width
        stages = cnn_stages(height, width)
        padded = (next_multiple(height, 2**stages), next_multiple(width, 2**stages))
        top = _stage_width(depth, stages - 1)
        self.start = (top, padded[0] >> stages, padded[1] >> stages)
        self.project = nn.Linear(in_features, int(np.prod(self.start)))
        layers: list[nn.Module] = []
        width_in = top
        for stage in range(stages - 1, 0, -1):
            out = _stage_width(depth, stage - 1)
            layers += [
                nn.ConvTranspose2d(width_in, out, 4, 2, 1, bias=False),
                _ChannelNorm(out),
                nn.SiLU(),
            ]
            width_in = out
        layers.append(nn.ConvTranspose2d(width_in, self.layout.channels, 4, 2, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``[..., F]`` -> pixel means in ``[-0.5, 0.5]`` scale, ``[..., *image_shape]``."""
        lead = features.shape[:-1]
        x = self.project(features.reshape(-1, features.shape[-1])).reshape(-1, *self.start)
        x = crop_to(self.net(x), self.layout.height, self.layout.width)
        return self.layout.from_channels_first(x).reshape(*lead, *self.shape)


def _check_entry(x: Any, space: spaces.Space, kind: str, key: str, lead: int) -> torch.Tensor:
    """Check one observation entry ``[*lead, *shape]`` against its space."""
    if not isinstance(x, torch.Tensor):
        raise SpaceMismatchError(f"obs{_label(key)}: expected a tensor, got {type(x).__name__}")
    shape = () if kind == "discrete" else tuple(int(d) for d in space.shape)
    if x.ndim != lead + len(shape) or tuple(x.shape[lead:]) != shape:
        raise SpaceMismatchError(
            f"obs{_label(key)}: expected shape [{', '.join(['*'] * lead)}{', ' if lead else ''}"
            f"{', '.join(map(str, shape))}] for {space}, got {tuple(x.shape)}"
        )
    if kind in ("image", "bytes") and x.dtype != torch.uint8:
        what = "pixels" if kind == "image" else "values"
        raise SpaceMismatchError(
            f"obs{_label(key)}: expected uint8 {what} in [0, 255] for {space}, got dtype "
            f"{x.dtype}"
        )
    return x


class ObservationEncoder(nn.Module):
    """Embeds observations ``[*lead, *obs_shape]`` (or a dict of them) as ``[*lead, E]``.

    :param observation_space: a supported space or a ``Dict`` of them.
    :param hidden: width of the vector MLPs (DreamerV3 size S: 512).
    :param layers: hidden layers of the vector MLPs (size S: 2).
    :param cnn_depth: channels of the first convolution, doubled at each stage up to 8
        times as many (size S: 32).
    """

    def __init__(
        self, observation_space: spaces.Space, hidden: int, layers: int, cnn_depth: int
    ) -> None:
        super().__init__()
        self.observation_space = observation_space
        self.kinds = {
            key: entry_kind(space, _label(key))
            for key, space in _entries(observation_space).items()
        }
        self.spaces = _entries(observation_space)
        self.nets = nn.ModuleDict()
        self.out_features = 0
        for key, kind in self.kinds.items():
            space = self.spaces[key]
            if kind == "image":
                net = _ImageEncoder(space, cnn_depth)
                self.out_features += net.out_features
            else:
                width = int(space.n) if kind == "discrete" else int(space.shape[0])
                net = mlp(width, hidden, layers)
                self.out_features += hidden
            self.nets[key or "_"] = net

    def split(self, obs: Observation, lead: int) -> dict[str, torch.Tensor]:
        """Check ``obs`` against the space; return its entries by key."""
        if isinstance(obs, Mapping):
            if set(obs) != set(self.kinds):
                raise SpaceMismatchError(
                    f"obs: expected the keys {sorted(self.kinds)} of the observation space, got "
                    f"{sorted(obs)}"
                )
            items = dict(obs)
        else:
            if "" not in self.kinds:
                raise SpaceMismatchError(
                    f"obs: expected a dict with keys {sorted(self.kinds)}, got {type(obs).__name__}"
                )
            items = {"": obs}
        return {
            key: _check_entry(items[key], self.spaces[key], kind, key, lead)
            for key, kind in self.kinds.items()
        }

    def forward(self, obs: Observation, lead: int = 1) -> torch.Tensor:
        """``obs`` with ``lead`` leading batch/time dims -> ``[*lead, E]``."""
        parts = []
        for key, x in self.split(obs, lead).items():
            kind = self.kinds[key]
            if kind == "discrete":
                start = int(self.spaces[key].start)
                x = F.one_hot(x.long() - start, int(self.spaces[key].n)).float()
            elif kind == "vector":
                x = symlog(x.float())
            elif kind == "bytes":
                x = x.float() / 255.0
            parts.append(self.nets[key or "_"](x))
        return torch.cat(parts, -1)


class ObservationDecoder(nn.Module):
    """Reconstructs observations from model features ``[*lead, F]``.

    :meth:`loss` is DreamerV3's: squared error in symlog space for vectors, on pixels in
    ``[-0.5, 0.5]`` for images (over the space's exact height and width) and on bytes
    scaled to ``[0, 1]``, summed over each entry's elements; cross-entropy for Discrete
    entries.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        in_features: int,
        hidden: int,
        layers: int,
        cnn_depth: int,
    ) -> None:
        super().__init__()
        self.spaces = _entries(observation_space)
        self.kinds = {key: entry_kind(space, _label(key)) for key, space in self.spaces.items()}
        self.nets = nn.ModuleDict()
        for key, kind in self.kinds.items():
            space = self.spaces[key]
            if kind == "image":
                self.nets[key or "_"] = _ImageDecoder(space, in_features, cnn_depth)
            else:
                width = int(space.n) if kind == "discrete" else int(space.shape[0])
                self.nets[key or "_"] = mlp(in_features, hidden, layers, width)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw predictions per entry ``[*lead, *entry_shape]`` (symlog means, pixel means,
        byte means in ``[0, 1]`` scale) or ``[*lead, n]`` logits."""
        return {key: self.nets[key or "_"](features) for key in self.kinds}

    def loss(self, features: torch.Tensor, target: dict[str, torch.Tensor]) -> torch.Tensor:
        """Negative log-likelihood up to constants, ``[*lead]``, summed over entries.

        :param target: the entries of :meth:`ObservationEncoder.split`.
        """
        total = torch.zeros(features.shape[:-1], device=features.device)
        for key, pred in self(features).items():
            kind, x = self.kinds[key], target[key]
            if kind == "image":
                error = (pred - (x.float() / 255.0 - 0.5)) ** 2
                total = total + error.flatten(features.ndim - 1).sum(-1)
            elif kind == "vector":
                total = total + ((pred - symlog(x.float())) ** 2).sum(-1)
            elif kind == "bytes":
                total = total + ((pred - x.float() / 255.0) ** 2).sum(-1)
            else:
                start = int(self.spaces[key].start)
                total = total + F.cross_entropy(
                    pred.flatten(0, -2), (x.long() - start).flatten(), reduction="none"
                ).reshape(total.shape)
        return total

    def decode(self, features: torch.Tensor) -> Observation:
        """Observations in the space's own dtype and scale (a dict for a Dict space)."""
        out: dict[str, torch.Tensor] = {}
        for key, pred in self(features).items():
            kind = self.kinds[key]
            if kind == "image":
                out[key] = ((pred + 0.5) * 255.0).round().clamp(0, 255).to(torch.uint8)
            elif kind == "vector":
                out[key] = symexp(pred)
            elif kind == "bytes":
                space = self.spaces[key]
                low = torch.as_tensor(space.low, device=pred.device)
                high = torch.as_tensor(space.high, device=pred.device)
                value = (pred * 255.0).round().clamp(0, 255).to(torch.uint8)
                out[key] = torch.minimum(torch.maximum(value, low), high)
            else:
                out[key] = pred.argmax(-1) + int(self.spaces[key].start)
        return out[""] if "" in out else out
