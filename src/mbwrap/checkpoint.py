"""Safe checkpoints: tensors plus JSON metadata, written atomically, loaded without pickle.

A checkpoint is one file written by ``torch.save`` holding only tensors and strings::

    {"mbwrap_format": "<kind>", "format_version": 1, "metadata": "<json>", "tensors": {...}}

It is read back with ``torch.load(weights_only=True)``, which refuses to run code, and
written to a temporary file in the same directory that is renamed over the target, so a
crash never leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
