"""Where reward and termination come from in imagination, shooting planners and tree
search: one rule, in order of preference: a function the user passes, the function
registered for the model's env id (group ``mbwrap.fns``), or the model's own head."""

from __future__ import annotations

from typing import Any, NamedTuple

from mbwrap.envs.fns.base import BatchedFn
from mbwrap.registry import get_fn


class Fns(NamedTuple):
    """The functions to call (``None``: the model's head) and where each came from:
    ``"given"``, ``"registered"`` or ``"model"``."""

    reward_fn: BatchedFn | None
    termination_fn: BatchedFn | None
    reward_source: str
    termination_source: str


def registered_fns(model: Any) -> Any | None:
    """The entry registered for ``model.env_id`` in group ``mbwrap.fns`` (an object with
    ``reward``, ``termination`` and/or ``action_mask``), or ``None``.

    Registered functions read real observations; a latent model (one whose
    ``dream_observation_space`` is not its ``observation_space``) imagines its own
    features, so none applies to it.
    """
    if model.dream_observation_space != model.observation_space:
        return None
    return get_fn(model.env_id)


def resolve_fns(
    model: Any, reward_fn: BatchedFn | None = None, termination_fn: BatchedFn | None = None
) -> Fns:
    """The reward and termination functions for planning or imagining with ``model``.

    A latent model gets only a given function or its heads (see :func:`registered_fns`).

    :param model: a :class:`~mbwrap.models.WorldModel`.
    :param reward_fn: batched ``(obs, action, next_obs) -> [B]``, preferred to all else.
    :param termination_fn: batched ``(obs, action, next_obs) -> [B]`` bool, likewise.
    """
    registered = registered_fns(model)
    reward = reward_fn or getattr(registered, "reward", None)
    termination = termination_fn or getattr(registered, "termination", None)

    def source(given: BatchedFn | None, chosen: BatchedFn | None) -> str:
        return "given" if given else ("registered" if chosen else "model")

    return Fns(reward, termination, source(reward_fn, reward), source(termination_fn, termination))
