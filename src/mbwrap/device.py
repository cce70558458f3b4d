"""Device selection: ``device="auto"`` means CUDA when present, else the CPU; and which
code paths a device takes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

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


#: Set to ``1`` to make the CPU take the accelerator's code paths (see
#: :func:`accelerator_paths`), so they are tested where no accelerator is.
FORCE_ACCELERATOR_PATHS_ENV_VAR = "MBWRAP_FORCE_ACCELERATOR_PATHS"

_forced: list[bool] = []


def accelerator_paths(device: torch.device) -> bool:
    """Whether code running on ``device`` takes the accelerator's paths.

    On an accelerator a loop must not read a value back to the host each step (each read
    waits for every queued kernel): the search runs its descent and backup a fixed number
    of levels, and range checks return flags instead of raising. On the CPU reading a flag
    is free, so the CPU stops early and checks eagerly. True off the CPU, and on the CPU
    inside :func:`force_accelerator_paths` or with ``MBWRAP_FORCE_ACCELERATOR_PATHS=1``.
    """
    if device.type != "cpu":
        return True
    if _forced:
        return _forced[-1]
    return os.environ.get(FORCE_ACCELERATOR_PATHS_ENV_VAR, "") == "1"


@contextmanager
def force_accelerator_paths(enabled: bool = True) -> Iterator[None]:
    """Inside, the CPU takes the accelerator's code paths (``enabled=False``: it does not,
    whatever the environment says)."""
    _forced.append(enabled)
    try:
        yield
    finally:
        _forced.pop()


def host_scalars(values: dict[str, torch.Tensor]) -> dict[str, float]:
    """Scalar tensors (one device) -> floats in one copy to the host: a logged step's
    metrics cost one synchronisation on an accelerator, not one each."""
    if not values:
        return {}
    stacked = torch.stack([value.detach().reshape(()).float() for value in values.values()])
    return dict(zip(values, stacked.tolist(), strict=True))
