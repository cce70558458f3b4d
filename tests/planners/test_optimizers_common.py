"""The contract every sampling planner keeps, checked on models whose optimum is known."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import mbwrap
from mbwrap.errors import UnsupportedSpaceError
from mbwrap.planners import CEM, ICEM, MPPI, RandomShooting

PLANNERS = ["random-shooting", "cem", "mppi", "icem"]
CLASSES = {"random-shooting": RandomShooting, "cem": CEM, "mppi": MPPI, "icem": ICEM}
# Small settings that still find the optimum of ShiftModel (2 action dimensions, 2 steps).
SMALL: dict[str, dict[str, Any]] = {
    "random-shooting": {"population": 8192, "horizon": 1},
    "cem": {"population": 400, "num_elites": 40, "iterations": 10, "horizon": 2, "particles": 1},
    # beta = 1: PDDM's filter pulls every candidate towards the last action (a bias).
    "mppi": {
        "population": 500,
        "temperature": 0.05,
        "noise_std": 0.2,
        "beta": 1.0,
        "iterations": 10,
        "horizon": 2,
    },
    "icem": {"population": 400, "num_elites": 20, "iterations": 8, "horizon": 2},
}
# Largest error of a first action allowed: random shooting only samples, never refines.
TOLERANCE = {"random-shooting": 0.25, "cem": 0.05, "mppi": 0.05, "icem": 0.05}
# Start states and their best first actions, clip(goal - s, -1, 1) for the goal 0; the
# second is on the bound of the action space.
STATES = np.array([[0.5, -0.3], [2.0, -0.2], [-0.2, 0.7]], np.float32)
BEST = np.clip(-STATES, -1.0, 1.0)


def make(name: str, model: Any, **kwargs: Any) -> mbwrap.Planner:
    return mbwrap.make_planner(name, model, **{**SMALL[name], "seed": 0, **kwargs})


def goal_reward(goal: list[float]):
    """ShiftModel's reward for another goal: ``(obs, action, next_obs) -> [n]``."""
    target = torch.tensor(goal)

    def reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        return -(next_obs - target).square().sum(-1)

    return reward


class ShiftEnv(gym.Env):
    """The real env ShiftModel models: ``s' = s + a``, reward ``-||s'||^2``, from
    ``(1.5, -0.5)`` for 5 steps. The best return is -0.25: one step to ``(0.5, 0)``, then 0."""

    observation_space = spaces.Box(-10.0, 10.0, (2,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = np.array([1.5, -0.5], np.float32)
        self.steps = 0
        return self.state.copy(), {}

    def step(self, action):
        self.state = np.clip(self.state + np.clip(action, -1, 1), -10, 10).astype(np.float32)
        self.steps += 1
        reward = -float(np.square(self.state).sum())
        return self.state.copy(), reward, False, self.steps >= 5, {}


@pytest.mark.parametrize("name", PLANNERS)
def test_registered_under_its_name(name, shift_model):
    planner = make(name, shift_model)
    assert type(planner) is CLASSES[name] and type(planner).registry_name == name


@pytest.mark.parametrize("name", PLANNERS)
def test_finds_the_best_first_action(name, shift_model):
    actions, _ = make(name, shift_model).predict(STATES)
    assert np.abs(actions - BEST).max() < TOLERANCE[name]


@pytest.mark.parametrize("name", PLANNERS)
def test_batched_planning_agrees_with_planning_alone(name, shift_model):
    together, _ = make(name, shift_model).predict(STATES)
    alone = np.stack([make(name, shift_model).predict(state)[0] for state in STATES])
    assert alone.shape == together.shape == STATES.shape
    assert np.abs(alone - BEST).max() < TOLERANCE[name]
    assert np.abs(together - alone).max() < TOLERANCE[name]


def _spy_optimize(planner: mbwrap.Planner) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Record ``(init, solution)`` of every ``optimize`` call."""
    calls = []
    optimize = planner.optimize

    def spy(state: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
        init = init.clone()
        solution = optimize(state, init)
        calls.append((init, solution.clone()))
        return solution

    planner.optimize = spy  # type: ignore[method-assign]
    return calls


@pytest.mark.parametrize("name", PLANNERS)
def test_warm_start_is_the_last_solution_shifted(name, shift_model):
    planner = make(name, shift_model, horizon=4)
    calls = _spy_optimize(planner)
    planner.predict(STATES)
    _, solution = calls[0]
    stored = planner._solution
    assert stored is not None
    torch.testing.assert_close(stored[:, :-1], solution[:, 1:])
    torch.testing.assert_close(stored[:, -1], planner.fresh_solution(3)[:, 0])
    planner.predict(STATES)
    torch.testing.assert_close(calls[1][0], stored)


@pytest.mark.parametrize("name", PLANNERS)
def test_episode_start_resets_only_that_env(name, shift_model):
    planner = make(name, shift_model, horizon=4)
    calls = _spy_optimize(planner)
    planner.predict(STATES[:2])
    stored = planner._solution.clone()
    planner.predict(STATES[:2], episode_start=np.array([True, False]))
    init = calls[1][0]
    torch.testing.assert_close(init[0], planner.fresh_solution(1)[0])
    torch.testing.assert_close(init[1], stored[1])
    assert not torch.equal(stored[0], init[0])


@pytest.mark.parametrize("name", PLANNERS)
def test_a_new_reward_fn_changes_the_plan_mid_run(name, shift_model):
    planner = make(name, shift_model, reward_fn=goal_reward([0.0, 0.0]))
    state = np.array([0.2, -0.3], np.float32)
    for _ in range(2):
        action, _ = planner.predict(state)
    assert np.abs(action - [-0.2, 0.3]).max() < TOLERANCE[name]
    planner.reward_fn = goal_reward([0.6, 0.4])
    action, _ = planner.predict(state)
    assert np.abs(action - [0.4, 0.7]).max() < TOLERANCE[name]


@pytest.mark.parametrize("name", PLANNERS)
def test_horizon_must_be_positive(name, shift_model):
    with pytest.raises(ValueError, match="horizon: expected an int >= 1, got 0"):
        make(name, shift_model, horizon=0)


@pytest.mark.parametrize("name", PLANNERS)
def test_device_must_be_the_models(name, shift_model):
    # "meta" is never the device of a model that computes, with or without CUDA.
    with pytest.raises(ValueError, match="device: the planner was asked to run on meta"):
        make(name, shift_model, device="meta")


@pytest.mark.parametrize("name", ["cem", "icem"])
def test_more_elites_than_population_is_refused(name, shift_model):
    with pytest.raises(ValueError, match="num_elites: expected at most"):
        make(name, shift_model, population=10, num_elites=11)


@pytest.mark.parametrize("name", ["mppi", "icem"])
def test_box_only_planners_refuse_discrete_actions(name, discrete_shift_model):
    with pytest.raises(UnsupportedSpaceError, match="Box actions only"):
        make(name, discrete_shift_model)


@pytest.mark.parametrize("num_envs", [1, 2])
@pytest.mark.parametrize("name", PLANNERS)
def test_evaluate_policy_on_a_real_env(name, num_envs, shift_model):
    planner = make(name, shift_model)
    if num_envs == 1:
        env: Any = Monitor(ShiftEnv())
    else:
        env = DummyVecEnv([lambda: Monitor(ShiftEnv()) for _ in range(num_envs)])
    mean, _ = evaluate_policy(planner, env, n_eval_episodes=2, warn=False)
    assert -0.25 - 0.1 < mean <= -0.25 + 1e-6


@pytest.mark.parametrize("name", PLANNERS)
def test_save_and_load_round_trip(name, tmp_path):
    obs_space = spaces.Box(-10.0, 10.0, (2,), np.float32)
    act_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    model = mbwrap.make_model("mlp", obs_space, act_space, hidden_sizes=[8], device="cpu")
    planner = make(name, model)
    planner.save(tmp_path / "planner.pt")
    loaded = mbwrap.Planner.load(tmp_path / "planner.pt", device="cpu")
    assert type(loaded) is type(planner)
    assert loaded.get_config() == planner.get_config()
    assert set(SMALL[name]) <= set(loaded.get_config())
    for key, value in loaded.model.state_dict().items():
        torch.testing.assert_close(value, model.state_dict()[key])
