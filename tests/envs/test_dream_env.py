"""DreamEnv: a world model as a single gymnasium.Env."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import mbwrap
from mbwrap import DreamEnv, ReplayBuffer
from mbwrap.errors import ModelOutputError, NonFiniteModelWarning, SpaceMismatchError

MAZE_ID = "mbwrap/DynaMaze-v0"
MAZE_START, MAZE_GOAL = 18, 8
# A shortest path S -> G of the book's maze (0 up, 1 down, 2 left, 3 right).
MAZE_PATH = [1, 1, 3, 3, 3, 3, 0, 3, 3, 3, 3, 0, 0, 0]


def rollout(env: gym.Env, actions, seed: int | None = None) -> list[tuple]:
    """Step ``env`` through ``actions``, resetting when an episode ends."""
    obs, _ = env.reset(seed=seed)
    out = [("reset", np.asarray(obs).tolist())]
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        out.append((np.asarray(obs).tolist(), reward, terminated, truncated))
        if terminated or truncated:
            obs, _ = env.reset()
            out.append(("reset", np.asarray(obs).tolist()))
    return out


# ---------------------------------------------------------------- API conformance
def test_gymnasium_and_sb3_checkers_pass_for_a_tabular_maze_model(maze_model, maze_buffer):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(DreamEnv(maze_model, maze_buffer, horizon=20), skip_render_check=True)
        sb3_check_env(DreamEnv(maze_model, maze_buffer, horizon=20))


def test_gymnasium_and_sb3_checkers_pass_for_a_box_model(make_line_model, line_starts):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(
            DreamEnv(make_line_model(goal=3.0), line_starts, horizon=8), skip_render_check=True
        )
        sb3_check_env(DreamEnv(make_line_model(goal=3.0), line_starts, horizon=8))


def test_spaces_are_the_models(make_line_model, line_starts):
    model = make_line_model()
    env = DreamEnv(model, line_starts, horizon=3)
    assert env.observation_space == model.observation_space
    assert env.action_space == model.action_space
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (2,) and info == {}
    assert any(np.array_equal(obs, row) for row in line_starts)


def test_step_before_reset_raises(make_line_model, line_starts):
    env = DreamEnv(make_line_model(), line_starts, horizon=3)
    with pytest.raises(gym.error.ResetNeeded):
        env.step(np.zeros(1, np.float32))


def test_registered_with_gymnasium_on_import():
    code = (
        "import gymnasium as gym\n"
        "assert 'mbwrap/Dream-v0' not in gym.registry\n"
        "import mbwrap\n"
        "assert 'mbwrap/Dream-v0' in gym.registry and 'mbwrap/DynaMaze-v0' in gym.registry\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_gymnasium_make(maze_model, maze_buffer):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make("mbwrap/Dream-v0", model=maze_model, start_states=maze_buffer, horizon=5)
        assert isinstance(env.unwrapped, DreamEnv)
        assert env.unwrapped.model is maze_model
        assert env.spec.max_episode_steps is None  # the horizon truncates, not a TimeLimit
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        flags = [env.step(env.action_space.sample())[2:4] for _ in range(5)]
    # Either the goal ended the episode early or the horizon truncated step 5.
    ended = [t or u for t, u in flags]
    assert any(ended)
    if not any(t for t, _ in flags):
        assert flags[-1] == (False, True) and not any(ended[:-1])


def test_gymnasium_make_passes_the_full_checker(maze_model, maze_buffer):
    env = gym.make("mbwrap/Dream-v0", model=maze_model, start_states=maze_buffer, horizon=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env.unwrapped)


# ---------------------------------------------------------------- seeding
def test_reset_seed_reproduces_whole_rollouts(maze_model, maze_buffer):
    actions = np.random.default_rng(0).integers(0, 4, size=200)
    env = DreamEnv(maze_model, maze_buffer, horizon=15)
    first = rollout(env, actions, seed=5)
    # Another env over the same model, and the same env reseeded, agree step for step.
    assert rollout(DreamEnv(maze_model, maze_buffer, horizon=15), actions, seed=5) == first
    assert rollout(env, actions, seed=5) == first
    # The model samples: another seed gives another rollout.
    assert rollout(env, actions, seed=6) != first
    assert sum(1 for step in first if step[0] == "reset") > 3


# ---------------------------------------------------------------- terminated vs truncated
def test_horizon_truncates_without_terminating(make_line_model):
    env = DreamEnv(make_line_model(goal=None), np.zeros((1, 2), np.float32), horizon=4)
    env.reset(seed=0)
    flags = [env.step(np.ones(1, np.float32))[2:4] for _ in range(4)]
    assert flags == [(False, False)] * 3 + [(False, True)]
    # A new episode gets the full horizon again.
    env.reset()
    flags = [env.step(np.ones(1, np.float32))[2:4] for _ in range(4)]
    assert flags == [(False, False)] * 3 + [(False, True)]


def test_goal_terminates_without_truncating(make_line_model):
    env = DreamEnv(make_line_model(goal=2.5), np.zeros((1, 2), np.float32), horizon=10)
    env.reset(seed=0)
    steps = [env.step(np.ones(1, np.float32)) for _ in range(3)]
    assert [s[2:4] for s in steps] == [(False, False), (False, False), (True, False)]
    np.testing.assert_allclose(steps[-1][0], [3.0, 3.0])
    assert [s[1] for s in steps] == [1.0, 2.0, 3.0]  # the reward head: next pos


def test_termination_on_the_horizon_step_is_both(make_line_model):
    env = DreamEnv(make_line_model(goal=3.0), np.zeros((1, 2), np.float32), horizon=3)
    env.reset(seed=0)
    flags = [env.step(np.ones(1, np.float32))[2:4] for _ in range(3)]
    assert flags[-1] == (True, True)


# ---------------------------------------------------------------- reward / termination sources
def walk_maze(env: DreamEnv) -> list[tuple[int, float, bool, bool]]:
    env.reset(seed=0)
    return [(int(o), r, t, u) for o, r, t, u, _ in (env.step(a) for a in MAZE_PATH)]


def test_model_heads_are_used_without_fns(make_maze_oracle):
    env = DreamEnv(make_maze_oracle(env_id=None), np.array([MAZE_START]), horizon=100)
    assert (env.core.reward_source, env.core.termination_source) == ("model", "model")
    steps = walk_maze(env)
    assert steps[-1][0] == MAZE_GOAL
    assert all(r == 7.0 and not t for _, r, t, _ in steps)


def test_registered_fns_override_model_heads(make_maze_oracle):
    env = DreamEnv(make_maze_oracle(env_id=MAZE_ID), np.array([MAZE_START]), horizon=100)
    assert (env.core.reward_source, env.core.termination_source) == ("registered", "registered")
    steps = walk_maze(env)
    assert [s[0] for s in steps][-1] == MAZE_GOAL
    assert [r for _, r, _, _ in steps] == [0.0] * 13 + [1.0]
    assert [t for _, _, t, _ in steps] == [False] * 13 + [True]
    assert not any(u for *_, u in steps)


def test_given_fns_override_registered_fns(make_maze_oracle):
    calls = []

    def reward_fn(obs, action, next_obs):
        calls.append((obs.clone(), action.clone(), next_obs.clone()))
        return torch.full(obs.shape[:1], 3.0)

    def termination_fn(obs, action, next_obs):
        return next_obs == 40  # cell (4, 4), step 6 of the path

    env = DreamEnv(
        make_maze_oracle(env_id=MAZE_ID),
        np.array([MAZE_START]),
        horizon=100,
        reward_fn=reward_fn,
        termination_fn=termination_fn,
    )
    assert (env.core.reward_source, env.core.termination_source) == ("given", "given")
    steps = walk_maze(env)
    assert [r for _, r, _, _ in steps] == [3.0] * 14
    assert [t for _, _, t, _ in steps] == [False] * 5 + [True] + [False] * 8
    # Functions see batched (obs, action, next_obs).
    obs, action, next_obs = calls[0]
    assert obs.tolist() == [MAZE_START] and action.tolist() == [1] and next_obs.tolist() == [27]


def test_given_termination_keeps_registered_reward(make_maze_oracle):
    env = DreamEnv(
        make_maze_oracle(env_id=MAZE_ID),
        np.array([MAZE_START]),
        horizon=100,
        termination_fn=lambda o, a, n: torch.zeros(o.shape[0], dtype=torch.bool),
    )
    assert (env.core.reward_source, env.core.termination_source) == ("registered", "given")
    steps = walk_maze(env)
    assert steps[-1][1:3] == (1.0, False)


def test_tabular_model_gets_the_registered_fns_from_its_env_id(maze_model):
    maze_model.env_id = MAZE_ID
    env = DreamEnv(maze_model, np.array([MAZE_START]), horizon=5)
    assert env.core.reward_source == "registered"


def test_no_reward_head_and_no_fn_is_a_clear_error(make_line_model):
    env = DreamEnv(make_line_model(reward_head=False), np.zeros((1, 2), np.float32), horizon=5)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"no reward head.*reward_fn"):
        env.step(np.ones(1, np.float32))
    # With a reward function the same model works.
    env = DreamEnv(
        make_line_model(reward_head=False),
        np.zeros((1, 2), np.float32),
        horizon=5,
        reward_fn=lambda o, a, n: n[:, 1] * 10,
    )
    env.reset(seed=0)
    assert env.step(np.ones(1, np.float32))[1] == 10.0


def test_no_termination_head_and_no_fn_never_terminates(make_line_model):
    env = DreamEnv(
        make_line_model(goal=0.5, termination_head=False), np.zeros((1, 2), np.float32), horizon=5
    )
    env.reset(seed=0)
    assert [env.step(np.ones(1, np.float32))[2] for _ in range(5)] == [False] * 5


# ---------------------------------------------------------------- start states
def test_start_states_from_a_replay_buffer(maze_model):
    env = gym.make(MAZE_ID)
    buffer = ReplayBuffer(env.observation_space, env.action_space, 100, device="cpu")
    mbwrap.collect(env, buffer, 6, seed=1)
    seen = set(buffer.transitions().obs.tolist())
    dream = DreamEnv(maze_model, buffer, horizon=3)
    starts = {int(dream.reset(seed=s)[0]) for s in range(40)}
    assert starts <= seen
    assert len(seen) < 54  # so the subset check above is not vacuous


def test_start_states_from_an_array_and_a_tensor(make_line_model, line_starts):
    for starts in (line_starts, torch.as_tensor(line_starts), line_starts.tolist()):
        env = DreamEnv(make_line_model(), starts, horizon=3)
        drawn = {tuple(env.reset(seed=s)[0].tolist()) for s in range(30)}
        assert drawn == {tuple(row) for row in line_starts.tolist()}


def test_a_single_start_observation(make_line_model):
    env = DreamEnv(make_line_model(), np.array([4.0, 1.0], np.float32), horizon=3)
    np.testing.assert_array_equal(env.reset(seed=0)[0], [4.0, 1.0])


def test_start_states_from_a_callable(make_line_model):
    calls = []

    def sampler(n, generator):
        calls.append((n, generator))
        return torch.full((n, 2), 5.0)

    env = DreamEnv(make_line_model(), sampler, horizon=3)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, [5.0, 5.0])
    assert calls[0][0] == 1 and isinstance(calls[0][1], torch.Generator)


def test_callable_returning_the_wrong_count_is_an_error(make_line_model):
    env = DreamEnv(make_line_model(), lambda n, g: torch.zeros(n + 1, 2), horizon=3)
    with pytest.raises(SpaceMismatchError, match="start_states"):
        env.reset(seed=0)


def test_buffer_of_another_space_is_rejected(maze_model, make_line_model):
    buffer = ReplayBuffer(gym.spaces.Discrete(54), gym.spaces.Discrete(4), 10, device="cpu")
    with pytest.raises(SpaceMismatchError, match="start_states"):
        DreamEnv(make_line_model(), buffer, horizon=3)


def test_empty_buffer_is_a_clear_error_at_reset(maze_model):
    buffer = ReplayBuffer(gym.spaces.Discrete(54), gym.spaces.Discrete(4), 10, device="cpu")
    env = DreamEnv(maze_model, buffer, horizon=3)
    with pytest.raises(ValueError, match=r"start_states.*empty"):
        env.reset(seed=0)


# ---------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("horizon", [0, -3, 2.5, True, "10", None])
def test_bad_horizon_is_rejected(make_line_model, line_starts, horizon):
    with pytest.raises(ValueError, match="horizon"):
        DreamEnv(make_line_model(), line_starts, horizon=horizon)


@pytest.mark.parametrize("start_states", [42, "abc", {"obs": 1}])
def test_start_states_of_a_wrong_type_are_rejected(make_line_model, start_states):
    with pytest.raises(TypeError, match="start_states"):
        DreamEnv(make_line_model(), start_states, horizon=3)


@pytest.mark.parametrize(
    "start_states",
    [np.zeros((4, 3), np.float32), np.zeros(3, np.float32), np.zeros((2, 2, 2), np.float32)],
)
def test_start_states_of_a_wrong_shape_are_rejected(make_line_model, start_states):
    with pytest.raises(SpaceMismatchError, match="start_states"):
        DreamEnv(make_line_model(), start_states, horizon=3)


@pytest.mark.parametrize(
    "start_states",
    [
        np.array([[1, 2]]),
        np.array([1.5]),
        np.array([], dtype=np.int64),
        np.array([54]),
        np.array([-1]),
    ],
)
def test_bad_discrete_start_states_are_rejected(maze_model, start_states):
    with pytest.raises(ValueError, match="start_states"):
        DreamEnv(maze_model, start_states, horizon=3)


def test_box_start_states_outside_the_space_are_rejected(make_line_model):
    with pytest.raises(ValueError, match="start_states"):
        DreamEnv(make_line_model(), np.array([[0.0, 0.0], [500.0, 0.0]], np.float32), horizon=3)


@pytest.mark.parametrize("model", [None, object(), torch.nn.Linear(2, 2), "tabular"])
def test_a_model_that_is_not_a_world_model_is_rejected(model, line_starts):
    with pytest.raises(TypeError, match="model"):
        DreamEnv(model, line_starts, horizon=3)


def test_bad_on_nonfinite_is_rejected(make_line_model, line_starts):
    with pytest.raises(ValueError, match="on_nonfinite"):
        DreamEnv(make_line_model(), line_starts, horizon=3, on_nonfinite="ignore")


def test_action_of_a_wrong_shape_is_rejected(make_line_model, line_starts):
    env = DreamEnv(make_line_model(), line_starts, horizon=3)
    env.reset(seed=0)
    with pytest.raises(SpaceMismatchError, match="action"):
        env.step(np.zeros(3, np.float32))


# ---------------------------------------------------------------- non-finite model outputs
@pytest.mark.parametrize("nan_in", ["state", "reward"])
def test_nonfinite_output_truncates_the_episode(make_line_model, nan_in):
    model = make_line_model(nan_when=lambda s, n: n[:, 1] >= 3, nan_in=nan_in)
    env = DreamEnv(model, np.zeros((1, 2), np.float32), horizon=10)
    env.reset(seed=0)
    for _ in range(2):
        obs, _, _, truncated, info = env.step(np.ones(1, np.float32))
        assert not truncated and "model_nonfinite" not in info
    with pytest.warns(NonFiniteModelWarning, match="NaN or infinite"):
        bad = env.step(np.ones(1, np.float32))
    obs_bad, reward_bad, terminated_bad, truncated_bad, info_bad = bad
    assert truncated_bad and not terminated_bad and info_bad == {"model_nonfinite": True}
    # The returned transition is finite: the last good observation and reward 0.
    assert np.all(np.isfinite(obs_bad)) and np.isfinite(reward_bad)
    np.testing.assert_array_equal(obs_bad, obs)
    assert reward_bad == 0.0
    # A reset recovers.
    obs, _ = env.reset()
    np.testing.assert_array_equal(obs, [0.0, 0.0])
    assert env.step(np.ones(1, np.float32))[1] == 1.0


def test_nonfinite_output_raises_when_asked(make_line_model):
    model = make_line_model(nan_when=lambda s, n: n[:, 1] >= 2)
    env = DreamEnv(model, np.zeros((1, 2), np.float32), horizon=10, on_nonfinite="raise")
    env.reset(seed=0)
    env.step(np.ones(1, np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ModelOutputError, match="NaN or infinite"):
            env.step(np.ones(1, np.float32))
