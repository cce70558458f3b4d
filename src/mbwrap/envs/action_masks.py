"""Which actions are valid in imagination, for agents that mask invalid ones (sb3-contrib's
``MaskablePPO`` asks its env for ``action_masks()`` before every step).

Masks come, in this order of preference, from a function the user passes, the one
registered for the model's env id (group ``mbwrap.fns``, attribute ``action_mask``), the
model's own head (a method ``action_masks(state)``), else every action is valid; the same
order as reward and termination (:func:`~mbwrap.envs.fns.resolve_fns`).

A mask has one column per choice, as sb3-contrib lays it out: ``n`` for ``Discrete(n)``,
the per-dimension masks concatenated (``sum(nvec)`` columns) for ``MultiDiscrete``, and
``[0 valid, 1 valid]`` pairs (``2 n`` columns) for ``MultiBinary(n)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from mbwrap.envs.fns.base import ActionMaskFn
from mbwrap.envs.fns.resolve import registered_fns
from mbwrap.errors import SpaceMismatchError, UnsupportedSpaceError
from mbwrap.models import WorldModel


def mask_widths(space: spaces.Space) -> list[int]:
    """Columns of each action dimension's mask: ``[n]`` for ``Discrete(n)``, ``nvec``
    flattened for ``MultiDiscrete``, ``[2] * n`` for ``MultiBinary(n)``.

    :raises UnsupportedSpaceError: naming ``action_space`` for a space whose actions are not
        choices (``Box``).
    """
    if isinstance(space, spaces.Discrete):
        return [int(space.n)]
    if isinstance(space, spaces.MultiDiscrete):
        return [int(n) for n in np.asarray(space.nvec).reshape(-1)]
    if isinstance(space, spaces.MultiBinary):
        return [2] * int(np.prod(space.shape))
    raise UnsupportedSpaceError(
        "action_space: action masks need Discrete, MultiDiscrete or MultiBinary actions, "
        f"got {space!r}"
    )


def mask_size(space: spaces.Space) -> int:
    """Width of a mask for ``space``: ``sum(mask_widths(space))``."""
    return sum(mask_widths(space))


class ActionMasks:
    """The action masks of a batch of imagined states, from the first source that exists.

    :param model: the world model imagining the states.
    :param action_mask_fn: batched ``(obs) -> [B, mask_size]`` bool, preferred to all else.
    :raises TypeError: naming ``action_mask_fn`` when it is not callable.
    :raises UnsupportedSpaceError: naming ``action_mask_fn`` when the model's actions are
        not choices.
    """

    def __init__(self, model: WorldModel, action_mask_fn: ActionMaskFn | None = None) -> None:
        if action_mask_fn is not None and not callable(action_mask_fn):
            raise TypeError(
                "action_mask_fn: expected a batched callable (obs) -> [B, n] bool, "
                f"got {action_mask_fn!r}"
            )
        if action_mask_fn is not None:
            try:
                mask_widths(model.action_space)
            except UnsupportedSpaceError as err:
                raise UnsupportedSpaceError(f"action_mask_fn: {err}") from err
        self.model = model
        registered = getattr(registered_fns(model), "action_mask", None)
        head = getattr(model, "action_masks", None)
        self.fn: ActionMaskFn | None = None
        #: ``"given"``, ``"registered"``, ``"model"`` (the model's head) or ``"all"`` (every
        #: action valid).
        self.source = "all"
        #: What an error about a bad mask names.
        self.name = "action_masks"
        if action_mask_fn is not None:
            self.fn, self.source, self.name = action_mask_fn, "given", "action_mask_fn"
        elif callable(registered):
            self.fn, self.source = registered, "registered"
            self.name = f"the action_mask registered for {model.env_id!r} (mbwrap.fns)"
        elif callable(head):
            self.fn, self.source = head, "model"
            self.name = f"{type(model).__name__}.action_masks"

    def of_states(self, state: Any, obs: Any, batch_size: int) -> torch.Tensor:
        """Masks of imagined states: ``state`` (the model's, ``[B, ...]``) and the
        observation the agent sees of it (``[B, *obs_shape]``).

        :return: ``[B, mask_size]`` bool on the model's device.
        :raises SpaceMismatchError: naming the source when a mask has the wrong shape or
            values other than 0 and 1.
        :raises ValueError: naming the source when a row leaves an action dimension with
            no valid choice (the agent could not act).
        """
        widths = mask_widths(self.model.action_space)
        if self.fn is None:
            return torch.ones(batch_size, sum(widths), dtype=torch.bool, device=self.model.device)
        with torch.no_grad():
            raw = self.fn(state if self.source == "model" else obs)
        return self._check(raw, widths, batch_size)

    def of_observations(self, obs: Any, batch_size: int) -> torch.Tensor:
        """Masks of real observations ``[B, *obs_shape]`` (e.g. to act in the real env),
        through the model's encoding, as if they were imagined. Returns
        ``[B, mask_size]`` bool."""
        with torch.no_grad():
            state = self.model.encode(obs)
            return self.of_states(state, self.model.dream_observation(state), batch_size)

    def _check(self, raw: Any, widths: list[int], batch_size: int) -> torch.Tensor:
        size = sum(widths)
        try:
            mask = torch.as_tensor(raw, device=self.model.device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise SpaceMismatchError(
                f"{self.name}: expected a [{batch_size}, {size}] bool mask, got "
                f"{type(raw).__name__}"
            ) from err
        if tuple(mask.shape) != (batch_size, size):
            raise SpaceMismatchError(
                f"{self.name}: expected a [{batch_size}, {size}] bool mask for "
                f"{self.model.action_space!r}, got shape {tuple(mask.shape)}"
            )
        if mask.dtype != torch.bool:
            if not bool(((mask == 0) | (mask == 1)).all()):
                raise SpaceMismatchError(
                    f"{self.name}: expected a bool (or 0/1) mask, got values other than 0 "
                    f"and 1 of dtype {mask.dtype}"
                )
            mask = mask != 0
        # Every action dimension needs a valid choice: all-masked logits give NaN
        # probabilities. Valid choices per dimension from the running count at its end.
        ends = torch.as_tensor(np.cumsum(widths) - 1, device=mask.device)
        count_at_end = mask.long().cumsum(1)[:, ends]  # [B, D]
        per_dim = torch.diff(count_at_end, dim=1, prepend=torch.zeros_like(count_at_end[:, :1]))
        stuck = torch.nonzero((per_dim == 0).any(1)).reshape(-1)
        if stuck.numel():
            raise ValueError(
                f"{self.name}: {stuck.numel()} of {batch_size} masks leave an action with no "
                f"valid choice, the first at row {int(stuck[0])}: {mask[stuck[0]].tolist()}"
            )
        return mask

    def current(self, core: Any) -> np.ndarray:
        """The masks of an :class:`~mbwrap.envs.imagination.ImaginationCore`'s current
        episodes: ``[B, mask_size]`` bool on the host.

        :raises RuntimeError: before the core's first ``reset()``.
        """
        if core.state is None:
            raise RuntimeError("action_masks: call reset() first")
        return self.of_states(core.state, core.obs, core.batch_size).cpu().numpy()


def accepts_action_masks(agent: Any) -> bool:
    """Whether ``agent.predict`` takes ``action_masks=`` (sb3-contrib's ``MaskablePPO``)."""
    predict = getattr(agent, "predict", None)
    return callable(predict) and "action_masks" in inspect.signature(predict).parameters


class MaskedPredictor:
    """SB3's ``predict()`` of a masking agent, handing it the masks of the observations it
    acts on (e.g. in the real env, where no ``MaskablePPO`` rollout asks the env for them).

    :param agent: an agent whose ``predict`` takes ``action_masks=``.
    :param masks: ``(observation) -> [n_envs, mask_size]`` bool, or ``None`` (all valid).
    """

    def __init__(self, agent: Any, masks: Callable[[Any], np.ndarray | None]) -> None:
        self.agent = agent
        self.masks = masks

    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        return self.agent.predict(
            observation,
            state,
            episode_start,
            deterministic,
            action_masks=self.masks(observation),
        )
