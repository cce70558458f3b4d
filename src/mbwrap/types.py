"""Batched tensor containers passed between buffers, models and environments."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from mbwrap.tree import tree_to


@dataclass(frozen=True)
class Transition:
    """A batch of real or imagined transitions.

    :ivar obs: ``[B, *obs_shape]`` (a flat dict of leaves for a Dict/Tuple space)
    :ivar action: ``[B, *act_shape]``
    :ivar reward: ``[B]`` float32
    :ivar next_obs: ``[B, *obs_shape]``
    :ivar terminated: ``[B]`` bool, the MDP reached a terminal state
    :ivar truncated: ``[B]`` bool, the episode was cut (time limit) without terminating
    """

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor

    def __len__(self) -> int:
        return int(self.reward.shape[0])

    def to(self, device: torch.device | str) -> Transition:
        """The same batch on ``device``."""
        return type(self)(**{f.name: tree_to(getattr(self, f.name), device) for f in fields(self)})


@dataclass(frozen=True)
class Sequence:
    """A batch of contiguous sub-trajectories, none crossing an episode boundary.

    Same fields as :class:`Transition` with a time axis: ``obs: [B, L, *obs_shape]``,
    ``reward: [B, L]``, etc. Element ``[b, t]`` is the transition taken at step ``t``;
    ``next_obs[b, t] == obs[b, t + 1]`` for ``t < L - 1`` unless ``episode_end[b, t]``.

    :ivar episode_end: ``[B, L]`` bool or ``None``: the episode (or the stored piece of
        it) stops after step ``t``, and step ``t + 1`` starts another. ``None`` or all
        false for sequences that lie within one episode.
    """

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    episode_end: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.reward.shape[0])


@dataclass(frozen=True)
class ModelStep:
    """A world model's batched one-step prediction.

    :ivar next_state: ``[B, *state_shape]``
    :ivar reward: ``[B]`` float32, or ``None`` when the model has no reward head
    :ivar terminated: ``[B]`` float32 probability of termination, or ``None`` when the
        model has no termination head
    """

    next_state: torch.Tensor
    reward: torch.Tensor | None
    terminated: torch.Tensor | None


@dataclass(frozen=True)
class ModelRollout:
    """A world model's prediction along action sequences: ``H`` steps of ``R`` rows.

    :ivar states: ``[H + 1, R, *state_shape]``, the start states first
    :ivar reward: ``[H, R]`` float32, or ``None`` when the model has no reward head
    :ivar terminated: ``[H, R]`` float32 probabilities of termination, or ``None`` when
        the model has no termination head
    """

    states: torch.Tensor
    reward: torch.Tensor | None
    terminated: torch.Tensor | None
