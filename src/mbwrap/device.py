"""Device selection: ``device="auto"`` means CUDA when present, else the CPU."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a ``torch.device`` into a device.

    :param device: ``"auto"`` picks ``cuda`` when ``torch.cuda.is_available()``, else ``cpu``.
    :raises ValueError: if the string is not a device torch knows.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got {device!r}"
        ) from err


def make_generator(device: torch.device, seed: int | None) -> torch.Generator:
    """A ``torch.Generator`` on ``device``, seeded with ``seed`` (or from fresh entropy)."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return generator
