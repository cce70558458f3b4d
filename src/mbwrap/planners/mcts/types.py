"""The data that flows into and out of a search: roots, model steps, search results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Union, runtime_checkable

import torch

if TYPE_CHECKING:
    from mbwrap.planners.mcts.tree import Tree

#: A model's hidden state for a batch: a tensor ``[B, ...]`` or a tuple / dict of them
#: (every leaf has the batch as its first dimension).
Embedding = Union[torch.Tensor, tuple[Any, ...], dict[str, Any]]  # noqa: UP007


@dataclass
class RootFnOutput:
    """What the model says about ``B`` roots.

    :param prior_logits: ``[B, A]`` policy logits.
    :param value: ``[B]`` value estimates, from the point of view of the player to move.
    :param embedding: the roots' hidden states (see :data:`Embedding`).
    :param invalid_actions: ``[B, A]`` bool, actions illegal at the roots (from the
        environment's action mask), or ``None`` when every action is allowed.
    """

    prior_logits: torch.Tensor
    value: torch.Tensor
    embedding: Embedding
    invalid_actions: torch.Tensor | None = None


@dataclass
class RecurrentFnOutput:
    """What the model says about one step from ``B`` nodes.

    :param reward: ``[B]`` reward of the step, for the player who acted.
    :param discount: ``[B]`` discount of the step: ``gamma`` (e.g. 0.997) in
        single-player tasks, ``-1`` between the moves of a two-player zero-sum game (the
        next node's value is from the opponent's point of view), ``0`` after a terminal
        state (nothing beyond it counts).
    :param prior_logits: ``[B, A]`` policy logits at the new nodes.
    :param value: ``[B]`` values of the new nodes, for the player to move there.
    :param invalid_actions: ``[B, A]`` bool, actions illegal at the new nodes, when a
        simulator knows them; ``None`` for learned models (every action allowed).
    """

    reward: torch.Tensor
    discount: torch.Tensor
    prior_logits: torch.Tensor
    value: torch.Tensor
    invalid_actions: torch.Tensor | None = None


#: ``(embedding [B, ...], action [B] long) -> (RecurrentFnOutput, next embedding)``.
RecurrentFn = Callable[[Embedding, torch.Tensor], tuple[RecurrentFnOutput, Embedding]]


@dataclass
class PolicyOutput:
    """The result of a search policy.

    :param action: ``[B]`` long, the action to take at each root.
    :param action_weights: ``[B, A]`` the search policy: the training target for the
        policy head (visit distribution for PUCT, improved policy for Gumbel search).
    :param search_tree: the tree the search built (for subtree reuse and inspection).
    """

    action: torch.Tensor
    action_weights: torch.Tensor
    search_tree: Tree


@runtime_checkable
class SearchModel(Protocol):
    """What tree search needs from a model: roots from observations, and steps.

    Learned models (MuZero's networks), known rules (board games on tensors) and real
    simulators (snapshot and restore) all provide it; the ``"mcts"`` planner searches
    over any of them.
    """

    #: ``A``, the number of discrete actions.
    num_actions: int

    def root(self, obs: Any) -> RootFnOutput:
        """Roots for a batch of observations (``obs`` as the environment gives them)."""
        ...

    def recurrent_fn(
        self, embedding: Embedding, action: torch.Tensor
    ) -> tuple[RecurrentFnOutput, Embedding]:
        """One step from ``B`` nodes: see :data:`RecurrentFn`."""
        ...
