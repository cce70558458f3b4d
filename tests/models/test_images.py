"""The image layout rule, padding and cropping (mbwrap.models.images), and the image CNN's
stages for any size (mbwrap.models.encoders)."""

from __future__ import annotations

import pytest
import torch

from mbwrap.errors import UnsupportedSpaceError
from mbwrap.models.encoders import cnn_stages
from mbwrap.models.images import (
    ImageLayout,
    crop_to,
    find_image_layout,
    image_layout,
    next_multiple,
    pad_to,
)


@pytest.mark.parametrize(
    ("shape", "layout"),
    [
        ((210, 160, 3), ImageLayout(3, 210, 160, channels_last=True)),  # Atari RGB
        ((4, 84, 84), ImageLayout(4, 84, 84, channels_last=False)),  # Atari frame stack
        ((84, 84, 4), ImageLayout(4, 84, 84, channels_last=True)),
        ((37, 53, 1), ImageLayout(1, 37, 53, channels_last=True)),
        ((1, 37, 53), ImageLayout(1, 37, 53, channels_last=False)),
        ((12, 64, 64), ImageLayout(12, 64, 64, channels_last=False)),  # 4 RGB frames
        ((3, 4, 4), ImageLayout(3, 4, 4, channels_last=False)),  # HWC would be 3 high
        ((8, 8, 8), ImageLayout(8, 8, 8, channels_last=True)),  # a tie: channels last
        ((5, 40, 6), ImageLayout(5, 40, 6, channels_last=False)),  # the shorter end axis
    ],
)
def test_layout_rule_by_hand(shape, layout):
    assert find_image_layout(shape) == layout
    assert image_layout(shape, name="space") == layout


@pytest.mark.parametrize("shape", [(40, 40, 40), (3, 2, 3), (64, 3, 64), (64, 64), (64,)])
def test_shapes_without_a_channel_layout(shape):
    assert find_image_layout(shape) is None
    with pytest.raises(UnsupportedSpaceError, match=r"observation_space\['cam'\]: .*channel"):
        image_layout(shape, name="observation_space['cam']")


def test_layout_moves_channels_first_and_back():
    hwc = ImageLayout(3, 5, 7, channels_last=True)
    x = torch.arange(2 * 5 * 7 * 3).reshape(2, 5, 7, 3)
    first = hwc.to_channels_first(x)
    assert first.shape == (2, 3, 5, 7) and first[1, 2, 4, 6] == x[1, 4, 6, 2]
    assert torch.equal(hwc.from_channels_first(first), x)
    chw = ImageLayout(3, 5, 7, channels_last=False)
    assert chw.to_channels_first(first) is first


def test_pad_then_crop_is_the_identity_and_pads_with_zeros():
    x = torch.rand(2, 3, 37, 53)
    padded = pad_to(x, next_multiple(37, 16), next_multiple(53, 16))
    assert padded.shape == (2, 3, 48, 64)
    assert torch.equal(padded[..., :37, :53], x)
    assert not padded[..., 37:, :].any() and not padded[..., :, 53:].any()
    assert torch.equal(crop_to(padded, 37, 53), x)


@pytest.mark.parametrize(
    ("size", "stages"),
    [((16, 16), 4), ((64, 64), 4), ((32, 48), 4), ((84, 84), 5), ((96, 96), 5),
     ((128, 64), 5), ((210, 160), 6), ((256, 256), 6)],
)
def test_cnn_stages_keep_4_up_to_64_pixels_then_one_per_doubling(size, stages):
    # Maps after the stages are at most 4 pixels a side above 64 (DreamerV3's minres).
    assert cnn_stages(*size) == stages
    longest = next_multiple(max(size), 2**stages) >> stages
    assert longest <= 4 or stages == 4
