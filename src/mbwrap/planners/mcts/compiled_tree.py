"""Numba kernels of the compiled search: descent, expansion and backup over ``B`` trees.

The kernels read and write numpy views of a :class:`~mbwrap.planners.mcts.tree.Tree`'s
own tensors (``tensor.numpy()`` shares the memory), one Python call per simulation for
all rows. They mirror the arithmetic of ``action_selection.py``, ``qtransforms.py``,
``seq_halving.py`` and ``search.py`` operation by operation, in the tree's dtype: every
constant comes from :func:`constants`, cast to that dtype, so that no step is computed
in float64 when the tree is float32 (a wider step would round differently and break ties
differently). ``argmax`` returns the first maximal index, as ``torch.argmax`` does, and
division follows IEEE rules as in torch (``error_model="numpy"``: no ZeroDivisionError,
and no check per division).

What can still differ from the torch path is the last bit of ``exp``, ``log`` and of
sums over the actions (torch evaluates them with vector instructions, in another order);
such a difference changes a choice only when two scores are within a rounding error of
each other.

Importing this module imports numba; :mod:`mbwrap.planners.mcts.compiled_search` does it
only when the compiled path is used. The first call compiles the kernels (once per tree
dtype; see :mod:`~mbwrap.planners.mcts.compiled_search` for the cost); ``cache=True``
keeps the machine code in numba's cache on disk (``__pycache__`` next to this file, or
``NUMBA_CACHE_DIR``), from which later processes load it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

#: ``children_index`` of an action never taken (``tree.UNVISITED``).
UNVISITED = -1

#: Selection rules.
RULE_MIN_MAX_TREE = 0
RULE_MIN_MAX_SIBLINGS = 1
RULE_GUMBEL = 2

# Positions in the constants vector (:func:`constants`).
ONE, ZERO, EPSILON, TINY, FLOOR, LOWEST, NEG_INF, POS_INF = range(8)
PB_C_INIT, PB_C_BASE, C_VISIT, C_SCALE = range(8, 12)


def constants(
    dtype: np.dtype, *, pb_c_init: float, pb_c_base: float, c_visit: float, c_scale: float
) -> np.ndarray:
    """``[12]`` the numbers the kernels use, in the tree's ``dtype``.

    ``EPSILON`` is the ``clamp(min=1e-8)`` of the Q transforms, ``FLOOR`` the
    ``clamp(min=-1e9)`` of :func:`score_considered`, ``LOWEST`` the logit of an illegal
    action (:func:`mask_logits`), ``TINY`` the smallest prior of :func:`mixed_value`.
    """
    info = np.finfo(dtype)
    values = {
        ONE: 1.0, ZERO: 0.0, EPSILON: 1e-8, TINY: info.tiny, FLOOR: -1e9, LOWEST: info.min,
        NEG_INF: -np.inf, POS_INF: np.inf, PB_C_INIT: pb_c_init, PB_C_BASE: pb_c_base,
        C_VISIT: c_visit, C_SCALE: c_scale,
    }  # fmt: skip
    out = np.empty(len(values), dtype=dtype)
    for index, value in values.items():
        out[index] = value
    return out


# --------------------------------------------------------------------------- helpers


@numba.njit(cache=True, error_model="numpy")
def _argmax(scores: np.ndarray) -> int:
    """First maximal index of ``[A]`` (a NaN counts as the maximum, as in torch)."""
    best = scores[0]
    index = 0
    for a in range(1, scores.shape[0]):
        s = scores[a]
        if s > best or (s != s and best == best):
            best = s
            index = a
    return index


@numba.njit(cache=True, error_model="numpy")
def _softmax(logits: np.ndarray, out: np.ndarray, c: np.ndarray) -> None:
    """``out = softmax(logits)`` over ``[A]``: ``exp(x - max) * (1 / sum)`` as torch does."""
    top = logits[0]
    for a in range(1, logits.shape[0]):
        if logits[a] > top:
            top = logits[a]
    total = c[ZERO]
    for a in range(logits.shape[0]):
        e = math.exp(logits[a] - top)
        out[a] = e
        total += e
    inverse = c[ONE] / total
    for a in range(logits.shape[0]):
        out[a] = out[a] * inverse


@numba.njit(cache=True, error_model="numpy")
def _puct_action(
    stats: np.ndarray,
    prior: np.ndarray,
    node_visit: float,
    node_value: float,
    q_low: float,
    q_scale: float,
    siblings: bool,
    c: np.ndarray,
    scores: np.ndarray,
) -> int:
    """pUCT at one node (:func:`muzero_action_selection`).

    :param stats: ``[4, A]`` the node's ``edge_stats``; :param prior: ``[A]`` the softmax
        of its logits; :param scores: ``[A]`` scratch.
    """
    visits, qvalues, penalty = stats[0], stats[1], stats[3]
    num_actions = visits.shape[0]
    one = c[ONE]
    pb_c = c[PB_C_INIT] + math.log((node_visit + c[PB_C_BASE] + one) / c[PB_C_BASE])
    root_visits = math.sqrt(node_visit)
    if siblings:  # min_max_siblings: the node's value and its visited children
        low = node_value
        high = node_value
        for a in range(num_actions):
            safe = qvalues[a] if visits[a] > 0 else node_value
            if safe < low:
                low = safe
            if safe > high:
                high = safe
        spread = high - low
        if spread < c[EPSILON]:
            spread = c[EPSILON]
        for a in range(num_actions):
            completed = qvalues[a] if visits[a] > 0 else low
            scores[a] = (
                (completed - low) / spread
                + prior[a] * root_visits / (visits[a] + one) * pb_c
                + penalty[a]
            )
    else:
        for a in range(num_actions):
            normalized = (qvalues[a] - q_low) * q_scale if visits[a] != 0 else c[ZERO]
            scores[a] = normalized + prior[a] * root_visits / (visits[a] + one) * pb_c + penalty[a]
    return _argmax(scores)


@numba.njit(cache=True, error_model="numpy")
def _sigma(
    stats: np.ndarray, prior: np.ndarray, raw_value: float, c: np.ndarray, sigma: np.ndarray
) -> float:
    """``sigma(completed Q)`` at one node (:func:`completed_by_mix_value`) into ``sigma``
    (``[A]``), from the node's ``stats`` (``[4, A]``) and ``prior`` (``[A]``, the softmax
    of its logits). Returns the node's total visits."""
    visits, qvalues = stats[0], stats[1]
    num_actions = visits.shape[0]
    one = c[ONE]
    total = c[ZERO]
    most = visits[0]
    mass = c[ZERO]
    for a in range(num_actions):
        total += visits[a]
        if visits[a] > most:
            most = visits[a]
        if visits[a] > 0:
            mass += max(prior[a], c[TINY])
    if mass < c[EPSILON]:
        mass = c[EPSILON]
    weighted = c[ZERO]
    for a in range(num_actions):
        if visits[a] > 0:
            weighted += max(prior[a], c[TINY]) * qvalues[a] / mass
    mixed = (raw_value + total * weighted) / (total + one)
    low = c[POS_INF]
    high = c[NEG_INF]
    for a in range(num_actions):
        completed = qvalues[a] if visits[a] > 0 else mixed
        sigma[a] = completed
        if completed < low:
            low = completed
        if completed > high:
            high = completed
    spread = high - low
    if spread < c[EPSILON]:
        spread = c[EPSILON]
    scale = (c[C_VISIT] + most) * c[C_SCALE]
    for a in range(num_actions):
        sigma[a] = scale * ((sigma[a] - low) / spread)
    return total


@numba.njit(cache=True, error_model="numpy")
def _gumbel_root_action(
    stats: np.ndarray,
    prior: np.ndarray,
    raw_value: float,
    gumbel: np.ndarray,
    table: np.ndarray,
    max_considered: int,
    c: np.ndarray,
    sigma: np.ndarray,
    scores: np.ndarray,
) -> int:
    """Sequential halving at a root (:func:`gumbel_root_action_selection`)."""
    visits, logits, penalty = stats[0], stats[2], stats[3]
    num_actions = visits.shape[0]
    total = _sigma(stats, prior, raw_value, c, sigma)
    valid = 0
    top = logits[0]
    for a in range(num_actions):
        if penalty[a] == 0:
            valid += 1
        if logits[a] > top:
            top = logits[a]
    considered = min(valid, max_considered)
    simulation = min(int(total), table.shape[1] - 1)
    considered_visit = table[considered, simulation]
    for a in range(num_actions):
        score = gumbel[a] + (logits[a] - top) + sigma[a]
        if score < c[FLOOR]:
            score = c[FLOOR]
        if visits[a] != considered_visit:
            score = c[NEG_INF]
        scores[a] = score + penalty[a]
    return _argmax(scores)


@numba.njit(cache=True, error_model="numpy")
def _gumbel_interior_action(
    stats: np.ndarray,
    prior: np.ndarray,
    raw_value: float,
    c: np.ndarray,
    sigma: np.ndarray,
    improved: np.ndarray,
    scores: np.ndarray,
) -> int:
    """Improved-policy matching below a root (:func:`gumbel_interior_action_selection`)."""
    visits, logits, penalty = stats[0], stats[2], stats[3]
    total = _sigma(stats, prior, raw_value, c, sigma)
    for a in range(visits.shape[0]):
        sigma[a] = logits[a] + sigma[a]
    _softmax(sigma, improved, c)
    share = c[ONE] + total
    for a in range(visits.shape[0]):
        scores[a] = improved[a] - visits[a] / share + penalty[a]
    return _argmax(scores)


# --------------------------------------------------------------------------- kernels
# Tree arrays as in :class:`~mbwrap.planners.mcts.tree.Tree`: ``[B, N]`` per node,
# ``[B, N, A]`` per edge, ``edge_stats: [B, N, 4, A]``, ``[B]`` per tree, ``root_gumbel:
# [B, A]``. ``priors: [B, N, A]`` caches the softmax of each node's prior logits, which
# do not change once the node is written: computed at the node's first selection, it is
# the number ``torch.softmax`` gives at every selection. ``STALE`` in its first entry
# marks a node whose prior is still to be computed.
STALE = -1.0


@numba.njit(cache=True, error_model="numpy")
def _prior(stats: np.ndarray, prior: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The node's prior (``[A]``), computed from its logits (row 2 of ``stats``) if stale."""
    if prior[0] == STALE:
        _softmax(stats[2], prior, c)
    return prior


@numba.njit(cache=True, error_model="numpy")
def _write_logits(
    c: np.ndarray,
    logits: np.ndarray,
    invalid: np.ndarray,
    has_invalid: bool,
    stats: np.ndarray,
    prior: np.ndarray,
) -> None:
    """A node's prior logits and penalties (rows 2 and 3 of ``stats``, ``[4, A]``) from the
    model's ``logits`` (``[A]``): ``search.mask_logits`` and ``search._penalty``. Marks its
    ``prior`` (``[A]``) stale."""
    num_actions = logits.shape[0]
    top = logits[0]
    for a in range(1, num_actions):
        if logits[a] > top:
            top = logits[a]
    keep_all = True  # every action illegal (a terminal state): all are kept
    if has_invalid:
        for a in range(num_actions):
            if not invalid[a]:
                keep_all = False
    for a in range(num_actions):
        if has_invalid and invalid[a]:
            stats[2, a] = c[LOWEST]
            stats[3, a] = c[ZERO] if keep_all else c[NEG_INF]
        else:
            stats[2, a] = logits[a] - top
            stats[3, a] = c[ZERO]
    prior[0] = STALE


@numba.njit(cache=True, error_model="numpy")
def initialize_roots(
    c: np.ndarray,
    prior_logits: np.ndarray,
    value: np.ndarray,
    invalid: np.ndarray,
    has_invalid: bool,
    edge_stats: np.ndarray,
    raw_values: np.ndarray,
    node_values: np.ndarray,
    node_visits: np.ndarray,
    num_nodes: np.ndarray,
    priors: np.ndarray,
) -> None:
    """Write the roots into slot 0 (``search.initialize``, all but the embeddings) and mark
    the ``priors`` of every node in use stale.

    Rows of a reused tree keep their root's statistics but take the new prior; fresh rows
    (``num_nodes == 0``) start from the root alone.

    :param prior_logits: ``[B, A]``; :param value: ``[B]``; :param invalid: ``[B, A]``
        bool, read when ``has_invalid``.
    """
    for b in range(prior_logits.shape[0]):
        _write_logits(c, prior_logits[b], invalid[b], has_invalid, edge_stats[b, 0], priors[b, 0])
        raw_values[b, 0] = value[b]
        if num_nodes[b] == 0:
            node_values[b, 0] = value[b]
            node_visits[b, 0] = c[ONE]
            num_nodes[b] = 1
        for n in range(1, num_nodes[b]):
            priors[b, n, 0] = STALE


@numba.njit(cache=True, error_model="numpy")
def simulate(
    rule: int,
    c: np.ndarray,
    table: np.ndarray,
    max_considered: int,
    max_depth: int,
    node_visits: np.ndarray,
    raw_values: np.ndarray,
    node_values: np.ndarray,
    children_index: np.ndarray,
    edge_stats: np.ndarray,
    num_nodes: np.ndarray,
    q_low: np.ndarray,
    q_scale: np.ndarray,
    root_gumbel: np.ndarray,
    priors: np.ndarray,
    path_nodes: np.ndarray,
    path_actions: np.ndarray,
    path_length: np.ndarray,
    leaf: np.ndarray,
    action: np.ndarray,
    parent_flat: np.ndarray,
    leaf_flat: np.ndarray,
) -> None:
    """Descend every tree to the edge to expand (``search.simulate`` and ``last_edge``).

    A row stops at an action never taken or after ``max_depth`` edges; a new leaf takes
    the row's next free slot (``num_nodes`` counts it).

    :param rule: ``RULE_*``; :param table: ``[m + 1, S]`` the considered-visit table
        (Gumbel only).
    :param path_nodes, path_actions: ``[B, L]`` out, the edges followed.
    :param path_length: ``[B]`` out, edges per row.
    :param leaf: ``[B]`` out, the node each row expands; :param action: ``[B]`` out, the
        action into it; :param parent_flat, leaf_flat: ``[B]`` out, ``b * N + parent`` and
        ``b * N + leaf`` (indices into the flattened embeddings).
    """
    batch, capacity = node_visits.shape
    num_actions = children_index.shape[2]
    sigma = np.empty(num_actions, dtype=edge_stats.dtype)
    improved = np.empty(num_actions, dtype=edge_stats.dtype)
    scores = np.empty(num_actions, dtype=edge_stats.dtype)
    siblings = rule == RULE_MIN_MAX_SIBLINGS
    for b in range(batch):
        node = 0
        length = 0
        while True:
            stats = edge_stats[b, node]
            prior = _prior(stats, priors[b, node], c)
            if rule != RULE_GUMBEL:
                chosen = _puct_action(
                    stats,
                    prior,
                    node_visits[b, node],
                    node_values[b, node],
                    q_low[b],
                    q_scale[b],
                    siblings,
                    c,
                    scores,
                )
            elif length == 0:
                chosen = _gumbel_root_action(
                    stats,
                    prior,
                    raw_values[b, 0],
                    root_gumbel[b],
                    table,
                    max_considered,
                    c,
                    sigma,
                    scores,
                )
            else:
                chosen = _gumbel_interior_action(
                    stats, prior, raw_values[b, node], c, sigma, improved, scores
                )
            path_nodes[b, length] = node
            path_actions[b, length] = chosen
            length += 1
            child = children_index[b, node, chosen]
            if child == UNVISITED or length >= max_depth:
                break
            node = child
        if child == UNVISITED:
            child = num_nodes[b]
            num_nodes[b] += 1
        path_length[b] = length
        leaf[b] = child
        action[b] = chosen
        parent_flat[b] = b * capacity + node
        leaf_flat[b] = b * capacity + child


@numba.njit(cache=True, error_model="numpy")
def expand_and_backup(
    c: np.ndarray,
    prior_logits: np.ndarray,
    value: np.ndarray,
    reward: np.ndarray,
    discount: np.ndarray,
    invalid: np.ndarray,
    has_invalid: bool,
    next_embedding: np.ndarray,
    embeddings: np.ndarray,
    has_embedding: bool,
    path_nodes: np.ndarray,
    path_actions: np.ndarray,
    path_length: np.ndarray,
    leaf: np.ndarray,
    leaf_flat: np.ndarray,
    node_visits: np.ndarray,
    raw_values: np.ndarray,
    node_values: np.ndarray,
    parents: np.ndarray,
    action_from_parent: np.ndarray,
    children_index: np.ndarray,
    edge_stats: np.ndarray,
    children_rewards: np.ndarray,
    children_discounts: np.ndarray,
    children_values: np.ndarray,
    min_q: np.ndarray,
    max_q: np.ndarray,
    q_low: np.ndarray,
    q_scale: np.ndarray,
    priors: np.ndarray,
) -> None:
    """Write the model's step into the leaves, then back the values up (``search.expand``
    and ``search.backward``, the tree's Q normaliser included).

    :param prior_logits: ``[B, A]``; :param value, reward, discount: ``[B]``, the model's
        outputs in the tree's dtype; :param invalid: ``[B, A]`` bool, read when
        ``has_invalid``. The path arrays are :func:`simulate`'s.
    :param next_embedding: ``[B, D]`` the model's next embedding, flattened, stored into
        ``embeddings`` (``[B * N, D]``, the tree's, flattened) when ``has_embedding``.
    """
    one = c[ONE]
    for b in range(node_visits.shape[0]):
        length = path_length[b]
        parent = path_nodes[b, length - 1]
        edge = path_actions[b, length - 1]
        node = leaf[b]
        stats = edge_stats[b, node]
        for a in range(stats.shape[1]):
            stats[0, a] = c[ZERO]
            stats[1, a] = c[ZERO]
        _write_logits(c, prior_logits[b], invalid[b], has_invalid, stats, priors[b, node])
        leaf_value = value[b]
        raw_values[b, node] = leaf_value
        node_values[b, node] = leaf_value
        node_visits[b, node] = node_visits[b, node] + one
        parents[b, node] = parent
        action_from_parent[b, node] = edge
        children_index[b, parent, edge] = node
        children_rewards[b, parent, edge] = reward[b]
        children_discounts[b, parent, edge] = discount[b]
        if has_embedding:
            embeddings[leaf_flat[b]] = next_embedding[b]
        # Backup, leaf to root: G_k = r_k + d_k G_{k+1}; each edge's Q from its child's
        # new value (the leaf's own value for the last edge).
        backed = leaf_value
        child_value = leaf_value
        low = c[POS_INF]
        high = c[NEG_INF]
        for k in range(length - 1, -1, -1):
            s = path_nodes[b, k]
            a = path_actions[b, k]
            r = children_rewards[b, s, a]
            d = children_discounts[b, s, a]
            backed = r + d * backed
            count = node_visits[b, s]
            new_value = (node_values[b, s] * count + backed) / (count + one)
            q = r + d * child_value
            children_values[b, s, a] = child_value
            edge_stats[b, s, 0, a] = edge_stats[b, s, 0, a] + one
            edge_stats[b, s, 1, a] = q
            if q < low or q != q:  # a NaN propagates, as in torch.minimum
                low = q
            if q > high or q != q:
                high = q
            node_values[b, s] = new_value
            node_visits[b, s] = count + one
            child_value = new_value
        if low < min_q[b] or (low != low and min_q[b] == min_q[b]):
            min_q[b] = low
        if high > max_q[b] or (high != high and max_q[b] == max_q[b]):
            max_q[b] = high
        # Tree.update_q_normalizer
        spread = max_q[b] - min_q[b]
        if np.isfinite(spread) and spread > 0:
            q_low[b] = min_q[b]
            q_scale[b] = one / max(spread, c[EPSILON])
        else:
            q_low[b] = c[ZERO]
            q_scale[b] = one


@numba.njit(cache=True, error_model="numpy")
def step(
    sim: int,
    rule: int,
    c: np.ndarray,
    table: np.ndarray,
    max_considered: int,
    max_depth: int,
    prior_logits: np.ndarray,
    value: np.ndarray,
    reward: np.ndarray,
    discount: np.ndarray,
    invalid: np.ndarray,
    has_invalid: bool,
    next_embedding: np.ndarray,
    embeddings: np.ndarray,
    has_embedding: bool,
    path_nodes: np.ndarray,
    path_actions: np.ndarray,
    path_length: np.ndarray,
    leaf: np.ndarray,
    actions: np.ndarray,
    parent_flat: np.ndarray,
    leaf_flat: np.ndarray,
    priors: np.ndarray,
    node_visits: np.ndarray,
    raw_values: np.ndarray,
    node_values: np.ndarray,
    parents: np.ndarray,
    action_from_parent: np.ndarray,
    children_index: np.ndarray,
    edge_stats: np.ndarray,
    children_rewards: np.ndarray,
    children_discounts: np.ndarray,
    children_values: np.ndarray,
    num_nodes: np.ndarray,
    min_q: np.ndarray,
    max_q: np.ndarray,
    q_low: np.ndarray,
    q_scale: np.ndarray,
    root_gumbel: np.ndarray,
) -> None:
    """Finish simulation ``sim`` (:func:`expand_and_backup`; nothing when ``sim < 0``) and
    descend for the next one (:func:`simulate`, its actions into ``actions[sim + 1]``).

    One call per simulation: the Python loop around it calls the model in between (and
    stores the next embeddings itself where ``has_embedding`` is False).

    :param actions: ``[S, B]`` long, the actions of every simulation.
    """
    if sim >= 0:
        expand_and_backup(
            c,
            prior_logits,
            value,
            reward,
            discount,
            invalid,
            has_invalid,
            next_embedding,
            embeddings,
            has_embedding,
            path_nodes,
            path_actions,
            path_length,
            leaf,
            leaf_flat,
            node_visits,
            raw_values,
            node_values,
            parents,
            action_from_parent,
            children_index,
            edge_stats,
            children_rewards,
            children_discounts,
            children_values,
            min_q,
            max_q,
            q_low,
            q_scale,
            priors,
        )
    if sim + 1 < actions.shape[0]:
        simulate(
            rule,
            c,
            table,
            max_considered,
            max_depth,
            node_visits,
            raw_values,
            node_values,
            children_index,
            edge_stats,
            num_nodes,
            q_low,
            q_scale,
            root_gumbel,
            priors,
            path_nodes,
            path_actions,
            path_length,
            leaf,
            actions[sim + 1],
            parent_flat,
            leaf_flat,
        )


@numba.njit(cache=True, error_model="numpy")
def all_finite(
    node_values: np.ndarray, children_rewards: np.ndarray, edge_stats: np.ndarray
) -> bool:
    """Whether every slot but the spare (last) one holds a finite value, rewards and
    prior logits (``search._check_finite``)."""
    batch, capacity = node_values.shape
    for b in range(batch):
        for n in range(capacity - 1):
            if not np.isfinite(node_values[b, n]):
                return False
            for a in range(children_rewards.shape[2]):
                if not (
                    np.isfinite(children_rewards[b, n, a]) and np.isfinite(edge_stats[b, n, 2, a])
                ):
                    return False
    return True
