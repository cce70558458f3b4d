"""HER's "future" relabelling over the replay buffer: the episode bookkeeping by hand,
every relabelled goal a later achieved goal of the same episode, the share relabelled,
and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from mbwrap.buffers import HindsightSampler, ReplayBuffer
from mbwrap.buffers.hindsight import HER_FUTURE_RATIO, episode_last_steps, future_steps

BOX = spaces.Box(-100.0, 100.0, (1,), np.float32)
GOAL_SPACE = spaces.Dict({"observation": BOX, "achieved_goal": BOX, "desired_goal": BOX})
ACT = spaces.Box(-1.0, 1.0, (1,), np.float32)


def test_episode_last_steps_by_hand():
    ends = torch.tensor([[0, 1], [0, 0], [1, 0], [0, 1], [0, 0]], dtype=torch.bool)
    # Stream 0: an episode over steps 0-2, one still running over 3-4.
    # Stream 1: episodes 0, 1-3 and 4 (running).
    expected = torch.tensor([[2, 0], [2, 3], [2, 3], [4, 3], [4, 4]])
    assert torch.equal(episode_last_steps(ends), expected)


def test_future_steps_by_hand_and_within_the_episode():
    steps, last = torch.tensor([3, 3, 3, 5]), torch.tensor([5, 5, 5, 5])
    uniform = torch.tensor([0.0, 0.5, 0.999, 0.7])
    assert future_steps(steps, last, uniform).tolist() == [3, 4, 5, 5]


def _episodes(lengths: list[int], capacity: int = 100) -> ReplayBuffer:
    """One stream; in each episode ``achieved_goal`` after step ``t`` is ``t + 1`` plus
    100 x the episode's index, the desired goal is ``-1``."""
    buffer = ReplayBuffer(GOAL_SPACE, ACT, capacity, device="cpu")
    for episode, length in enumerate(lengths):
        for t in range(length):

            def obs(value: float) -> dict[str, list[float]]:
                return {"observation": [value], "achieved_goal": [value], "desired_goal": [-1.0]}

            base = 100.0 * episode
            last = t == length - 1
            buffer.add(obs(base + t), [0.0], 0.0, obs(base + t + 1), False, last)
    return buffer


def test_relabelled_goals_are_later_achieved_goals_of_the_same_episode():
    sampler = HindsightSampler(_episodes([3, 5, 4]), future_ratio=HER_FUTURE_RATIO)
    batch = sampler.sample(4000, generator=torch.Generator().manual_seed(0))
    now = batch.transition.obs["achieved_goal"][:, 0]
    goal = batch.goal[:, 0]
    relabelled = batch.relabelled
    assert torch.all(goal[~relabelled] == -1.0)
    gap = goal[relabelled] - now[relabelled]
    # Steps t + 1 .. T of the episode: a gap of 1 up to the episode's end, never across.
    assert gap.min() >= 1.0 and torch.equal(goal[relabelled] // 100, now[relabelled] // 100)
    assert gap.max() == 5.0  # from step 0 to the end of the 5-step episode
    assert relabelled.float().mean().item() == pytest.approx(0.8, abs=0.03)


def test_future_draws_are_uniform_over_the_rest_of_the_episode():
    sampler = HindsightSampler(_episodes([4]), future_ratio=1.0)
    batch = sampler.sample(20_000, generator=torch.Generator().manual_seed(1))
    from_first = batch.goal[batch.transition.obs["achieved_goal"][:, 0] == 0.0, 0]
    counts = torch.bincount(from_first.long(), minlength=5)[1:]
    assert torch.allclose(counts / counts.sum(), torch.full((4,), 0.25), atol=0.03)


def test_the_running_episode_relabels_up_to_its_newest_step_after_the_ring_wraps():
    sampler = HindsightSampler(_episodes([6, 3], capacity=5), future_ratio=1.0)
    batch = sampler.sample(2000, generator=torch.Generator().manual_seed(2))
    now = batch.transition.obs["achieved_goal"][:, 0]
    # Kept: steps 4-5 of episode 0 and 0-2 of episode 1 (written last, not yet ended).
    assert set(now.tolist()) == {4.0, 5.0, 100.0, 101.0, 102.0}
    assert batch.goal[now == 100.0, 0].max() == 103.0
    assert batch.goal[now == 4.0, 0].max() == 6.0


def test_errors_name_the_argument():
    flat = ReplayBuffer(BOX, ACT, 10, device="cpu")
    with pytest.raises(ValueError, match=r"buffer: .*'achieved_goal'"):
        HindsightSampler(flat)
    wide = spaces.Box(-1.0, 1.0, (2,), np.float32)
    mismatched = spaces.Dict({"observation": BOX, "achieved_goal": BOX, "desired_goal": wide})
    with pytest.raises(ValueError, match=r"buffer: .*one shape"):
        HindsightSampler(ReplayBuffer(mismatched, ACT, 10, device="cpu"))
    with pytest.raises(ValueError, match="future_ratio"):
        HindsightSampler(_episodes([2]), future_ratio=1.5)
    with pytest.raises(ValueError, match="empty"):
        HindsightSampler(ReplayBuffer(GOAL_SPACE, ACT, 10, device="cpu")).sample(4)
