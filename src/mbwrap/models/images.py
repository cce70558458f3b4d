"""Image observations: which axis holds the channels, and padding to a network's grid.

**Layout rule.** A ``uint8`` ``Box`` of rank 3, shape ``(a, b, c)``, is an image when an
end axis is a plausible channel axis: at most :data:`MAX_CHANNELS` entries, while the
two other axes have at least :data:`MIN_IMAGE_SIZE` pixels each. ``HWC`` (channels
last, Gymnasium's convention, e.g. ``(210, 160, 3)``) and ``CHW`` (channels first, e.g.
Atari frame stacks ``(4, 84, 84)``) are both recognised; when both readings fit, the
shorter end axis holds the channels, and on a tie the last one does. Any other shape
has no channel layout an image network could read.

**Any size.** Convolutional encoders halve the image a fixed number of times, so they
pad it at the bottom and right to the next size the network divides evenly
(:func:`pad_to`); decoders produce that padded size and crop it back (:func:`crop_to`),
so reconstructions have exactly the space's shape and the padding is never scored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mbwrap.errors import UnsupportedSpaceError

#: Smallest height and width of an image: below it the channel axis is ambiguous and a
#: convolution stack sees hardly more than its own padding.
MIN_IMAGE_SIZE = 4
#: Most channels of an image: up to 8 stacked RGB frames or 32 stacked grey ones.
MAX_CHANNELS = 32


@dataclass(frozen=True)
class ImageLayout:
    """Where the channels of an image space are.

    :param channels: ``C``.
    :param height: ``H``.
    :param width: ``W``.
    :param channels_last: ``True`` for ``[H, W, C]``, ``False`` for ``[C, H, W]``.
    """

    channels: int
    height: int
    width: int
    channels_last: bool

    def to_channels_first(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, *image_shape]`` in this layout -> ``[N, C, H, W]``."""
        return x.permute(0, 3, 1, 2) if self.channels_last else x

    def from_channels_first(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, C, H, W]`` -> ``[N, *image_shape]`` in this layout."""
        return x.permute(0, 2, 3, 1) if self.channels_last else x


def find_image_layout(shape: tuple[int, ...]) -> ImageLayout | None:
    """The layout of a rank-3 image ``shape`` by the module's rule, ``None`` if none fits."""
    if len(shape) != 3:
        return None
    a, b, c = (int(d) for d in shape)
    last = c <= MAX_CHANNELS and min(a, b) >= MIN_IMAGE_SIZE
    first = a <= MAX_CHANNELS and min(b, c) >= MIN_IMAGE_SIZE
    if last and (not first or c <= a):
        return ImageLayout(c, a, b, channels_last=True)
    if first:
        return ImageLayout(a, b, c, channels_last=False)
    return None


def image_layout(shape: tuple[int, ...], *, name: str) -> ImageLayout:
    """The layout of a rank-3 image ``shape`` by the module's rule.

    :param name: the argument the shape belongs to, for the error.
    :raises UnsupportedSpaceError: naming ``name`` when no channel layout fits.
    """
    layout = find_image_layout(shape)
    if layout is None:
        raise UnsupportedSpaceError(
            f"{name}: uint8 images need a channel axis first or last ([C, H, W] or "
            f"[H, W, C]) with at most {MAX_CHANNELS} channels and a height and width of at "
            f"least {MIN_IMAGE_SIZE} pixels, got shape {tuple(int(d) for d in shape)}"
        )
    return layout


def next_multiple(size: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is at least ``size``."""
    return multiple * math.ceil(size / multiple)


def pad_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Zero-pad maps ``[N, C, H, W]`` at the bottom and right to ``[N, C, height, width]``.

    Zeros are what the convolutions' own padding adds at the other borders. Maps that
    already have that size are returned as they are (no copy).
    """
    if x.shape[-2:] == (height, width):
        return x
    return F.pad(x, (0, width - x.shape[-1], 0, height - x.shape[-2]))


def crop_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The top-left ``height x width`` of maps ``[..., H, W]``: undoes :func:`pad_to`."""
    return x[..., :height, :width]
