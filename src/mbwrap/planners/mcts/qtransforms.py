"""Q-value transforms: how a node's children's values enter action selection.

Each takes the gathered statistics of one node per row (``[B, A]``) and returns ``[B, A]``.
"""

from __future__ import annotations

import torch

_EPSILON = 1e-8


def min_max_normalize(
    qvalues: torch.Tensor, visits: torch.Tensor, min_q: torch.Tensor, max_q: torch.Tensor
) -> torch.Tensor:
    """MuZero's normalised Q (Schrittwieser et al. 2020, Appendix B, eq. 5).

    ``(Q - min) / (max - min)`` with the smallest and largest Q seen anywhere in the tree
    so far; unvisited actions score 0, as in the paper's pseudocode, and Q passes through
    unchanged until the tree has seen two different values.

    :param qvalues: ``[B, A]``; :param visits: ``[B, A]``; :param min_q, max_q: ``[B]``.
    """
    spread = max_q - min_q
    known = torch.isfinite(spread) & (spread > 0)
    low = torch.where(known, min_q, torch.zeros_like(spread))
    scale = torch.where(known, 1.0 / spread.clamp(min=_EPSILON), torch.ones_like(spread))
    return normalize_visited(qvalues, visits, low, scale)


def normalize_visited(
    qvalues: torch.Tensor, visits: torch.Tensor, low: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """``(Q - low) * scale`` where visited, 0 elsewhere: ``[B, A]`` from ``low, scale: [B]``."""
    return ((qvalues - low[:, None]) * scale[:, None]).masked_fill(visits == 0, 0.0)


def min_max_siblings(
    qvalues: torch.Tensor, visits: torch.Tensor, node_value: torch.Tensor
) -> torch.Tensor:
    """Normalise Q by the node's value and its visited children only (mctx's default).

    Unvisited actions are completed by the minimum, so they score 0.

    :param qvalues: ``[B, A]``; :param visits: ``[B, A]``; :param node_value: ``[B]``.
    """
    value = node_value[:, None]
    safe = torch.where(visits > 0, qvalues, value)
    low = torch.minimum(value, safe.min(-1, keepdim=True).values)
    high = torch.maximum(value, safe.max(-1, keepdim=True).values)
    completed = torch.where(visits > 0, qvalues, low)
    return (completed - low) / (high - low).clamp(min=_EPSILON)


def mixed_value(
    raw_value: torch.Tensor, qvalues: torch.Tensor, visits: torch.Tensor, prior_probs: torch.Tensor
) -> torch.Tensor:
    """Gumbel MuZero's value estimate for completing unvisited Q (Danihelka et al. 2022, eq. 33).

    ``v_mix = (v + sum_b N(b) * sum_{visited a} pi(a) q(a) / sum_{visited a} pi(a))
    / (1 + sum_b N(b))``

    :param raw_value: ``[B]``; :param qvalues, visits, prior_probs: ``[B, A]``.
    :return: ``[B]``.
    """
    total = visits.sum(-1)
    probs = prior_probs.clamp(min=torch.finfo(prior_probs.dtype).tiny)
    visited = visits > 0
    mass = torch.where(visited, probs, 0.0).sum(-1, keepdim=True)
    weighted = torch.where(visited, probs * qvalues / mass.clamp(min=_EPSILON), 0.0).sum(-1)
    return (raw_value + total * weighted) / (total + 1.0)


def completed_by_mix_value(
    qvalues: torch.Tensor,
    visits: torch.Tensor,
    prior_logits: torch.Tensor,
    raw_value: torch.Tensor,
    *,
    c_visit: float = 50.0,
    c_scale: float = 1.0,
) -> torch.Tensor:
    """``sigma(completed Q)`` of Gumbel MuZero (Danihelka et al. 2022, eqs. 8 and 33).

    Unvisited actions take the mixed value, the completed Q are rescaled to ``[0, 1]``
    over the node's actions, and ``sigma(q) = (c_visit + max_b N(b)) * c_scale * q``
    (``c_visit = 50``, ``c_scale = 1``: the paper's Appendix D).

    :param qvalues, visits, prior_logits: ``[B, A]``; :param raw_value: ``[B]``.
    :return: ``[B, A]``.
    """
    value = mixed_value(raw_value, qvalues, visits, torch.softmax(prior_logits, -1))
    completed = torch.where(visits > 0, qvalues, value[:, None])
    low = completed.min(-1, keepdim=True).values
    high = completed.max(-1, keepdim=True).values
    rescaled = (completed - low) / (high - low).clamp(min=_EPSILON)
    return (c_visit + visits.max(-1, keepdim=True).values) * c_scale * rescaled
