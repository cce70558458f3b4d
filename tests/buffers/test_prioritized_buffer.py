"""Prioritised trajectory replay: n-step targets, sampling, importance weights, reanalyse."""

from __future__ import annotations

import pytest
import torch

from mbwrap.buffers.prioritized import (
    PRIORITY_EPS,
    PrioritizedTrajectoryBuffer,
    SegmentWriter,
    importance_weights,
    n_step_targets,
    sampling_probabilities,
    trajectory_n_step_targets,
)
from mbwrap.errors import CheckpointError, SpaceMismatchError

torch.set_num_threads(1)


def test_n_step_targets_by_hand():
    # rewards 1, 2, 3, values 10, 20, 30 and bootstrap 40 after the last move; n = 2,
    # gamma 0.5.
    rewards = torch.tensor([1.0, 2.0, 3.0])
    values = torch.tensor([10.0, 20.0, 30.0, 40.0])
    z = trajectory_n_step_targets(rewards, values, n=2, gamma=0.5)
    expected = torch.tensor([
        1 + 0.5 * 2 + 0.25 * 30,  # z_0 = r0 + g r1 + g^2 v2 = 9.5
        2 + 0.5 * 3 + 0.25 * 40,  # z_1 = 13.5
        3 + 0.5 * 40,             # z_2: one move left, then the bootstrap = 23
        40.0,                     # z_3: the final row is its own bootstrap
    ])
    torch.testing.assert_close(z, expected)


def test_n_step_targets_ignores_rewards_past_steps():
    rewards = torch.tensor([[1.0, 100.0, 100.0]])
    z = n_step_targets(rewards, torch.tensor([1]), torch.tensor([4.0]), 0.9)
    torch.testing.assert_close(z, torch.tensor([1.0 + 0.9 * 4.0]))


def test_sampling_probabilities_and_weights_follow_the_formula():
    priorities = torch.tensor([1.0, 2.0, 0.0, 3.0])
    probs = sampling_probabilities(priorities, alpha=0.5)
    raw = torch.tensor([1.0, 2.0**0.5, 0.0, 3.0**0.5])
    torch.testing.assert_close(probs, raw / raw.sum())
    weights = importance_weights(probs[[0, 1, 3]], count=3, beta=0.4)
    w = (3 * probs[[0, 1, 3]]) ** -0.4
    torch.testing.assert_close(weights, w / w.max())
    assert weights.max() == 1.0 and weights[0] == 1.0  # rarest sample weighs most


def _buffer(capacity=64, **kw):
    return PrioritizedTrajectoryBuffer(
        capacity, (2,), 3, gamma=0.5, n_step=2, num_unroll_steps=3,
        generator=torch.Generator().manual_seed(0), **kw,
    )


def _segment(moves, start=0.0):
    obs = torch.arange(moves + 1, dtype=torch.float32)[:, None].repeat(1, 2) + start
    actions = torch.arange(moves) % 3
    rewards = torch.arange(1, moves + 1, dtype=torch.float32)
    values = torch.arange(moves + 1, dtype=torch.float32) * 10
    policies = torch.full((moves, 3), 1 / 3)
    return obs, actions, rewards, values, policies


def test_sample_unrolls_targets_of_a_terminated_episode():
    buf = _buffer()
    obs, actions, rewards, values, policies = _segment(3)
    buf.add_segment(obs, actions, rewards, values, policies, terminated=True)
    assert len(buf) == 4 and buf.num_positions == 3
    # Only row 1 can be drawn.
    buf.priority[:] = 0.0
    buf.priority[1] = 1.0
    batch = buf.sample(4)
    assert batch.indices.tolist() == [1, 1, 1, 1]
    expected_z = trajectory_n_step_targets(
        rewards, torch.tensor([0.0, 10.0, 20.0, 0.0]), n=2, gamma=0.5
    )
    # Positions 1, 2, 3 (final row, terminal: 0), 4 (past the end: absorbing 0).
    torch.testing.assert_close(
        batch.target_values[0], torch.cat([expected_z[1:], torch.zeros(1)])
    )
    assert batch.value_mask[0].tolist() == [True, True, True, True]
    # Rewards of the moves into steps 1..3: r1 = 2, r2 = 3, then absorbing 0.
    torch.testing.assert_close(batch.target_rewards[0], torch.tensor([0.0, 2.0, 3.0, 0.0]))
    assert batch.reward_mask[0].tolist() == [False, True, True, True]
    assert batch.policy_mask[0].tolist() == [True, True, False, False]
    assert batch.actions[0, :2].tolist() == [1, 2]
    torch.testing.assert_close(batch.obs[0], obs[1])
    torch.testing.assert_close(batch.weights, torch.ones(4))


def test_cut_segment_bootstraps_and_masks_past_its_end():
    buf = _buffer()
    obs, actions, rewards, values, policies = _segment(2)
    buf.add_segment(obs, actions, rewards, values, policies, terminated=False)
    buf.priority[:] = 0.0
    buf.priority[1] = 1.0
    batch = buf.sample(1)
    # z at position 1: r = 2 then bootstrap 20 (the stored value of the final row).
    assert batch.target_values[0, 0].item() == pytest.approx(2 + 0.5 * 20)
    assert batch.target_values[0, 1].item() == pytest.approx(20.0)
    assert batch.value_mask[0].tolist() == [True, True, False, False]
    assert batch.reward_mask[0].tolist() == [False, True, False, False]


def test_initial_priorities_are_value_errors_and_final_rows_are_never_sampled():
    buf = _buffer()
    obs, actions, rewards, values, policies = _segment(3)
    buf.add_segment(obs, actions, rewards, values, policies, terminated=False)
    z = trajectory_n_step_targets(rewards, values, n=2, gamma=0.5)
    torch.testing.assert_close(buf.priority[:3], (values - z).abs()[:3] + PRIORITY_EPS)
    assert buf.priority[3] == 0.0
    assert (buf.sample(200).indices != 3).all()


def test_sampling_frequencies_match_priorities():
    buf = _buffer(capacity=16)
    obs, actions, rewards, values, policies = _segment(3)
    buf.add_segment(obs, actions, rewards, values, policies, terminated=True)
    buf.update_priorities(torch.tensor([0, 1, 2]), torch.tensor([1.0, 2.0, 5.0]))
    counts = torch.bincount(buf.sample(40_000).indices, minlength=4).float() / 40_000
    torch.testing.assert_close(counts[:3], torch.tensor([0.125, 0.25, 0.625]), atol=0.01, rtol=0)


def test_ring_wraps_and_overwritten_rows_leave():
    buf = _buffer(capacity=8)
    for start in range(4):
        buf.add_segment(*_segment(2, start=100.0 * start), terminated=True)
    assert buf.added == 12 and len(buf) == 8
    batch = buf.sample(64)
    # Segment 0 is gone and so is segment 1's first position; its second one (101) stays,
    # with its final row.
    assert set(batch.obs[:, 0].tolist()) <= {101.0, 200.0, 201.0, 300.0, 301.0}


def test_reanalyse_rewrites_values_policies_and_priorities():
    buf = _buffer()
    buf.add_segment(*_segment(3), terminated=True)
    before = buf.priority.clone()

    def search_fn(obs):
        return obs[:, 0] * 0 + 7.0, torch.tensor([1.0, 0.0, 0.0]).repeat(obs.shape[0], 1)

    buf.reanalyse(search_fn, torch.tensor([0, 1, 2]), batch_size=2)
    assert buf.root_value[:3].tolist() == [7.0, 7.0, 7.0]
    assert buf.root_value[3] == 0.0  # the terminal row stays 0
    assert buf.policy[:3, 0].tolist() == [1.0, 1.0, 1.0]
    assert not torch.equal(buf.priority, before)


def test_segment_writer_cuts_long_episodes_and_closes_ended_ones():
    buf = _buffer()
    writer = SegmentWriter(buf, n_envs=2, segment_length=2)
    policy = torch.full((2, 3), 1 / 3)
    for t in range(3):
        obs = torch.tensor([[t, 0.0], [t, 1.0]])
        writer.append(obs, torch.tensor([0, 1]), torch.ones(2), torch.full((2,), float(t)),
                      policy)
    # The third move cut a 2-move segment per env, closed by the third position.
    assert buf.added == 6 and writer.length.tolist() == [1, 1]
    writer.finish(0, torch.tensor([3.0, 0.0]), torch.tensor(9.0), terminated=True)
    assert buf.added == 8 and writer.length.tolist() == [0, 1]
    assert buf.terminal[7] and buf.root_value[7] == 0.0
    assert buf.root_value[2] == 2.0  # the cut segment's bootstrap: the next position's value


def test_bad_segment_shapes_are_named():
    buf = _buffer()
    obs, actions, rewards, values, policies = _segment(3)
    with pytest.raises(SpaceMismatchError, match="policies"):
        buf.add_segment(obs, actions, rewards, values, policies[:, :2], terminated=True)
    with pytest.raises(ValueError, match="capacity"):
        PrioritizedTrajectoryBuffer(1, (2,), 3, gamma=0.9)
    with pytest.raises(ValueError, match="no positions"):
        _buffer().sample(4)


def test_checkpoint_tensors_round_trip():
    buf = _buffer()
    buf.add_segment(*_segment(3), terminated=True)
    other = _buffer()
    other.load_state_dict(buf.state_dict())
    assert other.added == buf.added
    torch.testing.assert_close(other.priority, buf.priority)
    torch.testing.assert_close(other.obs, buf.obs)


def test_bootstrap_fn_replaces_stored_values_except_at_terminal_states():
    buf = _buffer()
    obs, actions, rewards, values, policies = _segment(3)
    buf.add_segment(obs, actions, rewards, values, policies, terminated=True)
    buf.priority[:] = 0.0
    buf.priority[0] = 1.0
    batch = buf.sample(1, bootstrap_fn=lambda o: o[:, 0] * 100.0)  # value of obs t: 100 t
    # z_0 = r0 + g r1 + g^2 * 100 * 2; z_1 = r1 + g r2 + g^2 * 0 (the terminal final row).
    torch.testing.assert_close(
        batch.target_values[0, :2], torch.tensor([1 + 0.5 * 2 + 0.25 * 200, 2 + 0.5 * 3])
    )


def test_a_wrapped_ring_round_trips_and_a_disagreeing_state_is_refused_whole():
    buf = _buffer(capacity=10)
    for start in (0.0, 100.0, 200.0):  # 4 + 4 + 4 rows in a ring of 10
        buf.add_segment(*_segment(3, start), terminated=True)
    assert buf.added == 12
    state = buf.state_dict()
    other = _buffer(capacity=10)
    other.load_state_dict(state)
    for name in PrioritizedTrajectoryBuffer._FIELDS:
        torch.testing.assert_close(getattr(other, name), getattr(buf, name))
    assert other.added == 12
    # Row 3 of the ring holds absolute index 3 (2 rows later overwrote 0 and 1 only).
    assert state["index"].tolist()[:4] == [10, 11, 2, 3]
    bad = {**state, "index": state["index"].clone()}
    bad["index"][3] = 13  # in range, but 13 belongs to row 3 only after 14 rows
    fresh = _buffer(capacity=10)
    with pytest.raises(CheckpointError, match=r"^tensors\['index'\]: row 3 holds 13"):
        fresh.load_state_dict(bad)
    assert fresh.added == 0 and fresh.priority.sum() == 0  # nothing was written
    with pytest.raises(CheckpointError, match=r"^tensors: missing \['priority'\]"):
        fresh.load_state_dict({k: v for k, v in state.items() if k != "priority"})
    bad = {**state, "priority": state["priority"].clone()}
    bad["priority"][0] = float("nan")
    with pytest.raises(CheckpointError, match=r"^tensors\['priority'\]: expected finite"):
        fresh.load_state_dict(bad)
