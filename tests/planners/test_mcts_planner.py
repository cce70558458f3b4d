"""The "mcts" planner: tree search as an SB3 policy, over world models and search models."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

import mbwrap
from mbwrap.errors import CheckpointError, UnsupportedSpaceError
from mbwrap.planners import MCTSPlanner
from mbwrap.planners.mcts import RecurrentFnOutput, RootFnOutput, WorldModelSearch

from .conftest import ShiftModel


class ShiftEnv(gym.Env):
    """The real counterpart of ``ShiftModel(1, discrete=True)``: 8 steps from ``s = 3``."""

    observation_space = spaces.Box(-10.0, 10.0, (1,), np.float32)
    action_space = spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state, self.t = np.array([3.0], np.float32), 0
        return self.state.copy(), {}

    def step(self, action):
        self.state = self.state + (int(action) - 1)
        self.t += 1
        return self.state.copy(), -float(self.state[0] ** 2), False, self.t >= 8, {}


class Chain:
    """A SearchModel written by hand: a chain where only action 1 ever pays (+1, then end)."""

    num_actions = 2
    observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = spaces.Discrete(2)
    device = torch.device("cpu")

    def root(self, obs: Any) -> RootFnOutput:
        obs = torch.as_tensor(obs, dtype=torch.float32).reshape(-1, 1)
        return RootFnOutput(torch.zeros(obs.shape[0], 2), torch.zeros(obs.shape[0]), obs)

    def recurrent_fn(self, embedding, action):
        b = action.shape[0]
        out = RecurrentFnOutput(action.float(), torch.where(action == 1, 0.0, 0.9),
                                torch.zeros(b, 2), torch.zeros(b))
        return out, embedding


@pytest.mark.parametrize("search", ["muzero", "gumbel"])
def test_mcts_over_a_world_model_reaches_the_goal_in_the_real_env(search):
    planner = mbwrap.make_planner("mcts", ShiftModel(1, discrete=True), num_simulations=60,
                                  search=search, gamma=0.9)
    assert isinstance(planner, MCTSPlanner)
    env = make_vec_env(ShiftEnv, n_envs=2)
    mean, _ = evaluate_policy(planner, env, n_eval_episodes=2)
    # Best: -1 from 3 to 0 in three steps (rewards -4, -1, 0), then stay: -5.
    assert mean == pytest.approx(-5.0)


def test_a_batch_of_observations_is_searched_at_once():
    planner = MCTSPlanner(ShiftModel(1, discrete=True), num_simulations=40, gamma=0.9)
    actions, _ = planner.predict(np.array([[3.0], [-2.0], [0.0]], np.float32))
    assert actions.tolist() == [0, 2, 1]  # move down, move up, stay
    assert planner.last_search.search_tree.batch_size == 3
    single, _ = planner.predict(np.array([4.0], np.float32))
    assert single.shape == () and int(single) == 0


def test_mcts_over_a_hand_written_search_model():
    planner = MCTSPlanner(Chain(), num_simulations=10)
    actions, _ = planner.predict(np.zeros((4, 1), np.float32))
    assert actions.tolist() == [1, 1, 1, 1]


def test_world_model_search_stops_rewards_after_termination():
    def terminate_at_zero(obs, action, next_obs):
        return next_obs[:, 0] <= 0

    search = WorldModelSearch(ShiftModel(1, discrete=True), gamma=1.0,
                              termination_fn=terminate_at_zero)
    root = search.root(torch.tensor([[1.0]]))
    out, emb = search.recurrent_fn(root.embedding, torch.tensor([0]))  # 1 -> 0: ends
    assert out.discount.item() == 0.0 and out.reward.item() == 0.0
    out, _ = search.recurrent_fn(emb, torch.tensor([2]))  # stepping past the end pays 0
    assert out.reward.item() == 0.0 and out.discount.item() == 0.0


def test_save_and_load_round_trip(tmp_path):
    model = mbwrap.make_model("mlp", spaces.Box(-5.0, 5.0, (4,), np.float32), spaces.Discrete(2),
                              env_id="CartPole-v1", device="cpu")
    planner = MCTSPlanner(model, num_simulations=7, search="gumbel", gamma=0.95, seed=3)
    planner.save(tmp_path / "mcts")
    loaded = MCTSPlanner.load(tmp_path / "mcts", device="cpu")
    assert loaded.get_config() == planner.get_config()
    obs = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    fresh = MCTSPlanner(model, **planner.get_config())
    assert np.array_equal(loaded.predict(obs)[0], fresh.predict(obs)[0])

    other = MCTSPlanner(Chain(), num_simulations=5)
    other.save(tmp_path / "chain")
    with pytest.raises(CheckpointError, match="model="):
        MCTSPlanner.load(tmp_path / "chain")
    assert MCTSPlanner.load(tmp_path / "chain", model=Chain()).num_simulations == 5


def test_bad_input_gets_clear_errors():
    with pytest.raises(UnsupportedSpaceError, match="Discrete"):
        MCTSPlanner(ShiftModel(1))
    with pytest.raises(TypeError, match="model"):
        MCTSPlanner(object())
    with pytest.raises(ValueError, match="num_simulations"):
        MCTSPlanner(Chain(), num_simulations=0)
    with pytest.raises(ValueError, match="search"):
        MCTSPlanner(Chain(), search="alphabeta")
    with pytest.raises(UnsupportedSpaceError, match="action_space"):
        MCTSPlanner(Chain(), action_space=spaces.Discrete(3))


def test_random_rollouts_value_new_nodes_and_stop_at_termination():
    def always(obs, action, next_obs):
        return torch.ones(obs.shape[0], dtype=torch.bool)

    model = ShiftModel(1, discrete=True)
    search = WorldModelSearch(model, gamma=0.5, rollout_horizon=3, termination_fn=always,
                              generator=torch.Generator().manual_seed(0))
    root = search.root(torch.zeros(256, 1))
    # From 0 one random move (-1, 0, +1) pays -1, 0 or -1, and the rollout ends there.
    assert set(root.value.unique().tolist()) <= {-1.0, 0.0}
    assert 0.5 < (root.value == -1.0).float().mean().item() < 0.85
    endless = WorldModelSearch(model, gamma=0.5, rollout_horizon=2,
                               generator=torch.Generator().manual_seed(0))
    values = endless.root(torch.zeros(512, 1)).value
    # Two moves from 0: -(a1)^2 - 0.5 (a1 + a2)^2, at most 0, at least -1 - 0.5 * 4.
    assert values.max().item() == 0.0 and values.min().item() == -3.0
    with pytest.raises(ValueError, match="rollout_horizon"):
        WorldModelSearch(model, rollout_horizon=-1)


def test_tree_search_over_a_latent_model_ignores_registered_functions():
    import gymnasium as gym

    import mbwrap

    env = gym.make("CartPole-v1")
    rssm = mbwrap.make_model("rssm", env.observation_space, env.action_space,
                             env_id="CartPole-v1", deter=16, hidden=16, layers=1, stoch=4,
                             classes=4, device="cpu")
    mlp = mbwrap.make_model("mlp", env.observation_space, env.action_space,
                            env_id="CartPole-v1", device="cpu")
    assert WorldModelSearch(mlp).reward_fn is not None  # CartPole's registered reward
    search = WorldModelSearch(rssm)
    assert search.reward_fn is None and search.termination_fn is None  # the RSSM's heads
