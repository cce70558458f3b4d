"""The compiled CPU search builds the torch search's trees; backend selection and errors."""

from __future__ import annotations

import importlib
import subprocess
import sys
from dataclasses import fields

import numpy as np
import pytest
import torch
from gymnasium import spaces

pytest.importorskip("numba")

from mbwrap.device import force_accelerator_paths
from mbwrap.errors import ModelOutputError
from mbwrap.planners.mcts import (
    MCTSPlanner,
    RecurrentFnOutput,
    RootFnOutput,
    Tree,
    gumbel_muzero_policy,
    muzero_policy,
    policies,
    reuse_subtree,
)

# The module (the package's name compiled_search is the function).
compiled = importlib.import_module("mbwrap.planners.mcts.compiled_search")
EMBED = 6
PER_TREE = ("num_nodes", "min_q", "max_q", "q_low", "q_scale", "root_gumbel")


def mlp_fn(
    num_actions: int,
    *,
    seed: int = 0,
    invalid: bool = False,
    discount: float = 0.95,
    dtype: torch.dtype = torch.float32,
):
    """A random tanh layer: next embedding, reward, value and logits from
    ``[embedding, one_hot(action)]``; with ``invalid``, actions whose logit is high are
    illegal (all of them at some nodes, as at a terminal state)."""
    weights = torch.randn(
        EMBED + num_actions,
        EMBED + 2 + num_actions,
        generator=torch.Generator().manual_seed(seed),
        dtype=dtype,
    )

    def recurrent_fn(embedding, action):
        x = torch.cat([embedding, torch.nn.functional.one_hot(action, num_actions).to(dtype)], -1)
        y = torch.tanh(x @ weights)
        logits = 3.0 * y[:, EMBED + 2 :]
        mask = None
        if invalid:
            mask = logits > 1.0
            mask |= y[:, :1] > 0.8  # every action illegal: a terminal node
        out = RecurrentFnOutput(
            reward=y[:, EMBED],
            discount=torch.full_like(y[:, EMBED], discount),
            prior_logits=logits,
            value=y[:, EMBED + 1],
            invalid_actions=mask,
        )
        return out, y[:, :EMBED]

    return recurrent_fn


def roots(
    batch: int,
    num_actions: int,
    *,
    seed: int = 1,
    invalid: bool = False,
    dtype: torch.dtype = torch.float32,
) -> RootFnOutput:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(batch, num_actions, generator=g) < 0.3 if invalid else None
    return RootFnOutput(
        torch.randn(batch, num_actions, generator=g, dtype=dtype),
        torch.randn(batch, generator=g, dtype=dtype),
        torch.randn(batch, EMBED, generator=g, dtype=dtype),
        mask,
    )


def assert_same_tree(ours: Tree, theirs: Tree) -> None:
    """Equal trees: indices and visits exactly, values to float32's rounding. The spare
    (last) slot is left out: the torch path writes padding into it."""
    assert torch.equal(ours.node_visits[:, :-1], theirs.node_visits[:, :-1])
    assert torch.equal(ours.children_visits[:, :-1], theirs.children_visits[:, :-1])
    for f in fields(Tree):
        if f.name == "embeddings":
            torch.testing.assert_close(ours.embeddings, theirs.embeddings, rtol=1e-6, atol=1e-6)
            continue
        a, b = getattr(ours, f.name), getattr(theirs, f.name)
        if f.name not in PER_TREE:
            a, b = a[:, :-1], b[:, :-1]
        if a.is_floating_point():
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6, msg=f.name)
        else:
            assert torch.equal(a, b), f.name


def both(policy, *args, **kwargs):
    """The policy's output with each backend, from the same generator seed."""
    return [
        policy(*args, **kwargs, backend=backend, generator=torch.Generator().manual_seed(3))
        for backend in ("compiled", "torch")
    ]


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("qtransform", ["min_max_tree", "min_max_siblings"])
@pytest.mark.parametrize(("invalid", "max_depth"), [(False, None), (True, None), (True, 3)])
def test_puct_trees_match_the_torch_search(batch, qtransform, invalid, max_depth):
    root = roots(batch, 6, invalid=invalid)
    fn = mlp_fn(6, invalid=invalid, discount=-1.0 if invalid else 0.95)
    ours, theirs = both(
        muzero_policy, root, fn, 24, qtransform=qtransform, max_depth=max_depth
    )  # Dirichlet noise on, from the same seed
    assert_same_tree(ours.search_tree, theirs.search_tree)
    assert torch.equal(ours.action, theirs.action)
    torch.testing.assert_close(ours.action_weights, theirs.action_weights)
    if max_depth is not None:
        assert int(theirs.search_tree.num_nodes.min()) < 25  # paths were cut short


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize(("invalid", "max_depth"), [(False, None), (True, 2)])
def test_gumbel_trees_match_the_torch_search(batch, invalid, max_depth):
    root = roots(batch, 8, invalid=invalid)
    ours, theirs = both(
        gumbel_muzero_policy,
        root,
        mlp_fn(8, invalid=invalid),
        30,
        max_num_considered_actions=4,
        max_depth=max_depth,
    )
    assert_same_tree(ours.search_tree, theirs.search_tree)
    assert torch.equal(ours.action, theirs.action)
    torch.testing.assert_close(ours.action_weights, theirs.action_weights)


def assert_untouched(tree: Tree, before: Tree) -> None:
    for f in fields(Tree):
        if f.name != "embeddings":
            assert torch.equal(getattr(tree, f.name), getattr(before, f.name)), f.name


@pytest.mark.parametrize("policy", [muzero_policy, gumbel_muzero_policy])
def test_reused_trees_match_and_the_callers_tree_is_left_alone(policy):
    root, fn = roots(4, 5), mlp_fn(5)
    first = policy(root, fn, 20, backend="torch", generator=torch.Generator().manual_seed(0))
    # Row 2 starts afresh (num_nodes = 0) beside rows that keep their subtree.
    reused = reuse_subtree(
        first.search_tree, first.action, keep=torch.tensor([True, True, False, True])
    )
    before = reused.clone()
    ours = policy(
        roots(4, 5, seed=7),
        fn,
        15,
        tree=reused,
        backend="compiled",
        generator=torch.Generator().manual_seed(3),
    )
    assert_untouched(reused, before)
    theirs = policy(
        roots(4, 5, seed=7),
        fn,
        15,
        tree=reused,
        backend="torch",
        generator=torch.Generator().manual_seed(3),
    )
    assert_untouched(reused, before)  # by the torch backend too
    assert_same_tree(ours.search_tree, theirs.search_tree)
    assert ours.search_tree.num_nodes.tolist() == theirs.search_tree.num_nodes.tolist()


def test_float64_trees_and_tuple_embeddings_match():
    dtype = torch.float64
    inner = mlp_fn(4, dtype=dtype)

    def fn(embedding, action):  # the embedding as a (tensor, dict) structure
        out, nxt = inner(embedding[0] + embedding[1]["extra"], action)
        return out, (nxt, {"extra": torch.zeros_like(nxt)})

    base = roots(3, 4, dtype=dtype)
    root = RootFnOutput(
        base.prior_logits, base.value, (base.embedding, {"extra": torch.zeros_like(base.embedding)})
    )
    ours, theirs = both(muzero_policy, root, fn, 20)
    assert ours.search_tree.node_values.dtype == dtype
    assert_same_tree(ours.search_tree, theirs.search_tree)


def test_hand_worked_bandit_ties_go_to_the_lowest_index():
    # Uniform prior, rewards [1, 0]: four visits to action 0 (ties to the lowest index),
    # then one to action 1 (as in test_mcts_search's hand-worked case).
    table = torch.tensor([1.0, 0.0])

    def fn(embedding, action):
        b = action.shape[0]
        return RecurrentFnOutput(
            table[action], torch.zeros(b), torch.zeros(b, 2), torch.zeros(b)
        ), embedding

    root = RootFnOutput(torch.zeros(1, 2), torch.zeros(1), torch.zeros(1, 3))
    out = muzero_policy(root, fn, 5, dirichlet_fraction=0.0, temperature=0.0, backend="compiled")
    assert out.search_tree.summary().visit_counts.tolist() == [[4.0, 1.0]]


def test_auto_picks_compiled_on_the_cpu_and_torch_otherwise(monkeypatch):
    cpu = torch.device("cpu")
    assert compiled.choose_backend("auto", cpu, 64, torch.float32) == "compiled"
    assert compiled.choose_backend("torch", cpu, 64, torch.float32) == "torch"
    big = compiled.COMPILED_MAX_BATCH + 1
    assert compiled.choose_backend("auto", cpu, big, torch.float32) == "torch"
    assert compiled.choose_backend("auto", cpu, 1, torch.float16) == "torch"
    assert compiled.choose_backend("auto", torch.device("meta"), 1, torch.float32) == "torch"
    with force_accelerator_paths():
        assert compiled.choose_backend("auto", cpu, 1, torch.float32) == "torch"
    monkeypatch.setattr(compiled, "numba_available", lambda: False)
    assert compiled.choose_backend("auto", cpu, 1, torch.float32) == "torch"


@pytest.fixture
def compiled_calls(monkeypatch) -> list[str]:
    """One entry per search the policies run with the compiled backend."""
    calls: list[str] = []

    def spy(*args, **kwargs):
        calls.append("compiled")
        return compiled.compiled_search(*args, **kwargs)

    monkeypatch.setattr(policies, "compiled_search", spy)
    return calls


def test_the_policies_search_with_the_backend_chosen(compiled_calls):
    calls = compiled_calls
    root, fn = roots(2, 4), mlp_fn(4)
    muzero_policy(root, fn, 3)
    gumbel_muzero_policy(root, fn, 3)
    assert calls == ["compiled", "compiled"]
    muzero_policy(root, fn, 3, backend="torch")
    with force_accelerator_paths():
        gumbel_muzero_policy(root, fn, 3)
    assert calls == ["compiled", "compiled"]


class Bandit:
    """A SearchModel: the first action pays 1 and ends the episode, the second pays 0."""

    num_actions = 2
    observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def root(self, obs):
        obs = torch.as_tensor(obs, dtype=torch.float32).reshape(-1, 1)
        return RootFnOutput(torch.zeros(obs.shape[0], 2), torch.zeros(obs.shape[0]), obs)

    def recurrent_fn(self, embedding, action):
        b = action.shape[0]
        return RecurrentFnOutput(
            (action == 0).float(), torch.zeros(b), torch.zeros(b, 2), torch.zeros(b)
        ), embedding


@pytest.mark.parametrize("search", ["muzero", "gumbel"])
def test_the_planner_passes_its_backend_on(compiled_calls, search):
    calls = compiled_calls
    obs = np.zeros((3, 1), np.float32)
    for backend in ("torch", "compiled", "auto"):
        planner = MCTSPlanner(Bandit(), num_simulations=6, search=search, backend=backend)
        assert planner.search_policy(obs).action.tolist() == [0, 0, 0]
        assert planner.get_config()["backend"] == backend
    assert calls == ["compiled", "compiled"]
    with pytest.raises(ValueError, match="backend: expected"):
        MCTSPlanner(Bandit(), backend="jit")


def test_backend_errors_name_the_argument(monkeypatch):
    root, fn = roots(1, 3), mlp_fn(3)
    with pytest.raises(ValueError, match="backend: expected 'auto', 'torch' or 'compiled'"):
        muzero_policy(root, fn, 2, backend="numba")
    with pytest.raises(ValueError, match="backend: 'compiled' searches on the CPU only"):
        compiled.choose_backend("compiled", torch.device("meta"), 1, torch.float32)
    with pytest.raises(ValueError, match="backend: 'compiled' searches float32 or float64"):
        compiled.choose_backend("compiled", torch.device("cpu"), 1, torch.bfloat16)
    monkeypatch.setitem(sys.modules, "mbwrap.planners.mcts.compiled_tree", None)
    install = r"pip install numba \(or pip install 'mbwrap\[numba\]'\)"
    with pytest.raises(ImportError, match=install):
        gumbel_muzero_policy(root, fn, 2, backend="compiled")


def test_model_errors_are_the_torch_searchs():
    root = roots(2, 3)

    def nan_fn(embedding, action):
        out, nxt = mlp_fn(3)(embedding, action)
        out.value = out.value * float("nan")
        return out, nxt

    with pytest.raises(ModelOutputError, match="NaN or infinite"):
        muzero_policy(root, nan_fn, 4, backend="compiled")

    def short_fn(embedding, action):
        out, nxt = mlp_fn(3)(embedding, action)
        out.prior_logits = out.prior_logits[:, :2]
        return out, nxt

    with pytest.raises(ValueError, match=r"recurrent_fn: expected prior_logits of shape \(2, 3\)"):
        muzero_policy(root, short_fn, 4, backend="compiled")


def test_without_numba_auto_falls_back_and_mbwrap_never_imports_it():
    script = """
import sys
sys.modules["numba"] = None  # as if numba were not installed
import torch
import mbwrap
from mbwrap.planners.mcts import RootFnOutput, RecurrentFnOutput, muzero_policy

def fn(embedding, action):
    b = action.shape[0]
    return RecurrentFnOutput(torch.zeros(b), torch.ones(b), torch.zeros(b, 2),
                             torch.zeros(b)), embedding

root = RootFnOutput(torch.zeros(1, 2), torch.zeros(1), torch.zeros(1, 3))
assert muzero_policy(root, fn, 3).search_tree.num_nodes.tolist() == [4]
try:
    muzero_policy(root, fn, 3, backend="compiled")
except ImportError as err:
    assert "pip install numba" in str(err), err
else:
    raise AssertionError("no ImportError")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
