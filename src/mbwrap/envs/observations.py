"""PettingZoo observations of the player to move: the action mask, and batches of them.

Plain NumPy, so that search code can read such observations without PettingZoo.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def action_mask(obs: Any, *, name: str = "observation") -> np.ndarray:
    """The bool ``action_mask`` of a PettingZoo observation dict.

    :raises ValueError: naming ``name`` when ``obs`` is not a dict with ``"action_mask"``.
    """
    if not isinstance(obs, dict) or "action_mask" not in obs:
        got = f"a dict with keys {sorted(obs)}" if isinstance(obs, dict) else type(obs).__name__
        raise ValueError(
            f"{name}: expected a PettingZoo observation dict with an 'action_mask' entry, "
            f"got {got}"
        )
    return np.asarray(obs["action_mask"]).astype(bool)


def stack_observations(
    obs: Any, *, obs_shape: tuple[int, ...], num_actions: int, name: str = "observation"
) -> tuple[np.ndarray, np.ndarray, bool]:
    """A batch from PettingZoo observations of the players to move.

    :param obs: one observation dict (``observation`` ``obs_shape``, ``action_mask``
        ``[A]``), a dict of batched arrays (``[B, *obs_shape]`` and ``[B, A]``), or a
        list of observation dicts.
    :return: ``(observation [B, *obs_shape], action_mask [B, A] bool, was_batched)``.
    :raises ValueError: naming ``name`` for a missing ``action_mask`` or wrong shapes.
    """
    if isinstance(obs, (list, tuple)):
        if not obs:
            raise ValueError(f"{name}: expected at least one observation, got an empty list")
        masks = np.stack([action_mask(o, name=f"{name}[{i}]") for i, o in enumerate(obs)])
        planes = np.stack([np.asarray(o.get("observation")) for o in obs])
        batched = True
    else:
        mask = action_mask(obs, name=name)
        if "observation" not in obs:
            raise ValueError(f"{name}: expected an 'observation' entry, got keys {sorted(obs)}")
        planes = np.asarray(obs["observation"])
        batched = mask.ndim == 2
        masks = mask if batched else mask[None]
        planes = planes if batched else planes[None]
    if masks.shape[1:] != (num_actions,):
        raise ValueError(
            f"{name}: expected action_mask of shape [{num_actions}] or [B, {num_actions}], got "
            f"{list(masks.shape[1:])}"
        )
    if planes.shape[1:] != tuple(obs_shape) or planes.shape[0] != masks.shape[0]:
        raise ValueError(
            f"{name}: expected observation of shape {tuple(obs_shape)} (or [B, ...]) matching "
            f"the action_mask, got {planes.shape if batched else planes.shape[1:]}"
        )
    return planes, masks, batched
