"""What a collection worker sends back: one round of vector steps of its envs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Rollout:
    """``K`` vector steps of one worker's ``m`` envs, as the learner stores them.

    Observations are as the worker's SB3 ``VecEnv`` returns them (an array
    ``[m, *obs_shape]``, or a dict/tuple of such arrays), one entry per step.

    :ivar obs: ``K`` observations acted on.
    :ivar actions: ``K`` arrays ``[m, *act_shape]``.
    :ivar rewards: ``[K, m]``; ``terminated``, ``truncated`` alike (bool, never both).
    :ivar next_obs: ``K`` observations the steps produced (before any reset).
    :ivar new_obs: ``K`` observations the policy sees next (after resets).
    :ivar infos: ``K`` lists of ``m`` dicts, cut to the keys the learner reads
        (``episode``, ``is_success``).
    :ivar version: the weights version the worker acted with (-1: random actions).
    :ivar worker: the worker's index.
    :ivar restarted: the worker was restarted before this round: its envs start new
        episodes, so the learner ends its streams' open ones.
    """

    obs: list[Any] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    rewards: list[np.ndarray] = field(default_factory=list)
    terminated: list[np.ndarray] = field(default_factory=list)
    truncated: list[np.ndarray] = field(default_factory=list)
    next_obs: list[Any] = field(default_factory=list)
    new_obs: list[Any] = field(default_factory=list)
    infos: list[list[dict[str, Any]]] = field(default_factory=list)
    version: int = -1
    worker: int = 0
    restarted: bool = False

    def __len__(self) -> int:
        return len(self.actions)


#: The info keys a learner reads from real steps (episode statistics, success).
KEPT_INFO_KEYS = ("episode", "is_success")


def trim_infos(infos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``infos`` cut to :data:`KEPT_INFO_KEYS` (the rest, e.g. terminal observations
    already split out, need not cross the network)."""
    return [{k: info[k] for k in KEPT_INFO_KEYS if k in info} for info in infos]


def concat_obs(parts: list[Any]) -> Any:
    """Join the observations of several workers along the env axis: ``[m_i, ...]`` each
    (or dicts/tuples of such arrays) -> ``[sum m_i, ...]``."""
    first = parts[0]
    if isinstance(first, dict):
        return {key: concat_obs([part[key] for part in parts]) for key in first}
    if isinstance(first, tuple):
        return tuple(concat_obs([part[i] for part in parts]) for i in range(len(first)))
    return np.concatenate(parts, axis=0)
