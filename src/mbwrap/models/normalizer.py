"""Per-feature standardisation of network inputs and targets."""

from __future__ import annotations

import torch


class Normalizer(torch.nn.Module):
    """Standardises features to zero mean and unit variance: ``(x - mean) / std``.

    ``mean`` and ``std`` are (persistent) buffers, so they travel with the model's
    ``state_dict`` and a saved model normalises exactly as it did when it was fitted.
    Before :meth:`fit` it is the identity (``mean = 0``, ``std = 1``).

    :param dim: number of features ``D``.
    :param min_std: a feature whose standard deviation is below this gets ``std = 1``.
        A (near-)constant feature carries no information, and dividing by its tiny
        spread would turn any later deviation (or float32 rounding) into a huge input.
        PETS and MBPO do the same with a threshold of ``1e-12`` (Chua et al. 2018;
        Janner et al. 2019, ``StandardScaler``); ``1e-6`` is used here since statistics
        of float32 data are only good to about that relative precision.
    """

    def __init__(self, dim: int, *, min_std: float = 1e-6, device: torch.device | None = None):
        super().__init__()
        self.dim = int(dim)
        self.min_std = float(min_std)
        self.register_buffer("mean", torch.zeros(self.dim, device=device))
        self.register_buffer("std", torch.ones(self.dim, device=device))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Set ``mean`` and ``std`` from data ``x: [N, D]`` (statistics in float64)."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x: expected shape (N, {self.dim}), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError("x: cannot fit a Normalizer on zero samples")
        x64 = x.double()
        mean = x64.mean(0)
        std = x64.std(0, correction=0)
        std = torch.where(std < self.min_std, torch.ones_like(std), std)
        self.mean.copy_(mean.to(self.mean.dtype))
        self.std.copy_(std.to(self.std.dtype))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [..., D] -> (x - mean) / std``, same shape."""
        return (x - self.mean) / self.std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`: ``x: [..., D] -> x * std + mean``."""
        return x * self.std + self.mean

    def extra_repr(self) -> str:
        return f"dim={self.dim}, min_std={self.min_std}"
