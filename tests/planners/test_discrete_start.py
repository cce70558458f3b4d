"""Planners and tree search over ``Discrete(n, start != 0)`` actions: candidates are drawn
as indices, but the model, the functions and the caller see the space's own values."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.evaluation import evaluate_policy

from mbwrap.envs.clonable import ClonableEnv
from mbwrap.errors import UnsupportedSpaceError
from mbwrap.models import WorldModel
from mbwrap.planners import CEM, ICEM, ILQR, MPPI, MCTSPlanner, RandomShooting
from mbwrap.planners.mcts import SimulatorSearch
from mbwrap.registry import make_planner
from mbwrap.types import ModelStep

#: Moves -1, 0 and +1: the best first action is the start value or the last one.
MOVES = spaces.Discrete(3, start=-1)


class LineModel(WorldModel):
    """``s' = s + a`` on a line with ``a`` in ``Discrete(3, start=-1)`` (the move itself)
    and reward ``-(s' - goal)^2``. Refuses any action outside the space, so that a
    planner passing indices instead of values fails loudly."""

    def __init__(self, goal: float) -> None:
        super().__init__(spaces.Box(-10.0, 10.0, (1,), np.float32), MOVES, device="cpu")
        self.goal = float(goal)

    def get_config(self) -> dict[str, Any]:
        return {"goal": self.goal}

    def fit(self, buffer: Any, **kwargs: Any) -> dict[str, Any]:
        return {}

    def step(self, state, action, *, generator=None, member=None) -> ModelStep:
        assert action.dtype == torch.int64
        assert bool(((action >= -1) & (action <= 1)).all()), f"action outside {MOVES}: {action}"
        next_state = state + action.to(state.dtype).unsqueeze(-1)
        reward = -(next_state - self.goal).square().sum(-1)
        return ModelStep(next_state=next_state, reward=reward, terminated=None)


def _planners(model: WorldModel) -> dict[str, Any]:
    return {
        "random-shooting": RandomShooting(model, population=64, horizon=3, seed=0),
        "cem": CEM(
            model, population=32, num_elites=4, iterations=3, horizon=3, particles=1, seed=0
        ),
        "mcts-muzero": MCTSPlanner(model, num_simulations=16, gamma=1.0, seed=0),
        "mcts-gumbel": MCTSPlanner(model, num_simulations=16, search="gumbel", gamma=1.0, seed=0),
    }


@pytest.mark.parametrize("name", ["random-shooting", "cem", "mcts-muzero", "mcts-gumbel"])
@pytest.mark.parametrize(("goal", "best"), [(-5.0, -1), (5.0, 1)])
def test_planners_return_the_best_action_value_of_an_offset_space(name, goal, best):
    planner = _planners(LineModel(goal))[name]
    obs = np.zeros((2, 1), np.float32)
    actions, _ = planner.predict(obs, deterministic=True)
    assert actions.shape == (2,)
    # -1 is the space's start and +1 its last value; indices would be 0 and 2.
    assert actions.tolist() == [best, best]
    single, _ = planner.predict(obs[0], deterministic=True)
    assert MOVES.contains(np.int64(single)) and int(single) == best


def test_warm_started_cem_keeps_planning_values_across_decisions():
    planner = CEM(LineModel(-5.0), population=32, num_elites=4, iterations=2, horizon=3,
                  particles=1, seed=0)
    obs = np.zeros((1, 1), np.float32)
    for _ in range(3):
        action, _ = planner.predict(obs, deterministic=True)
        assert action.tolist() == [-1]
        obs = obs + action[:, None].astype(np.float32)


@pytest.mark.parametrize("planner_class", [MPPI, ICEM, ILQR])
def test_box_only_planners_refuse_discrete_actions_by_name(planner_class):
    with pytest.raises(UnsupportedSpaceError, match=r"model\.action_space: .*Box actions only"):
        planner_class(LineModel(0.0), horizon=3)


# ---------------------------------------------------------------------- a real env
class OffsetActions(gym.ActionWrapper):
    """Renames an env's ``Discrete(n)`` actions ``start .. start + n - 1``."""

    def __init__(self, env: gym.Env, start: int) -> None:
        super().__init__(env)
        self.start = start
        self.action_space = spaces.Discrete(int(env.action_space.n), start=start)
        #: Every action the env was given.
        self.taken: list[Any] = []

    def action(self, action: Any) -> int:
        self.taken.append(action)
        assert self.action_space.contains(np.int64(action)), action
        return int(action) - self.start


def offset_cartpole(start: int = 5, steps: int = 60) -> gym.Env:
    env = gym.make("CartPole-v1", max_episode_steps=steps)
    return OffsetActions(env, start)


class CartPoleModel(WorldModel):
    """CartPole-v1's equations (Barto et al. 1983, as Gymnasium writes them) with actions
    ``Discrete(2, start)``: ``start`` pushes left, ``start + 1`` right. Reward: 1 minus
    the squared pole angle in units of the termination angle."""

    def __init__(self, start: int) -> None:
        obs = gym.make("CartPole-v1").observation_space
        super().__init__(obs, spaces.Discrete(2, start=start), device="cpu")
        self.start = start

    def get_config(self) -> dict[str, Any]:
        return {"start": self.start}

    def fit(self, buffer: Any, **kwargs: Any) -> dict[str, Any]:
        return {}

    def step(self, state, action, *, generator=None, member=None) -> ModelStep:
        assert bool(((action >= self.start) & (action <= self.start + 1)).all()), action
        x, x_dot, theta, theta_dot = state.unbind(-1)
        force = torch.where(action == self.start + 1, 10.0, -10.0)
        cos, sin = theta.cos(), theta.sin()
        temp = (force + 0.05 * theta_dot.square() * sin) / 1.1
        theta_acc = (9.8 * sin - cos * temp) / (0.5 * (4.0 / 3.0 - 0.1 * cos.square() / 1.1))
        x_acc = temp - 0.05 * theta_acc * cos / 1.1
        next_state = torch.stack(
            [x + 0.02 * x_dot, x_dot + 0.02 * x_acc, theta + 0.02 * theta_dot,
             theta_dot + 0.02 * theta_acc], -1,
        )
        limit = 12 * 2 * np.pi / 360
        terminated = (next_state[:, 0].abs() > 2.4) | (next_state[:, 2].abs() > limit)
        reward = 1.0 - (next_state[:, 2] / limit).square()
        return ModelStep(next_state=next_state, reward=reward, terminated=terminated.float())


def test_evaluate_policy_on_a_real_env_with_offset_actions():
    planner = make_planner("cem", CartPoleModel(5), seed=0, population=32, num_elites=4,
                           iterations=2, horizon=8, particles=1)
    env = offset_cartpole(start=5, steps=60)
    env.reset(seed=0)
    mean, _ = evaluate_policy(planner, env, n_eval_episodes=2, warn=False)
    # Pushing by the values 5 and 6 as the model means them keeps the pole up.
    assert mean == 60.0
    assert set(np.asarray(env.taken).tolist()) == {5, 6} and len(env.taken) == 120


def test_evaluate_policy_with_tree_search_on_a_real_env_with_offset_actions():
    planner = make_planner("mcts", CartPoleModel(5), seed=0, num_simulations=8,
                           rollout_horizon=4)
    env = offset_cartpole(start=5, steps=15)
    env.reset(seed=0)
    mean, _ = evaluate_policy(planner, env, n_eval_episodes=2, warn=False)
    assert set(np.asarray(env.taken).tolist()) <= {5, 6}
    assert len(env.taken) == 2 * mean > 0


def test_simulator_search_plays_offset_actions_in_the_real_env():
    env = ClonableEnv(offset_cartpole(start=-3, steps=20))
    env.reset(seed=0)
    search = SimulatorSearch(env, max_rollout_steps=5, seed=0)
    planner = MCTSPlanner(search, num_simulations=4, observation_space=env.observation_space,
                          action_space=env.action_space)
    for _ in range(5):
        action, _ = planner.predict(env.current_observation(), deterministic=True)
        assert int(action) in (-3, -2)
        env.step(int(action))
