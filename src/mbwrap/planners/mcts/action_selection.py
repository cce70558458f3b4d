"""Choosing the action to follow at a node: PUCT and Gumbel search's rules.

Each selection function takes the tree, the node of every row (``node: [B]`` long) and
returns ``[B]`` long actions, with no Python loop over the rows.
"""

from __future__ import annotations

import torch

from mbwrap.planners.mcts.qtransforms import (
    completed_by_mix_value,
    min_max_siblings,
    normalize_visited,
)
from mbwrap.planners.mcts.seq_halving import score_considered
from mbwrap.planners.mcts.tree import Tree

#: MuZero, Schrittwieser et al. 2020, Appendix B: c1 and c2 of the pUCT rule.
PB_C_INIT = 1.25
PB_C_BASE = 19652.0


def masked_argmax(scores: torch.Tensor, invalid: torch.Tensor | None) -> torch.Tensor:
    """``argmax`` over the last axis, never choosing an ``invalid`` entry.

    Ties go to the lowest index. A row with every entry invalid (a terminal node of a
    simulator) keeps them all: what follows a terminal state never counts.

    :param scores: ``[B, A]``; :param invalid: ``[B, A]`` bool or ``None``.
    """
    if invalid is not None:
        scores = scores.masked_fill(invalid & ~invalid.all(-1, keepdim=True), float("-inf"))
    return scores.argmax(-1)


def puct_scores(
    prior_logits: torch.Tensor,
    child_visits: torch.Tensor,
    node_visits: torch.Tensor,
    normalized_q: torch.Tensor,
    *,
    pb_c_init: float = PB_C_INIT,
    pb_c_base: float = PB_C_BASE,
) -> torch.Tensor:
    """MuZero's pUCT score (Schrittwieser et al. 2020, Appendix B, eq. 2).

    ``Q(s,a) + P(s,a) sqrt(N(s)) / (1 + N(s,a)) * (c1 + log((N(s) + c2 + 1) / c2))``

    :param prior_logits: ``[B, A]`` (``P`` is their softmax).
    :param child_visits: ``[B, A]`` ``N(s, a)``.
    :param node_visits: ``[B]`` ``N(s)``.
    :param normalized_q: ``[B, A]`` the normalised ``Q(s, a)``.
    :return: ``[B, A]``.
    """
    parent = node_visits[:, None]
    pb_c = pb_c_init + torch.log((parent + pb_c_base + 1.0) / pb_c_base)
    prior = torch.softmax(prior_logits, -1)
    return normalized_q + prior * torch.sqrt(parent) / (child_visits + 1.0) * pb_c


def muzero_action_selection(
    tree: Tree,
    node: torch.Tensor,
    *,
    pb_c_init: float = PB_C_INIT,
    pb_c_base: float = PB_C_BASE,
    qtransform: str = "min_max_tree",
) -> torch.Tensor:
    """The pUCT action at ``node`` of each row, legal actions only.

    :param qtransform: ``"min_max_tree"`` (MuZero: min and max over the whole tree) or
        ``"min_max_siblings"`` (over the node and its children, as mctx does).
    """
    visits, qvalues, logits, penalty = tree.node_stats(node)
    if qtransform == "min_max_tree":
        normalized = normalize_visited(qvalues, visits, tree.q_low, tree.q_scale)
    else:
        normalized = min_max_siblings(qvalues, visits, tree.node_scalar(tree.node_values, node))
    scores = puct_scores(
        logits, visits, tree.node_scalar(tree.node_visits, node), normalized,
        pb_c_init=pb_c_init, pb_c_base=pb_c_base,
    )
    return (scores + penalty).argmax(-1)


def gumbel_root_action_selection(
    tree: Tree,
    *,
    table: torch.Tensor,
    max_num_considered_actions: int,
    c_visit: float,
    c_scale: float,
) -> torch.Tensor:
    """Sequential halving with Gumbel-top-k at the roots (Danihelka et al. 2022, Alg. 2).

    :param table: ``[m + 1, S]`` from :func:`considered_visits_table`.
    """
    root = torch.zeros_like(tree.batch_range)
    visits, qvalues, logits, penalty = tree.node_stats(root)
    num_valid = (penalty == 0).sum(-1)
    considered = num_valid.clamp(max=max_num_considered_actions)
    # The root's visits so far index the schedule (clamped when a reused tree is deeper).
    simulation = visits.sum(-1).long().clamp(max=table.shape[1] - 1)
    considered_visit = table[considered, simulation]
    sigma = completed_by_mix_value(
        qvalues, visits, logits, tree.raw_values[:, 0], c_visit=c_visit, c_scale=c_scale
    )
    scores = score_considered(considered_visit, tree.root_gumbel, logits, sigma, visits)
    return (scores + penalty).argmax(-1)


def gumbel_interior_action_selection(
    tree: Tree, node: torch.Tensor, *, c_visit: float, c_scale: float
) -> torch.Tensor:
    """Gumbel search below the root: match visits to the improved policy (eq. 14).

    ``argmax_a pi'(a) - N(a) / (1 + sum_b N(b))`` with ``pi' = softmax(logits + sigma)``.
    """
    visits, qvalues, logits, penalty = tree.node_stats(node)
    sigma = completed_by_mix_value(
        qvalues, visits, logits, tree.node_scalar(tree.raw_values, node),
        c_visit=c_visit, c_scale=c_scale,
    )
    improved = torch.softmax(logits + sigma, -1)
    scores = improved - visits / (1.0 + visits.sum(-1, keepdim=True))
    return (scores + penalty).argmax(-1)


__all__ = [
    "PB_C_BASE",
    "PB_C_INIT",
    "gumbel_interior_action_selection",
    "gumbel_root_action_selection",
    "masked_argmax",
    "muzero_action_selection",
    "puct_scores",
]
