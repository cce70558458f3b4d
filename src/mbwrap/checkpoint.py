"""Safe checkpoints: tensors plus JSON metadata, written atomically, loaded without pickle.

A checkpoint is one file written by ``torch.save`` holding only tensors and strings::

    {"mbwrap_format": "<kind>", "format_version": 1, "metadata": "<json>", "tensors": {...}}

It is read back with ``torch.load(weights_only=True)``, which refuses to run code, and
written to a temporary file in the same directory that is renamed over the target, so a
crash never leaves a half-written checkpoint.

What a checkpoint says about itself is checked before it is used: :func:`check_count`,
:func:`check_index` and :func:`check_indices` refuse counters, positions and index
tensors that disagree with the object being restored, with a :class:`CheckpointError`
naming the field, instead of an ``IndexError`` (or a silent wrong row) later.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mbwrap.errors import CheckpointError

FORMAT_VERSION = 1


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and rename the result onto ``path`` atomically.

    The temporary file lives in the target's directory (a rename across filesystems is not
    atomic) and is removed if ``write`` raises.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def save_checkpoint(
    path: str | os.PathLike,
    *,
    kind: str,
    metadata: dict[str, Any],
    tensors: dict[str, torch.Tensor],
) -> Path:
    """Write a checkpoint of ``kind`` (e.g. ``"mbwrap.model"``) atomically.

    :param metadata: JSON-serialisable settings (spaces, hyperparameters, class name).
    :param tensors: name -> tensor; moved to the CPU before writing.
    """
    try:
        text = json.dumps(metadata)
    except TypeError as err:
        raise TypeError(f"metadata: checkpoint metadata must be JSON-serialisable: {err}") from err
    payload = {
        "mbwrap_format": kind,
        "format_version": FORMAT_VERSION,
        "metadata": text,
        "tensors": {name: t.detach().cpu().contiguous() for name, t in tensors.items()},
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(
    path: str | os.PathLike, *, kind: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a checkpoint written by :func:`save_checkpoint`, without executing code.

    :return: ``(metadata, tensors)`` with tensors on the CPU.
    :raises FileNotFoundError: when ``path`` does not exist.
    :raises CheckpointError: when the file is corrupt, foreign, of another kind, or newer.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no checkpoint file at {str(path)!r}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types for bad files
        raise CheckpointError(
            f"{str(path)!r} is not a readable mbwrap checkpoint (expected {kind!r}): "
            f"{type(err).__name__}: {err}"
        ) from err
    if not isinstance(payload, dict) or "mbwrap_format" not in payload:
        raise CheckpointError(
            f"{str(path)!r} is a torch file but not an mbwrap checkpoint (expected {kind!r})"
        )
    if payload["mbwrap_format"] != kind:
        raise CheckpointError(
            f"{str(path)!r} holds a {payload['mbwrap_format']!r} checkpoint, expected {kind!r}"
        )
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{str(path)!r} has format version {version!r}; this mbwrap reads up to "
            f"{FORMAT_VERSION}. Upgrade mbwrap to load it."
        )
    try:
        metadata = json.loads(payload["metadata"])
        tensors = dict(payload["tensors"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{str(path)!r}: checkpoint metadata is corrupt: {err}") from err
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{str(path)!r}: checkpoint metadata is corrupt: not a JSON object")
    if not all(isinstance(t, torch.Tensor) for t in tensors.values()):
        raise CheckpointError(f"{str(path)!r}: checkpoint tensors are corrupt")
    return metadata, tensors


# ---------------------------------------------------------------------- checked fields
def _is_int(value: Any) -> bool:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_count(value: Any, *, name: str) -> int:
    """A counter read from a checkpoint (steps, updates, episodes): an int ``>= 0``.

    :param name: the field, as the error names it (e.g. ``"run.num_timesteps"``).
    :raises CheckpointError: naming ``name`` for a negative number, a float, a bool or
        anything else.
    """
    if not _is_int(value) or int(value) < 0:
        raise CheckpointError(f"{name}: expected a count (an int >= 0), got {value!r}")
    return int(value)


def check_index(value: Any, *, name: str, size: int) -> int:
    """A position read from a checkpoint: an int in ``[0, size)``.

    :raises CheckpointError: naming ``name`` and the range.
    """
    if not _is_int(value) or not 0 <= int(value) < size:
        raise CheckpointError(f"{name}: expected an int in [0, {size}), got {value!r}")
    return int(value)


def check_indices(tensor: Any, *, name: str, size: int) -> torch.Tensor:
    """Indices read from a checkpoint: an integer tensor (or array) with every entry in
    ``[0, size)``.

    :return: the indices as an int64 tensor, on the device they came on.
    :raises CheckpointError: naming ``name``, the range and the first entry outside it.
    """
    tensor = torch.as_tensor(tensor)
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise CheckpointError(f"{name}: expected integer indices, got dtype {tensor.dtype}")
    outside = (tensor < 0) | (tensor >= size)
    if bool(outside.any()):
        first = tensor[outside].reshape(-1)[0].item()
        raise CheckpointError(
            f"{name}: expected indices in [0, {size}), got {first} (one of "
            f"{int(outside.sum())} outside)"
        )
    return tensor.long()
