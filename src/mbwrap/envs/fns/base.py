"""The shape of a registered reward/termination entry (entry-point group ``mbwrap.fns``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

#: ``(obs: [B, *obs_shape], action: [B, *act_shape], next_obs: [B, *obs_shape]) -> [B]``
BatchedFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class EnvFns:
    """Known reward and termination of an environment, as batched tensor functions.

    Either may be ``None`` when it is not a function of ``(obs, action, next_obs)``; the
    model's own head is used for that part instead.

    :ivar reward: returns ``[B]`` float rewards.
    :ivar termination: returns ``[B]`` bool (or 0/1) terminations.
    """

    reward: BatchedFn | None = None
    termination: BatchedFn | None = None
