"""A catalogue of bad inputs: each gets an error that names the argument (or, where the
README promises it, a truncated imagined episode with ``info["model_nonfinite"]`` and a
warning), and nothing wrong reaches the agent.

This file holds the imagination environments and the replay buffer; the same catalogue
goes on in ``test_bad_inputs_models.py`` (image encoders, planners, search),
``test_bad_inputs_agents.py`` (agents by name, MBPO, action masks) and
``test_bad_inputs_spaces_and_checkpoints.py`` (unsupported spaces in ``make_algo``, the
tabular model, Dyna-Q and checkpoints whose metadata disagrees with their tensors).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces

import mbwrap
from mbwrap.errors import ModelOutputError, NonFiniteModelWarning, SpaceMismatchError
from mbwrap.models import WorldModel
from mbwrap.types import ModelStep


class ScriptedModel(WorldModel):
    """``state + action`` (summed over the action) with a termination probability and
    reward a test sets; records the actions it was given."""

    def __init__(self, action_space: spaces.Space, *, prob: float = 0.0) -> None:
        super().__init__(spaces.Box(-10, 10, (2,), np.float32), action_space, device="cpu")
        self.prob = prob
        self.actions: list[torch.Tensor] = []

    def fit(self, buffer: Any, **kwargs: Any) -> dict[str, Any]:
        return {}

    def get_config(self) -> dict[str, Any]:
        return {}

    def step(self, state, action, *, generator=None, member=None) -> ModelStep:
        self.actions.append(action.clone())
        move = action.reshape(state.shape[0], -1).float().sum(-1, keepdim=True)
        batch = state.shape[0]
        return ModelStep(
            next_state=state + move,
            reward=torch.zeros(batch),
            terminated=torch.full((batch,), self.prob),
        )


STARTS = np.zeros((4, 2), np.float32)


# ---------------------------------------------------------------------- actions


@pytest.mark.parametrize("action", [-1, 3], ids=["minus-one", "n"])
def test_dream_env_discrete_action_outside_the_space_is_an_error_naming_action(action):
    model = ScriptedModel(spaces.Discrete(3))
    env = mbwrap.DreamEnv(model, STARTS, horizon=5)
    env.reset(seed=0)
    with pytest.raises(SpaceMismatchError, match=r"^action: .*outside Discrete\(3\)"):
        env.step(action)
    assert model.actions == []  # nothing reached the model


def test_dream_vec_env_multi_discrete_action_outside_the_space_is_an_error_naming_action():
    model = ScriptedModel(spaces.MultiDiscrete([2, 3], start=[1, 0]))
    venv = mbwrap.DreamVecEnv(model, 2, STARTS, horizon=5)
    venv.reset(seed=0)
    with pytest.raises(SpaceMismatchError, match=r"^action: 1 action\(s\) lie outside .*row 1"):
        venv.step(np.array([[1, 0], [0, 2]]))
    venv.step(np.array([[1, 0], [2, 2]]))  # in the space: fine


def test_box_actions_beyond_their_bounds_are_clipped_with_one_warning():
    model = ScriptedModel(spaces.Box(-1, 1, (1,), np.float32))
    venv = mbwrap.DreamVecEnv(model, 2, STARTS, horizon=5)
    venv.reset(seed=0)
    with pytest.warns(UserWarning, match=r"^action: 2 value\(s\) lie outside .*clipped"):
        obs, *_ = venv.step(np.array([[5.0], [-3.0]], np.float32))
    assert model.actions[-1].reshape(-1).tolist() == [1.0, -1.0]
    assert obs[:, 0].tolist() == [1.0, -1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the warning is shown once
        venv.step(np.array([[7.0], [0.5]], np.float32))
    assert model.actions[-1].reshape(-1).tolist() == [1.0, 0.5]


def test_a_string_action_is_an_error_naming_action():
    env = mbwrap.DreamEnv(ScriptedModel(spaces.Discrete(3)), STARTS, horizon=5)
    env.reset(seed=0)
    with pytest.raises(SpaceMismatchError, match=r"^action: expected numbers"):
        env.step("left")


# ---------------------------------------------------------------------- non-finite


def test_a_nan_termination_probability_truncates_with_model_nonfinite():
    model = ScriptedModel(spaces.Discrete(3), prob=float("nan"))
    env = mbwrap.DreamEnv(model, STARTS, horizon=5)
    env.reset(seed=0)
    with pytest.warns(NonFiniteModelWarning, match="1 of 1 imagined episodes"):
        obs, reward, terminated, truncated, info = env.step(1)
    assert truncated and not terminated and info == {"model_nonfinite": True}
    assert reward == 0.0 and obs.tolist() == [0.0, 0.0]  # the last good observation
    strict = mbwrap.DreamEnv(model, STARTS, horizon=5, on_nonfinite="raise")
    strict.reset(seed=0)
    with pytest.raises(ModelOutputError, match="NaN or infinite"):
        strict.step(1)


def test_nan_start_states_from_a_callable_are_drawn_again_with_a_warning():
    calls = []

    def starts(n: int, generator: torch.Generator) -> torch.Tensor:
        calls.append(n)
        out = torch.zeros(n, 2)
        if len(calls) == 1:
            out[0, 1] = float("nan")  # the first draw holds one broken row
        return out

    venv = mbwrap.DreamVecEnv(ScriptedModel(spaces.Discrete(3)), 3, starts, horizon=5)
    with pytest.warns(NonFiniteModelWarning, match=r"^start_states: 1 of 3 start states"):
        obs, _ = venv.reset(seed=0)
    assert np.isfinite(obs).all() and calls == [3, 1]
    strict = mbwrap.DreamVecEnv(
        ScriptedModel(spaces.Discrete(3)),
        3,
        lambda n, g: torch.full((n, 2), float("nan")),
        horizon=5,
        on_nonfinite="raise",
    )
    with pytest.raises(ModelOutputError, match=r"^start_states: 3 of 3"):
        strict.reset(seed=0)


def test_start_states_that_stay_nan_are_an_error_naming_start_states():
    env = mbwrap.DreamEnv(
        ScriptedModel(spaces.Discrete(3)), lambda n, g: torch.full((n, 2), float("inf")), 5
    )
    with pytest.warns(NonFiniteModelWarning), pytest.raises(ValueError, match=r"^start_states:"):
        env.reset(seed=0)


def test_a_buffer_holding_nan_observations_never_starts_an_episode_there():
    model = ScriptedModel(spaces.Discrete(3))
    buffer = mbwrap.ReplayBuffer(model.observation_space, model.action_space, 8, device="cpu")
    buffer.add([float("nan"), 0.0], 0, 0.0, [0.0, 0.0], False, False)
    buffer.add([1.0, 1.0], 0, 0.0, [1.0, 1.0], False, False)
    venv = mbwrap.DreamVecEnv(model, 16, buffer, horizon=5)
    with pytest.warns(NonFiniteModelWarning, match=r"^start_states:"):
        obs, _ = venv.reset(seed=0)
    assert np.isfinite(obs).all()


def test_an_array_of_start_states_holding_nan_is_an_error_naming_start_states():
    starts = STARTS.copy()
    starts[2, 0] = np.nan
    with pytest.raises(ValueError, match=r"^start_states: 1 of 4 .*row 2"):
        mbwrap.DreamEnv(ScriptedModel(spaces.Discrete(3)), starts, horizon=5)


# ---------------------------------------------------------------------- replay buffer


def test_replay_buffer_add_rejects_an_observation_outside_a_discrete_space():
    buffer = mbwrap.ReplayBuffer(spaces.Discrete(5, start=2), spaces.Discrete(2), 4, device="cpu")
    with pytest.raises(SpaceMismatchError, match=r"^obs: .*outside Discrete\(5, start=2\)"):
        buffer.add(1, 0, 0.0, 3, False, False)
    buffer.add(2, 0, 0.0, 6, False, False)
    assert len(buffer) == 1


@pytest.mark.parametrize("bad", ["three", np.array([object()])], ids=["string", "object"])
def test_replay_buffer_add_rejects_strings_and_objects_naming_the_argument(bad):
    buffer = mbwrap.ReplayBuffer(spaces.Discrete(5), spaces.Discrete(2), 4, device="cpu")
    with pytest.raises(SpaceMismatchError, match=r"^next_obs: expected numbers"):
        buffer.add(1, 0, 0.0, bad, False, False)


def test_a_replay_buffer_checkpoint_with_an_absurd_capacity_is_a_checkpoint_error(tmp_path):
    buffer = mbwrap.ReplayBuffer(spaces.Discrete(5), spaces.Discrete(2), 4, device="cpu")
    buffer.add(1, 0, 0.0, 2, False, False)
    buffer.save(tmp_path / "buffer.pt")
    metadata, tensors = mbwrap.checkpoint.load_checkpoint(
        tmp_path / "buffer.pt", kind="mbwrap.replay_buffer"
    )
    metadata["capacity"] = 10**15
    mbwrap.checkpoint.save_checkpoint(
        tmp_path / "bad.pt", kind="mbwrap.replay_buffer", metadata=metadata, tensors=tensors
    )
    with pytest.raises(mbwrap.errors.CheckpointError, match="capacity"):
        mbwrap.ReplayBuffer.load(tmp_path / "bad.pt")


def test_a_replay_buffer_state_with_a_position_beyond_its_rows_is_refused():
    buffer = mbwrap.ReplayBuffer(spaces.Discrete(5), spaces.Discrete(2), 4, device="cpu")
    buffer.add(1, 0, 0.0, 2, False, False)
    state = buffer.state_dict()
    state["pos"] = 9
    with pytest.raises(ValueError, match=r"^state\['pos'\]"):
        mbwrap.ReplayBuffer(
            spaces.Discrete(5), spaces.Discrete(2), 4, device="cpu"
        ).load_state_dict(state)
