"""Bad inputs to the agents by name, MBPO and action masks: each is refused with mbwrap's
error type (or the builtin one the caller would catch) and a message that names the
argument."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import sb3_contrib
import torch
from gymnasium import spaces
from stable_baselines3 import PPO

import mbwrap
from mbwrap import DreamEnv, DreamVecEnv
from mbwrap.algos import MBPO, Dyna
from mbwrap.algos.agents import default_policy
from mbwrap.envs.fns import EnvFns
from mbwrap.errors import PluginTypeError, SpaceMismatchError, UnsupportedSpaceError
from mbwrap.registry import _check_fn

OBS = spaces.Box(-5.0, 5.0, (2,), np.float32)
STARTS = np.zeros((3, 2), np.float32)


def _model(action_space: spaces.Space) -> mbwrap.models.WorldModel:
    return mbwrap.make_model("linear", OBS, action_space, device="cpu")


def _dream(action_mask_fn: Any, n: int = 2) -> DreamVecEnv:
    venv = DreamVecEnv(
        _model(spaces.Discrete(3)), n, STARTS, horizon=5, action_mask_fn=action_mask_fn
    )
    venv.reset(seed=0)
    return venv


class _MultiDiscreteActions(gym.Env):
    """A 1-D env acted on by a MultiDiscrete action (never stepped)."""

    observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = spaces.MultiDiscrete([2, 2])

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        return np.zeros(1, np.float32), 0.0, False, False, {}


# ---------------------------------------------------------------------- agents by name
def test_an_unknown_agent_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"agent: no SB3 algorithm named 'MaskedPPO'.*MaskablePPO"):
        Dyna(gym.make("CartPole-v1"), "MaskedPPO", "linear")


@pytest.mark.parametrize(
    ("env_id", "agent", "takes"),
    [
        ("CartPole-v1", "SAC", "Box"),
        ("CartPole-v1", "CrossQ", "Box"),
        ("Pendulum-v1", "DQN", "Discrete"),
        ("Pendulum-v1", "QRDQN", "Discrete"),
        ("Pendulum-v1", "MaskablePPO", "Discrete or MultiDiscrete or MultiBinary"),
    ],
)
def test_an_agent_that_cannot_act_in_the_action_space_is_named(env_id, agent, takes):
    with pytest.raises(UnsupportedSpaceError, match=rf"agent: {agent} takes {takes} actions"):
        Dyna(gym.make(env_id), agent, "linear", device="cpu")


def test_ars_takes_no_multi_discrete_actions():
    with pytest.raises(UnsupportedSpaceError, match="agent: ARS takes Box or Discrete actions"):
        Dyna(_MultiDiscreteActions(), "ARS", "linear", device="cpu")


def test_a_policy_the_agent_does_not_have_names_agent_kwargs_policy():
    with pytest.raises(ValueError, match=r"agent_kwargs\['policy'\]: RecurrentPPO.*MlpLstmPolicy"):
        Dyna(
            gym.make("CartPole-v1"),
            "RecurrentPPO",
            "linear",
            agent_kwargs={"policy": "MlpPolicy"},
            device="cpu",
        )


def test_observations_no_policy_of_the_agent_reads_name_the_agent():
    goal = spaces.Dict({"observation": OBS, "desired_goal": OBS})
    with pytest.raises(UnsupportedSpaceError, match="agent: ARS has no MultiInput policy"):
        default_policy(sb3_contrib.ARS, goal)
    with pytest.raises(UnsupportedSpaceError, match="agent: CrossQ has no MultiInput policy"):
        default_policy(sb3_contrib.CrossQ, goal)
    with pytest.raises(UnsupportedSpaceError, match="agent: SB3 agents take"):
        default_policy(PPO, spaces.Tuple((OBS, OBS)))
    with pytest.raises(UnsupportedSpaceError, match="agent: SB3 agents take"):
        default_policy(PPO, spaces.Dict({"inner": goal}))


# ---------------------------------------------------------------------- MBPO
def test_mbpo_refuses_action_spaces_no_off_policy_agent_takes():
    with pytest.raises(
        UnsupportedSpaceError,
        match=r"env\.action_space: MBPO takes these action spaces: bounded Box, Discrete",
    ):
        MBPO(_MultiDiscreteActions(), "SAC", "linear", device="cpu")


def test_mbpo_names_an_agent_for_the_other_kind_of_actions():
    with pytest.raises(UnsupportedSpaceError, match="agent: SAC takes Box actions"):
        MBPO(gym.make("CartPole-v1"), "SAC", "linear", device="cpu")
    with pytest.raises(UnsupportedSpaceError, match="agent: DQN takes Discrete actions"):
        MBPO(gym.make("Pendulum-v1"), "DQN", "linear", device="cpu")
    with pytest.raises(TypeError, match="agent: MBPO trains its agent from a replay buffer"):
        MBPO(gym.make("CartPole-v1"), "MaskablePPO", "linear", device="cpu")


# ---------------------------------------------------------------------- action masks
def test_an_action_mask_fn_of_the_wrong_shape_is_named():
    venv = _dream(lambda obs: torch.ones(obs.shape[0], 2, dtype=torch.bool))
    with pytest.raises(SpaceMismatchError, match=r"action_mask_fn: expected a \[2, 3\] bool mask"):
        venv.action_masks()
    venv = _dream(lambda obs: torch.ones(3, dtype=torch.bool))
    with pytest.raises(SpaceMismatchError, match=r"action_mask_fn: .*got shape \(3,\)"):
        venv.action_masks()


def test_an_action_mask_fn_that_is_not_a_mask_is_named():
    venv = _dream(lambda obs: torch.full((obs.shape[0], 3), 0.5))
    with pytest.raises(SpaceMismatchError, match="action_mask_fn: expected a bool"):
        venv.action_masks()
    venv = _dream(lambda obs: "all")
    with pytest.raises(SpaceMismatchError, match="action_mask_fn: expected a"):
        venv.action_masks()


def test_a_mask_that_leaves_no_valid_action_is_named():
    def none_in_row_1(obs):
        mask = torch.ones(obs.shape[0], 3, dtype=torch.bool)
        mask[1] = False
        return mask

    with pytest.raises(ValueError, match="action_mask_fn: 1 of 2 masks leave an action with no"):
        _dream(none_in_row_1).action_masks()
    # Per dimension for MultiDiscrete: here the second dimension has none.
    venv = DreamVecEnv(
        _model(spaces.MultiDiscrete([2, 2])),
        1,
        STARTS,
        horizon=5,
        action_mask_fn=lambda obs: torch.tensor([[True, True, False, False]]),
    )
    venv.reset(seed=0)
    with pytest.raises(ValueError, match=r"action_mask_fn: 1 of 1 masks.*row 0"):
        venv.action_masks()


def test_an_action_mask_fn_must_be_callable():
    with pytest.raises(TypeError, match="action_mask_fn: expected a batched callable"):
        DreamVecEnv(_model(spaces.Discrete(3)), 2, STARTS, horizon=5, action_mask_fn=[True])
    with pytest.raises(TypeError, match="action_mask_fn: expected a batched callable"):
        Dyna(gym.make("CartPole-v1"), "MaskablePPO", "linear", action_mask_fn="no", device="cpu")


def test_continuous_actions_have_no_masks():
    box = _model(spaces.Box(-1.0, 1.0, (1,)))
    with pytest.raises(UnsupportedSpaceError, match="action_mask_fn: action_space: action masks"):
        DreamEnv(box, STARTS, horizon=5, action_mask_fn=lambda obs: obs)
    env = DreamEnv(box, STARTS, horizon=5)
    env.reset(seed=0)
    with pytest.raises(UnsupportedSpaceError, match="action_space: action masks need Discrete"):
        env.action_masks()


def test_masks_before_reset_ask_for_reset():
    env = DreamEnv(_model(spaces.Discrete(3)), STARTS, horizon=5)
    with pytest.raises(RuntimeError, match=r"action_masks: call reset\(\) first"):
        env.action_masks()


def test_a_bad_registered_mask_names_where_it_is_registered(monkeypatch):
    registered = EnvFns(action_mask=lambda obs: torch.ones(obs.shape[0], 7, dtype=torch.bool))
    monkeypatch.setattr("mbwrap.envs.fns.resolve.get_fn", lambda env_id: registered)
    model = mbwrap.make_model("linear", OBS, spaces.Discrete(3), device="cpu", env_id="Masked-v0")
    venv = DreamVecEnv(model, 2, STARTS, horizon=5)
    venv.reset(seed=0)
    with pytest.raises(SpaceMismatchError, match=r"action_mask registered for 'Masked-v0'"):
        venv.action_masks()


def test_a_fns_entry_may_provide_only_an_action_mask_but_something():
    _check_fn(EnvFns(action_mask=lambda obs: obs), "Masked-v0")
    with pytest.raises(PluginTypeError, match="'action_mask\\(obs\\)'"):
        _check_fn(EnvFns(), "Masked-v0")
