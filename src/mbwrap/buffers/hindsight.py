"""Hindsight goal relabelling (HER, Andrychowicz et al. 2017) over a :class:`ReplayBuffer`
of goal-conditioned ``Dict`` observations, on the buffer's device.

A goal-conditioned env (Gymnasium-Robotics' layout) observes ``{"observation",
"achieved_goal", "desired_goal"}``. HER's ``future`` strategy replaces the desired goal of
a replayed transition at step ``t`` by the goal achieved at a step drawn uniformly from
``t .. T`` of the same episode (``T`` its last stored step), so that failed episodes still
teach how to reach the goals they did reach.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mbwrap.buffers.replay import ReplayBuffer
from mbwrap.tree import tree_index
from mbwrap.types import Transition

# Andrychowicz et al. 2017, Section 4.5: k = 4 relabelled goals per real one ("future"),
# so 4 / (4 + 1) of replayed transitions carry a relabelled goal.
HER_FUTURE_RATIO = 0.8


def episode_last_steps(episode_end: torch.Tensor) -> torch.Tensor:
    """The last step of the episode each step belongs to.

    :param episode_end: ``[n, E]`` bool, steps (oldest first) of ``E`` streams that end an
        episode.
    :return: ``[n, E]`` long: for step ``t`` of a stream, the first ``t' >= t`` marked in
        ``episode_end``, or ``n - 1`` where the episode is still running.
    """
    n = episode_end.shape[0]
    steps = torch.arange(n, device=episode_end.device).unsqueeze(1).expand_as(episode_end)
    marked = torch.where(episode_end, steps, torch.full_like(steps, n - 1))
    return marked.flip(0).cummin(0).values.flip(0)


def future_steps(steps: torch.Tensor, last: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Steps drawn uniformly from ``steps .. last`` (inclusive) by ``uniform`` draws.

    :param steps: ``[B]`` long, the replayed steps.
    :param last: ``[B]`` long, their episodes' last steps (``>= steps``).
    :param uniform: ``[B]`` floats in ``[0, 1)``.
    :return: ``[B]`` long.
    """
    span = (last - steps + 1).to(uniform.dtype)
    return torch.minimum(steps + (uniform * span).long(), last)


@dataclass
class HindsightBatch:
    """Replayed transitions with their (possibly relabelled) goals.

    :ivar transition: ``obs``, ``next_obs``: flat dicts of ``[B, ...]`` leaves; the rest as
        :class:`~mbwrap.types.Transition`.
    :ivar goal: ``[B, *goal_shape]``, the desired goal, relabelled where ``relabelled``.
    :ivar relabelled: ``[B]`` bool.
    """

    transition: Transition
    goal: torch.Tensor
    relabelled: torch.Tensor


class HindsightSampler:
    """Uniform replay of a goal-conditioned :class:`ReplayBuffer` with HER's ``future``
    relabelling, batched on the buffer's device (no Python loop over rows).

    :param buffer: real transitions with ``Dict`` observations holding ``achieved_key`` and
        ``desired_key`` leaves of the same shape.
    :param future_ratio: the share of draws whose goal is relabelled
        (:data:`HER_FUTURE_RATIO` by default).
    :param achieved_key: the leaf holding the goal a state achieves.
    :param desired_key: the leaf holding the goal the episode pursued.
    :raises ValueError: naming the argument when the buffer lacks the leaves, their shapes
        differ, or ``future_ratio`` is not in ``[0, 1]``.
    """

    def __init__(
        self,
        buffer: ReplayBuffer,
        *,
        future_ratio: float = HER_FUTURE_RATIO,
        achieved_key: str = "achieved_goal",
        desired_key: str = "desired_goal",
    ) -> None:
        leaves = buffer._data["obs"]
        if not isinstance(leaves, dict) or not {achieved_key, desired_key} <= set(leaves):
            raise ValueError(
                f"buffer: hindsight relabelling needs Dict observations with "
                f"{achieved_key!r} and {desired_key!r} entries, got {buffer.observation_space}"
            )
        if leaves[achieved_key].shape != leaves[desired_key].shape:
            raise ValueError(
                f"buffer: {achieved_key!r} and {desired_key!r} must have one shape, got "
                f"{tuple(leaves[achieved_key].shape[2:])} and "
                f"{tuple(leaves[desired_key].shape[2:])}"
            )
        if not 0.0 <= float(future_ratio) <= 1.0:
            raise ValueError(f"future_ratio: expected a share in [0, 1], got {future_ratio!r}")
        self.buffer = buffer
        self.future_ratio = float(future_ratio)
        self.achieved_key, self.desired_key = achieved_key, desired_key
        self._last: tuple[int, torch.Tensor] | None = None

    def _last_steps(self) -> torch.Tensor:
        """:func:`episode_last_steps` of the stored steps (oldest first), cached until the
        buffer changes."""
        buffer = self.buffer
        if self._last is None or self._last[0] != buffer._version:
            n = buffer.stored_rows
            first = buffer._pos if buffer._full else 0
            order = (first + torch.arange(n, device=buffer.device)) % buffer.rows
            self._last = (buffer._version, episode_last_steps(buffer._data["episode_end"][order]))
        return self._last[1]

    def sample(
        self, batch_size: int, *, generator: torch.Generator | None = None
    ) -> HindsightBatch:
        """Draw ``batch_size`` transitions uniformly (with replacement) and relabel
        ``future_ratio`` of their goals with a future achieved goal of their episode.

        :raises ValueError: when the buffer is empty.
        """
        buffer = self.buffer
        if len(buffer) == 0:
            raise ValueError("cannot sample: the buffer is empty; add transitions first")
        device, n_envs = buffer.device, buffer.n_envs
        first = buffer._pos if buffer._full else 0
        flat = torch.randint(len(buffer), (batch_size,), device=device, generator=generator)
        steps, cols = flat // n_envs, flat % n_envs
        draws = torch.rand(2, batch_size, device=device, generator=generator)
        future = future_steps(steps, self._last_steps()[steps, cols], draws[0])
        rows = (first + steps) % buffer.rows
        future_rows = (first + future) % buffer.rows
        data = buffer._data
        transition = Transition(
            **{k: tree_index(data[k], (rows, cols)) for k in Transition.__dataclass_fields__}
        )
        achieved = data["next_obs"][self.achieved_key][future_rows, cols]  # type: ignore[index]
        desired = transition.obs[self.desired_key]  # type: ignore[index]
        relabelled = draws[1] < self.future_ratio
        mask = relabelled.view(-1, *([1] * (desired.dim() - 1)))
        return HindsightBatch(transition, torch.where(mask, achieved, desired), relabelled)
