"""The convolutional VAE of World Models (Ha & Schmidhuber 2018, "World Models", Appendix
A.1): frames compressed to a small latent ``z``.

The paper's VAE reads 64x64 frames. Frames of any other size (at least
:data:`~mbwrap.models.images.MIN_IMAGE_SIZE` pixels a side) are zero-padded at the bottom
and right to the next size the same layers fit, ``16 m + 48`` pixels (64 for ``m = 1``);
the encoder's last maps then grow with ``m`` and the decoder starts from an ``m``-wide
grid instead of a single pixel, and its output is cropped back to the frame size. At
64x64 the network is exactly the paper's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from mbwrap.device import resolve_device
from mbwrap.errors import SpaceMismatchError
from mbwrap.models.images import MIN_IMAGE_SIZE, crop_to, pad_to

FRAME_SIZE = 64  # World Models, Appendix A.1: the VAE reads 64x64 frames
#: The VAE's four unpadded stride-2 convolutions of kernel 4 and its transposed ones
#: (kernels 5, 5, 6, 6) fit frames of ``GRID_STEP * m + GRID_OFFSET`` pixels exactly.
GRID_STEP, GRID_OFFSET = 16, 48


def check_frames_space(space: spaces.Space, *, name: str) -> int:
    """The channel count (1 or 3) of a space of uint8 ``[H, W, C]`` frames, the VAE's
    input, of any height and width of at least ``MIN_IMAGE_SIZE`` pixels.

    :raises SpaceMismatchError: naming ``name`` for any other space.
    """
    if (
        not isinstance(space, spaces.Box)
        or space.dtype != np.uint8
        or len(space.shape) != 3
        or min(space.shape[:2]) < MIN_IMAGE_SIZE
        or space.shape[2] not in (1, 3)
    ):
        raise SpaceMismatchError(
            f"{name}: World Models reads uint8 frames [H, W, 3] or [H, W, 1] (channels last, "
            f"at least {MIN_IMAGE_SIZE} pixels a side; the paper's are ({FRAME_SIZE}, "
            f"{FRAME_SIZE}, 3): wrap the env in mbwrap.envs.pixels.PixelObservation), got "
            f"{space!r}"
        )
    return int(space.shape[2])


def latent_grid(size: int) -> int:
    """``m``, the width of the decoder's first grid for frames ``size`` pixels wide: the
    smallest ``m >= 1`` with ``16 m + 48 >= size`` (the padded size)."""
    return max(1, -(-(size - GRID_OFFSET) // GRID_STEP))


def _frame_size(value: Any) -> tuple[int, int]:
    """``frame_size`` checked: two ints of at least ``MIN_IMAGE_SIZE``."""
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= MIN_IMAGE_SIZE
            for v in value
        )
    ):
        raise ValueError(
            f"frame_size: expected (height, width), two ints >= {MIN_IMAGE_SIZE}, got {value!r}"
        )
    return int(value[0]), int(value[1])


def kl_to_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean, exp(logvar)) || N(0, I))`` of diagonal Gaussians, summed over the
    latent dimensions.

    :param mean: ``[..., Z]``.
    :param logvar: ``[..., Z]``.
    :return: ``[...]`` in nats.
    """
    return -0.5 * (1.0 + logvar - mean.square() - logvar.exp()).sum(-1)


RECONSTRUCTION_LOSSES = ("mse", "bernoulli")


def vae_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    mean: torch.Tensor,
    logvar: torch.Tensor,
    *,
    kl_tolerance: float,
    reconstruction: str = "mse",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """World Models' VAE loss: a reconstruction term plus a KL held below by free bits.

    Per frame, the reconstruction term sums over the pixels either the squared error of
    ``sigmoid(logits)`` (``"mse"``, World Models' L2 loss) or the pixels' Bernoulli
    cross-entropy (``"bernoulli"``). The second keeps its gradient where the sigmoid
    saturates: on frames that are mostly one flat colour (CartPole's white background) the
    L2 loss drives the output to that colour everywhere and stops learning. The KL term is
    ``max(KL, kl_tolerance * Z)``: a frame whose posterior is already within
    ``kl_tolerance`` nats per latent dimension of the prior is not pushed further (World
    Models' ``vae.py`` takes 0.5).

    :param logits: ``[B, C, H, W]``, the decoder's pre-sigmoid output.
    :param target: ``[B, C, H, W]`` in ``[0, 1]``.
    :param mean: ``[B, Z]`` of the posterior.
    :param logvar: ``[B, Z]`` of the posterior.
    :param reconstruction: ``"mse"`` or ``"bernoulli"``.
    :return: ``(loss, reconstruction term, clamped KL term)``, each a scalar mean over the
        batch.
    """
    if reconstruction == "mse":
        per_pixel = (torch.sigmoid(logits) - target).square()
    elif reconstruction == "bernoulli":
        per_pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    else:
        raise ValueError(
            f"reconstruction: expected one of {RECONSTRUCTION_LOSSES}, got {reconstruction!r}"
        )
    recon = per_pixel.flatten(1).sum(-1)
    floor = kl_tolerance * mean.shape[-1]
    kl = kl_to_standard_normal(mean, logvar).clamp_min(floor)
    return (recon + kl).mean(), recon.mean(), kl.mean()


def frames_to_tensor(
    frames: Any,
    *,
    channels: int,
    device: torch.device,
    name: str = "frames",
    size: tuple[int, int] = (FRAME_SIZE, FRAME_SIZE),
) -> torch.Tensor:
    """Check uint8 ``[B, H, W, C]`` frames (a gymnasium image observation, channels
    last) and turn them into the VAE's input.

    :param frames: ``[B, H, W, C]`` (or one ``[H, W, C]`` frame) uint8, a NumPy array
        or a tensor.
    :param size: the expected ``(H, W)``.
    :return: ``[B, C, H, W]`` float32 in ``[0, 1]`` on ``device``.
    :raises SpaceMismatchError: naming ``name`` for another dtype or shape.
    """
    tensor = frames if torch.is_tensor(frames) else torch.as_tensor(np.asarray(frames))
    if tensor.dtype != torch.uint8:
        raise SpaceMismatchError(
            f"{name}: expected uint8 frames with values 0-255, got dtype {tensor.dtype}"
        )
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(0)
    expected = (*size, channels)
    if tensor.ndim != 4 or tuple(tensor.shape[1:]) != expected:
        raise SpaceMismatchError(
            f"{name}: expected frames of shape [B, {size[0]}, {size[1]}, {channels}] "
            f"(height, width, channels; e.g. from PixelObservation), got {list(tensor.shape)}"
        )
    return tensor.to(device).permute(0, 3, 1, 2).float().div_(255.0)


class ConvVAE(nn.Module):
    """World Models' convolutional VAE ("V").

    Encoder: four convolutions of kernel 4 and stride 2 with ReLU (64 -> 31 -> 14 -> 6 ->
    2 pixels), flattened to the mean and log-variance of ``z``. Decoder: a dense layer to
    ``4 * channels[-1]`` units seen as a 1x1 image, then four transposed convolutions of
    kernels 5, 5, 6, 6 and stride 2 (1 -> 5 -> 13 -> 30 -> 64 pixels), a sigmoid last.
    Trained by :func:`vae_loss`. Other frame sizes are padded to ``16 m + 48`` pixels
    (see the module docstring): the encoder's maps are then ``m + 1`` wide, the
    decoder's first grid ``m`` wide, and its output is cropped to ``frame_size``.

    :param latent_dim: size of ``z`` (World Models: 32).
    :param channels: the encoder's four widths (World Models: 32, 64, 128, 256); the
        decoder mirrors them. Smaller widths train much faster on a CPU.
    :param image_channels: 3 for RGB frames, 1 for grayscale.
    :param frame_size: ``(height, width)`` of the frames (World Models: 64 x 64), each at
        least ``MIN_IMAGE_SIZE``.
    :param kl_tolerance: free nats per latent dimension (World Models: 0.5).
    :param reconstruction: ``"mse"`` (World Models' L2) or ``"bernoulli"`` (for frames
        mostly of one flat colour; see :func:`vae_loss`).
    :param device: ``"auto"`` picks CUDA when present.
    """

    def __init__(
        self,
        latent_dim: int = 32,  # World Models, Appendix A.1
        channels: Sequence[int] = (32, 64, 128, 256),  # World Models, Appendix A.1
        *,
        image_channels: int = 3,
        frame_size: tuple[int, int] = (FRAME_SIZE, FRAME_SIZE),  # World Models, Appendix A.1
        kl_tolerance: float = 0.5,  # World Models' vae.py: kl_tolerance = 0.5
        reconstruction: str = "mse",  # World Models, Section 2.1: L2 distance
        device: str | torch.device = "auto",
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) != 4 or min(channels) < 1:
            raise ValueError(f"channels: expected four positive widths, got {channels!r}")
        if latent_dim < 1:
            raise ValueError(f"latent_dim: expected a positive int, got {latent_dim!r}")
        if image_channels not in (1, 3):
            raise ValueError(f"image_channels: expected 1 or 3, got {image_channels!r}")
        if kl_tolerance < 0:
            raise ValueError(f"kl_tolerance: expected >= 0 nats, got {kl_tolerance!r}")
        self.latent_dim = int(latent_dim)
        self.channels = channels
        self.image_channels = int(image_channels)
        self.frame_size = _frame_size(frame_size)
        #: ``(m_h, m_w)``: the decoder's first grid; frames are padded to ``16 m + 48``.
        self.grid = (latent_grid(self.frame_size[0]), latent_grid(self.frame_size[1]))
        self.padded = tuple(GRID_STEP * m + GRID_OFFSET for m in self.grid)
        self.kl_tolerance = float(kl_tolerance)
        if reconstruction not in RECONSTRUCTION_LOSSES:
            raise ValueError(
                f"reconstruction: expected one of {RECONSTRUCTION_LOSSES}, got {reconstruction!r}"
            )
        self.reconstruction = reconstruction
        c1, c2, c3, c4 = channels
        self.encoder = nn.Sequential(
            nn.Conv2d(image_channels, c1, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(c2, c3, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(c3, c4, 4, stride=2),
            nn.ReLU(),
            nn.Flatten(),
        )
        grid_h, grid_w = self.grid
        flat = c4 * (grid_h + 1) * (grid_w + 1)
        self.to_mean = nn.Linear(flat, latent_dim)
        self.to_logvar = nn.Linear(flat, latent_dim)
        # The paper's decoder input: 4 * c4 channels on a 1x1 grid (m = 1).
        self.from_latent = nn.Linear(latent_dim, 4 * c4 * grid_h * grid_w)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(4 * c4, c3, 5, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(c3, c2, 5, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(c2, c1, 6, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(c1, image_channels, 6, stride=2),
        )
        self.to(resolve_device(device))

    @property
    def device(self) -> torch.device:
        return self.to_mean.weight.device

    def get_config(self) -> dict[str, Any]:
        """JSON-able constructor keywords."""
        return {
            "latent_dim": self.latent_dim,
            "channels": list(self.channels),
            "image_channels": self.image_channels,
            "frame_size": list(self.frame_size),
            "kl_tolerance": self.kl_tolerance,
            "reconstruction": self.reconstruction,
        }

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior of ``z``.

        :param x: ``[B, C, H, W]`` float in ``[0, 1]``, ``(H, W) = frame_size``.
        :return: ``(mean, logvar)``, each ``[B, Z]``.
        """
        features = self.encoder(pad_to(x, *self.padded))
        return self.to_mean(features), self.to_logvar(features)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's pre-sigmoid output: ``[B, Z] -> [B, C, H, W]``, cropped to
        ``frame_size``."""
        grid = self.from_latent(z).reshape(z.shape[0], -1, *self.grid)
        return crop_to(self.decoder(grid), *self.frame_size)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Frames from latents.

        :param z: ``[B, Z]``.
        :return: ``[B, C, H, W]`` in ``[0, 1]``.
        """
        return torch.sigmoid(self.decode_logits(z))

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, sample ``z`` by reparameterisation, decode.

        :param x: ``[B, C, H, W]`` float in ``[0, 1]``.
        :return: ``(reconstruction logits [B, C, H, W], mean [B, Z], logvar [B, Z])``.
        """
        mean, logvar = self.encode(x)
        noise = torch.randn(mean.shape, device=mean.device, generator=generator)
        return self.decode_logits(mean + (0.5 * logvar).exp() * noise), mean, logvar

    def loss(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:func:`vae_loss` on a batch ``x: [B, C, H, W]``: ``(loss, reconstruction, kl)``."""
        logits, mean, logvar = self(x, generator)
        return vae_loss(
            logits,
            x,
            mean,
            logvar,
            kl_tolerance=self.kl_tolerance,
            reconstruction=self.reconstruction,
        )

    @torch.no_grad()
    def encode_frames(
        self, frames: Any, *, batch_size: int = 1024, name: str = "frames"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior of uint8 frames, in chunks of ``batch_size``.

        :param frames: ``[B, H, W, C]`` uint8 (channels last, as gymnasium images).
        :return: ``(mean, logvar)``, each ``[B, Z]`` on :attr:`device`.
        :raises SpaceMismatchError: naming ``name`` for a wrong dtype or shape.
        """
        x = frames_to_tensor(
            frames,
            channels=self.image_channels,
            device=self.device,
            name=name,
            size=self.frame_size,
        )
        parts = [self.encode(chunk) for chunk in x.split(batch_size)]
        return torch.cat([m for m, _ in parts]), torch.cat([v for _, v in parts])

    def fit(
        self,
        frames: torch.Tensor,
        *,
        epochs: int = 10,  # World Models, Appendix A.1: 10 epochs (CarRacing)
        batch_size: int = 100,  # World Models' vae_train.py: batch_size = 100
        learning_rate: float = 1e-4,  # World Models' vae_train.py: learning_rate = 0.0001
        generator: torch.Generator | None = None,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> dict[str, float]:
        """Train on uint8 frames with Adam for ``epochs`` passes in shuffled batches.

        :param frames: ``[N, H, W, C]`` uint8.
        :param optimizer: one kept across fits (its own learning rate applies); ``None``:
            a fresh Adam with ``learning_rate``.
        :return: the last epoch's mean ``loss``, ``reconstruction`` and ``kl``, and
            ``epochs``.
        """
        x_all = frames_to_tensor(
            frames, channels=self.image_channels, device=self.device, size=self.frame_size
        )
        if x_all.shape[0] == 0:
            raise ValueError("frames: expected at least one frame to fit the VAE, got none")
        if optimizer is None:
            optimizer = torch.optim.Adam(self.parameters(), lr=learning_rate)
        totals = torch.zeros(3)
        self.train()
        for _ in range(epochs):
            totals.zero_()
            order = torch.randperm(x_all.shape[0], generator=generator, device=self.device)
            for index in order.split(batch_size):
                loss, reconstruction, kl = self.loss(x_all[index], generator)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                weight = index.numel() / x_all.shape[0]
                totals += weight * torch.stack([loss, reconstruction, kl]).detach().cpu()
        self.eval()
        loss, reconstruction, kl = totals.tolist()
        if not math.isfinite(loss):
            raise FloatingPointError(f"frames: the VAE loss became {loss} while fitting")
        return {"loss": loss, "reconstruction": reconstruction, "kl": kl, "epochs": epochs}
