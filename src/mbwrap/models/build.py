"""A world model for an algorithm: built from a registry name, or an instance checked, and
the JSON form (name and keywords) a checkpoint rebuilds it from."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch

from mbwrap.errors import SpaceMismatchError
from mbwrap.models.base import WorldModel
from mbwrap.registry import make_model


def resolve_model(
    model: str | WorldModel,
    model_kwargs: dict[str, Any] | None,
    observation_space: gym.Space,
    action_space: gym.Space,
    *,
    env_id: str | None,
    device: torch.device,
) -> WorldModel:
    """A world model for an algorithm: built from a registry name, or the instance given.

    A built model gets ``env_id`` (unless ``model_kwargs`` names one) so that registered
    reward/termination functions are found; an instance without one gets it too.

    :raises TypeError: naming ``model`` when it is neither a name nor a ``WorldModel``.
    :raises SpaceMismatchError: when the model's spaces are not the env's.
    """
    if isinstance(model, str):
        model = make_model(
            model,
            observation_space,
            action_space,
            **{"env_id": env_id, "device": device, **(model_kwargs or {})},
        )
    elif not isinstance(model, WorldModel):
        raise TypeError(
            f"model: expected a registered model name or an mbwrap WorldModel, got {model!r}"
        )
    elif model_kwargs:
        raise ValueError("model_kwargs: only used when model is a name, not an instance")
    if model.observation_space != observation_space or model.action_space != action_space:
        raise SpaceMismatchError(
            f"model: has spaces {model.observation_space!r} / {model.action_space!r}, the env "
            f"{observation_space!r} / {action_space!r}"
        )
    if model.env_id is None:
        model.env_id = env_id
    return model


def model_config(model: WorldModel) -> tuple[str, dict[str, Any]]:
    """``(registry name, constructor keywords)`` that rebuild ``model`` through
    :func:`mbwrap.make_model`, for checkpoints.

    :raises ValueError: when the model's class has no registry name.
    """
    name = type(model).registry_name
    if not name:
        raise ValueError(
            f"model: {type(model).__qualname__} has no registry_name, so a checkpoint could "
            "not rebuild it; register it in the mbwrap.models entry-point group"
        )
    return name, {**model.get_config(), "env_id": model.env_id}
