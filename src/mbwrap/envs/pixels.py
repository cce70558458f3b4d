"""Pixel observations: an env seen through its rendered frames, shrunk to a small image."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

# ITU-R BT.601 luma weights, the usual RGB-to-grayscale conversion (as in OpenCV and PIL).
_LUMA = torch.tensor([0.299, 0.587, 0.114])


def resize_frames(frames: torch.Tensor, size: tuple[int, int], *, grayscale: bool) -> torch.Tensor:
    """Shrink RGB frames by area averaging (each output pixel is the mean of the input
    pixels it covers), optionally to grayscale.

    :param frames: ``[B, H, W, 3]`` uint8.
    :param size: ``(height, width)`` of the output.
    :return: ``[B, height, width, C]`` uint8, ``C = 1`` when ``grayscale`` else 3.
    """
    # Pooling is several times faster on channels-first memory than on the strided view.
    x = frames.permute(0, 3, 1, 2).contiguous().float()
    if grayscale:
        x = (x * _LUMA.to(x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    x = F.interpolate(x, size=size, mode="area")
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


class PixelObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Replace an env's observations by its rendered frame, resized to ``size``.

    The frame comes from ``env.render()`` after every ``reset`` and ``step``, so the env
    must be made with ``render_mode="rgb_array"``. Resizing averages areas with torch
    (no OpenCV), which keeps thin features such as a pole as a faint line rather than
    dropping them as nearest-neighbour sampling would.

    World Models (Ha & Schmidhuber 2018, Section 3.1) feeds its VAE 64x64 RGB frames.
    mbwrap's image models take any size of at least 4 pixels a side (they pad and crop
    back); shrinking frames mainly makes them cheaper.

    :param env: an env with ``render_mode="rgb_array"``.
    :param size: ``(height, width)`` of the observations.
    :param grayscale: one luma channel instead of RGB.
    :raises ValueError: naming ``env`` when its render mode is not ``"rgb_array"``, or
        ``size`` when it is not two positive ints.
    """

    def __init__(
        self,
        env: gym.Env,
        size: tuple[int, int] = (64, 64),  # World Models, Ha & Schmidhuber 2018, Section 3.1
        *,
        grayscale: bool = False,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, size=size, grayscale=grayscale)
        gym.ObservationWrapper.__init__(self, env)
        if env.render_mode != "rgb_array":
            raise ValueError(
                "env: PixelObservation reads frames from env.render(), so the env must be made "
                f"with render_mode='rgb_array', got render_mode={env.render_mode!r}"
            )
        if (
            not isinstance(size, (tuple, list))
            or len(size) != 2
            or not all(isinstance(s, (int, np.integer)) and s > 0 for s in size)
        ):
            raise ValueError(f"size: expected (height, width) as two positive ints, got {size!r}")
        self.size = (int(size[0]), int(size[1]))
        self.grayscale = bool(grayscale)
        channels = 1 if self.grayscale else 3
        # Frames are the observations, so "rgb_array" is the only mode this env works in.
        self.metadata = {**env.metadata, "render_modes": ["rgb_array"]}
        self.observation_space = gym.spaces.Box(0, 255, (*self.size, channels), dtype=np.uint8)

    def observation(self, observation: Any) -> np.ndarray:
        """The current frame: ``[height, width, C]`` uint8 (the env's own observation is
        not used)."""
        frame = self.env.render()
        array = np.asarray(frame)
        if array.ndim != 3 or array.shape[-1] != 3 or array.dtype != np.uint8:
            raise ValueError(
                "env: render() must return an RGB frame [H, W, 3] uint8, got "
                f"shape {array.shape} and dtype {array.dtype}"
            )
        resized = resize_frames(
            torch.from_numpy(np.ascontiguousarray(array))[None], self.size, grayscale=self.grayscale
        )
        return resized[0].numpy()
