"""Checks for algorithm authors (mbwrap's own tests run them on every algorithm): a
checkpoint restores the whole run, and a run saved at an episode boundary and resumed
follows the uninterrupted one exactly."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def checkpoint_state(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(metadata, tensors)`` of a checkpoint, the JSON state tree decoded into metadata."""
    payload = torch.load(path, weights_only=True)
    metadata = json.loads(payload["metadata"])
    tensors = dict(payload["tensors"])
    tree = tensors.pop("__tree__", None)
    if tree is not None:
        metadata["state_tree"] = json.loads(bytes(tree.tolist()).decode())
    return metadata, tensors


def assert_same_checkpoints(first: Path, second: Path) -> None:
    """Every setting, counter, random state (JSON) and tensor of ``first`` equals
    ``second``'s (tensors bit for bit, dtypes included)."""
    meta_a, tensors_a = checkpoint_state(first)
    meta_b, tensors_b = checkpoint_state(second)
    where = _first_difference(meta_a, meta_b, "")
    if where is not None:
        raise AssertionError(f"checkpoints differ at {where}")
    if sorted(tensors_a) != sorted(tensors_b):
        raise AssertionError(
            f"checkpoints hold different tensors: {sorted(set(tensors_a) ^ set(tensors_b))}"
        )
    for key, value in tensors_a.items():
        other = tensors_b[key]
        if value.dtype != other.dtype or value.shape != other.shape:
            raise AssertionError(
                f"{key}: {value.dtype} {tuple(value.shape)} vs {other.dtype} {tuple(other.shape)}"
            )
        if not torch.equal(value, other):
            raise AssertionError(f"{key}: values differ")


def _first_difference(a: Any, b: Any, path: str) -> str | None:
    """The path of the first JSON entry where ``a`` and ``b`` differ, or ``None``."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{path}/{key} (missing on one side)"
            found = _first_difference(a[key], b[key], f"{path}/{key}")
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, f"{path}/{i}")
            if found is not None:
                return found
        return None
    return None if a == b else f"{path} ({a!r:.80} vs {b!r:.80})"


def assert_load_restores_everything(algo: Any, tmp_path: Path, **load_kwargs: Any) -> Any:
    """Save ``algo``, load it, save the loaded one at once: the two files must be equal, so
    every parameter, optimizer moment, replay entry, schedule position, counter and random
    state came back as it was. Returns the loaded algorithm."""
    first, second = tmp_path / "saved.pt", tmp_path / "reloaded.pt"
    algo.save(first)
    loaded = type(algo).load(first, **load_kwargs)
    loaded.save(second)
    assert_same_checkpoints(first, second)
    return loaded


def assert_resume_is_exact(
    make: Callable[[], Any],
    make_env: Callable[[], Any],
    first_steps: int,
    more_steps: int,
    tmp_path: Path,
) -> None:
    """``make()`` trained ``first_steps`` (ending where an episode ends), saved, loaded on
    a fresh ``make_env()`` and trained ``more_steps`` more ends in the same state, bit for
    bit, as ``make()`` trained ``first_steps`` then ``more_steps`` without a stop."""
    straight = make()
    straight.learn(first_steps)
    straight.learn(more_steps, reset_num_timesteps=False)
    straight.save(tmp_path / "straight.pt")

    stopped = make()
    stopped.learn(first_steps)
    stopped.save(tmp_path / "stopped.pt")
    del stopped
    resumed = type(straight).load(tmp_path / "stopped.pt", env=make_env(), device="cpu")
    resumed.learn(more_steps, reset_num_timesteps=False)
    resumed.save(tmp_path / "resumed.pt")
    assert_same_checkpoints(tmp_path / "straight.pt", tmp_path / "resumed.pt")
