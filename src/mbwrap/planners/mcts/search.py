"""One batched tree search: simulate (select a path), expand (one model call), back up.

All ``B`` trees advance together: each simulation descends every tree at once (a loop
over depth, never over the batch), calls the model once on ``B`` leaves, and backs the
``B`` values up their paths. Nothing leaves the model's device.

The depth loops stop as soon as every path has ended. On the CPU the check reads memory
the host already holds; on an accelerator it would be a device-to-host copy, so there
the loops run a fixed number of steps instead (the longest path the tree can hold),
with the rows that have finished frozen, and the search never waits on the device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import NamedTuple

import torch

from mbwrap.device import accelerator_paths
from mbwrap.errors import ModelOutputError
from mbwrap.planners.mcts.tree import (
    ROOT_INDEX,
    UNVISITED,
    Tree,
    empty_tree,
    grow,
    tree_map,
    tree_map2,
)
from mbwrap.planners.mcts.types import Embedding, RecurrentFn, RecurrentFnOutput, RootFnOutput

#: ``tree -> [B]`` actions at the roots.
RootActionSelectionFn = Callable[[Tree], torch.Tensor]
#: ``(tree, node [B]) -> [B]`` actions at interior nodes.
InteriorActionSelectionFn = Callable[[Tree, torch.Tensor], torch.Tensor]


def check_num_simulations(num_simulations: object) -> int:
    if (
        isinstance(num_simulations, bool)
        or not isinstance(num_simulations, int)
        or num_simulations < 1
    ):
        raise ValueError(f"num_simulations: expected an int >= 1, got {num_simulations!r}")
    return num_simulations


def check_max_depth(max_depth: object) -> int | None:
    if max_depth is not None and (isinstance(max_depth, bool) or int(max_depth) < 1):
        raise ValueError(f"max_depth: expected None or an int >= 1, got {max_depth!r}")
    return None if max_depth is None else int(max_depth)


def mask_logits(logits: torch.Tensor, invalid: torch.Tensor | None) -> torch.Tensor:
    """Shift logits to a maximum of 0 and give illegal actions the lowest finite logit.

    A finite floor keeps softmax and sums free of ``nan`` where ``-inf`` would not.
    """
    logits = logits - logits.max(-1, keepdim=True).values
    if invalid is None:
        return logits
    return logits.masked_fill(invalid, torch.finfo(logits.dtype).min)


def check_root(root: RootFnOutput, invalid_actions: torch.Tensor | None) -> torch.Tensor | None:
    """Check the roots' shapes; return the root mask (``invalid_actions`` or the root's)."""
    logits, value = root.prior_logits, root.value
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise ValueError(
            "root.prior_logits: expected a [B, A] tensor, got "
            f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__}"
        )
    batch, actions = logits.shape
    if not isinstance(value, torch.Tensor) or value.shape != (batch,):
        raise ValueError(
            f"root.value: expected shape ({batch},) to match root.prior_logits, got "
            f"{tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__}"
        )
    if invalid_actions is None:
        invalid_actions = root.invalid_actions
    if invalid_actions is not None:
        invalid_actions = torch.as_tensor(invalid_actions, device=logits.device).bool()
        if invalid_actions.shape != (batch, actions):
            raise ValueError(
                f"invalid_actions: expected a [{batch}, {actions}] bool mask, got shape "
                f"{tuple(invalid_actions.shape)}"
            )
    for leaf in _leaves(root.embedding):
        if leaf.shape[:1] != (batch,):
            raise ValueError(
                f"root.embedding: every tensor needs the batch ({batch}) first, got shape "
                f"{tuple(leaf.shape)}"
            )
    return invalid_actions


def _leaves(embedding: object) -> list[torch.Tensor]:
    found: list[torch.Tensor] = []
    tree_map(lambda e: found.append(e) or e, embedding)
    return found


def _check_step(out: RecurrentFnOutput, batch: int, actions: int) -> None:
    for name, want in (("reward", (batch,)), ("discount", (batch,)), ("value", (batch,)),
                       ("prior_logits", (batch, actions))):
        got = getattr(out, name)
        if not isinstance(got, torch.Tensor) or got.shape != want:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise ValueError(f"recurrent_fn: expected {name} of shape {want}, got {shape}")


def allocate(root: RootFnOutput, num_simulations: int, tree: Tree | None) -> Tree:
    """An empty tree for ``root`` with room for ``num_simulations`` more nodes, or the reused
    ``tree`` grown by as many slots (its per-tree statistics are still ``tree``'s)."""
    batch, actions = root.prior_logits.shape
    if tree is None:
        return empty_tree(batch, num_simulations + 2, actions, root.embedding,
                          dtype=root.value.dtype, device=root.value.device)
    if tree.batch_size != batch or tree.num_actions != actions:
        raise ValueError(
            f"tree: expected {batch} trees over {actions} actions to match the root, got "
            f"{tree.batch_size} over {tree.num_actions}"
        )
    return grow(tree, tree.capacity + num_simulations)


def write_root_embeddings(tree: Tree, embedding: Embedding) -> None:
    """Store the roots' embedding (leaves ``[B, ...]``) in slot 0 of every row."""

    def write_root(stored: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        stored[:, ROOT_INDEX] = new
        return stored

    tree_map2(write_root, tree.embeddings, embedding)


def initialize(
    root: RootFnOutput,
    num_simulations: int,
    invalid_actions: torch.Tensor | None,
    tree: Tree | None,
    root_gumbel: torch.Tensor | None,
) -> Tree:
    """A tree whose roots hold ``root``, with room for ``num_simulations`` more nodes.

    A reused ``tree`` keeps its statistics; its roots get the new prior, value and
    embedding (fresh rows, ``num_nodes == 0``, start from the root alone).
    """
    batch, actions = root.prior_logits.shape
    dtype, device = root.value.dtype, root.value.device
    tree = allocate(root, num_simulations, tree)
    fresh = tree.num_nodes == 0
    invalid = (
        torch.zeros(batch, actions, dtype=torch.bool, device=device)
        if invalid_actions is None else invalid_actions
    )
    stats = tree.edge_stats[:, ROOT_INDEX]
    stats[:, 2] = mask_logits(root.prior_logits.to(dtype), invalid)
    stats[:, 3] = _penalty(invalid, dtype)
    tree.raw_values[:, ROOT_INDEX] = root.value
    tree.node_values[:, ROOT_INDEX] = torch.where(fresh, root.value,
                                                  tree.node_values[:, ROOT_INDEX])
    tree.node_visits[:, ROOT_INDEX] = torch.where(fresh, 1.0, tree.node_visits[:, ROOT_INDEX])
    write_root_embeddings(tree, root.embedding)
    gumbel = torch.zeros_like(tree.root_gumbel) if root_gumbel is None else root_gumbel
    return replace(tree, num_nodes=tree.num_nodes.clamp(min=1), root_gumbel=gumbel)


def _penalty(invalid: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """0 for legal actions, ``-inf`` for illegal ones (all kept when none is legal)."""
    invalid = invalid & ~invalid.all(-1, keepdim=True)
    return torch.zeros(invalid.shape, dtype=dtype, device=invalid.device).masked_fill(
        invalid, float("-inf")
    )


def _continue(active: torch.Tensor, step: int, bound: int) -> bool:
    if accelerator_paths(active.device):
        return step < bound  # no host read per level: a fixed number of levels
    return bool(active.any())


class Path(NamedTuple):
    """The edges a simulation followed: level ``k`` is ``(parents[:, k], actions[:, k])``.

    :param parents: ``[B, L]`` long; :param actions: ``[B, L]`` long.
    :param valid: ``[B, L]`` bool, a prefix of True per row (shorter paths are padded).
    """

    parents: torch.Tensor
    actions: torch.Tensor
    valid: torch.Tensor


def simulate(
    tree: Tree,
    root_action_selection_fn: RootActionSelectionFn,
    interior_action_selection_fn: InteriorActionSelectionFn,
    *,
    max_depth: int,
    depth_bound: int,
) -> Path:
    """Descend every tree from its root to an action never taken (or ``max_depth``).

    The last valid edge of each row is the one to expand.
    """
    rows = tree.batch_range
    node = torch.zeros_like(rows)
    action = root_action_selection_fn(tree)
    children = tree.children_index.view(-1)
    row_offset = rows * tree.capacity
    num_actions = tree.num_actions
    next_node = children[(row_offset + node) * num_actions + action]
    depth = 1
    nodes, actions, valid = [node], [action], [torch.ones_like(rows, dtype=torch.bool)]
    active = next_node != UNVISITED
    if max_depth <= 1:
        active = torch.zeros_like(active)
    step = 1
    while _continue(active, step, depth_bound):
        node = torch.where(active, next_node, node)
        action = torch.where(active, interior_action_selection_fn(tree, node), action)
        nodes.append(node)
        actions.append(action)
        valid.append(active)
        next_node = children[(row_offset + node) * num_actions + action]
        depth += 1
        active = active & (next_node != UNVISITED)
        if depth >= max_depth:
            active = torch.zeros_like(active)
        step += 1
    return Path(torch.stack(nodes, 1), torch.stack(actions, 1), torch.stack(valid, 1))


def last_edge(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """``(parent [B], action [B])`` of each row's last valid edge."""
    last = path.valid.sum(1, keepdim=True) - 1
    return path.parents.gather(1, last).squeeze(1), path.actions.gather(1, last).squeeze(1)


def expand(
    tree: Tree,
    recurrent_fn: RecurrentFn,
    parent: torch.Tensor,
    action: torch.Tensor,
    node: torch.Tensor,
) -> None:
    """Call the model once for all rows and write the new nodes ``node`` (``[B]``)."""
    rows = tree.batch_range
    n, a = tree.capacity, tree.num_actions
    parent_flat = rows * n + parent
    node_flat = rows * n + node
    edge_flat = parent_flat * a + action
    embedding = tree_map(lambda e: e.flatten(0, 1).index_select(0, parent_flat), tree.embeddings)
    out, next_embedding = recurrent_fn(embedding, action)
    _check_step(out, tree.batch_size, tree.num_actions)
    dtype = tree.node_values.dtype
    invalid = out.invalid_actions
    stats = torch.zeros_like(tree.edge_stats[:, 0])
    stats[:, 2] = mask_logits(out.prior_logits.to(dtype), invalid)
    if invalid is not None:
        stats[:, 3] = _penalty(invalid.bool(), dtype)
    tree.edge_stats.view(-1, 4, a)[node_flat] = stats
    value = out.value.to(dtype)
    tree.raw_values.view(-1)[node_flat] = value
    tree.node_values.view(-1)[node_flat] = value
    visits = tree.node_visits.view(-1)
    visits[node_flat] = visits[node_flat] + 1.0
    tree.parents.view(-1)[node_flat] = parent
    tree.action_from_parent.view(-1)[node_flat] = action
    tree.children_index.view(-1)[edge_flat] = node
    tree.children_rewards.view(-1)[edge_flat] = out.reward.to(dtype)
    tree.children_discounts.view(-1)[edge_flat] = out.discount.to(dtype)

    def store(stored: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        stored.view(-1, *stored.shape[2:])[node_flat] = new.to(stored.dtype)
        return stored

    tree_map2(store, tree.embeddings, next_embedding)


def backward(tree: Tree, path: Path, leaf: torch.Tensor) -> None:
    """Back the leaves' values up their paths, all levels in one scatter per statistic.

    The return seen from each parent on the path, ``G_k = r_k + d_k G_{k+1}`` (``G``
    starting at the leaf's value), updates the parent's mean value and visit count; each
    edge gets its child's new value, one more visit and its new Q; the tree's min and max
    Q take in the path's Q.
    """
    n, a = tree.capacity, tree.num_actions
    spare = n - 1
    row_offset = (tree.batch_range * n)[:, None]
    parents = torch.where(path.valid, path.parents, spare)  # padding lands on the spare slot
    node_index = row_offset + parents  # [B, L] into [B * N]
    edge_index = node_index * a + path.actions  # [B, L] into [B * N * A]
    rewards = tree.children_rewards.view(-1)[edge_index].masked_fill(~path.valid, 0.0)
    discounts = tree.children_discounts.view(-1)[edge_index].masked_fill(~path.valid, 1.0)
    leaf_value = tree.node_values[tree.batch_range, leaf]
    levels = path.valid.shape[1]
    returns = [leaf_value] * levels
    value = leaf_value
    for k in range(levels - 1, -1, -1):
        value = rewards[:, k] + discounts[:, k] * value
        returns[k] = value
    backed = torch.stack(returns, 1)  # [B, L]
    values, visits = tree.node_values.view(-1), tree.node_visits.view(-1)
    count = visits[node_index]
    new_values = (values[node_index] * count + backed) / (count + 1.0)
    values[node_index] = new_values
    visits[node_index] = count + 1.0
    # The child of edge k is the parent of edge k + 1, or the leaf after the last edge.
    after = torch.cat([path.valid[:, 1:], torch.zeros_like(path.valid[:, :1])], 1)
    child_values = torch.where(
        after, torch.cat([new_values[:, 1:], new_values[:, :1]], 1), leaf_value[:, None]
    )
    qvalues = rewards + discounts * child_values
    tree.children_values.view(-1)[edge_index] = child_values
    stats = tree.edge_stats.view(-1, 4, a)
    flat_stats = stats.view(-1)
    base = node_index * (4 * a) + path.actions
    flat_stats[base] = flat_stats[base] + 1.0
    flat_stats[base + a] = qvalues
    low = qvalues.masked_fill(~path.valid, float("inf")).min(1).values
    high = qvalues.masked_fill(~path.valid, float("-inf")).max(1).values
    torch.minimum(tree.min_q, low, out=tree.min_q)
    torch.maximum(tree.max_q, high, out=tree.max_q)
    tree.update_q_normalizer()


def search(
    root: RootFnOutput,
    recurrent_fn: RecurrentFn,
    *,
    num_simulations: int,
    root_action_selection_fn: RootActionSelectionFn,
    interior_action_selection_fn: InteriorActionSelectionFn,
    invalid_actions: torch.Tensor | None = None,
    max_depth: int | None = None,
    tree: Tree | None = None,
    root_gumbel: torch.Tensor | None = None,
) -> Tree:
    """Run ``num_simulations`` simulations on ``B`` trees at once.

    :param root: the roots (prior ``[B, A]``, value ``[B]``, embedding).
    :param recurrent_fn: ``(embedding, action [B]) -> (RecurrentFnOutput, embedding)``.
    :param invalid_actions: ``[B, A]`` bool, illegal root actions (default:
        ``root.invalid_actions``).
    :param max_depth: longest path from a root (``None``: unlimited).
    :param tree: a reused tree (:func:`reuse_subtree`), or ``None`` to start afresh.
    :param root_gumbel: ``[B, A]`` the Gumbel noise of Gumbel search.
    :raises ModelOutputError: when the model gave a NaN or infinite value, reward or prior.
    """
    num_simulations = check_num_simulations(num_simulations)
    max_depth = check_max_depth(max_depth)
    invalid_actions = check_root(root, invalid_actions)
    # Inference mode skips autograd's bookkeeping on every small op (about 1.4x faster at
    # one root on a CPU); the tree is copied out of it at the end so that callers may use
    # its tensors freely (as training targets, or modified in place).
    with torch.inference_mode():
        tree = initialize(root, num_simulations, invalid_actions, tree, root_gumbel)
        limit = tree.capacity if max_depth is None else int(max_depth)
        used = tree.capacity - num_simulations - 1  # an upper bound on the nodes there
        for sim in range(num_simulations):
            path = simulate(
                tree, root_action_selection_fn, interior_action_selection_fn,
                max_depth=limit, depth_bound=min(limit, used + sim),
            )
            parent, action = last_edge(path)
            existing = tree.children_index[tree.batch_range, parent, action]
            new = existing == UNVISITED
            node = torch.where(new, tree.num_nodes, existing)
            tree.num_nodes += new.long()
            expand(tree, recurrent_fn, parent, action, node)
            backward(tree, path, node)
        _check_finite(tree)
    return tree.clone()


#: What :func:`search` raises when the model returned a NaN or an infinity.
NONFINITE_MESSAGE = (
    "recurrent_fn: the model returned a NaN or infinite value, reward or prior logit "
    "during the search; check the model's inputs and weights"
)


def _check_finite(tree: Tree) -> None:
    used = slice(0, tree.capacity - 1)  # the spare slot holds padding
    finite = (
        torch.isfinite(tree.node_values[:, used]).all()
        & torch.isfinite(tree.children_rewards[:, used]).all()
        & torch.isfinite(tree.children_prior_logits[:, used]).all()
    )
    if not bool(finite):
        raise ModelOutputError(NONFINITE_MESSAGE)
