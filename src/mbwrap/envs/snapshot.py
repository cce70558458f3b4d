"""Snapshot and restore the full state of an env and of every wrapper around it.

Copying only the innermost env is not enough: wrappers hold state too (PettingZoo's
``TerminateIllegalWrapper`` caches the last observation and its action mask,
``OrderEnforcingWrapper`` whether the env was reset, Gymnasium's ``TimeLimit`` the steps
taken), and the pieces alias each other (a PettingZoo ``AgentSelector`` shares its
agent list with ``env.agents``). So a snapshot is the instance dictionaries of every
layer, deep-copied in one pass so that shared objects stay shared, leaving out what
never changes during a game (spaces, render surfaces, the wrapped env itself).
Restoring copies the snapshot again (it can be restored many times) and replaces each
layer's state, removing attributes the snapshot did not have.
"""

from __future__ import annotations

import copy
from typing import Any

#: Attributes that never change in play, or cannot be copied (render surfaces).
STATIC_ATTRIBUTES = frozenset(
    {
        "env",
        "action_spaces",
        "observation_spaces",
        "_action_space",
        "_observation_space",
        "action_space",
        "observation_space",
        "metadata",
        "_metadata",
        "spec",
        "_cached_spec",
        "render_mode",
        "screen",
        "clock",
        "surf",
        "window",
        "viewer",
        "isopen",
        "bg_image",
        "piece_images",
        "screen_height",
        "screen_width",
        "screen_dim",
        "screen_scaling",
        "BOARD_SIZE",
        "cell_size",
        "_ezpickle_args",
        "_ezpickle_kwargs",
    }
)


def env_layers(env: Any) -> list[Any]:
    """``env`` and every env it wraps (through ``.env``), outermost first."""
    layers = [env]
    while "env" in vars(layers[-1]):
        layers.append(vars(layers[-1])["env"])
    return layers


class Snapshot:
    """The dynamic state of each layer of an env (opaque; give it to :func:`restore_env`).

    :param layer_types: the class of each layer, outermost first, to refuse a snapshot
        of another env.
    :param states: one ``{attribute: value}`` per layer.
    """

    __slots__ = ("layer_types", "states")

    def __init__(self, layer_types: tuple[type, ...], states: list[dict[str, Any]]) -> None:
        self.layer_types = layer_types
        self.states = states


def snapshot_env(env: Any) -> Snapshot:
    """A deep copy of the state of ``env`` and its wrappers (see the module docstring)."""
    layers = env_layers(env)
    states = [
        {k: v for k, v in vars(layer).items() if k not in STATIC_ATTRIBUTES} for layer in layers
    ]
    return Snapshot(tuple(type(layer) for layer in layers), copy.deepcopy(states))


def restore_env(env: Any, snapshot: Snapshot) -> None:
    """Put ``env`` (and its wrappers) back in the state ``snapshot`` recorded.

    :raises TypeError: naming ``snapshot`` when it is not a :class:`Snapshot` of an env
        with the same layers.
    """
    if not isinstance(snapshot, Snapshot):
        raise TypeError(
            f"snapshot: expected a Snapshot from snapshot(), got {type(snapshot).__name__}"
        )
    layers = env_layers(env)
    kinds = tuple(type(layer) for layer in layers)
    if kinds != snapshot.layer_types:
        raise TypeError(
            "snapshot: expected a snapshot of an env with layers "
            f"{[k.__name__ for k in kinds]}, got one of "
            f"{[k.__name__ for k in snapshot.layer_types]}"
        )
    states = copy.deepcopy(snapshot.states)
    for layer, state in zip(layers, states, strict=True):
        attributes = vars(layer)
        for key in [k for k in attributes if k not in STATIC_ATTRIBUTES and k not in state]:
            del attributes[key]
        attributes.update(state)
