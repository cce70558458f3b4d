"""Dict and Tuple observations in the replay buffer and in collection, leaf by leaf."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env

import mbwrap
from mbwrap.buffers.collect import check_finite_step
from mbwrap.errors import CheckpointError, SpaceMismatchError

OBS = spaces.Dict(
    {
        "pos": spaces.Box(-1, 1, (2,), np.float32),
        "cell": spaces.Discrete(4, start=1),
        "pixels": spaces.Box(0, 255, (6, 6, 1), np.uint8),
    }
)
ACT = spaces.Discrete(2)


def _obs(i: int) -> dict:
    return {
        "pos": np.full(2, i / 100, np.float32),
        "cell": np.int64(1 + i % 4),
        "pixels": np.full((6, 6, 1), i % 256, np.uint8),
    }


def _filled(n: int = 10, **kwargs) -> mbwrap.ReplayBuffer:
    buffer = mbwrap.ReplayBuffer(OBS, ACT, 32, device="cpu", **kwargs)
    for i in range(n):
        buffer.add(_obs(i), i % 2, float(i), _obs(i + 1), i == n - 1, False)
    return buffer


def test_dict_observations_are_stored_and_sampled_per_leaf_in_their_dtypes():
    buffer = _filled()
    data = buffer.transitions()
    assert set(data.obs) == {"pos", "cell", "pixels"}
    assert data.obs["pixels"].dtype == torch.uint8 and data.obs["pixels"].shape == (10, 6, 6, 1)
    assert data.obs["cell"].tolist() == [1 + i % 4 for i in range(10)]
    assert data.next_obs["pos"][:, 0].tolist() == pytest.approx([(i + 1) / 100 for i in range(10)])
    sample = buffer.sample(5, generator=torch.Generator().manual_seed(0))
    # Every leaf of a sampled row comes from the same transition.
    assert torch.equal(sample.obs["cell"], 1 + (sample.reward.long() % 4))
    seq = buffer.sample_sequences(3, 4, generator=torch.Generator().manual_seed(0))
    assert seq.obs["pixels"].shape == (3, 4, 6, 6, 1)
    assert torch.equal(seq.obs["pixels"][:, 1:], seq.next_obs["pixels"][:, :-1])


def test_extend_takes_batches_of_dict_observations():
    buffer = mbwrap.ReplayBuffer(OBS, ACT, 8, device="cpu")
    batch = {key: np.stack([_obs(i)[key] for i in range(3)]) for key in OBS.spaces}
    buffer.extend(batch, [0, 1, 0], [1.0, 2.0, 3.0], batch, [False] * 3, [False] * 3)
    assert len(buffer) == 3 and buffer.transitions().obs["cell"].tolist() == [1, 2, 3]


def test_dict_buffers_save_load_and_state_dict_round_trip(tmp_path):
    buffer = _filled()
    buffer.save(tmp_path / "buffer.pt")
    loaded = mbwrap.ReplayBuffer.load(tmp_path / "buffer.pt", device="cpu")
    assert loaded.observation_space == OBS
    for key in OBS.spaces:
        assert torch.equal(loaded.transitions().obs[key], buffer.transitions().obs[key])
    other = mbwrap.ReplayBuffer(OBS, ACT, 32, device="cpu")
    other.load_state_dict(buffer.state_dict())
    assert torch.equal(
        other.transitions().next_obs["pixels"], buffer.transitions().next_obs["pixels"]
    )
    # Into a buffer with another number of streams: independent transitions.
    two = mbwrap.ReplayBuffer(OBS, ACT, 32, device="cpu", n_envs=2)
    two.load_state_dict(buffer.state_dict())
    assert len(two) == 10


def test_a_dict_checkpoint_missing_a_leaf_is_a_checkpoint_error(tmp_path):
    _filled().save(tmp_path / "buffer.pt")
    metadata, tensors = mbwrap.checkpoint.load_checkpoint(
        tmp_path / "buffer.pt", kind="mbwrap.replay_buffer"
    )
    del tensors["obs/pixels"]
    mbwrap.checkpoint.save_checkpoint(
        tmp_path / "bad.pt", kind="mbwrap.replay_buffer", metadata=metadata, tensors=tensors
    )
    with pytest.raises(CheckpointError, match="obs/pixels"):
        mbwrap.ReplayBuffer.load(tmp_path / "bad.pt")


@pytest.mark.parametrize(
    ("obs", "match"),
    [
        (
            {**_obs(0), "cell": np.int64(0)},
            r"^obs\['cell'\]: 1 value\(s\) lie outside Discrete\(4, start=1\)",
        ),
        ({**_obs(0), "cell": "a"}, r"^obs\['cell'\]: expected numbers"),
        ({**_obs(0), "pixels": np.zeros((6, 6, 1), object)}, r"^obs\['pixels'\]: expected numbers"),
    ],
    ids=["discrete-out-of-range", "string", "objects"],
)
def test_add_names_the_leaf_that_lies_outside_its_space(obs, match):
    buffer = mbwrap.ReplayBuffer(OBS, ACT, 4, device="cpu")
    with pytest.raises(SpaceMismatchError, match=match):
        buffer.add(obs, 0, 0.0, _obs(1), False, False)
    assert len(buffer) == 0


def test_add_names_discrete_actions_and_observations_outside_their_spaces():
    buffer = mbwrap.ReplayBuffer(spaces.MultiDiscrete([2, 3]), ACT, 4, device="cpu")
    with pytest.raises(SpaceMismatchError, match=r"^next_obs: .*outside MultiDiscrete"):
        buffer.add([1, 2], 0, 0.0, [1, 3], False, False)
    with pytest.raises(SpaceMismatchError, match=r"^action: .*outside Discrete\(2\)"):
        buffer.add([1, 2], 2, 0.0, [1, 2], False, False)
    with pytest.raises(SpaceMismatchError, match=r"^obs: expected numbers"):
        buffer.add("ab", 0, 0.0, [1, 2], False, False)


def test_collect_stores_dict_observations_from_every_kind_of_env():
    env = gym.make("mbwrap/PointGoal-v0")
    space = env.observation_space
    single = mbwrap.ReplayBuffer(space, env.action_space, 200, device="cpu")
    mbwrap.collect(env, single, 120, seed=0)  # crosses two 50-step episodes
    data = single.transitions()
    # The final observation of an episode is the one its last step produced.
    ends = torch.nonzero(data.truncated).reshape(-1)
    assert ends.tolist() == [49, 99]
    assert not torch.equal(data.next_obs["desired_goal"][49], data.obs["desired_goal"][50])
    vector = gym.make_vec(
        "mbwrap/PointGoal-v0",
        num_envs=2,
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
    )
    vec_buffer = mbwrap.ReplayBuffer(space, env.action_space, 400, device="cpu", n_envs=2)
    mbwrap.collect(vector, vec_buffer, 120, seed=0)
    stored = vec_buffer.transitions()
    assert bool(space["desired_goal"].contains(stored.next_obs["desired_goal"][0].numpy()))
    sb3 = make_vec_env("mbwrap/PointGoal-v0", n_envs=2, seed=0)
    sb3_buffer = mbwrap.ReplayBuffer(space, env.action_space, 400, device="cpu", n_envs=2)
    mbwrap.collect(sb3, sb3_buffer, 120)
    got = sb3_buffer.transitions()
    truncated = torch.nonzero(got.truncated).reshape(-1)
    assert truncated.numel() == 2
    # The terminal observation of a truncated episode is its own goal, not the next one's.
    row = int(truncated[0])
    assert torch.equal(got.next_obs["desired_goal"][row], got.obs["desired_goal"][row])


def test_check_finite_step_looks_into_every_leaf():
    obs = {"a": np.zeros((2, 3), np.float32), "b": (np.array([np.nan, 0.0]),)}
    with pytest.raises(ValueError, match=r"^env: returned NaN or infinite observations"):
        check_finite_step(obs, np.zeros(2), step=7)
