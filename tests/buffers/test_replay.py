"""Tests of mbwrap.ReplayBuffer: storage, ring overwrite, sampling, sequences, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from gymnasium import spaces

from mbwrap import ReplayBuffer
from mbwrap.checkpoint import save_checkpoint
from mbwrap.errors import CheckpointError, SpaceMismatchError, UnsupportedSpaceError
from mbwrap.types import Sequence, Transition

BOX = spaces.Box(-1e4, 1e4, (3,), np.float32)
ACT = spaces.Discrete(3)
# Observations of the sequence tests: (episode id, step in episode).
TAGGED = spaces.Box(-1e4, 1e4, (2,), np.float32)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def add_counting(buffer: ReplayBuffer, values, n_envs: int = 1) -> None:
    """Add one row per value ``k``: stream ``e`` stores obs ``k + 0.1 e``, next_obs one more."""
    for k in values:
        obs = np.array([[k + 0.1 * e] * 3 for e in range(n_envs)], dtype=np.float32)
        buffer.add(
            obs if n_envs > 1 else obs[0],
            np.array([int(k) % 3] * n_envs) if n_envs > 1 else int(k) % 3,
            np.array([float(k)] * n_envs) if n_envs > 1 else float(k),
            obs + 1,
            np.zeros(n_envs, dtype=bool) if n_envs > 1 else False,
            np.zeros(n_envs, dtype=bool) if n_envs > 1 else False,
        )


# ---------------------------------------------------------------------- construction


def test_capacity_is_rounded_up_to_whole_rows():
    buffer = ReplayBuffer(BOX, ACT, capacity=10, device="cpu", n_envs=3)
    assert buffer.rows == 4
    assert buffer.capacity == 12
    assert len(buffer) == 0
    assert buffer.device == torch.device("cpu")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"capacity": 0}, "^capacity:"),
        ({"capacity": 2.5}, "^capacity:"),
        ({"capacity": 4, "n_envs": 0}, "^n_envs:"),
    ],
)
def test_bad_sizes_are_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReplayBuffer(BOX, ACT, device="cpu", **kwargs)


def test_unsupported_spaces_are_rejected_by_argument():
    # A Dict is stored leaf by leaf; a leaf mbwrap cannot represent is named by its key.
    with pytest.raises(UnsupportedSpaceError, match=r"^observation_space\['a'\]:.*Text"):
        ReplayBuffer(spaces.Dict({"a": spaces.Text(4)}), ACT, 10, device="cpu")
    with pytest.raises(UnsupportedSpaceError, match=r"^observation_space:.*Graph"):
        ReplayBuffer(spaces.Graph(BOX, None), ACT, 10, device="cpu")
    with pytest.raises(UnsupportedSpaceError, match=r"^action_space:.*Text"):
        ReplayBuffer(BOX, spaces.Text(4), 10, device="cpu")


# ---------------------------------------------------------------------- add


def test_add_single_transition():
    buffer = ReplayBuffer(BOX, ACT, 5, device="cpu")
    buffer.add(np.array([1.0, 2.0, 3.0]), 2, 0.5, np.array([4.0, 5.0, 6.0]), True, False)
    assert len(buffer) == 1
    data = buffer.transitions()
    assert data.obs.tolist() == [[1.0, 2.0, 3.0]]
    assert data.obs.dtype == torch.float32
    assert data.action.tolist() == [2]
    assert data.action.dtype == torch.int64
    assert data.reward.tolist() == [0.5]
    assert data.next_obs.tolist() == [[4.0, 5.0, 6.0]]
    assert data.terminated.tolist() == [True]
    assert data.truncated.tolist() == [False]


def test_add_batched_for_three_streams():
    buffer = ReplayBuffer(BOX, ACT, 30, device="cpu", n_envs=3)
    obs = np.arange(9, dtype=np.float32).reshape(3, 3)
    buffer.add(
        obs,
        np.array([0, 1, 2]),
        np.array([1.0, 2.0, 3.0]),
        obs + 10,
        [False, True, False],
        np.array([False, False, True]),
    )
    assert len(buffer) == 3
    buffer.add(
        obs + 100,
        torch.tensor([2, 2, 2]),
        torch.tensor([4.0, 5.0, 6.0]),
        obs + 110,
        np.zeros(3, bool),
        np.zeros(3, bool),
    )
    assert len(buffer) == 6
    data = buffer.transitions()
    # Row-major: the first step of every stream, then the second.
    assert data.obs[:, 0].tolist() == [0.0, 3.0, 6.0, 100.0, 103.0, 106.0]
    assert data.action.tolist() == [0, 1, 2, 2, 2, 2]
    assert data.reward.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert data.next_obs[:, 0].tolist() == [10.0, 13.0, 16.0, 110.0, 113.0, 116.0]
    assert data.terminated.tolist() == [False, True, False, False, False, False]
    assert data.truncated.tolist() == [False, False, True, False, False, False]


def test_add_with_wrong_number_of_streams_points_to_extend():
    buffer = ReplayBuffer(BOX, ACT, 30, device="cpu", n_envs=3)
    obs = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(
        SpaceMismatchError,
        match=r"^obs: add\(\) takes one step of each of the buffer's 3 streams, "
        r"got a batch of 2; use extend",
    ):
        buffer.add(obs, [0, 0], [0.0, 0.0], obs, [False, False], [False, False])
    assert len(buffer) == 0


def _valid_row(n: int = 2) -> dict:
    return {
        "obs": np.zeros((n, 3), dtype=np.float32),
        "action": np.zeros(n, dtype=np.int64),
        "reward": np.zeros(n, dtype=np.float32),
        "next_obs": np.zeros((n, 3), dtype=np.float32),
        "terminated": np.zeros(n, dtype=bool),
        "truncated": np.zeros(n, dtype=bool),
    }


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("obs", np.zeros((2, 4), np.float32), r"^obs: expected shape \(3,\)"),
        ("next_obs", np.zeros((2, 2), np.float32), r"^next_obs: expected shape \(3,\)"),
        (
            "next_obs",
            np.zeros((3, 3), np.float32),
            r"^next_obs: batch of 3 does not match obs batch of 2",
        ),
        ("action", np.zeros((2, 2), np.int64), r"^action: expected shape \(\)"),
        ("action", np.array([0.0, 1.5]), r"^action: expected integer values"),
        ("action", np.array([0, 1, 2]), r"^action: batch of 3 does not match obs batch of 2"),
        ("reward", np.zeros(3, np.float32), r"^reward: expected shape \(2,\)"),
        ("reward", np.zeros((2, 1), np.float32), r"^reward: expected shape \(2,\)"),
        ("terminated", np.array([0.0, 1.0]), r"^terminated: expected booleans"),
        ("truncated", np.zeros(1, bool), r"^truncated: expected shape \(2,\)"),
    ],
)
def test_mismatched_inputs_name_the_argument(field, value, match):
    buffer = ReplayBuffer(BOX, ACT, 30, device="cpu", n_envs=2)
    row = _valid_row() | {field: value}
    with pytest.raises(SpaceMismatchError, match=match):
        buffer.add(**row)
    with pytest.raises(SpaceMismatchError, match=match):
        buffer.extend(**row)
    assert len(buffer) == 0


# ---------------------------------------------------------------------- ring


def test_ring_overwrite_keeps_newest_single_stream():
    buffer = ReplayBuffer(BOX, ACT, 3, device="cpu")
    add_counting(buffer, range(5))
    assert len(buffer) == 3
    data = buffer.transitions()
    assert data.obs[:, 0].tolist() == [2.0, 3.0, 4.0]
    assert data.reward.tolist() == [2.0, 3.0, 4.0]
    assert data.next_obs[:, 0].tolist() == [3.0, 4.0, 5.0]
    assert data.action.tolist() == [2, 0, 1]


def test_ring_overwrite_keeps_newest_rows_of_all_streams():
    buffer = ReplayBuffer(BOX, ACT, 4, device="cpu", n_envs=2)
    add_counting(buffer, [10, 20, 30], n_envs=2)
    assert len(buffer) == 4
    obs = buffer.transitions().obs[:, 0]
    assert torch.allclose(obs, torch.tensor([20.0, 20.1, 30.0, 30.1]))


def test_extend_larger_than_capacity_keeps_last_and_continues():
    buffer = ReplayBuffer(BOX, ACT, 4, device="cpu")
    add_counting(buffer, [0, 1])
    values = np.arange(10, 17, dtype=np.float32)
    obs = np.repeat(values[:, None], 3, axis=1)
    buffer.extend(obs, np.zeros(7, np.int64), values, obs + 1, np.zeros(7, bool), np.zeros(7, bool))
    assert buffer.transitions().obs[:, 0].tolist() == [13.0, 14.0, 15.0, 16.0]
    add_counting(buffer, [17])
    assert buffer.transitions().obs[:, 0].tolist() == [14.0, 15.0, 16.0, 17.0]
    assert buffer.transitions().reward.tolist() == [14.0, 15.0, 16.0, 17.0]


# ---------------------------------------------------------------------- extend


def test_extend_stores_independent_transitions():
    buffer = ReplayBuffer(BOX, ACT, 12, device="cpu", n_envs=2)
    obs = np.arange(12, dtype=np.float32).reshape(4, 3)
    buffer.extend(
        obs,
        [0, 1, 2, 0],
        [1.0, 2.0, 3.0, 4.0],
        obs + 1,
        [True, False, False, False],
        [False, True, False, False],
    )
    assert len(buffer) == 4
    data = buffer.transitions()
    assert torch.equal(data.obs, torch.as_tensor(obs))
    assert data.action.tolist() == [0, 1, 2, 0]
    assert data.reward.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert data.terminated.tolist() == [True, False, False, False]
    assert data.truncated.tolist() == [False, True, False, False]
    # Independent transitions never form sequences, only single steps.
    with pytest.raises(ValueError, match=r"^length: no stored sub-trajectory of 2 steps"):
        buffer.sample_sequences(4, 2)
    assert buffer.sample_sequences(8, 1, generator=gen()).obs.shape == (8, 1, 3)


def test_extend_needs_a_multiple_of_n_envs():
    buffer = ReplayBuffer(BOX, ACT, 12, device="cpu", n_envs=2)
    with pytest.raises(
        SpaceMismatchError,
        match=r"^obs: extend\(\) needs a multiple of n_envs=2 transitions, got 3",
    ):
        buffer.extend(**_valid_row(3))


def test_extend_is_never_joined_to_the_episode_before_it():
    buffer = ReplayBuffer(spaces.Box(-1e3, 1e3, (1,)), ACT, 10, device="cpu")
    buffer.add([0.0], 0, 0.0, [1.0], False, False)
    buffer.add([1.0], 0, 0.0, [2.0], False, False)
    buffer.extend(
        [[100.0], [200.0]], [0, 0], [0.0, 0.0], [[101.0], [201.0]], [False, False], [False, False]
    )
    seqs = buffer.sample_sequences(200, 2, generator=gen())
    assert set(map(tuple, seqs.obs[:, :, 0].tolist())) == {(0.0, 1.0)}


# ---------------------------------------------------------------------- sample


def test_sample_shapes_dtypes_device_and_consistency():
    buffer = ReplayBuffer(BOX, ACT, 30, device="cpu", n_envs=3)
    add_counting(buffer, [1, 2], n_envs=3)  # 6 of 30 slots used
    batch = buffer.sample(500, generator=gen())
    assert isinstance(batch, Transition)
    assert len(batch) == 500
    assert batch.obs.shape == (500, 3) and batch.obs.dtype == torch.float32
    assert batch.next_obs.shape == (500, 3) and batch.next_obs.dtype == torch.float32
    assert batch.action.shape == (500,) and batch.action.dtype == torch.int64
    assert batch.reward.shape == (500,) and batch.reward.dtype == torch.float32
    assert batch.terminated.shape == (500,) and batch.terminated.dtype == torch.bool
    assert batch.truncated.shape == (500,) and batch.truncated.dtype == torch.bool
    for tensor in (batch.obs, batch.action, batch.reward, batch.next_obs):
        assert tensor.device == torch.device("cpu")
    # Only stored transitions come out (no empty slots), every field from the same one.
    stored = {round(k + 0.1 * e, 1) for k in (1, 2) for e in range(3)}
    assert {round(v, 1) for v in batch.obs[:, 0].tolist()} == stored
    assert torch.allclose(batch.next_obs, batch.obs + 1)
    assert torch.equal(batch.reward, batch.obs[:, 0].floor())
    assert torch.equal(batch.action, batch.obs[:, 0].floor().long() % 3)


def test_sample_is_reproducible_with_a_seeded_generator():
    buffer = ReplayBuffer(BOX, ACT, 50, device="cpu")
    add_counting(buffer, range(20))
    a = buffer.sample(16, generator=gen(3))
    b = buffer.sample(16, generator=gen(3))
    c = buffer.sample(16, generator=gen(4))
    assert torch.equal(a.obs, b.obs)
    assert not torch.equal(a.obs, c.obs)


def test_sample_from_empty_buffer_is_value_error():
    buffer = ReplayBuffer(BOX, ACT, 5, device="cpu")
    with pytest.raises(ValueError, match=r"empty"):
        buffer.sample(1)
    with pytest.raises(ValueError, match=r"empty"):
        buffer.sample_sequences(1, 1)


def test_transitions_are_oldest_first_after_wrap():
    buffer = ReplayBuffer(BOX, ACT, 4, device="cpu", n_envs=2)
    add_counting(buffer, [1, 2, 3], n_envs=2)
    data = buffer.transitions()
    assert torch.allclose(data.obs[:, 0], torch.tensor([2.0, 2.1, 3.0, 3.1]))
    assert data.reward.tolist() == [2.0, 2.0, 3.0, 3.0]


# ---------------------------------------------------------------------- sequences

# (episode id, steps, how it ends): "term", "trunc", "cut" (end_episodes() after it) or None.
STREAMS = [
    [(1, 4, "term"), (2, 3, "trunc"), (3, 2, "cut"), (4, 5, None)],
    [(10, 2, "trunc"), (11, 7, "cut"), (12, 5, None)],
]


def fill_tagged(buffer: ReplayBuffer, streams=STREAMS, *, cut: bool = True) -> None:
    """Add the episodes of ``streams`` row by row; obs is (episode id, step)."""
    rows = [
        [
            (ep, t, end if t == length - 1 else None)
            for ep, length, end in stream
            for t in range(length)
        ]
        for stream in streams
    ]
    assert len({len(r) for r in rows}) == 1
    for steps in zip(*rows, strict=True):
        obs = np.array([[ep, t] for ep, t, _ in steps], dtype=np.float32)
        buffer.add(
            obs,
            np.array([t % 3 for _, t, _ in steps]),
            np.array([100.0 * ep + t for ep, t, _ in steps]),
            obs + np.array([0.0, 1.0], dtype=np.float32),
            np.array([end == "term" for *_, end in steps]),
            np.array([end == "trunc" for *_, end in steps]),
        )
        if any(end == "cut" for *_, end in steps):
            assert all(end == "cut" for *_, end in steps), "cuts must be at the same row"
            if cut:
                buffer.end_episodes()


def expected_starts(streams, length: int, first_step: dict | None = None) -> set[tuple[int, int]]:
    first_step = first_step or {}
    out = set()
    for stream in streams:
        for ep, steps, _ in stream:
            first = first_step.get(ep, 0)
            out |= {(ep, s) for s in range(first, steps - length + 1)}
    return out


def check_sequences(seqs: Sequence, length: int) -> set[tuple[int, int]]:
    """Assert every sequence stays in one episode and is contiguous; return its starts."""
    batch = seqs.obs.shape[0]
    assert seqs.obs.shape == (batch, length, 2)
    assert seqs.next_obs.shape == (batch, length, 2)
    assert seqs.action.shape == (batch, length)
    assert seqs.reward.shape == (batch, length)
    assert seqs.terminated.shape == seqs.truncated.shape == (batch, length)
    ep, step = seqs.obs[..., 0], seqs.obs[..., 1]
    assert torch.equal(ep, ep[:, :1].expand(-1, length)), "a sequence crossed an episode boundary"
    assert torch.equal(step, step[:, :1] + torch.arange(length)), "steps are not consecutive"
    assert torch.equal(seqs.next_obs[:, :-1], seqs.obs[:, 1:])
    assert torch.equal(seqs.next_obs[..., 1], step + 1)
    assert torch.equal(seqs.reward, 100.0 * ep + step)
    assert torch.equal(seqs.action, step.long() % 3)
    # Only the last step of a sequence may end its episode.
    assert not (seqs.terminated[:, :-1] | seqs.truncated[:, :-1]).any()
    return set(zip(ep[:, 0].long().tolist(), step[:, 0].long().tolist(), strict=True))


@pytest.mark.parametrize("length", [1, 2, 3, 5, 7])
def test_sample_sequences_never_cross_episode_ends(length):
    buffer = ReplayBuffer(TAGGED, ACT, 100, device="cpu", n_envs=2)
    fill_tagged(buffer)
    seqs = buffer.sample_sequences(3000, length, generator=gen(length))
    assert isinstance(seqs, Sequence)
    # Uniform over all valid starts: with 3000 draws, every one of them shows up.
    assert check_sequences(seqs, length) == expected_starts(STREAMS, length)


def test_without_end_episodes_pieces_would_join():
    # The control for the test above: the same data without the cut joins episodes 3 and 4.
    buffer = ReplayBuffer(TAGGED, ACT, 100, device="cpu", n_envs=2)
    fill_tagged(buffer, cut=False)
    seqs = buffer.sample_sequences(3000, 3, generator=gen())
    ids = seqs.obs[..., 0]
    assert (ids[:, 0] != ids[:, -1]).any()


def test_terminal_and_truncated_steps_end_sequences():
    buffer = ReplayBuffer(TAGGED, ACT, 100, device="cpu", n_envs=2)
    fill_tagged(buffer)
    seqs = buffer.sample_sequences(3000, 2, generator=gen(1))
    last = seqs.obs[:, -1]
    # The final step of episode 1 (terminated) and of 2 and 10 (truncated) are sampled as
    # the last step of sequences, flagged accordingly.
    for ep, final_step, flag in [(1, 3, "terminated"), (2, 2, "truncated"), (10, 1, "truncated")]:
        rows = (last[:, 0] == ep) & (last[:, 1] == final_step)
        assert rows.any()
        assert getattr(seqs, flag)[rows, -1].all()


def test_sequence_longer_than_any_episode_is_value_error():
    buffer = ReplayBuffer(TAGGED, ACT, 100, device="cpu", n_envs=2)
    fill_tagged(buffer)
    assert expected_starts(STREAMS, 7) == {(11, 0)}
    with pytest.raises(
        ValueError, match=r"^length: no stored sub-trajectory of 8 steps lies within one episode"
    ):
        buffer.sample_sequences(1, 8)
    with pytest.raises(ValueError, match=r"^length: no stored sub-trajectory of 15 steps"):
        buffer.sample_sequences(1, 15)  # longer than the whole buffer
    with pytest.raises(ValueError, match=r"^length: expected a positive int"):
        buffer.sample_sequences(1, 0)


def test_sequences_across_the_physical_ring_wrap():
    buffer = ReplayBuffer(TAGGED, ACT, 6, device="cpu")
    # Episode 1 has 5 steps and terminates, episode 2 has 4 so far: 9 rows in 6 slots, so
    # the oldest three (episode 1, steps 0-2) are gone and episode 2 wraps physically.
    fill_tagged(buffer, [[(1, 5, "term"), (2, 4, None)]])
    assert buffer.transitions().obs.tolist() == [[1, 3], [1, 4], [2, 0], [2, 1], [2, 2], [2, 3]]
    for length, starts in [
        (1, {(1, 3), (1, 4), (2, 0), (2, 1), (2, 2), (2, 3)}),
        (2, {(1, 3), (2, 0), (2, 1), (2, 2)}),
        (3, {(2, 0), (2, 1)}),
        (4, {(2, 0)}),
    ]:
        seqs = buffer.sample_sequences(500, length, generator=gen(length))
        assert check_sequences(seqs, length) == starts
    with pytest.raises(ValueError):
        buffer.sample_sequences(1, 5)


def test_one_long_episode_wrapped_gives_the_newest_steps():
    buffer = ReplayBuffer(TAGGED, ACT, 5, device="cpu")
    fill_tagged(buffer, [[(7, 8, None)]])
    seqs = buffer.sample_sequences(4, 5, generator=gen())
    assert seqs.obs[..., 1].tolist() == [[3, 4, 5, 6, 7]] * 4


def test_sequences_are_reproducible():
    buffer = ReplayBuffer(TAGGED, ACT, 100, device="cpu", n_envs=2)
    fill_tagged(buffer)
    a = buffer.sample_sequences(32, 3, generator=gen(9))
    b = buffer.sample_sequences(32, 3, generator=gen(9))
    assert torch.equal(a.obs, b.obs) and torch.equal(a.reward, b.reward)


def test_new_data_changes_valid_sequences():
    buffer = ReplayBuffer(TAGGED, ACT, 100, device="cpu")
    fill_tagged(buffer, [[(1, 3, None)]])
    with pytest.raises(ValueError):
        buffer.sample_sequences(1, 4)  # asked (and cached) before the episode grows
    buffer.add([1.0, 3.0], 0, 103.0, [1.0, 4.0], False, False)
    seqs = buffer.sample_sequences(5, 4, generator=gen())
    assert seqs.obs[..., 1].tolist() == [[0, 1, 2, 3]] * 5
    buffer.end_episodes()
    buffer.add([2.0, 0.0], 0, 200.0, [2.0, 1.0], False, False)
    assert check_sequences(buffer.sample_sequences(500, 2, generator=gen()), 2) == {
        (1, 0),
        (1, 1),
        (1, 2),
    }


def test_end_episodes_on_empty_buffer_is_harmless():
    buffer = ReplayBuffer(TAGGED, ACT, 10, device="cpu")
    buffer.end_episodes()
    assert len(buffer) == 0


# ---------------------------------------------------------------------- persistence


def _full_wrapped_buffer() -> ReplayBuffer:
    buffer = ReplayBuffer(TAGGED, ACT, 20, device="cpu", n_envs=2)  # 10 rows, 14 added
    fill_tagged(buffer)
    return buffer


def _assert_same(a: ReplayBuffer, b: ReplayBuffer) -> None:
    ta, tb = a.transitions(), b.transitions()
    for name in ("obs", "action", "reward", "next_obs", "terminated", "truncated"):
        x, y = getattr(ta, name), getattr(tb, name)
        assert x.dtype == y.dtype
        assert torch.equal(x, y), name


def test_save_load_round_trip_exact(tmp_path):
    buffer = _full_wrapped_buffer()
    path = tmp_path / "buf.pt"
    buffer.save(path)
    loaded = ReplayBuffer.load(path, device="cpu")
    assert loaded.observation_space == buffer.observation_space
    assert loaded.action_space == buffer.action_space
    assert (loaded.capacity, loaded.n_envs, len(loaded)) == (20, 2, 20)
    _assert_same(buffer, loaded)
    # Episode ends (including the end_episodes() cut) survive: the same sequences come out.
    for length in (1, 3, 5):
        a = buffer.sample_sequences(64, length, generator=gen(length))
        b = loaded.sample_sequences(64, length, generator=gen(length))
        assert torch.equal(a.obs, b.obs)
    assert [p.name for p in tmp_path.iterdir()] == ["buf.pt"]


def test_loaded_buffer_continues_like_the_original(tmp_path):
    for buffer in (_full_wrapped_buffer(), ReplayBuffer(TAGGED, ACT, 40, device="cpu", n_envs=2)):
        if len(buffer) == 0:
            fill_tagged(buffer)  # not full: 28 of 40
        buffer.save(tmp_path / "buf.pt")
        loaded = ReplayBuffer.load(tmp_path / "buf.pt", device="cpu")
        for k in range(7):
            for target in (buffer, loaded):
                obs = np.array([[4.0, 5 + k], [12.0, 5 + k]], dtype=np.float32)
                target.add(
                    obs,
                    [(5 + k) % 3] * 2,
                    [400.0 + 5 + k, 1200.0 + 5 + k],
                    obs + np.array([0.0, 1.0], dtype=np.float32),
                    [False, False],
                    [False, False],
                )
        _assert_same(buffer, loaded)
        # Episodes 4 and 12 continue across the save; their sequences are whole.
        seqs = loaded.sample_sequences(1000, 4, generator=gen())
        starts = check_sequences(seqs, 4)
        assert (4, 8) in starts and (12, 8) in starts


def test_save_load_empty_buffer_and_other_spaces(tmp_path):
    obs_space, act_space = spaces.MultiBinary(4), spaces.MultiDiscrete([2, 3], dtype=np.int32)
    buffer = ReplayBuffer(obs_space, act_space, 6, device="cpu", n_envs=2)
    buffer.save(tmp_path / "empty.pt")
    loaded = ReplayBuffer.load(tmp_path / "empty.pt", device="cpu")
    assert len(loaded) == 0
    assert loaded.observation_space == obs_space
    assert loaded.action_space == act_space
    obs = np.array([[1, 0, 1, 1], [0, 0, 0, 1]], dtype=np.int8)
    for target in (buffer, loaded):
        target.add(
            obs, np.array([[1, 2], [0, 1]]), [1.0, 2.0], 1 - obs, [True, False], [False, True]
        )
    buffer.save(tmp_path / "one.pt")
    again = ReplayBuffer.load(tmp_path / "one.pt", device="cpu")
    _assert_same(loaded, again)
    assert again.transitions().obs.dtype == torch.int8
    assert again.transitions().action.tolist() == [[1, 2], [0, 1]]


def test_load_corrupt_file_is_checkpoint_error(tmp_path):
    path = tmp_path / "buf.pt"
    _full_wrapped_buffer().save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        ReplayBuffer.load(path)


def test_load_of_another_kind_is_checkpoint_error(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, kind="mbwrap.model", metadata={}, tensors={})
    with pytest.raises(
        CheckpointError, match=r"'mbwrap.model' checkpoint, expected 'mbwrap.replay_buffer'"
    ):
        ReplayBuffer.load(path)


@pytest.mark.parametrize(
    "damage", ["missing-tensor", "wrong-dtype", "wrong-shape", "bad-space", "no-capacity"]
)
def test_load_inconsistent_buffer_checkpoint_is_checkpoint_error(tmp_path, damage):
    buffer = _full_wrapped_buffer()
    path = tmp_path / "buf.pt"
    buffer.save(path)
    payload = torch.load(path, weights_only=True)
    metadata = json.loads(payload["metadata"])
    tensors = payload["tensors"]
    if damage == "missing-tensor":
        del tensors["episode_end"]
    elif damage == "wrong-dtype":
        tensors["action"] = tensors["action"].float()
    elif damage == "wrong-shape":
        tensors["obs"] = tensors["obs"][..., :1]
    elif damage == "bad-space":
        metadata["observation_space"] = {"type": "Text"}
    else:
        del metadata["capacity"]
    save_checkpoint(path, kind="mbwrap.replay_buffer", metadata=metadata, tensors=tensors)
    with pytest.raises(CheckpointError, match=r"replay buffer checkpoint is corrupt"):
        ReplayBuffer.load(path)
