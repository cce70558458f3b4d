"""Bad inputs of make_algo's spaces, the tabular model, Dyna-Q and checkpoints: each is an
mbwrap error of the right type whose message names the argument (or the checkpoint field)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import mbwrap
from mbwrap.algos import PETS, AlphaZero, Dyna, DynaQ, MuZero
from mbwrap.buffers.prioritized import PrioritizedTrajectoryBuffer
from mbwrap.buffers.replay import MAX_CAPACITY
from mbwrap.buffers.self_play import SelfPlayBuffer
from mbwrap.checkpoint import load_checkpoint, save_checkpoint
from mbwrap.errors import CheckpointError, SpaceMismatchError, UnsupportedSpaceError

torch.set_num_threads(1)

BOX = spaces.Box(-1.0, 1.0, (3,), np.float32)
ALGO_KIND = "mbwrap.algo"


class SpacesEnv(gym.Env):
    """An env with any spaces; never stepped (the checks come before)."""

    def __init__(self, observation_space: Any, action_space: Any) -> None:
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> Any:
        raise AssertionError("the env was used before its spaces were checked")

    def step(self, action: Any) -> Any:
        raise AssertionError("the env was used before its spaces were checked")


def _no_wrapping(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make wrapping the env an error: the space checks must come first."""

    def refuse(env: Any) -> Any:
        raise AssertionError("the env was wrapped before its spaces were checked")

    monkeypatch.setattr("mbwrap.algos.base.wrap_env", refuse)
    monkeypatch.setattr("mbwrap.algos.muzero.wrap_env", refuse)


# ---------------------------------------------------------------------- make_algo's spaces
UNREPRESENTABLE = {
    "Text": spaces.Text(5),
    "Graph": spaces.Graph(spaces.Box(0.0, 1.0, (2,)), None),
    "Sequence": spaces.Sequence(BOX),
    "OneOf": spaces.OneOf([BOX, spaces.Discrete(2)]),
}
# Every registered algorithm that acts in a Gymnasium env (AlphaZero plays PettingZoo games).
GYM_ALGOS = sorted(set(mbwrap.registry.available("algo")) - {"alphazero"})


@pytest.mark.parametrize("kind", sorted(UNREPRESENTABLE))
def test_make_algo_names_an_unrepresentable_observation_space(kind, monkeypatch):
    _no_wrapping(monkeypatch)
    with pytest.raises(
        UnsupportedSpaceError,
        match=rf"^env\.observation_space: Dyna takes these observation spaces: .*; got "
        rf"{kind}\(.*\(a space of kind {kind}\)",
    ):
        mbwrap.make_algo("dyna", SpacesEnv(UNREPRESENTABLE[kind], BOX))


@pytest.mark.parametrize("name", GYM_ALGOS)
def test_every_algorithm_refuses_a_text_observation_space_before_wrapping(name, monkeypatch):
    _no_wrapping(monkeypatch)
    with pytest.raises(UnsupportedSpaceError, match=r"^env\.observation_space: \w+ takes"):
        mbwrap.make_algo(name, SpacesEnv(spaces.Text(5), spaces.Discrete(2)))


def test_direct_construction_checks_before_wrapping(monkeypatch):
    _no_wrapping(monkeypatch)
    with pytest.raises(UnsupportedSpaceError, match=r"^env\.observation_space: Dyna takes"):
        Dyna(SpacesEnv(spaces.Text(5), BOX))


def test_muzero_refuses_a_text_observation_space_before_wrapping(monkeypatch):
    _no_wrapping(monkeypatch)
    with pytest.raises(UnsupportedSpaceError, match=r"^env\.observation_space: MuZero takes"):
        mbwrap.make_algo("muzero", SpacesEnv(spaces.Text(5), spaces.Discrete(2)))


def test_mbpo_refuses_unbounded_box_actions():
    unbounded = spaces.Box(-np.inf, np.inf, (2,), np.float32)
    with pytest.raises(
        UnsupportedSpaceError,
        match=r"^env\.action_space: MBPO needs a bounded Box \(finite low and high\)",
    ):
        mbwrap.make_algo("mbpo", SpacesEnv(BOX, unbounded))


def test_mbpo_refuses_dict_observations():
    with pytest.raises(
        UnsupportedSpaceError,
        match=r"^env\.observation_space: MBPO takes these observation spaces: Box; got Dict",
    ):
        mbwrap.make_algo("mbpo", SpacesEnv(spaces.Dict({"x": BOX}), BOX))


def test_dreamer_refuses_tuple_observations():
    with pytest.raises(UnsupportedSpaceError, match=r"^env\.observation_space: Dreamer takes"):
        mbwrap.make_algo("dreamer", SpacesEnv(spaces.Tuple((BOX,)), BOX))


def test_a_dict_entry_is_named_by_its_path():
    observation_space = spaces.Dict({"x": BOX, "goal": spaces.Tuple((BOX, spaces.Text(3)))})
    with pytest.raises(
        UnsupportedSpaceError,
        match=r"^env\.observation_space\['goal'\]\[1\]: Dyna takes Tuple observations whose "
        r"entries are .*; got Text",
    ):
        mbwrap.make_algo("dyna", SpacesEnv(observation_space, BOX))


def test_muzero_refuses_box_actions():
    with pytest.raises(
        UnsupportedSpaceError,
        match=r"^env\.action_space: MuZero takes these action spaces: Discrete; got Box",
    ):
        mbwrap.make_algo("muzero", SpacesEnv(BOX, BOX))


def test_dyna_q_refuses_continuous_observations():
    with pytest.raises(
        UnsupportedSpaceError,
        match=r"^env\.observation_space: DynaQ takes these observation spaces: Discrete, "
        r"MultiDiscrete; got Box.*\(finite spaces",
    ):
        mbwrap.make_algo("dyna-q", gym.make("CartPole-v1"))


# ---------------------------------------------------------------------- the tabular model
START = spaces.Discrete(4, start=3)


def _table() -> mbwrap.TabularModel:
    return mbwrap.TabularModel(START, spaces.Discrete(2, start=-1), device="cpu")


def test_tabular_step_checks_the_state_shape():
    with pytest.raises(SpaceMismatchError, match=r"^state: expected shape \(\) or \(batch"):
        _table().step(torch.tensor([[3], [4]]), torch.tensor([0, 0]))


def test_tabular_step_refuses_a_state_outside_the_space():
    # 2 is below start=3: it would read the last row of the table.
    with pytest.raises(SpaceMismatchError, match=r"^state: row 1 holds 2, which is outside"):
        _table().step(torch.tensor([3, 2]), torch.tensor([0, 0]))


def test_tabular_step_refuses_an_action_outside_the_space():
    with pytest.raises(SpaceMismatchError, match=r"^action: row 0 holds 1, which is outside"):
        _table().step(torch.tensor([3]), torch.tensor([1]))


def test_tabular_step_refuses_batches_of_different_sizes():
    with pytest.raises(SpaceMismatchError, match=r"^state, action: batches of 2 states and 3"):
        _table().step(torch.tensor([3, 4]), torch.tensor([0, 0, 0]))


def test_tabular_step_refuses_float_states():
    with pytest.raises(SpaceMismatchError, match=r"^state: expected integer values"):
        _table().step(torch.tensor([3.5]), torch.tensor([0]))


def test_tabular_encode_refuses_an_observation_outside_the_space():
    with pytest.raises(SpaceMismatchError, match=r"^obs: row 0 holds 7, which is outside"):
        _table().encode(np.array([7]))


def test_tabular_update_names_the_next_observation():
    with pytest.raises(SpaceMismatchError, match=r"^next_obs: row 0 holds 9"):
        _table().update(np.array([3]), np.array([0]), np.array([1.0]), np.array([9]), [False])


def test_tabular_multidiscrete_digit_outside_the_space():
    model = mbwrap.TabularModel(
        spaces.MultiDiscrete([2, 3], start=[0, -1]), spaces.Discrete(2), device="cpu"
    )
    # Digit 1 is 2 >= start + 3: the flat index would still be in range (a wrong row).
    with pytest.raises(SpaceMismatchError, match=r"^state: row 0 holds \[0, 2\], which is"):
        model.step(torch.tensor([[0, 2]]), torch.tensor([0]))


# ---------------------------------------------------------------------- Dyna-Q's predict
def test_dyna_q_predict_refuses_an_observation_beyond_the_space():
    algo = DynaQ(gym.make("mbwrap/DynaMaze-v0"), seed=0)
    # The maze's 6 x 9 cells are its states 0..53.
    with pytest.raises(SpaceMismatchError, match=r"^observation: row 0 holds 54, which is"):
        algo.predict(54)


def test_dyna_q_predict_refuses_a_negative_observation():
    # -1 would silently read the last state's row.
    algo = DynaQ(gym.make("mbwrap/DynaMaze-v0"), seed=0)
    with pytest.raises(SpaceMismatchError, match=r"^observation: row 1 holds -1"):
        algo.predict(np.array([0, -1]))


def test_dyna_q_predict_checks_the_observation_shape():
    algo = DynaQ(gym.make("mbwrap/DynaMaze-v0"), seed=0)
    with pytest.raises(SpaceMismatchError, match=r"^observation: expected shape"):
        algo.predict(np.zeros((2, 2), dtype=np.int64))


def test_dyna_q_predict_with_a_start_offset_space():
    algo = DynaQ(SpacesEnv(START, spaces.Discrete(2, start=-1)), seed=0)
    actions, _ = algo.predict(np.array([3, 6]), deterministic=True)
    assert set(actions.tolist()) <= {-1, 0}
    with pytest.raises(SpaceMismatchError, match=r"^observation: row 0 holds 0, which is"):
        algo.predict(0)


# ---------------------------------------------------------------------- corrupt checkpoints
def _rewrite_algo(path: Path, edit: Callable[[dict, dict, dict], None]) -> None:
    """Rewrite an algorithm checkpoint with mbwrap.checkpoint's own reader and writer:
    ``edit(metadata, tree, tensors)`` changes the metadata, the JSON tree of the run's state
    and the tensors in place."""
    metadata, tensors = load_checkpoint(path, kind=ALGO_KIND)
    tree = json.loads(bytes(tensors["__tree__"].tolist()).decode())
    edit(metadata, tree, tensors)
    tensors["__tree__"] = torch.frombuffer(bytearray(json.dumps(tree).encode()), dtype=torch.uint8)
    save_checkpoint(path, kind=ALGO_KIND, metadata=metadata, tensors=tensors)


@pytest.fixture(scope="module")
def dyna_q_checkpoint(tmp_path_factory) -> Path:
    algo = DynaQ(gym.make("mbwrap/DynaMaze-v0"), seed=0)
    algo.learn(200)
    path = tmp_path_factory.mktemp("dyna_q") / "dyna_q.pt"
    algo.save(path)
    return path


def _corrupted(source: Path, tmp_path: Path, edit: Callable[[dict, dict, dict], None]) -> Path:
    path = tmp_path / source.name
    path.write_bytes(source.read_bytes())
    _rewrite_algo(path, edit)
    return path


def test_a_negative_counter_is_named(dyna_q_checkpoint, tmp_path):
    def edit(metadata, tree, tensors):
        tree["run"]["num_timesteps"] = -5

    path = _corrupted(dyna_q_checkpoint, tmp_path, edit)
    with pytest.raises(CheckpointError, match=r"run\.num_timesteps: expected a count .* got -5"):
        DynaQ.load(path)


def test_a_counter_that_is_not_an_int_is_named(dyna_q_checkpoint, tmp_path):
    def edit(metadata, tree, tensors):
        tree["run"]["real_steps"] = 1.5

    path = _corrupted(dyna_q_checkpoint, tmp_path, edit)
    with pytest.raises(CheckpointError, match=r"run\.real_steps: expected a count .* got 1\.5"):
        DynaQ.load(path)


def test_a_refit_counter_that_is_not_an_int_is_named(dyna_q_checkpoint, tmp_path):
    def edit(metadata, tree, tensors):
        tree["run"]["steps_since_refit"] = "3"

    path = _corrupted(dyna_q_checkpoint, tmp_path, edit)
    with pytest.raises(CheckpointError, match=r"run\.steps_since_refit: expected a count"):
        DynaQ.load(path)


def test_a_metadata_counter_is_named(dyna_q_checkpoint, tmp_path):
    def edit(metadata, tree, tensors):
        metadata["num_timesteps"] = True

    path = _corrupted(dyna_q_checkpoint, tmp_path, edit)
    with pytest.raises(CheckpointError, match=r"metadata\.num_timesteps: expected a count"):
        DynaQ.load(path)


def test_a_visited_state_beyond_the_table_is_named(dyna_q_checkpoint, tmp_path):
    def edit(metadata, tree, tensors):
        key = tree["parts"]["visited"]["state"]["__ndarray__"]
        tensors[key] = tensors[key].clone()
        tensors[key][0, 0] = 54  # the maze has 54 states

    path = _corrupted(dyna_q_checkpoint, tmp_path, edit)
    with pytest.raises(CheckpointError, match=r"visited \(states\): expected indices in \[0, 54"):
        DynaQ.load(path)


def test_an_elite_beyond_the_ensemble_is_named(tmp_path):
    model = mbwrap.make_model(
        "gaussian-ensemble", BOX, BOX, ensemble_size=3, num_elites=2, hidden_sizes=[8],
        device="cpu",
    )
    model.save(tmp_path / "model.pt")
    metadata, tensors = load_checkpoint(tmp_path / "model.pt", kind="mbwrap.model")
    tensors["elite_indices"] = torch.tensor([0, 5])
    save_checkpoint(tmp_path / "model.pt", kind="mbwrap.model", metadata=metadata,
                    tensors=tensors)
    with pytest.raises(CheckpointError, match=r"elite_indices: .*in \[0, 3\), got 5"):
        mbwrap.WorldModel.load(tmp_path / "model.pt")


def test_an_absurd_replay_capacity_is_refused_before_allocating(tmp_path):
    buffer = mbwrap.ReplayBuffer(BOX, BOX, 10, device="cpu")
    buffer.save(tmp_path / "buffer.pt")
    metadata, tensors = load_checkpoint(tmp_path / "buffer.pt", kind="mbwrap.replay_buffer")
    metadata["capacity"] = 10**15
    save_checkpoint(tmp_path / "buffer.pt", kind="mbwrap.replay_buffer", metadata=metadata,
                    tensors=tensors)
    with pytest.raises(CheckpointError, match=rf"capacity: .*at most {MAX_CAPACITY}"):
        mbwrap.ReplayBuffer.load(tmp_path / "buffer.pt")


@pytest.fixture(scope="module")
def dyna_checkpoint(tmp_path_factory) -> Path:
    algo = Dyna(
        gym.make("mbwrap/DynaMaze-v0"), "DQN", "tabular", seed=0, buffer_size=64,
        learning_starts=16, train_freq=16, imagined_steps=16, num_imagined_envs=2,
        agent_kwargs={"buffer_size": 64, "learning_starts": 0},
    )
    algo.learn(32)
    path = tmp_path_factory.mktemp("dyna") / "dyna.pt"
    algo.save(path)
    return path


def test_an_absurd_buffer_size_in_the_config_is_refused(dyna_checkpoint, tmp_path):
    def edit(metadata, tree, tensors):
        metadata["config"]["buffer_size"] = 10**15

    path = _corrupted(dyna_checkpoint, tmp_path, edit)
    with pytest.raises(CheckpointError, match=rf"capacity: .*at most {MAX_CAPACITY}"):
        Dyna.load(path)


def test_a_replay_position_beyond_the_buffer_is_named(dyna_checkpoint, tmp_path):
    def edit(metadata, tree, tensors):
        tree["parts"]["buffer"]["state"]["pos"] = 10**6

    path = _corrupted(dyna_checkpoint, tmp_path, edit)
    with pytest.raises(CheckpointError, match=r"state\['pos'\]: expected an int in \[0, 64\)"):
        Dyna.load(path)


def test_an_agent_replay_position_beyond_its_buffer_is_named(dyna_checkpoint, tmp_path):
    def edit(metadata, tree, tensors):
        # SB3 keeps 64 / 2 imagined envs = 32 rows of 2 transitions.
        tree["parts"]["agent"]["state"]["replay_buffer"]["pos"] = 32

    path = _corrupted(dyna_checkpoint, tmp_path, edit)
    with pytest.raises(CheckpointError, match=r"agent\.replay_buffer\.pos: .*\[0, 32\), got 32"):
        Dyna.load(path)


def test_a_negative_agent_counter_is_named(dyna_checkpoint, tmp_path):
    def edit(metadata, tree, tensors):
        tree["parts"]["agent"]["state"]["counters"]["n_updates"] = -1

    path = _corrupted(dyna_checkpoint, tmp_path, edit)
    with pytest.raises(CheckpointError, match=r"agent\.counters\.n_updates: expected a count"):
        Dyna.load(path)


def test_a_negative_declared_counter_is_named(tmp_path):
    algo = PETS(
        gym.make("Pendulum-v1"), device="cpu", seed=0,
        model_kwargs={"ensemble_size": 2, "num_elites": 2, "hidden_sizes": [8]},
        planner_kwargs={"population": 8, "num_elites": 2, "iterations": 1, "horizon": 2},
    )
    algo.save(tmp_path / "pets.pt")

    def edit(metadata, tree, tensors):
        tree["parts"]["refits"]["state"] = -2

    _rewrite_algo(tmp_path / "pets.pt", edit)
    with pytest.raises(CheckpointError, match=r"refits: expected a count \(an int >= 0\), got -2"):
        PETS.load(tmp_path / "pets.pt")


# ---------------------------------------------------------------------- self-play buffers
@pytest.fixture(scope="module")
def alphazero_checkpoint(tmp_path_factory) -> Path:
    algo = AlphaZero("tictactoe_v3", num_parallel_games=4, num_simulations=4, batch_size=8,
                     learning_starts=16, train_freq=8, buffer_size=32, device="cpu", seed=0)
    algo.learn(48)
    path = tmp_path_factory.mktemp("alphazero") / "alphazero.pt"
    algo.save(path)
    return path


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("position", 32, r"state\['position'\]: expected an int in \[0, 32\), got 32"),
        ("size", 40, r"state\['size'\]: expected min\(added, capacity\)"),
        ("added", -1, r"state\['added'\]: expected a count"),
    ],
)
def test_a_self_play_buffer_counter_is_named(alphazero_checkpoint, tmp_path, field, value, match):
    def edit(metadata, tree, tensors):
        tree["parts"]["buffer"]["state"][field] = value

    path = _corrupted(alphazero_checkpoint, tmp_path, edit)
    with pytest.raises(CheckpointError, match=match):
        AlphaZero.load(path)


def test_an_absurd_self_play_capacity_is_refused_before_allocating():
    with pytest.raises(ValueError, match=rf"^capacity: expected at most {MAX_CAPACITY}"):
        SelfPlayBuffer(10**15, (3, 3, 2), 9)
    with pytest.raises(ValueError, match=rf"^capacity: expected at most {MAX_CAPACITY}"):
        PrioritizedTrajectoryBuffer(10**15, (4,), 2, gamma=0.9)


MUZERO = {"num_simulations": 2, "batch_size": 8, "learning_starts": 20, "train_freq": 4,
          "gradient_steps": 1, "buffer_size": 200, "segment_length": 10, "device": "cpu",
          "network_kwargs": {"hidden_size": 8, "layers": 1, "support_size": 3}}


@pytest.fixture(scope="module")
def muzero_checkpoint(tmp_path_factory) -> Path:
    algo = MuZero(gym.make("CartPole-v1"), seed=0, **MUZERO)
    algo.learn(40)
    path = tmp_path_factory.mktemp("muzero") / "muzero.pt"
    algo.save(path)
    return path


def _buffer_tensor(tree: dict, name: str) -> str:
    return tree["parts"]["buffer"]["state"][name]["__tensor__"]


@pytest.mark.parametrize(
    ("field", "row_value", "match"),
    [
        ("index", 10**6, r"tensors\['index'\]: row 0 holds 1000000; expected the absolute"),
        ("end", 10**6, r"tensors\['end'\]: row 0 holds 1000000; expected its segment's"),
        ("action", 2, r"tensors\['action'\]: row 0 holds 2; expected a move in \[0, 2\)"),
    ],
)
def test_a_prioritized_buffer_index_out_of_range_is_named(
    muzero_checkpoint, tmp_path, field, row_value, match
):
    def edit(metadata, tree, tensors):
        key = _buffer_tensor(tree, field)
        tensors[key] = tensors[key].clone()
        tensors[key][0] = row_value

    path = _corrupted(muzero_checkpoint, tmp_path, edit)
    with pytest.raises(CheckpointError, match=match):
        MuZero.load(path, env=gym.make("CartPole-v1"))


def test_a_prioritized_buffer_counter_that_disagrees_with_its_rows_is_named(
    muzero_checkpoint, tmp_path
):
    def edit(metadata, tree, tensors):
        key = _buffer_tensor(tree, "added")
        tensors[key] = tensors[key] + 5  # more rows added than the tensors hold

    path = _corrupted(muzero_checkpoint, tmp_path, edit)
    with pytest.raises(CheckpointError, match=r"tensors\['obs'\]: expected shape \("):
        MuZero.load(path, env=gym.make("CartPole-v1"))
