"""DreamVecEnv: a world model as a gymnasium VectorEnv stepped in one batched call."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv
from gymnasium.vector.utils import batch_space

import mbwrap
from mbwrap import DreamEnv, DreamVecEnv
from mbwrap.device import force_accelerator_paths
from mbwrap.errors import ModelOutputError, NonFiniteModelWarning, SpaceMismatchError
from mbwrap.types import ModelStep

MAZE_ID = "mbwrap/DynaMaze-v0"
ZERO = np.zeros((1, 2), np.float32)


def line_actions(*moves: float) -> np.ndarray:
    """One action per env: ``[N, 1]`` float32."""
    return np.array(moves, np.float32)[:, None]


def spaced_starts(n: int, generator: torch.Generator) -> torch.Tensor:
    """The k-th start of a call is ``[10 k, 0]``: on the first reset env i starts at 10 i."""
    return torch.stack([torch.arange(n) * 10.0, torch.zeros(n)], -1)


# ---------------------------------------------------------------- construction
def test_spaces_are_batched_forms_of_the_models(make_line_model, maze_model, maze_buffer):
    model = make_line_model()
    venv = DreamVecEnv(model, 3, ZERO, horizon=4)
    assert isinstance(venv, VectorEnv) and venv.num_envs == 3
    assert venv.single_observation_space == model.observation_space
    assert venv.single_action_space == model.action_space
    assert venv.observation_space == batch_space(model.observation_space, 3)
    assert venv.observation_space.shape == (3, 2) and venv.action_space.shape == (3, 1)
    maze = DreamVecEnv(maze_model, 5, maze_buffer, horizon=4)
    assert maze.observation_space == spaces.MultiDiscrete([54] * 5)
    assert maze.action_space == spaces.MultiDiscrete([4] * 5)
    obs, info = maze.reset(seed=0)
    assert maze.observation_space.contains(obs) and info == {}
    obs, reward, terminated, truncated, _ = maze.step(maze.action_space.sample())
    assert maze.observation_space.contains(obs)
    assert reward.shape == (5,) and reward.dtype == np.float64
    assert terminated.dtype == np.bool_ and truncated.dtype == np.bool_


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (None, AutoresetMode.SAME_STEP),
        (AutoresetMode.SAME_STEP, AutoresetMode.SAME_STEP),
        (AutoresetMode.NEXT_STEP, AutoresetMode.NEXT_STEP),
        ("NextStep", AutoresetMode.NEXT_STEP),
    ],
)
def test_autoreset_mode_is_declared_in_metadata(make_line_model, mode, expected):
    kwargs = {} if mode is None else {"autoreset_mode": mode}
    venv = DreamVecEnv(make_line_model(), 2, ZERO, horizon=4, **kwargs)
    assert venv.metadata["autoreset_mode"] is expected
    assert venv.autoreset_mode is expected


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"num_envs": 0}, "num_envs"),
        ({"num_envs": 2.0}, "num_envs"),
        ({"horizon": 0}, "horizon"),
        ({"autoreset_mode": AutoresetMode.DISABLED}, "autoreset_mode"),
        ({"autoreset_mode": "sometimes"}, "autoreset_mode"),
        ({"on_nonfinite": "ignore"}, "on_nonfinite"),
        ({"start_states": np.zeros((2, 5), np.float32)}, "start_states"),
    ],
)
def test_bad_arguments_are_rejected(make_line_model, kwargs, argument):
    args = {"num_envs": 2, "start_states": ZERO, "horizon": 3, **kwargs}
    with pytest.raises(ValueError, match=argument):
        DreamVecEnv(make_line_model(), **args)


def test_model_must_be_a_world_model():
    with pytest.raises(TypeError, match="model"):
        DreamVecEnv(torch.nn.Linear(2, 2), 2, ZERO, horizon=3)


def test_step_before_reset_raises(make_line_model):
    venv = DreamVecEnv(make_line_model(), 2, ZERO, horizon=3)
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(line_actions(0, 0))


def test_action_batch_of_the_wrong_size_is_rejected(make_line_model):
    venv = DreamVecEnv(make_line_model(), 3, ZERO, horizon=3)
    venv.reset(seed=0)
    with pytest.raises(SpaceMismatchError, match="action"):
        venv.step(line_actions(0, 0))


# ---------------------------------------------------------------- batching
@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP])
def test_one_batched_model_call_per_step(make_line_model, mode):
    model = make_line_model(goal=1.5)
    venv = DreamVecEnv(model, 8, ZERO, horizon=4, autoreset_mode=mode)
    venv.reset(seed=0)
    assert model.calls == 0
    rng = np.random.default_rng(0)
    ended = 0
    for step in range(1, 21):
        _, _, terminated, truncated, _ = venv.step(rng.uniform(-1, 1, (8, 1)).astype(np.float32))
        ended += int((terminated | truncated).sum())
        assert model.calls == step
    assert model.batch_sizes == [8] * 20
    assert ended > 8  # resets happened in between and cost no extra model call


# ---------------------------------------------------------------- autoreset semantics
def test_same_step_autoreset(make_line_model):
    # env 0 moves +1 (terminates at step 3), env 1 stays (truncated at 5), env 2 moves
    # +0.5 (reaches the goal on the horizon step 5: both flags).
    venv = DreamVecEnv(make_line_model(goal=2.5), 3, ZERO, horizon=5)
    venv.reset(seed=0)
    actions = line_actions(1.0, 0.0, 0.5)
    for _ in range(2):
        _, _, terminated, truncated, info = venv.step(actions)
        assert not terminated.any() and not truncated.any() and "final_obs" not in info
    obs, reward, terminated, truncated, info = venv.step(actions)
    assert terminated.tolist() == [True, False, False] and not truncated.any()
    np.testing.assert_array_equal(obs[0], [0.0, 0.0])  # already the next episode's start
    np.testing.assert_array_equal(reward, [3.0, 0.0, 1.5])  # the ending step's reward
    assert info["_final_obs"].tolist() == [True, False, False]
    np.testing.assert_array_equal(info["final_obs"][0], [3.0, 3.0])
    assert info["final_obs"][1] is None and info["final_obs"][2] is None
    assert info["_final_info"].tolist() == [True, False, False]
    venv.step(actions)
    obs, reward, terminated, truncated, info = venv.step(actions)  # step 5
    assert terminated.tolist() == [False, False, True]
    assert truncated.tolist() == [False, True, True]
    assert info["_final_obs"].tolist() == [False, True, True]
    np.testing.assert_array_equal(info["final_obs"][1], [0.0, 5.0])
    np.testing.assert_array_equal(info["final_obs"][2], [2.5, 5.0])
    np.testing.assert_array_equal(obs[1:], [[0.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(obs[0], [2.0, 2.0])  # env 0: step 2 of its 2nd episode


def test_next_step_autoreset(make_line_model):
    venv = DreamVecEnv(
        make_line_model(goal=2.5), 2, ZERO, horizon=10, autoreset_mode=AutoresetMode.NEXT_STEP
    )
    venv.reset(seed=0)
    actions = line_actions(1.0, 0.25)
    for _ in range(2):
        venv.step(actions)
    obs, reward, terminated, truncated, info = venv.step(actions)
    assert terminated.tolist() == [True, False] and not truncated.any()
    np.testing.assert_array_equal(obs[0], [3.0, 3.0])  # the last observation itself
    assert reward[0] == 3.0 and "final_obs" not in info
    # The next step restarts env 0 (its action ignored) and steps env 1 as usual.
    obs, reward, terminated, truncated, info = venv.step(line_actions(-1.0, 0.25))
    np.testing.assert_array_equal(obs, [[0.0, 0.0], [1.0, 4.0]])
    assert reward.tolist() == [0.0, 1.0]
    assert not terminated.any() and not truncated.any() and info == {}
    # Env 0's new episode counts from the reset: it terminates after 3 more moves.
    flags = [venv.step(actions)[2][0] for _ in range(3)]
    assert flags == [False, False, True]


def test_per_env_horizon_counters_are_independent(make_line_model):
    horizon = 5
    venv = DreamVecEnv(make_line_model(goal=2.5), 3, ZERO, horizon=horizon)
    venv.reset(seed=0)
    actions = line_actions(1.0, 0.0, -1.0)  # env 0 ends every 3 steps, 1 and 2 never reach
    since_reset = np.zeros(3, dtype=int)
    truncations = []
    for _ in range(20):
        _, _, terminated, truncated, _ = venv.step(actions)
        since_reset += 1
        assert truncated.tolist() == (since_reset == horizon).tolist()
        assert terminated.tolist() == [since_reset[0] == 3, False, False]
        truncations.append(truncated.tolist())
        since_reset[terminated | truncated] = 0
    # Env 0's frequent resets did not disturb the others' counters.
    assert [i + 1 for i, t in enumerate(truncations) if t[1]] == [5, 10, 15, 20]
    assert not any(t[0] for t in truncations)


# ---------------------------------------------------------------- against SyncVectorEnv
def _compare_with_sync(make_model, start, horizon, mode, actions):
    model = make_model()
    n = actions.shape[1]
    ours = DreamVecEnv(model, n, start, horizon=horizon, autoreset_mode=mode)
    ref = SyncVectorEnv(
        [lambda: DreamEnv(model, start, horizon=horizon) for _ in range(n)], autoreset_mode=mode
    )
    assert ours.observation_space == ref.observation_space
    assert ours.action_space == ref.action_space
    np.testing.assert_array_equal(ours.reset(seed=0)[0], ref.reset(seed=0)[0])
    ends = terminations = 0
    for action in actions:
        got, want = ours.step(action), ref.step(action)
        for a, b in zip(got[:4], want[:4], strict=True):
            np.testing.assert_array_equal(a, b)
            assert a.dtype == b.dtype
        if mode == AutoresetMode.SAME_STEP:
            gi, wi = got[4], want[4]
            np.testing.assert_array_equal(gi.get("_final_obs", False), wi.get("_final_obs", False))
            np.testing.assert_array_equal(
                gi.get("_final_info", False), wi.get("_final_info", False)
            )
            for i in np.flatnonzero(wi.get("_final_obs", [])):
                np.testing.assert_array_equal(gi["final_obs"][i], wi["final_obs"][i])
        ends += int((got[2] | got[3]).sum())
        terminations += int(got[2].sum())
    return ends, terminations


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP])
def test_matches_sync_vector_env_on_a_box_model(make_line_model, mode):
    actions = np.random.default_rng(1).uniform(-1, 1, (80, 4, 1)).astype(np.float32)
    ends, terminations = _compare_with_sync(
        lambda: make_line_model(goal=1.5), ZERO, 6, mode, actions
    )
    assert terminations > 5 and ends > terminations  # both kinds of episode end occurred


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP])
def test_matches_sync_vector_env_on_the_maze(make_maze_oracle, mode):
    # Start one cell below the goal; the registered fns decide reward and termination.
    actions = np.random.default_rng(2).integers(0, 4, (80, 3))
    ends, terminations = _compare_with_sync(
        lambda: make_maze_oracle(env_id=MAZE_ID), np.array([17]), 8, mode, actions
    )
    assert terminations > 5 and ends > terminations


# ---------------------------------------------------------------- seeding
def _rollout(venv, seed, steps=40):
    obs, _ = venv.reset(seed=seed)
    out = [obs.tolist()]
    rng = np.random.default_rng(0)
    for _ in range(steps):
        obs, reward, terminated, truncated, info = venv.step(rng.integers(0, 4, venv.num_envs))
        finals = [None if f is None else int(f) for f in info.get("final_obs", [])]
        out.append((obs.tolist(), reward.tolist(), terminated.tolist(), truncated.tolist(), finals))
    return out


def test_seeding_is_reproducible(maze_model, maze_buffer):
    venv = DreamVecEnv(maze_model, 4, maze_buffer, horizon=6)
    first = _rollout(venv, 3)
    assert _rollout(venv, 3) == first
    assert _rollout(DreamVecEnv(maze_model, 4, maze_buffer, horizon=6), 3) == first
    assert _rollout(venv, [3, None, 7]) == first  # a list seeds with its first entry
    assert _rollout(venv, 4) != first
    # Unseeded resets continue the seeded stream.
    venv.reset(seed=9)
    a = _rollout(venv, None)
    venv.reset(seed=9)
    assert _rollout(venv, None) == a


# ---------------------------------------------------------------- non-finite model outputs
def _nan_in_env_2(state, next_state):
    return (state[:, 0] >= 20) & (state[:, 0] < 30) & (next_state[:, 1] >= 2)


def test_nonfinite_output_truncates_only_that_env_same_step(make_line_model):
    venv = DreamVecEnv(make_line_model(nan_when=_nan_in_env_2), 4, spaced_starts, horizon=10)
    np.testing.assert_array_equal(venv.reset(seed=0)[0][:, 0], [0, 10, 20, 30])
    venv.step(line_actions(1, 1, 1, 1))
    with pytest.warns(NonFiniteModelWarning, match="1 of 4"):
        obs, reward, terminated, truncated, info = venv.step(line_actions(1, 1, 1, 1))
    assert truncated.tolist() == [False, False, True, False] and not terminated.any()
    assert np.all(np.isfinite(obs)) and np.all(np.isfinite(reward))
    np.testing.assert_array_equal(reward, [2.0, 12.0, 0.0, 32.0])
    assert info["model_nonfinite"].tolist() == [False, False, True, False]
    assert info["_model_nonfinite"].tolist() == [False, False, True, False]
    assert info["final_info"]["model_nonfinite"].tolist() == [False, False, True, False]
    assert info["_final_obs"].tolist() == [False, False, True, False]
    np.testing.assert_array_equal(info["final_obs"][2], [21.0, 1.0])  # last finite obs
    np.testing.assert_array_equal(obs, [[2, 2], [12, 2], [0, 0], [32, 2]])  # env 2 restarted
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        obs, *_ = venv.step(line_actions(1, 1, 1, 1))
    np.testing.assert_array_equal(obs, [[3, 3], [13, 3], [1, 1], [33, 3]])


def test_nonfinite_output_truncates_only_that_env_next_step(make_line_model):
    venv = DreamVecEnv(
        make_line_model(nan_when=_nan_in_env_2),
        4,
        spaced_starts,
        horizon=10,
        autoreset_mode=AutoresetMode.NEXT_STEP,
    )
    venv.reset(seed=0)
    venv.step(line_actions(1, 1, 1, 1))
    with pytest.warns(NonFiniteModelWarning):
        obs, reward, terminated, truncated, info = venv.step(line_actions(1, 1, 1, 1))
    assert truncated.tolist() == [False, False, True, False]
    assert info["model_nonfinite"].tolist() == [False, False, True, False]
    np.testing.assert_array_equal(obs, [[2, 2], [12, 2], [21, 1], [32, 2]])
    # The restart step discards env 2's model output (NaN again from its stale state):
    # no warning and no flag for an env that is only being reset.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        obs, reward, terminated, truncated, info = venv.step(line_actions(1, 1, 1, 1))
    assert info == {}
    np.testing.assert_array_equal(obs, [[3, 3], [13, 3], [0, 0], [33, 3]])
    assert reward.tolist() == [3.0, 13.0, 0.0, 33.0]
    assert not truncated.any() and not terminated.any()


def test_nonfinite_output_raises_when_asked(make_line_model):
    venv = DreamVecEnv(
        make_line_model(nan_when=_nan_in_env_2), 4, spaced_starts, horizon=10, on_nonfinite="raise"
    )
    venv.reset(seed=0)
    venv.step(line_actions(1, 1, 1, 1))
    with pytest.raises(ModelOutputError):
        venv.step(line_actions(1, 1, 1, 1))


# ---------------------------------------------------------------- the accelerator's paths
def _steps_taken(venv: DreamVecEnv, actions: list[np.ndarray], seed: int) -> list:
    """Everything ``reset`` and each ``step`` return, with the warnings they give."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out: list = [venv.reset(seed=seed)]
        out += [venv.step(action) for action in actions]
    return [out, [str(w.message) for w in caught]]


def _assert_same(a, b) -> None:
    """Equal nested outputs: arrays of equal dtype and values (NaN equal to NaN)."""
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        if a.dtype == object:
            _assert_same(list(a), list(b))
        else:
            np.testing.assert_array_equal(a, b)
    else:
        assert a == b or (a != a and b != b)


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP])
def test_accelerator_paths_step_the_same_episodes_as_the_cpu(make_line_model, mode):
    """Forced on the CPU, the accelerator's paths (the step's outputs brought to the host as
    one packed copy, non-finite rows masked without a test) return exactly what the CPU's
    paths do, through non-finite outputs, terminations and restarts."""
    rng = np.random.default_rng(0)
    actions = [rng.uniform(-1, 1, (4, 1)).astype(np.float32) for _ in range(12)]

    def run(forced: bool) -> list:
        model = make_line_model(goal=25.0, nan_when=_nan_in_env_2)
        venv = DreamVecEnv(model, 4, spaced_starts, horizon=5, autoreset_mode=mode)
        with force_accelerator_paths(forced):
            return _steps_taken(venv, actions, seed=0)

    cpu, accelerator = run(False), run(True)
    assert any("model_nonfinite" in info for *_, info in cpu[0][1:])
    assert any(step[2].any() for step in cpu[0][1:])  # some episode reached the goal
    _assert_same(cpu, accelerator)


def test_accelerator_paths_step_the_same_maze_as_the_cpu(maze_model, maze_buffer):
    venv_actions = [np.random.default_rng(t).integers(0, 4, 8) for t in range(30)]

    def run(forced: bool) -> list:
        venv = DreamVecEnv(maze_model, 8, maze_buffer, horizon=6)
        with force_accelerator_paths(forced):
            return _steps_taken(venv, venv_actions, seed=3)

    _assert_same(run(False), run(True))


class _MemberModel(mbwrap.WorldModel):
    """Each trajectory adds its member's index every step (TS-inf bookkeeping check)."""

    def __init__(self, observation_space, action_space, *, env_id=None, device="cpu"):
        super().__init__(observation_space, action_space, env_id=env_id, device=device)
        self.calls = 0

    def fit(self, buffer, **kwargs):
        return {}

    def get_config(self):
        return {}

    def sample_members(self, n, generator=None):
        self.calls += 1
        return torch.randint(1, 8, (n,), device=self.device, generator=generator)

    def step(self, state, action, *, generator=None, member=None):
        assert member is not None and member.shape == (state.shape[0],)
        next_state = state + member.float().unsqueeze(-1)
        return ModelStep(next_state, torch.zeros(state.shape[0]), torch.zeros(state.shape[0]))


def test_member_per_trajectory_is_kept_and_resampled_on_reset():
    space = gym.spaces.Box(-1e6, 1e6, (1,), np.float32)
    model = _MemberModel(space, gym.spaces.Discrete(2))
    venv = mbwrap.DreamVecEnv(model, 6, start_states=np.zeros((1, 1), np.float32), horizon=3)
    venv.reset(seed=0)
    step1 = venv.step(np.zeros(6, dtype=np.int64))[0][:, 0]
    step2 = venv.step(np.zeros(6, dtype=np.int64))[0][:, 0]
    # Same member both steps: the second increment equals the first.
    np.testing.assert_array_equal(step2, 2 * step1)
    assert set(step1) <= set(range(1, 8)) and len(set(step1)) > 1
    _, _, _, truncated, info = venv.step(np.zeros(6, dtype=np.int64))
    assert truncated.all() and model.calls == 2  # one draw at reset, one for the restarts
    np.testing.assert_array_equal(np.stack(info["final_obs"])[:, 0], 3 * step1)


def test_fixed_member_is_used_by_every_episode():
    space = gym.spaces.Box(-1e6, 1e6, (1,), np.float32)
    model = _MemberModel(space, gym.spaces.Discrete(2))
    venv = mbwrap.DreamVecEnv(
        model, 4, start_states=np.zeros((1, 1), np.float32), horizon=2, member=5
    )
    venv.reset(seed=0)
    obs = venv.step(np.zeros(4, dtype=np.int64))[0]
    np.testing.assert_array_equal(obs[:, 0], 5.0)
    venv.step(np.zeros(4, dtype=np.int64))  # ends and restarts every episode
    np.testing.assert_array_equal(venv.step(np.zeros(4, dtype=np.int64))[0][:, 0], 5.0)
    assert model.calls == 0
    with pytest.raises(ValueError, match="member"):
        mbwrap.DreamVecEnv(
            model, 2, start_states=np.zeros((1, 1), np.float32), horizon=2, member=-1
        )
