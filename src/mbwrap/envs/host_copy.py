"""A vectorised imagination env's step outputs brought to the host in one copy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from mbwrap.spaces import to_numpy
from mbwrap.tree import Tree, is_leaf_dict, tree_leaves


def step_to_host(
    obs: Tree,
    space: spaces.Space,
    columns: Sequence[tuple[torch.Tensor, type[np.generic]]],
    *,
    packed: bool,
) -> tuple[Any, list[np.ndarray]]:
    """Host copies of a batch of observations and of per-env values (reward, flags).

    :param obs: ``[B, *obs_shape]`` (the flat dict of leaves for a Dict/Tuple space).
    :param space: the observation space, whose dtypes and nesting the host copy takes
        (see :func:`~mbwrap.spaces.to_numpy`).
    :param columns: ``(values [B], dtype)`` pairs: tensors on ``obs``'s device, each
        copied to an array of ``dtype``.
    :param packed: copy all of it as one buffer of bytes. On an accelerator each copy to
        the host waits for every queued kernel, so one copy instead of one per tensor; on
        the CPU (where ``packed=False`` is meant for) NumPy reads the tensors in place and
        packing would only add work.
    :return: ``(obs as to_numpy returns it, [B] arrays of the columns)``, fresh arrays
        that share memory with nothing.
    """
    if not packed:
        host_columns = [column.numpy().astype(dtype) for column, dtype in columns]
        return to_numpy(obs, space), host_columns
    leaves = tree_leaves(obs)
    tensors = [*leaves, *(column for column, _ in columns)]
    batch = tensors[0].shape[0]
    rows = [tensor.reshape(batch, -1).contiguous() for tensor in tensors]
    raw = torch.cat([row.view(torch.uint8) for row in rows], 1).cpu().numpy()  # [B, bytes]
    arrays, start = [], 0
    for row, tensor in zip(rows, tensors, strict=True):
        width = row.shape[1] * row.element_size()
        # A copy of the bytes, aligned for their dtype, then read as that dtype.
        block = np.ascontiguousarray(raw[:, start : start + width])
        arrays.append(block.view(_numpy_dtype(tensor.dtype)).reshape(tensor.shape))
        start += width
    host_leaves = arrays[: len(leaves)]
    host_obs = dict(zip(obs, host_leaves, strict=True)) if is_leaf_dict(obs) else host_leaves[0]
    host_columns = [
        array.astype(dtype, copy=False)
        for array, (_, dtype) in zip(arrays[len(leaves) :], columns, strict=True)
    ]
    return to_numpy(host_obs, space), host_columns


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    return torch.empty(0, dtype=dtype).numpy().dtype
