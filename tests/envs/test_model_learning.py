"""ModelLearningWrapper: record every real transition, refit, and dream from real states."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

import mbwrap
from mbwrap import DreamVecEnv, ModelLearningWrapper, ReplayBuffer, TabularModel
from mbwrap.errors import SpaceMismatchError

MAZE_ID = "mbwrap/DynaMaze-v0"


def maze_model(**kwargs) -> TabularModel:
    return TabularModel(spaces.Discrete(54), spaces.Discrete(4), device="cpu", **kwargs)


def run(env: gym.Env, actions, seed: int = 0, reset_every: int | None = None) -> list[tuple]:
    """Step ``env``; reset on episode end and every ``reset_every`` steps. Returns the
    transitions ``(obs, action, reward, next_obs, terminated, truncated)`` and infos."""
    obs, _ = env.reset(seed=seed)
    out = []
    for t, action in enumerate(actions, start=1):
        next_obs, reward, terminated, truncated, info = env.step(action)
        out.append(
            ((int(obs), int(action), float(reward), int(next_obs), terminated, truncated), info)
        )
        obs = next_obs
        if terminated or truncated or (reset_every and t % reset_every == 0):
            obs, _ = env.reset()
    return out


def test_records_every_real_transition_exactly():
    # Walk to the goal once (so a terminal transition is among them), then act at random.
    path = [1, 1, 3, 3, 3, 3, 0, 3, 3, 3, 3, 0, 0, 0]
    actions = path + list(np.random.default_rng(0).integers(0, 4, 186))
    manual = [step for step, _ in run(gym.make(MAZE_ID), actions)]
    wrapped = ModelLearningWrapper(gym.make(MAZE_ID), maze_model(), fit_every=10_000)
    observed = [step for step, _ in run(wrapped, actions)]
    assert observed == manual  # the wrapper does not change the env
    data = wrapped.buffer.transitions()
    recorded = list(
        zip(
            data.obs.tolist(),
            data.action.tolist(),
            data.reward.tolist(),
            data.next_obs.tolist(),
            data.terminated.tolist(),
            data.truncated.tolist(),
            strict=True,
        )
    )
    assert recorded == manual
    assert len(wrapped.buffer) == wrapped.real_steps == 200
    assert manual[13][4] is True and manual[13][3] == 8  # the goal transition is in there


def test_refits_every_fit_every_steps():
    model = maze_model()
    wrapped = ModelLearningWrapper(gym.make(MAZE_ID), model, fit_every=25)
    steps = run(wrapped, np.random.default_rng(1).integers(0, 4, 80), reset_every=30)
    fits = [
        (t, info["model_fit"]) for t, (_, info) in enumerate(steps, start=1) if "model_fit" in info
    ]
    assert [t for t, _ in fits] == [25, 50, 75]
    # Each fit saw every transition recorded so far, and the model holds exactly those.
    assert [metrics["transitions"] for _, metrics in fits] == [25, 50, 75]
    assert wrapped.fit_metrics is fits[-1][1]
    assert int(model.counts.sum()) == 75


def test_fit_on_demand_passes_options_to_the_model():
    wrapped = ModelLearningWrapper(gym.make(MAZE_ID), maze_model(), fit_every=1000)
    run(wrapped, [0, 1, 2, 3])
    assert wrapped.fit()["transitions"] == 4
    with pytest.raises(TypeError, match="no options"):
        wrapped.fit(epochs=3)


def test_sets_the_model_env_id_from_the_spec():
    model = maze_model()
    assert model.env_id is None
    ModelLearningWrapper(gym.make(MAZE_ID), model)
    assert model.env_id == MAZE_ID
    # A model that already names its env keeps that name.
    named = maze_model(env_id="custom/Maze-v0")
    ModelLearningWrapper(gym.make(MAZE_ID), named)
    assert named.env_id == "custom/Maze-v0"
    # An env made without gymnasium.make has no spec: the id stays unset.
    bare = maze_model()
    ModelLearningWrapper(mbwrap.DynaMazeEnv(), bare)
    assert bare.env_id is None


def test_dreams_use_the_registered_fns_after_wrapping():
    wrapped = ModelLearningWrapper(gym.make(MAZE_ID), maze_model(), fit_every=50)
    run(wrapped, np.random.default_rng(0).integers(0, 4, 50))
    assert wrapped.dream(2, horizon=5).core.reward_source == "registered"


def test_reset_ends_the_buffered_episode():
    wrapped = ModelLearningWrapper(gym.make(MAZE_ID), maze_model(), fit_every=10_000)
    steps = run(wrapped, np.random.default_rng(2).integers(0, 4, 60), reset_every=30)
    assert not any(step[4] or step[5] for step, _ in steps)  # only the resets cut episodes
    buffer = wrapped.buffer
    sequences = buffer.sample_sequences(200, 30)  # whole 30-step pieces exist...
    np.testing.assert_array_equal(sequences.next_obs[:, :-1], sequences.obs[:, 1:])
    with pytest.raises(ValueError, match="length"):  # ...but none joins the two episodes
        buffer.sample_sequences(1, 31)


def test_uses_the_given_buffer_and_makes_one_on_the_models_device():
    env = gym.make(MAZE_ID)
    buffer = ReplayBuffer(env.observation_space, env.action_space, 50, device="cpu")
    wrapped = ModelLearningWrapper(env, maze_model(), buffer=buffer)
    run(wrapped, [3, 3])
    assert wrapped.buffer is buffer and len(buffer) == 2
    default = ModelLearningWrapper(gym.make(MAZE_ID), maze_model(), capacity=123)
    assert default.buffer.capacity == 123 and default.buffer.device == default.model.device


def test_dream_starts_from_recorded_states():
    wrapped = ModelLearningWrapper(gym.make(MAZE_ID), maze_model(), fit_every=12)
    run(wrapped, np.random.default_rng(3).integers(0, 4, 12))
    seen = set(wrapped.buffer.transitions().obs.tolist())
    assert len(seen) < 20  # a small corner of the 47 free cells

    venv = wrapped.dream(num_envs=6, horizon=4)
    assert isinstance(venv, DreamVecEnv) and venv.num_envs == 6 and venv.horizon == 4
    assert venv.model is wrapped.model
    obs, _ = venv.reset(seed=0)
    starts = set(obs.tolist())
    rng = np.random.default_rng(0)
    for _ in range(40):
        obs, _, terminated, truncated, _ = venv.step(rng.integers(0, 4, 6))
        starts.update(int(o) for o in obs[terminated | truncated])
    assert starts <= seen
    assert len(starts) > 1


def test_dream_passes_keywords_to_the_vector_env():
    wrapped = ModelLearningWrapper(gym.make(MAZE_ID), maze_model(), fit_every=5)
    run(wrapped, [0, 1, 2, 3, 0])
    venv = wrapped.dream(2, 3, autoreset_mode=AutoresetMode.NEXT_STEP)
    assert venv.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP


def test_space_mismatch_between_env_and_model_is_rejected():
    with pytest.raises(SpaceMismatchError, match=r"model\.observation_space"):
        ModelLearningWrapper(
            gym.make(MAZE_ID),
            TabularModel(spaces.Discrete(10), spaces.Discrete(4), device="cpu"),
        )
    with pytest.raises(SpaceMismatchError, match=r"model\.action_space"):
        ModelLearningWrapper(
            gym.make(MAZE_ID),
            TabularModel(spaces.Discrete(54), spaces.Discrete(5), device="cpu"),
        )


def test_space_mismatch_between_env_and_buffer_is_rejected():
    buffer = ReplayBuffer(spaces.Discrete(54), spaces.Discrete(3), 10, device="cpu")
    with pytest.raises(SpaceMismatchError, match=r"buffer\.action_space"):
        ModelLearningWrapper(gym.make(MAZE_ID), maze_model(), buffer=buffer)


@pytest.mark.parametrize(("kwargs", "argument"), [({"fit_every": 0}, "fit_every")])
def test_bad_arguments_are_rejected(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        ModelLearningWrapper(gym.make(MAZE_ID), maze_model(), **kwargs)


def test_a_model_that_is_not_a_world_model_is_rejected():
    with pytest.raises(TypeError, match="model"):
        ModelLearningWrapper(gym.make(MAZE_ID), object())
