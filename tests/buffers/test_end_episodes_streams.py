"""ReplayBuffer.end_episodes(streams): only the named streams stop their open episodes."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from mbwrap import ReplayBuffer


def _buffer() -> ReplayBuffer:
    buffer = ReplayBuffer(spaces.Box(-1, 1, (1,)), spaces.Discrete(2), 10, n_envs=3, device="cpu")
    no = np.zeros(3, dtype=bool)
    for t in range(3):
        obs = np.full((3, 1), t / 10, np.float32)
        buffer.add(obs, np.zeros(3, np.int64), np.zeros(3), obs, no, no)
    return buffer


def test_only_the_named_streams_end():
    buffer = _buffer()
    buffer.end_episodes(slice(1, 3))
    # One more step: only stream 0 has 4 joined steps; 1 and 2 were cut after step 3.
    no = np.zeros(3, dtype=bool)
    obs = np.full((3, 1), 0.9, np.float32)
    buffer.add(obs, np.zeros(3, np.int64), np.zeros(3), obs, no, no)
    starts = {tuple(s) for s in buffer._starts(4).tolist()}
    assert starts == {(0, 0)}


def test_a_list_of_streams_and_all_streams():
    buffer = _buffer()
    buffer.end_episodes([0])
    assert buffer._data["episode_end"][2].tolist() == [True, False, False]
    buffer.end_episodes()
    assert buffer._data["episode_end"][2].tolist() == [True, True, True]
