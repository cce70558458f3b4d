"""Tests of mbwrap.TabularModel: counts, predictions, indexing, fitting, persistence."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import mbwrap
from mbwrap import ReplayBuffer, TabularModel, WorldModel
from mbwrap.checkpoint import load_checkpoint, save_checkpoint
from mbwrap.errors import CheckpointError, SpaceMismatchError, UnsupportedSpaceError
from mbwrap.types import ModelStep

S, A = spaces.Discrete(3), spaces.Discrete(2)

# From state 0 with action 1: twice to 1 (reward 1, 1), twice to 2 (reward 3 terminal, 5 not).
# From state 1 with action 0: once to 0 (reward -2, terminal).
KNOWN = {
    "obs": [0, 0, 0, 0, 1],
    "action": [1, 1, 1, 1, 0],
    "reward": [1.0, 1.0, 3.0, 5.0, -2.0],
    "next_obs": [1, 1, 2, 2, 0],
    "terminated": [False, False, True, False, True],
}


def known_model(mode: str = "sample", observation_space=S) -> TabularModel:
    model = TabularModel(observation_space, A, mode=mode, device="cpu")
    offset = int(getattr(observation_space, "start", 0))
    data = dict(KNOWN)
    data["obs"] = [o + offset for o in KNOWN["obs"]]
    data["next_obs"] = [o + offset for o in KNOWN["next_obs"]]
    model.update(**{k: np.array(v) for k, v in data.items()})
    return model


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------- counts


def test_counts_give_exact_probabilities_rewards_and_terminations():
    model = known_model()
    assert model.counts[0, 1].tolist() == [0.0, 2.0, 2.0]
    assert model.reward_sum[0, 1].tolist() == [0.0, 2.0, 8.0]
    assert model.terminal_count[0, 1].tolist() == [0.0, 0.0, 1.0]
    probs = model.transition_probs(torch.tensor([0, 1, 2]), torch.tensor([1, 0, 1]))
    assert probs.tolist() == [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    nxt, reward, terminated = model.step_indices(
        torch.tensor([0, 0, 1]), torch.tensor([1, 1, 0]), generator=gen()
    )
    for n, r, t in zip(nxt.tolist(), reward.tolist(), terminated.tolist(), strict=True):
        expected = {0: (-2.0, 1.0), 1: (1.0, 0.0), 2: (4.0, 0.5)}[n]
        assert (r, t) == expected


def test_update_accepts_single_transition_and_accumulates():
    model = TabularModel(S, A, device="cpu")
    model.update(2, 1, 0.5, 0, True)
    model.update(
        torch.tensor([2]),
        torch.tensor([1]),
        torch.tensor([1.5]),
        torch.tensor([0]),
        torch.tensor([False]),
    )
    assert model.counts[2, 1, 0] == 2.0
    assert model.reward_sum[2, 1, 0] == 2.0
    assert model.terminal_count[2, 1, 0] == 1.0
    assert model.counts.sum() == 2.0


def test_update_with_mismatched_batches_is_an_error():
    model = TabularModel(S, A, device="cpu")
    with pytest.raises(SpaceMismatchError, match=r"^update\(\): batch sizes differ"):
        model.update([0, 1], [0, 1], [0.0], [1, 2], [False, False])
    with pytest.raises(SpaceMismatchError, match=r"^action:"):
        model.update([0], [0.5], [0.0], [1], [False])


def test_most_likely_mode_returns_the_mode_with_ties_to_lowest():
    model = known_model("most-likely")
    # 0 --1--> {1: 2 counts, 2: 2 counts}: a tie, broken to the lowest state, 1.
    step = model.step(torch.tensor([0, 1]), torch.tensor([1, 0]))
    assert isinstance(step, ModelStep)
    assert step.next_state.tolist() == [1, 0]
    assert step.reward.tolist() == [1.0, -2.0]
    assert step.terminated.tolist() == [0.0, 1.0]
    model.update(0, 1, 7.0, 2, False)  # now 2 is the more likely successor
    step = model.step(torch.tensor([0]), torch.tensor([1]))
    assert step.next_state.tolist() == [2]
    assert step.reward.tolist() == [5.0]  # (3 + 5 + 7) / 3
    assert step.terminated.tolist() == [pytest.approx(1 / 3)]


def test_sample_mode_frequencies_follow_the_counts():
    model = known_model("sample")
    model.update(0, 0, 1.0, 0, False)
    model.update([0, 0, 0], [0, 0, 0], [2.0, 2.0, 2.0], [2, 2, 2], [False, False, False])
    # 0 --0--> 0 with prob 1/4, 2 with prob 3/4.
    n = 20_000
    step = model.step(
        torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long), generator=gen(1)
    )
    freq = torch.bincount(step.next_state, minlength=3).float() / n
    assert freq[1] == 0.0
    assert freq[0].item() == pytest.approx(0.25, abs=0.015)
    assert freq[2].item() == pytest.approx(0.75, abs=0.015)
    assert torch.equal(step.reward, torch.where(step.next_state == 0, 1.0, 2.0))
    # Reproducible with the same seed.
    again = model.step(
        torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long), generator=gen(1)
    )
    assert torch.equal(step.next_state, again.next_state)


def test_sample_mode_terminations_per_successor():
    model = known_model("sample")
    step = model.step(
        torch.zeros(4000, dtype=torch.long), torch.ones(4000, dtype=torch.long), generator=gen(2)
    )
    to_one, to_two = step.next_state == 1, step.next_state == 2
    assert (to_one | to_two).all()
    assert to_one.float().mean().item() == pytest.approx(0.5, abs=0.03)
    assert torch.equal(step.reward[to_one], torch.full((int(to_one.sum()),), 1.0))
    assert torch.equal(step.reward[to_two], torch.full((int(to_two.sum()),), 4.0))
    assert torch.equal(step.terminated[to_two], torch.full((int(to_two.sum()),), 0.5))
    assert not step.terminated[to_one].any()


@pytest.mark.parametrize("mode", ["sample", "most-likely"])
def test_unseen_pair_stays_put_with_zero_reward(mode):
    model = known_model(mode)
    state, action = torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 0, 1])
    for _ in range(5):
        step = model.step(state, action, generator=gen())
        assert step.next_state.tolist() == [0, 1, 2, 2]
        assert step.reward.tolist() == [0.0] * 4
        assert step.terminated.tolist() == [0.0] * 4
    assert model.transition_probs(state, action).tolist() == [
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
        [0.0, 0.0, 1.0],
    ]


def test_discrete_with_start_uses_raw_values():
    space = spaces.Discrete(3, start=5)
    model = known_model("most-likely", observation_space=space)
    assert model.state_index(torch.tensor([5, 6, 7])).tolist() == [0, 1, 2]
    assert model.index_to_obs(torch.tensor([0, 2])).tolist() == [5, 7]
    step = model.step(torch.tensor([5, 6, 7]), torch.tensor([1, 0, 0]))
    assert step.next_state.tolist() == [6, 5, 7]
    assert step.reward.tolist() == [1.0, -2.0, 0.0]


def test_step_accepts_single_action_and_checks_it():
    model = known_model("most-likely")
    step = model.step(torch.tensor([1]), 0)
    assert step.next_state.tolist() == [0]
    with pytest.raises(SpaceMismatchError, match=r"^action:"):
        model.step(torch.tensor([1]), torch.tensor([[0, 1]]))


def test_encode_and_decode_are_identity():
    model = TabularModel(S, A, device="cpu")
    state = model.encode(np.array([2, 0]))
    assert state.tolist() == [2, 0] and state.dtype == torch.int64
    assert model.encode(1).tolist() == [1]
    assert model.decode(state) is state


# ---------------------------------------------------------------------- MultiDiscrete


def test_multidiscrete_indexing_round_trip():
    obs_space = spaces.MultiDiscrete([3, 4], start=[1, -2])
    act_space = spaces.MultiDiscrete([2, 2])
    model = TabularModel(obs_space, act_space, device="cpu")
    assert (model.n_states, model.n_actions) == (12, 4)
    elements = torch.tensor([[a, b] for a in (1, 2, 3) for b in (-2, -1, 0, 1)])
    # Mixed radix, first digit most significant.
    assert model.state_index(elements).tolist() == list(range(12))
    assert model.state_index(torch.tensor([[2, 0]])).tolist() == [1 * 4 + 2]
    assert torch.equal(model.index_to_obs(torch.arange(12)), elements)
    assert model.action_index(torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])).tolist() == [
        0,
        1,
        2,
        3,
    ]


def test_two_dimensional_multidiscrete_round_trip():
    obs_space = spaces.MultiDiscrete([[2, 3], [2, 2]])
    model = TabularModel(obs_space, spaces.Discrete(2), device="cpu")
    assert model.n_states == 24
    elements = torch.tensor(
        list(itertools.product(range(2), range(3), range(2), range(2)))
    ).reshape(-1, 2, 2)
    index = model.state_index(elements)
    assert index.tolist() == list(range(24))
    back = model.index_to_obs(index)
    assert back.shape == (24, 2, 2)
    assert torch.equal(back, elements)


def test_multidiscrete_model_predicts_multidiscrete_states():
    obs_space = spaces.MultiDiscrete([3, 3])
    model = TabularModel(obs_space, spaces.Discrete(2), mode="most-likely", device="cpu")
    model.update(
        np.array([[0, 0], [2, 1]]),
        np.array([1, 0]),
        np.array([0.5, 2.0]),
        np.array([[1, 2], [0, 0]]),
        np.array([False, True]),
    )
    step = model.step(torch.tensor([[0, 0], [2, 1], [1, 1]]), torch.tensor([1, 0, 0]))
    assert step.next_state.tolist() == [[1, 2], [0, 0], [1, 1]]
    assert step.reward.tolist() == [0.5, 2.0, 0.0]
    assert step.terminated.tolist() == [0.0, 1.0, 0.0]


# ---------------------------------------------------------------------- construction errors


def test_table_size_limit():
    # |S| * |A| * |S| = 100 * 10 * 100 = 100_000 entries.
    TabularModel(spaces.Discrete(100), spaces.Discrete(10), max_table_size=100_000, device="meta")
    with pytest.raises(
        UnsupportedSpaceError,
        match=r"^observation_space: a table of \|S\|=100 x \|A\|=10 x \|S\| = 100000 entries "
        r"exceeds max_table_size=99999",
    ):
        TabularModel(spaces.Discrete(100), spaces.Discrete(10), max_table_size=99_999, device="cpu")


@pytest.mark.parametrize(
    ("obs_space", "act_space", "match"),
    [
        (
            spaces.Box(0, 1, (2,)),
            A,
            "^observation_space: TabularModel needs a Discrete or MultiDiscrete",
        ),
        (S, spaces.Box(-1, 1, (1,)), "^action_space: TabularModel needs"),
        (spaces.MultiBinary(3), A, "^observation_space: TabularModel needs"),
        (spaces.Dict({"a": S}), A, "^observation_space: mbwrap supports"),
    ],
)
def test_non_discrete_spaces_are_rejected(obs_space, act_space, match):
    with pytest.raises(UnsupportedSpaceError, match=match):
        TabularModel(obs_space, act_space, device="cpu")


def test_unknown_mode_is_value_error():
    with pytest.raises(
        ValueError, match=r"^mode: expected 'sample' or 'most-likely', got 'greedy'"
    ):
        TabularModel(S, A, mode="greedy", device="cpu")


# ---------------------------------------------------------------------- fit


def buffer_with(transitions: dict, capacity: int = 50) -> ReplayBuffer:
    buffer = ReplayBuffer(S, A, capacity, device="cpu")
    n = len(transitions["obs"])
    buffer.extend(
        np.array(transitions["obs"]),
        np.array(transitions["action"]),
        np.array(transitions["reward"]),
        np.array(transitions["next_obs"]),
        np.array(transitions["terminated"]),
        np.zeros(n, dtype=bool),
    )
    return buffer


@pytest.mark.parametrize("mode", ["sample", "most-likely"])
def test_predictions_follow_every_change_to_the_counts(mode):
    """step reads tables derived from the counts and kept between steps: after updates,
    refits, loads and direct writes, it predicts exactly what a new model with the same
    counts predicts (same draws from the same generator)."""
    obs_space, act_space = spaces.Discrete(6, start=1), spaces.Discrete(3)
    model = TabularModel(obs_space, act_space, mode=mode, device="cpu")
    rng = torch.Generator().manual_seed(0)
    states = torch.arange(6).repeat_interleave(3)  # every pair, seen or not
    actions = torch.arange(3).repeat(6)

    def assert_predicts_as_a_new_model(model: TabularModel) -> None:
        fresh = TabularModel(obs_space, act_space, mode=mode, device="cpu")
        fresh.load_state_dict(model.state_dict())
        for got, want in zip(
            model.step_indices(states, actions, generator=gen(1)),
            fresh.step_indices(states, actions, generator=gen(1)),
            strict=True,
        ):
            assert torch.equal(got, want)

    def update(n: int) -> None:
        model.update_indices(
            torch.randint(6, (n,), generator=rng),
            torch.randint(3, (n,), generator=rng),
            torch.randint(6, (n,), generator=rng),
            torch.randn(n, generator=rng),
            (torch.rand(n, generator=rng) < 0.3).float(),
        )

    assert_predicts_as_a_new_model(model)  # nothing seen: every pair stays put
    for n in (1, 3, 1, 20):
        update(n)
        assert_predicts_as_a_new_model(model)
    model.counts[2, 1, 4] += 5.0
    model.reward_sum[2, 1, 4] -= 1.0
    assert_predicts_as_a_new_model(model)
    other = TabularModel(obs_space, act_space, mode=mode, device="cpu")
    other.update_indices(*(torch.tensor([v]) for v in (0, 0, 5, 2.0, 1.0)))
    model.load_state_dict(other.state_dict())
    assert_predicts_as_a_new_model(model)
    buffer = ReplayBuffer(obs_space, act_space, 50, device="cpu")
    buffer.extend(
        np.array([1, 1, 4, 6]),
        np.array([0, 2, 2, 1]),
        np.array([1.0, -1.0, 0.5, 2.0]),
        np.array([2, 1, 6, 6]),
        np.array([False, True, False, False]),
        np.zeros(4, dtype=bool),
    )
    model.fit(buffer)
    assert_predicts_as_a_new_model(model)
    update(2)
    assert_predicts_as_a_new_model(model)


def test_fit_equals_incremental_updates():
    buffer = buffer_with(KNOWN)
    fitted = TabularModel(S, A, device="cpu")
    metrics = fitted.fit(buffer)
    assert metrics["transitions"] == 5
    assert metrics["visited_pairs"] == 2
    assert metrics["fit_time"] >= 0.0
    incremental = known_model()
    for name in ("counts", "reward_sum", "terminal_count"):
        assert torch.equal(getattr(fitted, name), getattr(incremental, name)), name


def test_fit_rebuilds_from_scratch_and_counts_truncated_steps():
    buffer = buffer_with(KNOWN)
    model = TabularModel(S, A, device="cpu")
    model.update(2, 0, 9.0, 2, True)  # forgotten by fit
    model.fit(buffer)
    model.fit(buffer)  # not doubled
    assert model.counts.sum() == 5.0
    assert model.counts[2, 0, 2] == 0.0
    # A truncated transition is a real transition, not a termination.
    buffer.add(2, 1, 1.0, 1, False, True)
    assert model.fit(buffer)["transitions"] == 6
    assert model.counts[2, 1, 1] == 1.0
    assert model.terminal_count[2, 1, 1] == 0.0


def test_fit_on_empty_buffer_clears_the_tables():
    model = known_model()
    metrics = model.fit(ReplayBuffer(S, A, 10, device="cpu"))
    assert (metrics["transitions"], metrics["visited_pairs"]) == (0, 0)
    assert model.counts.sum() == 0.0


def test_fit_rejects_buffer_with_other_spaces_and_options():
    model = TabularModel(S, A, device="cpu")
    with pytest.raises(
        SpaceMismatchError,
        match=r"^buffer.observation_space: expected Discrete\(3\), got Discrete\(4\)",
    ):
        model.fit(ReplayBuffer(spaces.Discrete(4), A, 10, device="cpu"))
    with pytest.raises(SpaceMismatchError, match=r"^buffer.action_space:"):
        model.fit(ReplayBuffer(S, spaces.Discrete(3), 10, device="cpu"))
    with pytest.raises(TypeError, match=r"takes no options, got \['epochs'\]"):
        model.fit(buffer_with(KNOWN), epochs=3)


# ---------------------------------------------------------------------- persistence


def test_save_load_round_trip_gives_same_predictions(tmp_path):
    model = TabularModel(
        spaces.MultiDiscrete([3, 2]),
        A,
        mode="most-likely",
        max_table_size=1000,
        env_id="my/Env-v0",
        device="cpu",
    )
    model.update(
        np.array([[0, 1], [2, 0], [2, 0]]),
        np.array([1, 0, 0]),
        np.array([1.0, 2.0, 4.0]),
        np.array([[1, 1], [0, 0], [0, 0]]),
        np.array([False, True, False]),
    )
    path = tmp_path / "tab.pt"
    model.save(path)
    loaded = TabularModel.load(path, device="cpu")
    assert type(loaded) is TabularModel
    assert (loaded.mode, loaded.max_table_size, loaded.env_id) == ("most-likely", 1000, "my/Env-v0")
    assert loaded.observation_space == model.observation_space
    assert loaded.action_space == model.action_space
    for name in ("counts", "reward_sum", "terminal_count"):
        assert torch.equal(getattr(loaded, name), getattr(model, name))
    states = model.index_to_obs(torch.arange(6)).repeat_interleave(2, 0)
    actions = torch.tensor([0, 1] * 6)
    a, b = model.step(states, actions), loaded.step(states, actions)
    assert torch.equal(a.next_state, b.next_state)
    assert torch.equal(a.reward, b.reward)
    assert torch.equal(a.terminated, b.terminated)
    assert b.next_state[4 * 2].tolist() == [0, 0]  # (2, 0) with action 0


def test_sample_mode_survives_save_load(tmp_path):
    model = known_model("sample")
    model.save(tmp_path / "tab.pt")
    loaded = TabularModel.load(tmp_path / "tab.pt", device="cpu")
    state, action = torch.zeros(64, dtype=torch.long), torch.ones(64, dtype=torch.long)
    assert torch.equal(
        model.step(state, action, generator=gen(5)).next_state,
        loaded.step(state, action, generator=gen(5)).next_state,
    )


def test_world_model_load_finds_the_class_by_registry_name(tmp_path):
    model = known_model("most-likely")
    model.save(tmp_path / "tab.pt")
    metadata, _ = load_checkpoint(tmp_path / "tab.pt", kind="mbwrap.model")
    assert metadata["registry_name"] == "tabular"
    assert metadata["class"] == "mbwrap.models.tabular:TabularModel"
    loaded = WorldModel.load(tmp_path / "tab.pt", device="cpu")
    assert type(loaded) is TabularModel
    assert torch.equal(loaded.counts, model.counts)
    assert loaded.step(torch.tensor([0]), torch.tensor([1])).next_state.tolist() == [1]


class OtherTabular(TabularModel):
    """Same tensors, another class."""


def test_loading_with_the_wrong_class_is_checkpoint_error(tmp_path):
    OtherTabular(S, A, device="cpu").save(tmp_path / "other.pt")
    with pytest.raises(
        CheckpointError, match=r"OtherTabular' model, not a mbwrap.models.tabular:TabularModel"
    ):
        TabularModel.load(tmp_path / "other.pt")
    known_model().save(tmp_path / "tab.pt")
    with pytest.raises(CheckpointError, match=r"not a .*OtherTabular"):
        OtherTabular.load(tmp_path / "tab.pt")


def test_corrupt_file_is_checkpoint_error(tmp_path):
    path = tmp_path / "tab.pt"
    known_model().save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError):
        TabularModel.load(path)
    with pytest.raises(CheckpointError):
        WorldModel.load(path)
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError):
        TabularModel.load(path)


def test_buffer_checkpoint_is_not_a_model(tmp_path):
    buffer_with(KNOWN).save(tmp_path / "buf.pt")
    with pytest.raises(CheckpointError, match=r"expected 'mbwrap.model'"):
        TabularModel.load(tmp_path / "buf.pt")


@pytest.mark.parametrize("damage", ["tensor-shape", "missing-tensor", "bad-config", "bad-space"])
def test_checkpoint_that_does_not_fit_is_checkpoint_error(tmp_path, damage):
    path = tmp_path / "tab.pt"
    known_model().save(path)
    metadata, tensors = load_checkpoint(path, kind="mbwrap.model")
    if damage == "tensor-shape":
        tensors["counts"] = torch.zeros(4, 2, 4)
    elif damage == "missing-tensor":
        del tensors["reward_sum"]
    elif damage == "bad-config":
        metadata["config"]["horizon"] = 3
    else:
        metadata["observation_space"] = {"type": "Discrete"}
    save_checkpoint(path, kind="mbwrap.model", metadata=metadata, tensors=tensors)
    with pytest.raises(CheckpointError, match=r"model checkpoint does not fit"):
        TabularModel.load(path)


# ---------------------------------------------------------------------- device


def test_to_device_keeps_device_right():
    model = known_model("most-likely")
    assert model.device == torch.device("cpu")
    assert model.to(torch.device("cpu")) is model
    assert model.device == torch.device("cpu")
    assert model.step(torch.tensor([0]), torch.tensor([1])).next_state.device == torch.device("cpu")
    # Moving the module moves the anchor and every table, so `device` follows it.
    model.to("meta")
    assert model.device == torch.device("meta")
    assert model.counts.device.type == "meta"
    assert model._obs_strides.device.type == "meta"


def test_registry_builds_a_tabular_model():
    import mbwrap

    model = mbwrap.make_model("tabular", S, A, mode="most-likely", device="cpu")
    assert isinstance(model, TabularModel)
    assert model.mode == "most-likely"
    assert model.counts.shape == (3, 2, 3)


# ---------------------------------------------------------------------- start offsets
class OffsetChain(gym.Env):
    """A chain of states 10..14 (``Discrete(5, start=10)``) walked with actions -1 (left)
    and 0 (right) (``Discrete(2, start=-1)``); reaching 14 ends the episode with reward 1."""

    observation_space = spaces.Discrete(5, start=10)
    action_space = spaces.Discrete(2, start=-1)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = 10
        return np.int64(self.state), {}

    def step(self, action):
        assert self.action_space.contains(action), action
        self.state = int(np.clip(self.state + (1 if action == 0 else -1), 10, 14))
        done = self.state == 14
        return np.int64(self.state), float(done), done, False, {}


def test_start_offsets_hold_through_fit_step_encode_and_imagination():
    env = OffsetChain()
    buffer = ReplayBuffer(env.observation_space, env.action_space, 500, device="cpu")
    mbwrap.collect(env, buffer, 400, seed=0)
    model = TabularModel(env.observation_space, env.action_space, mode="most-likely", device="cpu")
    assert model.fit(buffer)["visited_pairs"] == 8  # both actions in states 10..13
    states = model.encode(np.array([10, 11, 12, 13]))
    assert states.tolist() == [10, 11, 12, 13]
    right = model.step(states, torch.zeros(4, dtype=torch.int64))
    assert right.next_state.tolist() == [11, 12, 13, 14]
    assert right.reward.tolist() == [0.0, 0.0, 0.0, 1.0]
    assert right.terminated.tolist() == [0.0, 0.0, 0.0, 1.0]
    left = model.step(states, torch.full((4,), -1))
    assert left.next_state.tolist() == [10, 10, 11, 12]
    # Imagination over the table: observations and actions are the spaces' own values.
    dream = mbwrap.DreamEnv(model, start_states=buffer, horizon=20)
    obs, _ = dream.reset(seed=0)
    for _ in range(20):
        assert dream.observation_space.contains(obs), obs
        obs, reward, terminated, truncated, _ = dream.step(0)
        if terminated:
            break
    assert terminated and obs == 14 and reward == 1.0
    venv = mbwrap.DreamVecEnv(model, 3, start_states=buffer, horizon=20)
    obs, _ = venv.reset(seed=0)
    obs, reward, terminated, _, _ = venv.step(np.full(3, -1))
    assert set(obs.tolist()) <= {10, 11, 12}
