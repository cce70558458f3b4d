"""The compiled CPU search: tree bookkeeping in numba kernels, the model in torch.

:func:`compiled_search` builds the same trees as :func:`~mbwrap.planners.mcts.search.
search` with the pUCT or Gumbel rules of :mod:`~mbwrap.planners.mcts.action_selection`.
A simulation is one batched ``recurrent_fn`` call on the ``B`` leaves (their parents'
embeddings gathered with torch) between two calls of one numba kernel
(:mod:`~mbwrap.planners.mcts.compiled_tree`): it writes the new nodes and backs their
values up, then descends all ``B`` trees for the next simulation. The kernels work on
numpy views of the :class:`Tree`'s own tensors: nothing is copied in or out.

Why: eager PyTorch spends a few hundred small operations per simulation on the
bookkeeping, which dominates at small batches on a CPU; the kernels do it in well under
a microsecond per tree. ``benchmarks/search_speed.py --threads 1`` (2-core AMD EPYC VM,
torch 2.13, 50 and 200 simulations of a small MLP) measured 7-13x the torch path's
simulations per second at one root, 6-11x at 64 and 1.7-2.4x at 1,024; what remains at
one root is mostly the model call itself. ``backend="auto"`` of :func:`muzero_policy`
and :func:`gumbel_muzero_policy` takes this path on the CPU for up to
:data:`COMPILED_MAX_BATCH` roots when numba imports, and the torch path otherwise
(accelerators, forced accelerator paths, no numba).

Compile cost: the first call in a fresh environment compiles the kernels, 14 s on that
VM for float32 trees (10 s more for float64 ones); numba caches the machine code on disk
(``cache=True``), after which the first call of a new process takes 0.5-0.7 s, most of
it importing numba. numba is imported only when this path is used.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import replace
from types import ModuleType
from typing import NamedTuple

import numpy as np
import torch

from mbwrap.device import accelerator_paths
from mbwrap.errors import ModelOutputError
from mbwrap.planners.mcts.search import (
    NONFINITE_MESSAGE,
    _check_step,
    allocate,
    check_max_depth,
    check_num_simulations,
    check_root,
    write_root_embeddings,
)
from mbwrap.planners.mcts.tree import Tree, tree_map, tree_map2
from mbwrap.planners.mcts.types import RecurrentFn, RootFnOutput

#: Largest batch ``backend="auto"`` searches with the compiled kernels. Measured on a
#: 2-core AMD EPYC VM, torch 2.13 on one thread, the toy MLP of
#: ``benchmarks/search_speed.py``: the compiled path was faster than the torch path at
#: every batch tried, 1.7-2.4x at 1,024 roots, 1.7-1.8x at 4,096 and 1.7-1.9x at 16,384
#: (pUCT and Gumbel, 20-200 simulations). Larger batches were not compared: the torch
#: path's vectorised operations gain with the batch, the kernels do not.
COMPILED_MAX_BATCH = 16384
BACKENDS = ("auto", "torch", "compiled")
_INSTALL = "pip install numba (or pip install 'mbwrap[numba]')"


class PuctRule(NamedTuple):
    """MuZero's pUCT selection (:func:`muzero_action_selection`) at every node.

    :param qtransform: ``"min_max_tree"`` or ``"min_max_siblings"``.
    """

    pb_c_init: float
    pb_c_base: float
    qtransform: str


class GumbelRule(NamedTuple):
    """Gumbel MuZero's selection: sequential halving at the roots
    (:func:`gumbel_root_action_selection`), improved-policy matching below
    (:func:`gumbel_interior_action_selection`).

    :param table: ``[m + 1, S]`` long, :func:`considered_visits_table`.
    """

    table: torch.Tensor
    max_num_considered_actions: int
    c_visit: float
    c_scale: float


def load_kernels() -> ModuleType:
    """The numba kernels (:mod:`~mbwrap.planners.mcts.compiled_tree`), importing numba.

    :raises ImportError: when numba is not installed, naming how to install it.
    """
    try:
        return importlib.import_module("mbwrap.planners.mcts.compiled_tree")
    except ImportError as err:
        raise ImportError(f"backend='compiled' needs numba: {_INSTALL}") from err


@functools.cache
def numba_available() -> bool:
    """Whether the compiled kernels import (numba installed and working)."""
    try:
        load_kernels()
    except ImportError:
        return False
    return True


def choose_backend(backend: str, device: torch.device, batch_size: int, dtype: torch.dtype) -> str:
    """``"torch"`` or ``"compiled"`` for a search of ``batch_size`` roots on ``device``.

    ``"auto"`` takes the compiled path on the CPU (outside
    :func:`~mbwrap.device.force_accelerator_paths`) for float32 or float64 trees of up to
    :data:`COMPILED_MAX_BATCH` roots when numba imports, the torch path otherwise.

    :raises ValueError: for an unknown ``backend``, or ``"compiled"`` off the CPU or for
        another dtype.
    :raises ImportError: for ``"compiled"`` without numba.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected 'auto', 'torch' or 'compiled', got {backend!r}")
    if backend == "torch":
        return backend
    supported = dtype in (torch.float32, torch.float64)
    if backend == "compiled":
        if device.type != "cpu":
            raise ValueError(
                f"backend: 'compiled' searches on the CPU only, but the roots are on {device}; "
                "pass backend='torch' (or 'auto')"
            )
        if not supported:
            raise ValueError(
                f"backend: 'compiled' searches float32 or float64 trees, got {dtype}; "
                "pass backend='torch' (or 'auto')"
            )
        load_kernels()
        return backend
    if (
        device.type != "cpu"
        or accelerator_paths(device)
        or not supported
        or batch_size > COMPILED_MAX_BATCH
        or not numba_available()
    ):
        return "torch"
    return "compiled"


def compiled_search(
    root: RootFnOutput,
    recurrent_fn: RecurrentFn,
    *,
    num_simulations: int,
    rule: PuctRule | GumbelRule,
    invalid_actions: torch.Tensor | None = None,
    max_depth: int | None = None,
    tree: Tree | None = None,
    root_gumbel: torch.Tensor | None = None,
) -> Tree:
    """:func:`~mbwrap.planners.mcts.search.search` on the CPU with numba kernels.

    Same arguments and result as ``search``, with the selection ``rule`` named instead
    of given as functions. The tree's spare slot (the last) is left as it was, where the
    torch path writes the padding of short paths into it; every other slot is the same.

    :param root: the roots (prior ``[B, A]``, value ``[B]``, embedding), on the CPU.
    :param rule: :class:`PuctRule` or :class:`GumbelRule`.
    :param root_gumbel: ``[B, A]`` the Gumbel noise (Gumbel search only).
    :raises ImportError: without numba.
    :raises ModelOutputError: when the model gave a NaN or infinite value, reward or prior.
    """
    kernels = load_kernels()
    num_simulations = check_num_simulations(num_simulations)
    max_depth = check_max_depth(max_depth)
    invalid_actions = check_root(root, invalid_actions)
    if root.value.device.type != "cpu":
        raise ValueError(f"root: the compiled search runs on the CPU, got {root.value.device}")
    if isinstance(rule, PuctRule) and rule.qtransform not in ("min_max_tree", "min_max_siblings"):
        raise ValueError(
            f"qtransform: expected 'min_max_tree' or 'min_max_siblings', got {rule.qtransform!r}"
        )
    with torch.no_grad():
        grown = allocate(root, num_simulations, tree)
        if tree is not None:
            # grow() copies the caller's tree; a reused tree's root noise is not this call's.
            grown = replace(grown, root_gumbel=torch.zeros_like(grown.root_gumbel))
        if root_gumbel is not None:
            grown.root_gumbel = root_gumbel.clone(memory_format=torch.contiguous_format)
        write_root_embeddings(grown, root.embedding)
        _simulate(
            kernels, grown, root, invalid_actions, recurrent_fn, num_simulations, rule, max_depth
        )
    if not kernels.all_finite(
        grown.node_values.numpy(), grown.children_rewards.numpy(), grown.edge_stats.numpy()
    ):
        raise ModelOutputError(NONFINITE_MESSAGE)
    return grown


def _rule_arguments(
    kernels: ModuleType, rule: PuctRule | GumbelRule, dtype: np.dtype
) -> tuple[int, np.ndarray, np.ndarray, int]:
    """``(rule code, constants [12], considered-visit table [m + 1, S], m)``."""
    if isinstance(rule, GumbelRule):
        consts = kernels.constants(
            dtype, pb_c_init=0.0, pb_c_base=1.0, c_visit=rule.c_visit, c_scale=rule.c_scale
        )
        table = rule.table.to(torch.long).contiguous().numpy()
        return kernels.RULE_GUMBEL, consts, table, int(rule.max_num_considered_actions)
    consts = kernels.constants(
        dtype, pb_c_init=rule.pb_c_init, pb_c_base=rule.pb_c_base, c_visit=0.0, c_scale=0.0
    )
    code = (
        kernels.RULE_MIN_MAX_TREE
        if rule.qtransform == "min_max_tree"
        else kernels.RULE_MIN_MAX_SIBLINGS
    )
    return code, consts, np.zeros((1, 1), dtype=np.int64), 0


def _simulate(
    kernels: ModuleType,
    tree: Tree,
    root: RootFnOutput,
    invalid_actions: torch.Tensor | None,
    recurrent_fn: RecurrentFn,
    num_simulations: int,
    rule: PuctRule | GumbelRule,
    max_depth: int | None,
) -> None:
    """Write the roots into ``tree`` (its embeddings already there), then run the
    simulations: a kernel call, the model, a kernel call, and so on."""
    batch, capacity, num_actions = tree.batch_size, tree.capacity, tree.num_actions
    views = {name: getattr(tree, name).numpy() for name in _STATISTICS}
    dtype = views["node_values"].dtype
    code, consts, table, considered = _rule_arguments(kernels, rule, dtype)
    limit = capacity if max_depth is None else max_depth
    levels = min(limit, capacity)  # a path never holds more nodes than the tree
    # The model's outputs are copied into these, in the tree's dtype, for the kernels.
    logits = np.zeros((batch, num_actions), dtype=dtype)
    invalid = np.zeros((batch, num_actions), dtype=np.bool_)
    value, reward, discount = (np.zeros(batch, dtype=dtype) for _ in range(3))
    logits_t, invalid_t, value_t, reward_t, discount_t = (
        torch.from_numpy(x) for x in (logits, invalid, value, reward, discount)
    )
    # One row of actions per simulation: the tensor given to recurrent_fn is never
    # overwritten afterwards (a model may keep it).
    actions = np.zeros((num_simulations, batch), dtype=np.int64)
    action_tensors = torch.from_numpy(actions).unbind(0)
    parent_flat, leaf_flat = np.zeros(batch, dtype=np.int64), np.zeros(batch, dtype=np.int64)
    parent_index, leaf_index = torch.from_numpy(parent_flat), torch.from_numpy(leaf_flat)
    # The softmax of each node's prior logits, cached by the kernels.
    priors = np.zeros((batch, capacity, num_actions), dtype=dtype)
    rule_args = (code, consts, table, considered, limit)
    outputs = (logits, value, reward, discount, invalid)
    path_nodes = np.zeros((batch, levels), dtype=np.int64)
    path_actions = np.zeros((batch, levels), dtype=np.int64)
    path_length, leaf = np.zeros(batch, dtype=np.int64), np.zeros(batch, dtype=np.int64)
    path_args = (
        path_nodes,
        path_actions,
        path_length,
        leaf,
        actions,
        parent_flat,
        leaf_flat,
        priors,
    )
    tree_args = tuple(views[name] for name in _STATISTICS)

    logits_t.copy_(root.prior_logits)
    value_t.copy_(root.value)
    if invalid_actions is not None:
        invalid_t.copy_(invalid_actions)
    kernels.initialize_roots(
        consts,
        logits,
        value,
        invalid,
        invalid_actions is not None,
        views["edge_stats"],
        views["raw_values"],
        views["node_values"],
        views["node_visits"],
        views["num_nodes"],
        priors,
    )

    stored = tree_map(lambda e: e.view(batch * capacity, *e.shape[2:]), tree.embeddings)
    # A single embedding tensor in the tree's dtype is written by the kernel (a torch
    # call fewer per simulation); other embeddings by torch, as search.expand does.
    direct = isinstance(stored, torch.Tensor) and stored.dtype == tree.node_values.dtype
    unused = np.zeros((1, 1), dtype=dtype)
    flat = stored.view(batch * capacity, -1).numpy() if direct else unused
    shape = (batch, *stored.shape[1:]) if direct else ()

    def gather(flat: torch.Tensor) -> torch.Tensor:
        return flat.index_select(0, parent_index)

    def store(flat: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        if new.dtype != flat.dtype:
            new = new.to(flat.dtype)
        return flat.index_put_((leaf_index,), new)

    step = kernels.step
    vector, matrix = (batch,), (batch, num_actions)
    with torch.inference_mode():
        step(-1, *rule_args, *outputs, False, unused, flat, False, *path_args, *tree_args)
        for sim in range(num_simulations):
            embedding = (
                gather(stored) if isinstance(stored, torch.Tensor) else tree_map(gather, stored)
            )
            out, next_embedding = recurrent_fn(embedding, action_tensors[sim])
            try:
                shaped = (
                    out.value.shape == vector
                    and out.reward.shape == vector
                    and out.discount.shape == vector
                    and out.prior_logits.shape == matrix
                )
            except AttributeError:
                shaped = False
            if not shaped:
                _check_step(out, batch, num_actions)  # raises, naming the output
            try:
                value_t.copy_(out.value)
                reward_t.copy_(out.reward)
                discount_t.copy_(out.discount)
                logits_t.copy_(out.prior_logits)
            except TypeError:  # not tensors
                _check_step(out, batch, num_actions)
                raise
            step_invalid = out.invalid_actions
            if step_invalid is not None:
                invalid_t.copy_(step_invalid)
            kernel_stores = (
                direct
                and isinstance(next_embedding, torch.Tensor)
                and next_embedding.shape == shape
                and next_embedding.dtype == stored.dtype
                and not next_embedding.requires_grad
            )
            if kernel_stores:
                new = next_embedding.contiguous().numpy().reshape(batch, -1)
            else:
                new = unused
                if isinstance(stored, torch.Tensor):
                    store(stored, next_embedding)
                else:
                    tree_map2(store, stored, next_embedding)
            step(
                sim,
                *rule_args,
                *outputs,
                step_invalid is not None,
                new,
                flat,
                kernel_stores,
                *path_args,
                *tree_args,
            )


#: The tree's statistics in the order the kernels take them (:func:`compiled_tree.step`).
_STATISTICS = (
    "node_visits",
    "raw_values",
    "node_values",
    "parents",
    "action_from_parent",
    "children_index",
    "edge_stats",
    "children_rewards",
    "children_discounts",
    "children_values",
    "num_nodes",
    "min_q",
    "max_q",
    "q_low",
    "q_scale",
    "root_gumbel",
)
