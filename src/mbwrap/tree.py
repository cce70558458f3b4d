"""Batches that are either one tensor or a flat dict of leaf tensors.

An observation of a ``Dict`` or ``Tuple`` space is carried through buffers, models and
imagination environments as a flat ``dict`` from leaf path (``"observation"``,
``"goal/position"``, ``"0"``; see :func:`mbwrap.spaces.leaf_spaces`) to a tensor
``[B, *leaf_shape]``; every other observation is a single tensor ``[B, *obs_shape]``.
These functions apply one tensor operation to either form, leaf by leaf, so that code
written for plain tensors handles both without branching. They work on NumPy arrays
alike.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch

T = TypeVar("T")
#: A batch: one tensor (or array), or a flat ``dict`` of them keyed by leaf path.
Tree = Any


def is_leaf_dict(tree: Any) -> bool:
    """True when ``tree`` is the flat-dict form (the batch of a Dict or Tuple space)."""
    return isinstance(tree, dict)


def tree_map(fn: Callable[..., Any], tree: Tree, *rest: Tree) -> Tree:
    """Apply ``fn`` leaf by leaf: ``fn(tree, *rest)`` for tensors, one call per key for
    dicts (``rest`` must have the same keys)."""
    if is_leaf_dict(tree):
        return {key: fn(value, *(other[key] for other in rest)) for key, value in tree.items()}
    return fn(tree, *rest)


def tree_leaves(tree: Tree) -> list[Any]:
    """The tensors of ``tree`` in key order (one for a plain tensor)."""
    return list(tree.values()) if is_leaf_dict(tree) else [tree]


def tree_batch_size(tree: Tree) -> int:
    """Length of the leading (batch) dimension shared by every leaf."""
    return int(tree_leaves(tree)[0].shape[0])


def tree_index(tree: Tree, index: Any) -> Tree:
    """``tree[index]`` leaf by leaf (``index`` any valid tensor/array index)."""
    return tree_map(lambda value: value[index], tree)


def tree_assign(tree: Tree, index: Any, value: Tree) -> None:
    """``tree[index] = value`` in place, leaf by leaf."""
    if is_leaf_dict(tree):
        for key, leaf in tree.items():
            leaf[index] = value[key]
    else:
        tree[index] = value


def tree_where(mask: torch.Tensor, if_true: Tree, if_false: Tree) -> Tree:
    """Per row: ``if_true`` where ``mask [B]`` holds, else ``if_false``; mask broadcast
    over each leaf's trailing dimensions."""

    def pick(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.where(mask.reshape(-1, *([1] * (a.ndim - 1))), a, b)

    if not is_leaf_dict(if_true):  # imagination's hot path: skip the mapping machinery
        return pick(if_true, if_false)
    return tree_map(pick, if_true, if_false)


def tree_to(tree: Tree, device: torch.device | str) -> Tree:
    """``tree`` on ``device``."""
    return tree_map(lambda value: value.to(device), tree)


def rows_nonfinite(values: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """``[B]`` bool: the rows where any of ``values`` (floating tensors ``[B, ...]`` on one
    device) holds NaN or an infinity; ``None`` when ``values`` is empty.

    ``x - x`` is 0 for every finite ``x`` and NaN for NaN and ±inf. Tensors of one dtype
    in a row add those differences into one ``[B]`` probe, the columns of a wider tensor by
    a matrix-vector product with ones (every product is taken, so a NaN always carries
    through): about two kernels per tensor where ``~isfinite(x).all(-1)`` takes six, which
    counts at the small batches of an imagined step, and at wide batches faster than a
    reduction over a short last dimension.
    """
    bad: torch.Tensor | None = None  # rows flagged by the probes of other dtypes
    probe: torch.Tensor | None = None  # [B]: 0, or NaN in a row with a non-finite value
    for value in values:
        diff = value - value
        if diff.ndim > 2:
            diff = diff.flatten(1)
        if probe is not None and diff.dtype == probe.dtype:
            if diff.ndim == 1:
                probe = probe + diff
            else:
                probe = torch.addmv(probe, diff, _ones(diff.shape[1], diff.dtype, diff.device))
            continue
        if probe is not None:
            bad = probe.isnan() if bad is None else bad | probe.isnan()
        probe = diff if diff.ndim == 1 else diff @ _ones(diff.shape[1], diff.dtype, diff.device)
    if probe is None:
        return bad
    return probe.isnan() if bad is None else bad | probe.isnan()


@functools.cache
def _ones(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``[n]`` ones, made once per size, dtype and device (:func:`rows_nonfinite` runs
    every imagined step, where making them would cost as much as the check)."""
    return torch.ones(n, dtype=dtype, device=device)


def tree_float_leaves(tree: Tree) -> list[torch.Tensor]:
    """The floating tensors of ``tree`` (integers are always finite)."""
    return [leaf for leaf in tree_leaves(tree) if leaf.is_floating_point()]


def tree_rows_finite(tree: Tree) -> torch.Tensor:
    """``[B]`` bool: every floating value of the row, in every leaf, is finite."""
    if not is_leaf_dict(tree) and tree.is_floating_point():
        return torch.isfinite(tree.reshape(tree.shape[0], -1)).all(-1)
    ok: torch.Tensor | None = None
    for leaf in tree_leaves(tree):
        if not leaf.is_floating_point():
            continue
        leaf_ok = torch.isfinite(leaf.reshape(leaf.shape[0], -1)).all(-1)
        ok = leaf_ok if ok is None else ok & leaf_ok
    if ok is None:
        first = tree_leaves(tree)[0]
        return torch.ones(first.shape[0], dtype=torch.bool, device=first.device)
    return ok
