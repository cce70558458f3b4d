"""Which Gymnasium spaces each model, planner and algorithm takes.

Each component class declares it once, as a :class:`SpaceSupport` in its
``space_support`` class attribute; :func:`check_support` holds a pair of spaces against
it before anything is built on them (algorithms check the real env's spaces before SB3
wraps the env), and :mod:`mbwrap.space_table` tabulates the built-in components'
declarations for the README.

A space is of one kind (:func:`space_kind`):

=================  =====================================================================
kind               spaces
=================  =====================================================================
``Box``            a ``Box`` that is not an image: feature vectors of any dtype (float
                   states, ``uint8`` RAM), of any rank
``image``          a ``uint8`` ``Box`` of rank 3 (``H x W x C`` or ``C x H x W``;
                   :func:`mbwrap.spaces.is_image`)
``Discrete``       ``Discrete(n, start)``
``MultiDiscrete``  ``MultiDiscrete``
``MultiBinary``    ``MultiBinary``
``Dict``           ``Dict``: its entries (nested ones included) are checked against the
                   component's :attr:`SpaceSupport.leaves`
``Tuple``          ``Tuple``: likewise
=================  =====================================================================

Any other space (``Text``, ``Graph``, ``Sequence``, ``OneOf``, a custom one) has its class
name as its kind, and no component takes it: it has no tensor form.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces

from mbwrap.errors import UnsupportedSpaceError
from mbwrap.spaces import is_image

#: Every kind a component may take, in the order tables and messages list them.
KINDS: tuple[str, ...] = (
    "Box", "image", "Discrete", "MultiDiscrete", "MultiBinary", "Dict", "Tuple"
)
#: The kinds whose spaces hold other spaces.
CONTAINERS: tuple[str, ...] = ("Dict", "Tuple")

#: The kinds named after their Gymnasium class (``Box`` splits into ``Box`` and ``image``).
_KIND_CLASSES: tuple[tuple[str, type[spaces.Space]], ...] = (
    ("Discrete", spaces.Discrete),
    ("MultiDiscrete", spaces.MultiDiscrete),
    ("MultiBinary", spaces.MultiBinary),
    ("Dict", spaces.Dict),
    ("Tuple", spaces.Tuple),
)


def space_kind(space: Any) -> str:
    """The kind of ``space`` (see the module table); a class name for any other space."""
    if isinstance(space, spaces.Box):
        return "image" if is_image(space) else "Box"
    for kind, cls in _KIND_CLASSES:
        if isinstance(space, cls):
            return kind
    return type(space).__name__


def _ordered(kinds: Iterable[str]) -> list[str]:
    return [kind for kind in KINDS if kind in set(kinds)]


def _kinds(value: Iterable[str], name: str) -> frozenset[str]:
    if isinstance(value, str):
        value = (value,)
    kinds = frozenset(value)
    unknown = sorted(kinds - set(KINDS))
    if unknown:
        raise ValueError(f"{name}: unknown space kinds {unknown}; expected some of {KINDS}")
    return kinds


@dataclass(frozen=True)
class SpaceSupport:
    """The spaces a component takes. Kinds are given as any iterable of names from
    :data:`KINDS` (e.g. a tuple) and stored as frozensets.

    :param observations: kinds of observation space taken; ``None`` for a component that
        reads observations only through its model (planners): whatever the model takes.
    :param actions: kinds of action space taken.
    :param leaves: kinds taken as the entries of a ``Dict`` or ``Tuple`` observation (at
        any depth); default: the non-container kinds of ``observations``.
    :param bounded_actions: ``Box`` actions need finite ``low`` and ``high`` (the
        component samples or squashes within them).
    :param observation_note: what the kinds do not say about observations, shown in the
        table and in errors about observation spaces.
    :param action_note: likewise for actions.
    """

    observations: frozenset[str] | None
    actions: frozenset[str]
    leaves: frozenset[str] = field(default=frozenset())
    bounded_actions: bool = False
    observation_note: str = ""
    action_note: str = ""

    def __post_init__(self) -> None:
        # Frozen: normalise the given iterables in place once.
        leaves = _kinds(self.leaves, "leaves")
        if leaves & set(CONTAINERS):
            raise ValueError(
                "leaves: list leaf kinds only; nested Dict and Tuple entries are checked leaf "
                "by leaf"
            )
        observations = self.observations
        if observations is not None:
            observations = _kinds(observations, "observations")
            if observations & set(CONTAINERS):
                leaves = leaves or observations - set(CONTAINERS)
            elif leaves:
                raise ValueError("leaves: only for components that take Dict or Tuple spaces")
        elif leaves:
            raise ValueError("leaves: only for components that take Dict or Tuple spaces")
        object.__setattr__(self, "observations", observations)
        object.__setattr__(self, "leaves", leaves)
        object.__setattr__(self, "actions", _kinds(self.actions, "actions"))
        if set(self.actions) & set(CONTAINERS):
            raise ValueError("actions: SB3 takes no Dict or Tuple action spaces")

    # ------------------------------------------------------------------ descriptions
    def describe_observations(self) -> str:
        """E.g. ``"Box, Discrete, and Dict or Tuple of these"``, ``"Box; Dict of Box,
        image"``, or ``"as its model"``."""
        if self.observations is None:
            return "as its model"
        plain = _ordered(self.observations - set(CONTAINERS))
        containers = " or ".join(_ordered(self.observations & set(CONTAINERS)))
        if not containers:
            return ", ".join(plain)
        if plain and set(plain) == self.leaves:
            return f"{', '.join(plain)}, and {containers} of these"
        leaves = ", ".join(_ordered(self.leaves))
        return f"{', '.join(plain)}; {containers} of {leaves}" if plain else (
            f"{containers} of {leaves}"
        )

    @property
    def notes(self) -> str:
        """Both notes, once each, joined by ``"; "``."""
        notes = dict.fromkeys(n for n in (self.observation_note, self.action_note) if n)
        return "; ".join(notes)

    def describe_actions(self) -> str:
        """E.g. ``"bounded Box, Discrete"``."""
        names = _ordered(self.actions)
        if self.bounded_actions and "Box" in names:
            names[names.index("Box")] = "bounded Box"
        return ", ".join(names)


def _what(space: Any) -> str:
    """How a refused space is described in an error, e.g. ``"a space of kind Text"``."""
    if not isinstance(space, spaces.Space):
        return f"an object of type {type(space).__name__}, not a gymnasium space"
    if space_kind(space) == "image":
        return "an image: a uint8 Box of rank 3"
    return f"a space of kind {space_kind(space)}"


def _suffix(note: str) -> str:
    return f" ({note})" if note else ""


def _check_leaves(
    space: spaces.Space, support: SpaceSupport, *, owner: str, name: str
) -> None:
    """Every entry of a Dict/Tuple ``space``, at any depth, is of a kind in ``leaves``."""
    items = (
        ((f"{name}[{key!r}]", entry) for key, entry in space.spaces.items())
        if isinstance(space, spaces.Dict)
        else ((f"{name}[{i}]", entry) for i, entry in enumerate(space.spaces))
    )
    for entry_name, entry in items:
        if isinstance(entry, (spaces.Dict, spaces.Tuple)):
            _check_leaves(entry, support, owner=owner, name=entry_name)
        elif space_kind(entry) not in support.leaves:
            raise UnsupportedSpaceError(
                f"{entry_name}: {owner} takes {type(space).__name__} observations whose "
                f"entries are {', '.join(_ordered(support.leaves))}; got {entry!r} "
                f"({_what(entry)}){_suffix(support.observation_note)}"
            )


def check_observation_space(
    support: SpaceSupport, space: Any, *, owner: str, name: str = "observation_space"
) -> None:
    """Raise unless ``support`` takes ``space`` as observations.

    :param owner: the component, as the message names it (e.g. ``"MBPO"``).
    :param name: the argument, as the message names it (e.g. ``"env.observation_space"``).
    :raises UnsupportedSpaceError: naming ``name``, ``owner``, what it takes and what came.
    """
    if support.observations is None:
        return
    kind = space_kind(space)
    if kind not in support.observations:
        raise UnsupportedSpaceError(
            f"{name}: {owner} takes these observation spaces: "
            f"{support.describe_observations()}; got {space!r} ({_what(space)})"
            f"{_suffix(support.observation_note)}"
        )
    if kind in CONTAINERS:
        if not space.spaces:
            raise UnsupportedSpaceError(f"{name}: got an empty {kind} space")
        _check_leaves(space, support, owner=owner, name=name)


def check_action_space(
    support: SpaceSupport, space: Any, *, owner: str, name: str = "action_space"
) -> None:
    """Raise unless ``support`` takes ``space`` as actions (bounds included).

    :raises UnsupportedSpaceError: naming ``name``, ``owner``, what it takes and what came.
    """
    kind = space_kind(space)
    # An image-shaped action is still a Box of actions.
    if kind == "image":
        kind = "Box"
    if kind not in support.actions:
        raise UnsupportedSpaceError(
            f"{name}: {owner} takes these action spaces: {support.describe_actions()}; got "
            f"{space!r} ({_what(space)}){_suffix(support.action_note)}"
        )
    if kind == "Box" and support.bounded_actions and not (
        np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))
    ):
        raise UnsupportedSpaceError(
            f"{name}: {owner} needs a bounded Box (finite low and high), as it samples or "
            f"squashes actions within the bounds; got {space!r}"
        )


def check_support(
    support: SpaceSupport,
    observation_space: Any,
    action_space: Any,
    *,
    owner: str,
    prefix: str = "",
) -> None:
    """Raise unless ``support`` takes both spaces.

    :param prefix: put before the argument names, e.g. ``"env."`` names
        ``env.observation_space`` and ``env.action_space``.
    :raises UnsupportedSpaceError: see :func:`check_observation_space` and
        :func:`check_action_space`.
    """
    check_observation_space(
        support, observation_space, owner=owner, name=f"{prefix}observation_space"
    )
    check_action_space(support, action_space, owner=owner, name=f"{prefix}action_space")
