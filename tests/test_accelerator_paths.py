"""The accelerator's code paths, taken on the CPU where they are forced
(mbwrap.device.accelerator_paths), and the DeviceWatch that checks a hot loop stays on
its device: the search without a host read per level gives the same trees, the tabular
model flags rows outside its spaces instead of raising, the replay's range check runs in
torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from mbwrap.buffers import ReplayBuffer
from mbwrap.device import (
    FORCE_ACCELERATOR_PATHS_ENV_VAR,
    accelerator_paths,
    force_accelerator_paths,
)
from mbwrap.device_watch import DeviceWatch
from mbwrap.errors import SpaceMismatchError
from mbwrap.models import TabularModel
from mbwrap.planners.mcts import (
    RecurrentFnOutput,
    RootFnOutput,
    gumbel_muzero_policy,
    muzero_policy,
)

CPU = torch.device("cpu")


def test_the_cpu_takes_its_own_paths_unless_forced(monkeypatch):
    monkeypatch.delenv(FORCE_ACCELERATOR_PATHS_ENV_VAR, raising=False)
    assert not accelerator_paths(CPU)
    assert accelerator_paths(torch.device("cuda")) and accelerator_paths(torch.device("meta"))
    with force_accelerator_paths():
        assert accelerator_paths(CPU)
        with force_accelerator_paths(False):
            assert not accelerator_paths(CPU)
        assert accelerator_paths(CPU)
    assert not accelerator_paths(CPU)
    monkeypatch.setenv(FORCE_ACCELERATOR_PATHS_ENV_VAR, "1")
    assert accelerator_paths(CPU)
    with force_accelerator_paths(False):
        assert not accelerator_paths(CPU)
    with force_accelerator_paths(False):
        assert accelerator_paths(torch.device("cuda"))  # only the CPU can be forced


def test_device_watch_sees_foreign_operations_and_host_reads():
    with DeviceWatch("meta") as watch:
        on = torch.ones(3, device="meta")
        (on * 2 + torch.tensor(1.0)).sum()  # a 0-dim CPU scalar mixes in without a copy
    assert watch.foreign == [] and watch.host_reads == []
    with DeviceWatch("meta") as watch:
        off = torch.arange(4.0) * 2
        bool((off > 1).any())
        off.sum().item()
    assert watch.foreign and all("(cpu)" in op for op in watch.foreign)
    assert "mul (cpu)" in watch.foreign
    assert watch.host_reads == ["_local_scalar_dense"] * 2
    assert "_local_scalar_dense x2" in watch.summary()
    with DeviceWatch("cpu") as watch, torch.inference_mode():
        flag = torch.ones(2).any()
        bool(flag), flag.item(), torch.equal(flag, flag)
    assert watch.host_reads == ["is_nonzero", "item", "equal"]
    with DeviceWatch("cpu") as watch:
        torch.arange(4.0).sum()
        torch.ones(3, device="meta") * 2  # shapes only: autograd's zero gradients
    assert watch.foreign == []
    # A copy off the watched device waits for it like a read (watching the CPU, the
    # meta device stands in for "elsewhere": no second real device is needed).
    with DeviceWatch("cpu") as watch:
        torch.ones(3).to("meta")
        torch.empty(3, device="meta").copy_(torch.ones(3))
        torch.ones(3).to(torch.float64)  # a copy that stays on the device
    assert watch.host_reads == ["_to_copy", "copy_"], watch.summary()


def _recurrent_fn(actions: int, dim: int):
    weights = torch.randn(dim + actions, dim, generator=torch.Generator().manual_seed(3))

    def recurrent_fn(embedding, action):
        x = torch.cat([embedding, torch.nn.functional.one_hot(action, actions).float()], -1)
        nxt = torch.tanh(x @ weights)
        b = x.shape[0]
        return RecurrentFnOutput(
            nxt[:, 0], torch.full((b,), 0.95), nxt[:, :actions], nxt[:, 1]
        ), nxt

    return recurrent_fn


@pytest.mark.parametrize("policy", [muzero_policy, gumbel_muzero_policy])
def test_the_search_without_host_reads_per_level_grows_the_same_trees(policy):
    """The accelerator's search runs each descent and backup to the deepest level the tree
    can hold instead of stopping when every row is done: the trees are the same, and the
    host reads no longer grow with the depth of the search."""
    recurrent_fn = _recurrent_fn(4, 6)
    roots = RootFnOutput(torch.randn(5, 4), torch.randn(5), torch.randn(5, 6))
    kwargs = {"temperature": 0.0} if policy is muzero_policy else {"gumbel_scale": 0.0}
    kwargs["backend"] = "torch"  # the torch search's two loops (auto would compile on the CPU)
    if policy is muzero_policy:
        kwargs["dirichlet_fraction"] = 0.0

    def search(simulations: int):
        with DeviceWatch(CPU) as watch:
            out = policy(roots, recurrent_fn, simulations, **kwargs)
        return out, len(watch.host_reads)

    eager, eager_reads = search(24)
    with force_accelerator_paths():
        forced, forced_reads = search(24)
        _, forced_reads_deeper = search(48)
    _, eager_reads_deeper = search(48)
    a, b = eager.search_tree, forced.search_tree
    nodes = slice(0, a.capacity - 1)  # the last slot is the spare one padding lands on
    assert torch.equal(a.children_visits[:, nodes], b.children_visits[:, nodes])
    assert torch.equal(a.children_index[:, nodes], b.children_index[:, nodes])
    assert torch.allclose(a.node_values[:, nodes], b.node_values[:, nodes])
    assert torch.equal(eager.action, forced.action)
    # Eagerly every level of every simulation reads "is any row still descending?".
    assert eager_reads_deeper > eager_reads > 24
    assert forced_reads < eager_reads and forced_reads_deeper - forced_reads < 24


def _tabular() -> TabularModel:
    model = TabularModel(spaces.Discrete(4), spaces.Discrete(2), mode="most-likely", device="cpu")
    obs = np.array([0, 1, 2, 3, 0, 1])
    model.update(
        obs=obs,
        action=np.array([0, 1, 0, 1, 1, 0]),
        reward=np.ones(6),
        next_obs=(obs + 1) % 4,
        terminated=np.zeros(6, bool),
    )
    return model


def test_the_tabular_model_flags_rows_outside_its_spaces_instead_of_raising():
    model = _tabular()
    state, action = torch.tensor([1, 7]), torch.tensor([1, 0])
    with pytest.raises(SpaceMismatchError, match="state"):
        model.step(state, action)
    with force_accelerator_paths():
        step = model.step(state, action)
        inside = model.step(torch.tensor([1, 2]), torch.tensor([1, 0]))
    assert torch.isnan(step.reward[1]) and torch.isfinite(step.reward[0])
    assert step.next_state[0] == model.step(torch.tensor([1]), torch.tensor([1])).next_state[0]
    assert torch.isfinite(inside.reward).all()


def test_the_replay_checks_discrete_values_in_torch_and_still_names_the_row():
    space = spaces.Discrete(3)
    buffer = ReplayBuffer(space, spaces.Discrete(2), 8, device="cpu", n_envs=2)
    good = dict(
        next_obs=np.array([1, 2]),
        reward=np.zeros(2),
        terminated=np.zeros(2, bool),
        truncated=np.zeros(2, bool),
    )
    with force_accelerator_paths():
        buffer.add(obs=np.array([0, 1]), action=np.array([1, 0]), **good)
        with pytest.raises(SpaceMismatchError, match=r"obs: 1 value\(s\).*row 1"):
            buffer.add(obs=np.array([0, 5]), action=np.array([1, 0]), **good)
    assert len(buffer) == 2  # one step of two streams; the bad one wrote nothing
