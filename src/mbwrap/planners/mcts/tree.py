"""The search tree of ``B`` independent searches as preallocated tensors.

Node ``0`` of every row is the root; a search of ``S`` simulations adds one node per
simulation, so a tree holds ``S + 1`` nodes, plus one spare slot at the end that the
batched backup writes to for rows whose path is shorter (never read). Per-edge
statistics live in the parent's row (``[B, N, A]``), per-node ones in ``[B, N]``, and
the model's hidden states in ``embeddings`` (leaves shaped ``[B, N, ...]``). Everything
stays on one device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any, NamedTuple

import torch

from mbwrap.planners.mcts.types import Embedding

#: ``children_index`` of an action never taken, and ``parents`` of a root.
UNVISITED = -1
NO_PARENT = -1
ROOT_INDEX = 0


def tree_map(fn: Callable[[torch.Tensor], torch.Tensor], embedding: Any) -> Any:
    """Apply ``fn`` to every tensor of an :data:`Embedding` (tensor, tuple or dict)."""
    if isinstance(embedding, torch.Tensor):
        return fn(embedding)
    if isinstance(embedding, tuple):
        return tuple(tree_map(fn, e) for e in embedding)
    if isinstance(embedding, dict):
        return {k: tree_map(fn, v) for k, v in embedding.items()}
    raise TypeError(
        f"embedding: expected a tensor or a tuple/dict of tensors, got {type(embedding).__name__}"
    )


def tree_map2(fn: Callable[[torch.Tensor, torch.Tensor], Any], first: Any, second: Any) -> Any:
    """Like :func:`tree_map` over two embeddings of the same structure."""
    if isinstance(first, torch.Tensor):
        return fn(first, second)
    if isinstance(first, tuple):
        return tuple(tree_map2(fn, a, b) for a, b in zip(first, second, strict=True))
    if isinstance(first, dict):
        return {k: tree_map2(fn, first[k], second[k]) for k in first}
    raise TypeError(
        f"embedding: expected a tensor or a tuple/dict of tensors, got {type(first).__name__}"
    )


class SearchSummary(NamedTuple):
    """What a search concluded at its roots.

    :param visit_counts: ``[B, A]`` visits of each root action.
    :param visit_probs: ``[B, A]`` the same, normalised.
    :param value: ``[B]`` the root values (mean of the backed-up returns).
    :param qvalues: ``[B, A]`` ``reward + discount * value`` of each root action (0 where
        never visited).
    """

    visit_counts: torch.Tensor
    visit_probs: torch.Tensor
    value: torch.Tensor
    qvalues: torch.Tensor


@dataclass
class Tree:
    """``B`` search trees of ``N`` nodes over ``A`` actions.

    :param node_visits: ``[B, N]`` visits of each node (a new node counts its expansion).
    :param raw_values: ``[B, N]`` the model's value when the node was expanded.
    :param node_values: ``[B, N]`` mean of the returns backed up through the node.
    :param parents: ``[B, N]`` long, parent index (``NO_PARENT`` for roots and free slots).
    :param action_from_parent: ``[B, N]`` long.
    :param children_index: ``[B, N, A]`` long, child node of each action (``UNVISITED``).
    :param edge_stats: ``[B, N, 4, A]``: :attr:`children_visits`,
        :attr:`children_qvalues`, :attr:`children_prior_logits` and ``0`` or ``-inf``
        for legal and illegal actions (:attr:`invalid_actions`).
    :param children_rewards: ``[B, N, A]``.
    :param children_discounts: ``[B, N, A]``.
    :param children_values: ``[B, N, A]`` the children's ``node_values``.
    :param num_nodes: ``[B]`` long, nodes in use (the next free slot).
    :param min_q: ``[B]`` smallest Q seen in each tree (MuZero's min-max statistics).
    :param max_q: ``[B]`` largest Q seen in each tree.
    :param q_low: ``[B]`` and
    :param q_scale: ``[B]``: the normalisation of Q (:meth:`update_q_normalizer`).
    :param root_gumbel: ``[B, A]`` the Gumbel noise of Gumbel search's root (zeros else).
    :param embeddings: the hidden states, leaves ``[B, N, ...]``.
    """

    node_visits: torch.Tensor
    raw_values: torch.Tensor
    node_values: torch.Tensor
    parents: torch.Tensor
    action_from_parent: torch.Tensor
    children_index: torch.Tensor
    edge_stats: torch.Tensor
    children_rewards: torch.Tensor
    children_discounts: torch.Tensor
    children_values: torch.Tensor
    num_nodes: torch.Tensor
    min_q: torch.Tensor
    max_q: torch.Tensor
    q_low: torch.Tensor
    q_scale: torch.Tensor
    root_gumbel: torch.Tensor
    embeddings: Embedding

    def __post_init__(self) -> None:
        self._rows = torch.arange(self.node_visits.shape[0], device=self.node_visits.device)

    # The statistics selection reads at a node, kept side by side so that one gather
    # fetches them: [B, N, 4, A] = visits, Q, prior logits, 0 or -inf for illegal actions.
    @property
    def children_visits(self) -> torch.Tensor:
        """``[B, N, A]`` visits of each action (a view)."""
        return self.edge_stats[:, :, 0]

    @property
    def children_qvalues(self) -> torch.Tensor:
        """``[B, N, A]`` ``reward + discount * child value`` (0 where unvisited; a view)."""
        return self.edge_stats[:, :, 1]

    @property
    def children_prior_logits(self) -> torch.Tensor:
        """``[B, N, A]`` prior logits, illegal actions at the lowest finite logit (a view)."""
        return self.edge_stats[:, :, 2]

    @property
    def invalid_actions(self) -> torch.Tensor:
        """``[B, N, A]`` bool, illegal actions of each node."""
        return self.edge_stats[:, :, 3] < 0

    # ------------------------------------------------------------------ shape
    @property
    def batch_size(self) -> int:
        return self.node_visits.shape[0]

    @property
    def capacity(self) -> int:
        return self.node_visits.shape[1]

    @property
    def num_actions(self) -> int:
        return self.children_index.shape[-1]

    @property
    def device(self) -> torch.device:
        return self.node_visits.device

    @property
    def batch_range(self) -> torch.Tensor:
        """``[B]`` ``0..B-1``, to index one node per row: ``x[tree.batch_range, node]``."""
        return self._rows

    def update_q_normalizer(self) -> None:
        """Recompute :attr:`q_low` and :attr:`q_scale` from :attr:`min_q` and :attr:`max_q`.

        MuZero's ``(Q - min) / (max - min)`` is ``(Q - q_low) * q_scale``, the identity
        until two different Q have been seen. Selection reads it at every level; it
        changes only when a backup changes the min or max.
        """
        spread = self.max_q - self.min_q
        known = torch.isfinite(spread) & (spread > 0)
        self.q_low.copy_(torch.where(known, self.min_q, torch.zeros_like(spread)))
        self.q_scale.copy_(
            torch.where(known, 1.0 / spread.clamp(min=1e-8), torch.ones_like(spread))
        )

    # ------------------------------------------------------------------ views
    def qvalues(self, node: torch.Tensor) -> torch.Tensor:
        """``reward + discount * value`` of each action at ``node`` (``[B]``): ``[B, A]``."""
        return self.children_qvalues[self.batch_range, node]

    def clone(self) -> Tree:
        """A copy whose tensors share nothing with this tree."""
        copies = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in copies.items():
            copies[name] = tree_map(torch.clone, value)
        return Tree(**copies)

    def node_stats(self, node: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(visits, qvalues, prior_logits, penalty)``, each ``[B, A]``, at ``node`` (``[B]``).

        ``penalty`` is 0 for legal actions and ``-inf`` for illegal ones: add it to a
        score before ``argmax``. One gather fetches all four.
        """
        flat = self.batch_range * self.capacity + node
        stats = self.edge_stats.view(-1, 4, self.num_actions).index_select(0, flat)
        return stats.unbind(1)

    def node_scalar(self, values: torch.Tensor, node: torch.Tensor) -> torch.Tensor:
        """``values[b, node[b]]`` for a ``[B, N]`` statistic: ``[B]``."""
        return values.view(-1).index_select(0, self.batch_range * self.capacity + node)

    def summary(self) -> SearchSummary:
        """The roots' visit counts, visit distribution, values and Q values."""
        counts = self.children_visits[:, ROOT_INDEX]
        total = counts.sum(-1, keepdim=True)
        probs = torch.where(total > 0, counts / total.clamp(min=1), torch.zeros_like(counts))
        root = torch.zeros(self.batch_size, dtype=torch.long, device=self.device)
        return SearchSummary(
            visit_counts=counts,
            visit_probs=probs,
            value=self.node_values[:, ROOT_INDEX],
            qvalues=self.qvalues(root),
        )


def empty_tree(
    batch_size: int,
    capacity: int,
    num_actions: int,
    root_embedding: Embedding,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Tree:
    """A tree with every slot free (``num_nodes = 0``); embeddings shaped like the roots'.

    :param capacity: node slots, the spare one included.
    :param root_embedding: leaves ``[B, ...]``: only their shapes and dtypes are used.
    """
    b, n, a = batch_size, capacity, num_actions

    def zeros(*shape: int) -> torch.Tensor:
        return torch.zeros(shape, dtype=dtype, device=device)

    def indices(*shape: int) -> torch.Tensor:
        return torch.full(shape, UNVISITED, dtype=torch.long, device=device)

    return Tree(
        node_visits=zeros(b, n),
        raw_values=zeros(b, n),
        node_values=zeros(b, n),
        parents=indices(b, n),
        action_from_parent=indices(b, n),
        children_index=indices(b, n, a),
        edge_stats=zeros(b, n, 4, a),
        children_rewards=zeros(b, n, a),
        children_discounts=zeros(b, n, a),
        children_values=zeros(b, n, a),
        num_nodes=torch.zeros(b, dtype=torch.long, device=device),
        min_q=torch.full((b,), float("inf"), dtype=dtype, device=device),
        max_q=torch.full((b,), float("-inf"), dtype=dtype, device=device),
        q_low=zeros(b),
        q_scale=torch.ones(b, dtype=dtype, device=device),
        root_gumbel=zeros(b, a),
        embeddings=tree_map(
            lambda e: torch.zeros((b, n, *e.shape[1:]), dtype=e.dtype, device=e.device),
            root_embedding,
        ),
    )


def _per_node(tree: Tree) -> list[str]:
    per_tree = ("num_nodes", "min_q", "max_q", "q_low", "q_scale", "root_gumbel", "embeddings")
    return [f.name for f in fields(tree) if f.name not in per_tree]


def grow(tree: Tree, capacity: int) -> Tree:
    """The same tree with ``capacity`` slots (free ones appended, the spare one last).

    A grown tree shares no tensor with ``tree``: a search that continues from a reused
    tree writes its statistics in place, and the caller's tree must stay as it was.
    ``tree`` itself is returned when it already has ``capacity`` slots.
    """
    extra = capacity - tree.capacity
    if extra <= 0:
        return tree
    bigger = empty_tree(
        tree.batch_size, capacity, tree.num_actions,
        tree_map(lambda e: e[:, 0], tree.embeddings),
        dtype=tree.node_values.dtype, device=tree.device,
    )
    updates: dict[str, Any] = {}
    kept = tree.capacity - 1  # the old spare slot becomes an ordinary free one
    for name in _per_node(tree):
        target = getattr(bigger, name)
        target[:, :kept] = getattr(tree, name)[:, :kept]
        updates[name] = target

    def copy(big: torch.Tensor, small: torch.Tensor) -> torch.Tensor:
        big[:, :kept] = small[:, :kept]
        return big

    updates["embeddings"] = tree_map2(copy, bigger.embeddings, tree.embeddings)
    for name in ("num_nodes", "min_q", "max_q", "q_low", "q_scale", "root_gumbel"):
        updates[name] = getattr(tree, name).clone()
    return replace(tree, **updates)


def reuse_subtree(
    tree: Tree, action: torch.Tensor, keep: torch.Tensor | None = None
) -> Tree:
    """Keep, in each row, the subtree under the root's ``action`` as the new tree.

    After acting, the node the game moved to already carries the statistics of the
    simulations that went through it (AlphaZero reuses them: Silver et al. 2017). Its
    descendants keep their relative order, the new root is node 0, and the capacity
    shrinks to the largest subtree. Rows whose child was never visited, or where
    ``keep`` is False, come back empty (``num_nodes = 0``) and start afresh.

    :param action: ``[B]`` long, the action taken at each root.
    :param keep: ``[B]`` bool, rows to reuse (``None``: all).
    """
    action = torch.as_tensor(action, device=tree.device).long().reshape(-1)
    if action.shape[0] != tree.batch_size:
        raise ValueError(
            f"action: expected {tree.batch_size} actions (one per root), got {action.shape[0]}"
        )
    rows = tree.batch_range
    child = tree.children_index[rows, ROOT_INDEX, action]  # [B]
    if keep is not None:
        child = torch.where(torch.as_tensor(keep, device=tree.device).bool(), child, UNVISITED)
    n = tree.capacity
    # A node is in the subtree when walking up its parents reaches `child`.
    ancestor = torch.arange(n, device=tree.device).expand(tree.batch_size, n).clone()
    inside = ancestor == child[:, None]
    for _ in range(n):
        ancestor = torch.where(ancestor >= 0, tree.parents.gather(1, ancestor.clamp(min=0)), -1)
        inside |= ancestor == child[:, None]
        if not bool((ancestor >= 0).any()):  # between searches, so a host read is fine
            break
    inside &= (child >= 0)[:, None]
    count = inside.sum(1)  # [B]
    new_index = torch.where(inside, inside.long().cumsum(1) - 1, UNVISITED)  # old -> new
    size = int(count.max()) + 1  # and the spare slot
    # new -> old: scatter each kept node's old index to its new slot.
    old_index = torch.zeros(tree.batch_size, size, dtype=torch.long, device=tree.device)
    slot = torch.where(inside, new_index, size)  # park the others one past the end
    padded = torch.zeros(tree.batch_size, size + 1, dtype=torch.long, device=tree.device)
    padded.scatter_(1, slot, torch.arange(n, device=tree.device).expand(tree.batch_size, n))
    old_index = padded[:, :size]
    used = torch.arange(size, device=tree.device)[None] < count[:, None]  # [B, size]

    fresh = empty_tree(
        tree.batch_size, size, tree.num_actions, tree_map(lambda e: e[:, 0], tree.embeddings),
        dtype=tree.node_values.dtype, device=tree.device,
    )

    def take(x: torch.Tensor, blank: torch.Tensor) -> torch.Tensor:
        index = old_index.reshape(tree.batch_size, size, *([1] * (x.dim() - 2)))
        gathered = x.gather(1, index.expand(-1, -1, *x.shape[2:]))
        mask = used.reshape(tree.batch_size, size, *([1] * (x.dim() - 2)))
        return torch.where(mask, gathered, blank)

    def remap(x: torch.Tensor) -> torch.Tensor:
        return torch.where(x >= 0, new_index.gather(1, x.clamp(min=0).flatten(1)).view_as(x), -1)

    updates: dict[str, Any] = {}
    for name in _per_node(tree):
        updates[name] = take(getattr(tree, name), getattr(fresh, name))
    updates["children_index"] = remap(updates["children_index"])
    parents = remap(updates["parents"])
    parents[:, ROOT_INDEX] = NO_PARENT
    updates["parents"] = parents
    updates["action_from_parent"][:, ROOT_INDEX] = UNVISITED
    updates["embeddings"] = tree_map2(take, tree.embeddings, fresh.embeddings)
    reused = replace(
        fresh,
        **updates,
        num_nodes=count,
        min_q=torch.where(count > 0, tree.min_q, fresh.min_q),
        max_q=torch.where(count > 0, tree.max_q, fresh.max_q),
    )
    reused.update_q_normalizer()
    return reused
