"""The shape of a registered reward/termination/action-mask entry (entry-point group
``mbwrap.fns``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

#: ``(obs: [B, *obs_shape], action: [B, *act_shape], next_obs: [B, *obs_shape]) -> [B]``
BatchedFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

#: ``(obs: [B, *obs_shape]) -> [B, mask_size]`` bool: which actions are valid (the mask
#: layout sb3-contrib's ``MaskablePPO`` uses, see :mod:`mbwrap.envs.action_masks`).
ActionMaskFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class EnvFns:
    """Known reward, termination and valid actions of an environment, as batched tensor
    functions.

    Any may be ``None`` when it is not a function of ``(obs, action, next_obs)`` (of
    ``obs`` for the mask); the model's own head is used for that part instead, and every
    action is valid without a mask.

    :ivar reward: returns ``[B]`` float rewards.
    :ivar termination: returns ``[B]`` bool (or 0/1) terminations.
    :ivar action_mask: returns ``[B, mask_size]`` bool, ``True`` where an action is valid.
    """

    reward: BatchedFn | None = None
    termination: BatchedFn | None = None
    action_mask: ActionMaskFn | None = None
