"""Tests of mbwrap.collect and mbwrap.Collector against the envs' own semantics."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

from mbwrap import Collector, ReplayBuffer, collect
from mbwrap.errors import SpaceMismatchError

SAME_STEP = {"autoreset_mode": AutoresetMode.SAME_STEP}


class ChainEnv(gym.Env):
    """Observation: steps taken so far this episode. Reward ``1 + action``. Terminates after
    ``length`` steps."""

    def __init__(self, length: int = 5) -> None:
        self.observation_space = spaces.Discrete(100)
        self.action_space = spaces.Discrete(2)
        self.length = length
        self.resets = 0
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.resets += 1
        return 0, {}

    def step(self, action):
        self.t += 1
        return self.t, 1.0 + float(action), self.t >= self.length, False, {}


class RecordingPolicy:
    """Anything with SB3's ``predict``: a constant action; records what it was given and
    threads a counter through ``state``."""

    def __init__(self, action: int) -> None:
        self.action = action
        self.calls: list[dict] = []

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        self.calls.append(
            {
                "obs": np.array(observation, copy=True),
                "state": state,
                "episode_start": np.array(episode_start, copy=True),
                "deterministic": deterministic,
            }
        )
        return np.full(np.shape(observation), self.action, dtype=np.int64), (state or 0) + 1


def cartpole_terminal(obs: np.ndarray) -> np.ndarray:
    """CartPole-v1's termination test on observations ``[..., 4]``."""
    return (np.abs(obs[..., 0]) > 2.4) | (np.abs(obs[..., 2]) > 12 * 2 * np.pi / 360)


def episodes_from_buffer(buffer: ReplayBuffer, n_envs: int) -> tuple[list[float], list[int]]:
    """Returns and lengths of the episodes that end in the buffer, column by column, in the
    order they end (row-major)."""
    data = buffer.transitions()
    done = (data.terminated | data.truncated).numpy().reshape(-1, n_envs)
    reward = data.reward.numpy().reshape(-1, n_envs)
    running = np.zeros(n_envs)
    length = np.zeros(n_envs, dtype=int)
    returns, lengths = [], []
    for row in range(done.shape[0]):
        running += reward[row]
        length += 1
        for e in np.flatnonzero(done[row]):
            returns.append(float(running[e]))
            lengths.append(int(length[e]))
            running[e], length[e] = 0.0, 0
    return returns, lengths


# ---------------------------------------------------------------------- single gymnasium env


def test_single_env_random_actions_match_the_env():
    env = gym.make("CartPole-v1")
    buffer = ReplayBuffer(env.observation_space, env.action_space, 200, device="cpu")
    stats = collect(env, buffer, 120, seed=7)
    assert stats["steps"] == 120
    assert len(buffer) == 120
    data = buffer.transitions()

    # Replay the stored actions in a reference env reset the same way.
    ref = gym.make("CartPole-v1")
    obs, _ = ref.reset(seed=7)
    for i in range(120):
        np.testing.assert_array_equal(data.obs[i].numpy(), obs)
        nxt, reward, terminated, truncated, _ = ref.step(int(data.action[i]))
        np.testing.assert_array_equal(data.next_obs[i].numpy(), nxt)
        assert float(data.reward[i]) == reward
        assert bool(data.terminated[i]) == terminated
        assert bool(data.truncated[i]) == truncated
        obs = ref.reset()[0] if terminated or truncated else nxt

    terminal = data.terminated.numpy()
    assert terminal.sum() >= 2  # the run saw several episodes end
    # The terminal transitions store the real terminal observation.
    assert cartpole_terminal(data.next_obs.numpy()[terminal]).all()
    assert not cartpole_terminal(data.next_obs.numpy()[~terminal]).any()

    returns, lengths = episodes_from_buffer(buffer, 1)
    assert stats["episodes"] == int(terminal.sum()) == len(returns)
    assert stats["episode_lengths"] == lengths
    assert stats["episode_returns"] == returns == [float(n) for n in lengths]


def test_single_env_is_reproducible_with_seed():
    def run(seed):
        env = gym.make("CartPole-v1")
        buffer = ReplayBuffer(env.observation_space, env.action_space, 100, device="cpu")
        collect(env, buffer, 60, seed=seed)
        return buffer.transitions()

    a, b, c = run(3), run(3), run(4)
    for name in ("obs", "action", "reward", "next_obs", "terminated", "truncated"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.obs, c.obs)
    assert not torch.equal(a.action, c.action)


def test_single_env_with_sb3_policy():
    env = gym.make("CartPole-v1")
    model = PPO("MlpPolicy", env, seed=0, device="cpu", n_steps=64, batch_size=32)
    buffer = ReplayBuffer(env.observation_space, env.action_space, 100, device="cpu")
    stats = collect(env, buffer, 40, policy=model, seed=1, deterministic=True)
    assert stats["steps"] == 40
    data = buffer.transitions()
    expected, _ = model.predict(data.obs.numpy(), deterministic=True)
    np.testing.assert_array_equal(data.action.numpy(), expected)


def test_policy_receives_obs_state_episode_start_and_deterministic():
    env = gym.wrappers.TimeLimit(ChainEnv(length=10), max_episode_steps=3)
    buffer = ReplayBuffer(env.observation_space, env.action_space, 20, device="cpu")
    policy = RecordingPolicy(action=1)
    collect(env, buffer, 5, policy=policy, seed=0)
    assert [int(c["obs"]) for c in policy.calls] == [0, 1, 2, 0, 1]
    assert [c["state"] for c in policy.calls] == [None, 1, 2, 3, 4]
    assert [c["episode_start"].tolist() for c in policy.calls] == [
        [True],
        [False],
        [False],
        [True],
        [False],
    ]
    assert {c["deterministic"] for c in policy.calls} == {False}
    collect(env, buffer, 1, policy=policy, deterministic=True)
    assert policy.calls[-1]["deterministic"] is True


def test_truncation_stats_and_final_observations():
    env = gym.wrappers.TimeLimit(ChainEnv(length=10), max_episode_steps=3)
    buffer = ReplayBuffer(env.observation_space, env.action_space, 20, device="cpu")
    stats = collect(env, buffer, 7, policy=RecordingPolicy(action=1), seed=0)
    assert stats == {
        "steps": 7,
        "episodes": 2,
        "episode_returns": [6.0, 6.0],
        "episode_lengths": [3, 3],
    }
    data = buffer.transitions()
    assert data.obs.tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert data.next_obs.tolist() == [1, 2, 3, 1, 2, 3, 1]
    assert data.truncated.tolist() == [False, False, True, False, False, True, False]
    assert not data.terminated.any()
    assert data.reward.tolist() == [2.0] * 7


def test_collector_continues_the_episode_across_calls():
    env = ChainEnv(length=6)
    buffer = ReplayBuffer(env.observation_space, env.action_space, 20, device="cpu")
    collector = Collector(env, buffer, seed=0)
    first = collector.collect(4, policy=RecordingPolicy(action=1))
    assert first == {"steps": 4, "episodes": 0, "episode_returns": [], "episode_lengths": []}
    second = collector.collect(4, policy=RecordingPolicy(action=0))
    # The episode that started in the first call is counted whole: 4 steps worth 2, 2 worth 1.
    assert second == {"steps": 4, "episodes": 1, "episode_returns": [10.0], "episode_lengths": [6]}
    assert env.resets == 2  # the first reset and the one after termination, none between calls
    data = buffer.transitions()
    assert data.obs.tolist() == [0, 1, 2, 3, 4, 5, 0, 1]
    assert data.terminated.tolist() == [False] * 5 + [True, False, False]
    seq = buffer.sample_sequences(3, 6, generator=torch.Generator().manual_seed(0))
    assert seq.obs.tolist() == [[0, 1, 2, 3, 4, 5]] * 3


def test_collect_function_restarts_and_cuts_the_episode():
    env = ChainEnv(length=50)
    buffer = ReplayBuffer(env.observation_space, env.action_space, 20, device="cpu")
    collect(env, buffer, 4, seed=0)
    collect(env, buffer, 4, seed=0)
    assert env.resets == 2
    assert buffer.transitions().obs.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"^length"):
        buffer.sample_sequences(1, 5)
    seq = buffer.sample_sequences(20, 4, generator=torch.Generator().manual_seed(0))
    assert seq.obs.tolist() == [[0, 1, 2, 3]] * 20


# ---------------------------------------------------------------------- gymnasium vector env


def test_same_step_vector_env_stores_real_final_observations():
    n_envs, rows, seed = 3, 60, 11
    venv = gym.make_vec(
        "CartPole-v1", num_envs=n_envs, vectorization_mode="sync", vector_kwargs=SAME_STEP
    )
    buffer = ReplayBuffer(
        venv.single_observation_space, venv.single_action_space, 500, device="cpu", n_envs=n_envs
    )
    stats = collect(venv, buffer, rows * n_envs, seed=seed)
    assert stats["steps"] == rows * n_envs
    data = buffer.transitions()
    obs = data.obs.numpy().reshape(rows, n_envs, 4)
    next_obs = data.next_obs.numpy().reshape(rows, n_envs, 4)
    action = data.action.numpy().reshape(rows, n_envs)
    reward = data.reward.numpy().reshape(rows, n_envs)
    terminated = data.terminated.numpy().reshape(rows, n_envs)
    truncated = data.truncated.numpy().reshape(rows, n_envs)
    assert terminated.sum() >= n_envs

    # Each column is one sub-env: replay it in a plain env seeded as the vector env seeds it.
    for e in range(n_envs):
        ref = gym.make("CartPole-v1")
        current, _ = ref.reset(seed=seed + e)
        for t in range(rows):
            np.testing.assert_array_equal(obs[t, e], current)
            nxt, r, term, trunc, _ = ref.step(int(action[t, e]))
            np.testing.assert_array_equal(next_obs[t, e], nxt)
            assert (reward[t, e], terminated[t, e], truncated[t, e]) == (r, term, trunc)
            current = ref.reset()[0] if term or trunc else nxt

    # Terminal transitions hold the terminal observation, not the reset one that follows.
    assert cartpole_terminal(next_obs[terminated]).all()
    ends = np.argwhere(terminated[:-1])
    assert len(ends) > 0
    for t, e in ends:
        assert not np.array_equal(next_obs[t, e], obs[t + 1, e])
        assert np.abs(obs[t + 1, e]).max() <= 0.05  # CartPole's reset range
    live = ~(terminated | truncated)[:-1]
    np.testing.assert_array_equal(next_obs[:-1][live], obs[1:][live])

    returns, lengths = episodes_from_buffer(buffer, n_envs)
    assert stats["episodes"] == len(lengths) == int(terminated.sum())
    assert stats["episode_lengths"] == lengths
    assert stats["episode_returns"] == returns


def test_vector_env_steps_round_up_to_whole_vector_steps():
    venv = gym.make_vec(
        "CartPole-v1", num_envs=3, vectorization_mode="sync", vector_kwargs=SAME_STEP
    )
    buffer = ReplayBuffer(
        venv.single_observation_space, venv.single_action_space, 30, device="cpu", n_envs=3
    )
    assert collect(venv, buffer, 10, seed=0)["steps"] == 12
    assert len(buffer) == 12


def test_vector_env_policy_gets_episode_starts_per_env():
    venv = gym.vector.SyncVectorEnv([lambda: ChainEnv(length=2)] * 2, **SAME_STEP)
    buffer = ReplayBuffer(spaces.Discrete(100), spaces.Discrete(2), 20, device="cpu", n_envs=2)
    policy = RecordingPolicy(action=0)
    stats = collect(venv, buffer, 6, policy=policy, seed=0)
    assert [c["episode_start"].tolist() for c in policy.calls] == [
        [True, True],
        [False, False],
        [True, True],
    ]
    assert [c["obs"].tolist() for c in policy.calls] == [[0, 0], [1, 1], [0, 0]]
    assert buffer.transitions().next_obs.tolist() == [1, 1, 2, 2, 1, 1]
    assert stats["episodes"] == 2
    assert stats["episode_returns"] == [2.0, 2.0]


def test_vector_env_seeding_is_reproducible():
    def run(seed):
        venv = gym.make_vec(
            "CartPole-v1", num_envs=2, vectorization_mode="sync", vector_kwargs=SAME_STEP
        )
        buffer = ReplayBuffer(
            venv.single_observation_space, venv.single_action_space, 100, device="cpu", n_envs=2
        )
        collect(venv, buffer, 40, seed=seed)
        return buffer.transitions()

    a, b, c = run(5), run(5), run(6)
    assert torch.equal(a.obs, b.obs) and torch.equal(a.action, b.action)
    assert torch.equal(a.next_obs, b.next_obs) and torch.equal(a.terminated, b.terminated)
    assert not torch.equal(a.obs, c.obs)


@pytest.mark.parametrize("mode", [None, AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED])
def test_vector_env_without_same_step_is_refused(mode):
    kwargs = {} if mode is None else {"vector_kwargs": {"autoreset_mode": mode}}
    venv = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync", **kwargs)
    buffer = ReplayBuffer(
        venv.single_observation_space, venv.single_action_space, 10, device="cpu", n_envs=2
    )
    with pytest.raises(
        ValueError, match=r"^env: .*autoreset_mode SAME_STEP.*AutoresetMode.SAME_STEP"
    ):
        Collector(venv, buffer)


# ---------------------------------------------------------------------- SB3 VecEnv


def test_sb3_dummy_vec_env_terminated_truncated_and_final_obs():
    n_envs, rows, seed, limit = 2, 80, 3, 15
    venv = DummyVecEnv([lambda: gym.make("CartPole-v1", max_episode_steps=limit)] * n_envs)
    buffer = ReplayBuffer(
        venv.observation_space, venv.action_space, 500, device="cpu", n_envs=n_envs
    )
    stats = collect(venv, buffer, rows * n_envs, seed=seed)
    data = buffer.transitions()
    obs = data.obs.numpy().reshape(rows, n_envs, 4)
    next_obs = data.next_obs.numpy().reshape(rows, n_envs, 4)
    action = data.action.numpy().reshape(rows, n_envs)
    terminated = data.terminated.numpy().reshape(rows, n_envs)
    truncated = data.truncated.numpy().reshape(rows, n_envs)
    assert terminated.any() and truncated.any()
    assert not (terminated & truncated).any()

    for e in range(n_envs):
        ref = gym.make("CartPole-v1", max_episode_steps=limit)
        current, _ = ref.reset(seed=seed + e)
        for t in range(rows):
            np.testing.assert_array_equal(obs[t, e], current)
            nxt, _, term, trunc, _ = ref.step(int(action[t, e]))
            np.testing.assert_array_equal(next_obs[t, e], nxt)
            # SB3 reports a time limit hit on a terminal step as a termination.
            assert terminated[t, e] == term
            assert truncated[t, e] == (trunc and not term)
            current = ref.reset()[0] if term or trunc else nxt

    assert cartpole_terminal(next_obs[terminated]).all()
    returns, lengths = episodes_from_buffer(buffer, n_envs)
    assert stats["episode_lengths"] == lengths
    assert stats["episode_returns"] == returns
    assert max(lengths) == limit


def test_sb3_vec_env_with_sb3_policy():
    venv = DummyVecEnv([lambda: gym.make("CartPole-v1")] * 2)
    model = PPO("MlpPolicy", venv, seed=0, device="cpu", n_steps=64, batch_size=32)
    buffer = ReplayBuffer(venv.observation_space, venv.action_space, 100, device="cpu", n_envs=2)
    collect(venv, buffer, 20, policy=model, seed=0, deterministic=True)
    data = buffer.transitions()
    expected, _ = model.predict(data.obs.numpy(), deterministic=True)
    np.testing.assert_array_equal(data.action.numpy(), expected)


# ---------------------------------------------------------------------- errors


def test_buffer_n_envs_must_match_the_env():
    venv = DummyVecEnv([lambda: gym.make("CartPole-v1")] * 2)
    buffer = ReplayBuffer(venv.observation_space, venv.action_space, 10, device="cpu", n_envs=1)
    with pytest.raises(
        ValueError,
        match=r"^buffer: has n_envs=1 but the env runs 2 copies; build the buffer with n_envs=2",
    ):
        Collector(venv, buffer)
    env = gym.make("CartPole-v1")
    buffer = ReplayBuffer(env.observation_space, env.action_space, 10, device="cpu", n_envs=3)
    with pytest.raises(ValueError, match=r"^buffer: has n_envs=3 but the env runs 1 copies"):
        collect(env, buffer, 5)


def test_buffer_spaces_must_match_the_env():
    env = gym.make("CartPole-v1")
    wrong_obs = ReplayBuffer(spaces.Box(-1, 1, (4,)), env.action_space, 10, device="cpu")
    with pytest.raises(SpaceMismatchError, match=r"^env.observation_space:"):
        Collector(env, wrong_obs)
    wrong_act = ReplayBuffer(env.observation_space, spaces.Discrete(3), 10, device="cpu")
    with pytest.raises(SpaceMismatchError, match=r"^env.action_space: expected Discrete"):
        Collector(env, wrong_act)


def test_not_an_env_and_negative_steps():
    buffer = ReplayBuffer(spaces.Discrete(100), spaces.Discrete(2), 10, device="cpu")
    with pytest.raises(TypeError, match=r"^env: expected a gymnasium.Env"):
        Collector(object(), buffer)
    with pytest.raises(ValueError, match=r"^steps:"):
        collect(ChainEnv(), buffer, -1)
    assert collect(ChainEnv(), buffer, 0)["steps"] == 0
    assert len(buffer) == 0
