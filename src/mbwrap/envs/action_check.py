"""Validate actions before they reach a model, as a real env's space would."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from mbwrap.errors import SpaceMismatchError
from mbwrap.spaces import element_shape, rows_in_space


class ActionCheck:
    """Checks batches of actions against ``space``, once per imagined step.

    A Discrete, MultiDiscrete or MultiBinary action outside the space is an error: the model
    would index a one-hot column that does not exist, or silently take another action for
    ``-1``. A Box action beyond its bounds is clipped to the space, as SB3 clips before
    stepping a real env, with a warning the first time (:attr:`warned` records it).
    Host arrays are checked with NumPy on the host (no device round trip); tensors where
    they are. Shapes and dtypes are left to :func:`~mbwrap.spaces.as_batch`, which names
    them.

    The common cases (integer arrays for a Discrete space, float arrays inside the tightest
    of a Box's bounds) take two reductions on the host; the rest go through the exact
    per-element check.
    """

    def __init__(self, space: spaces.Space) -> None:
        self.space = space
        #: Whether the once-only warning about clipped Box actions was shown.
        self.warned = False
        self._range: tuple[float, float] | None = None
        #: The dtype kinds the fast path takes: floats for a Box, integers for a Discrete.
        self._kinds = "f" if isinstance(space, spaces.Box) else "iu"
        if isinstance(space, spaces.Discrete):
            self._range = (int(space.start), int(space.start) + int(space.n) - 1)
        elif isinstance(space, spaces.Box) and space.low.size:
            # Inside [max(low), min(high)] is inside every dimension's bounds.
            self._range = (float(space.low.max()), float(space.high.min()))

    def __call__(self, action: Any) -> Any:
        """:param action: ``[B, *act_shape]`` (array or tensor).

        :return: the action, clipped for a Box space.
        :raises SpaceMismatchError: naming ``action`` and the space.
        """
        if (
            self._range is not None
            and isinstance(action, np.ndarray)
            and action.dtype.kind in self._kinds
            and action.size
        ):
            low, high = self._range
            if action.size <= 16:
                # A handful of values: Python's min and max take a fifth of the time of
                # NumPy's reductions. A NaN can only hide itself from them, and passes
                # through here as it does through the exact check.
                values = action.ravel().tolist()
                inside = low <= min(values) and max(values) <= high
            # The ufuncs' reductions, not ndarray.min/max: those add a Python call each.
            elif low == 0 and action.dtype == np.int64:
                # Read as unsigned, a negative number is huge: one reduction for both ends.
                inside = np.maximum.reduce(action.view(np.uint64), axis=None) <= high
            else:
                inside = (
                    low <= np.minimum.reduce(action, axis=None)
                    and np.maximum.reduce(action, axis=None) <= high
                )
            if inside:
                return action
        return self._check(action)

    def _check(self, action: Any) -> Any:
        space = self.space
        xp: Any = torch if isinstance(action, torch.Tensor) else np
        if xp is np:
            if isinstance(action, (str, bytes, dict)):
                raise SpaceMismatchError(f"action: expected numbers for {space}, got {action!r}")
            action = np.asarray(action)
            if action.dtype.kind not in "biuf":
                raise SpaceMismatchError(f"action: expected numbers for {space}, got {action!r}")
            floating = action.dtype.kind == "f"
        else:
            floating = action.is_floating_point()
        if isinstance(space, spaces.Box):
            if not floating:
                return action
            low, high = _bounds(space, action)
            outside = (action < low) | (action > high)
            if not bool(outside.any()):
                return action
            if not self.warned:
                self.warned = True
                warnings.warn(
                    f"action: {int(outside.sum())} value(s) lie outside {space!r}; they were "
                    "clipped to the space, as SB3 clips actions before a real env "
                    "(this warning is shown once)",
                    UserWarning,
                    stacklevel=5,
                )
            return xp.minimum(xp.maximum(action, low), high)
        shape = element_shape(space)
        if floating and not bool((action == xp.round(action)).all()):
            return action
        batch = action[None] if tuple(action.shape) == shape else action
        if tuple(batch.shape[1:]) != shape:
            return action
        inside = rows_in_space(batch if xp is np else batch.long(), space)
        if not bool(inside.all()):
            row = int(xp.nonzero(~inside)[0]) if xp is torch else int(np.flatnonzero(~inside)[0])
            raise SpaceMismatchError(
                f"action: {int((~inside).sum())} action(s) lie outside {space!r}, the first in "
                f"row {row}: {batch[row].tolist()}"
            )
        return action


def _bounds(space: spaces.Box, like: Any) -> tuple[Any, Any]:
    if isinstance(like, torch.Tensor):
        return (
            torch.as_tensor(space.low, dtype=like.dtype, device=like.device),
            torch.as_tensor(space.high, dtype=like.dtype, device=like.device),
        )
    return space.low, space.high
