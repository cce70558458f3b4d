"""TDM with hindsight relabelling: its targets and vector critic by hand, the batches its
sampler gives SB3's agents, the SB3 surface (registry, predict with the horizon as state,
evaluate, logs), exact resume, errors, and learning to reach goals."""

from __future__ import annotations

import csv

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import DDPG, PPO, SAC, TD3
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure

import mbwrap
from mbwrap.algos.presets import POINT_GOAL_TDM
from mbwrap.algos.tdm import TDM, horizon_space
from mbwrap.algos.tdm_critic import GoalDistanceCritic
from mbwrap.algos.tdm_targets import horizon_observation, horizon_targets, next_horizons
from mbwrap.errors import UnsupportedSpaceError
from mbwrap.testing import assert_load_restores_everything, assert_resume_is_exact

SMALL = {"policy_kwargs": {"net_arch": [16]}, "batch_size": 8}


def point_goal() -> gym.Env:
    return gym.make("mbwrap/PointGoal-v0", max_episode_steps=10)


def small(agent: str = "DDPG", **kwargs) -> TDM:
    settings = {"learning_starts": 20, "max_tau": 3, "seed": 0, "device": "cpu"}
    return TDM(point_goal(), agent, agent_kwargs=SMALL, **{**settings, **kwargs})


# ---------------------------------------------------------------------- targets by hand
def test_vector_targets_by_hand():
    next_achieved = torch.tensor([[1.0, 2.0], [0.5, -1.0], [3.0, 3.0]])
    goal = torch.tensor([[0.0, 0.0], [1.0, 1.0], [3.0, 4.0]])
    tau = torch.tensor([0, 2, 1])
    terminated = torch.tensor([False, False, True])
    rewards, dones = horizon_targets(next_achieved, goal, tau, terminated, vectorized=True)
    # Row b * 2 + d: -|s'_d - g_d| where the horizon ends (tau = 0, or a terminal state).
    assert rewards.tolist() == [-1.0, -2.0, 0.0, 0.0, 0.0, -1.0]
    assert dones.tolist() == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]


def test_scalar_targets_use_the_euclidean_distance():
    rewards, dones = horizon_targets(
        torch.tensor([[3.0, 4.0], [3.0, 4.0]]),
        torch.zeros(2, 2),
        torch.tensor([0, 1]),
        torch.tensor([False, False]),
        vectorized=False,
    )
    assert rewards.tolist() == [-5.0, 0.0] and dones.tolist() == [1.0, 0.0]


def test_horizons_count_down_and_start_again():
    assert next_horizons(torch.tensor([3, 1, 0]), 3).tolist() == [2, 0, 3]
    obs = horizon_observation(torch.ones(2, 3), torch.zeros(2, 2), torch.tensor([4, 0]))
    assert obs["tau"].tolist() == [[4.0], [0.0]] and obs["observation"].shape == (2, 3)


def test_goal_distance_critic_picks_one_component_per_row_by_hand():
    critic = small("TD3").agent.critic  # two critics
    assert isinstance(critic, GoalDistanceCritic) and critic.goal_dim == 2
    for q_net in critic.q_networks:  # f(s, a, g, tau) = (1, 2) everywhere
        torch.nn.init.zeros_(q_net[-1].weight)
        q_net[-1].bias.data = torch.tensor([1.0, 2.0])
    obs = horizon_observation(
        torch.zeros(4, 2), torch.tensor([[0.0, 0.0]] * 2 + [[3.0, 5.0]] * 2), torch.zeros(4)
    )
    q1, q2 = critic(obs, torch.zeros(4, 2))
    # Rows 0, 1: transition 0, dimensions 0, 1; rows 2, 3: transition 1.
    assert q1[:, 0].tolist() == [-1.0, -2.0, -2.0, -3.0] and torch.equal(q1, q2)
    assert torch.equal(critic.q1_forward(obs, torch.zeros(4, 2)), q1)
    with pytest.raises(ValueError, match="rows per transition"):
        critic(
            horizon_observation(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3)),
            torch.zeros(3, 2),
        )


def test_the_vector_critic_is_what_the_optimizer_and_the_target_hold():
    agent = small().agent
    optimized = {id(p) for group in agent.critic.optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in agent.critic.parameters()}
    assert agent.critic is agent.policy.critic and agent.critic_target is agent.policy.critic_target
    for p, q in zip(agent.critic.parameters(), agent.critic_target.parameters(), strict=True):
        assert torch.equal(p, q) and p is not q


# ---------------------------------------------------------------------- the sampler's batches
def test_sampler_batches_carry_the_tdm_targets_in_sb3_fields():
    algo = small()
    algo.learn(30)
    batch = algo.sampler.sample(64)
    obs, nxt = batch.observations, batch.next_observations
    assert obs["observation"].shape == (128, 2) and batch.rewards.shape == (128, 1)
    tau = obs["tau"][:, 0]
    assert torch.equal(tau[0::2], tau[1::2]) and set(tau.long().tolist()) == {0, 1, 2, 3}
    assert torch.equal(nxt["tau"][:, 0], (tau - 1).clamp(min=0))
    assert torch.equal(obs["desired_goal"], nxt["desired_goal"])
    ends = tau == 0
    assert torch.equal(batch.dones[:, 0], ends.float()) and torch.all(batch.rewards[~ends] == 0)
    # At tau = 0 the reward is -|s' - g| for the row's own goal dimension.
    distance = -(nxt["observation"] - nxt["desired_goal"]).abs()
    dim = torch.arange(128) % 2
    expected = distance[torch.arange(128), dim]
    assert torch.allclose(batch.rewards[ends, 0], expected[ends])
    assert torch.equal(batch.discounts, torch.ones(128, 1))
    assert batch.actions.abs().max() <= 1.0


# ---------------------------------------------------------------------- SB3 surface
def test_registered_acts_with_the_horizon_as_state_and_evaluates():
    algo = mbwrap.make_algo(
        "tdm", point_goal(), agent_kwargs=SMALL, learning_starts=20, max_tau=3, seed=0
    )
    assert isinstance(algo, TDM) and isinstance(algo.agent, DDPG)
    algo.learn(40)
    assert algo.agent_updates == 20 and algo.agent.num_timesteps == 40
    obs, _ = point_goal().reset(seed=0)
    action, state = algo.predict(obs, deterministic=True)
    assert action.shape == (2,) and state[0].tolist() == [2]
    _, state = algo.predict(obs, state, deterministic=True)
    _, state = algo.predict(obs, state, deterministic=True)
    _, state = algo.predict(obs, state, deterministic=True)
    assert state[0].tolist() == [3]  # after 0, back to max_tau
    batch = {k: np.stack([v, v]) for k, v in obs.items()}
    actions, state = algo.predict(batch, (np.array([0, 2]),), np.array([False, True]))
    assert actions.shape == (2, 2) and state[0].tolist() == [3, 2]
    # The horizon changes what the actor is asked: tau is part of its input.
    agent_obs = {"observation": obs["observation"], "desired_goal": obs["desired_goal"]}
    a0, _ = algo.agent.predict({**agent_obs, "tau": np.array([0.0])}, deterministic=True)
    a3, _ = algo.agent.predict({**agent_obs, "tau": np.array([3.0])}, deterministic=True)
    assert not np.allclose(a0, a3)
    mean, _ = evaluate_policy(algo, point_goal(), n_eval_episodes=2, warn=False)
    assert -10.0 <= mean <= 0.0


def test_agent_observes_the_goal_and_the_horizon():
    space = horizon_space(point_goal().observation_space, 7)
    assert sorted(space.spaces) == ["desired_goal", "observation", "tau"]  # Dict sorts keys
    assert space["tau"].high.tolist() == [7.0]


def test_logs_success_rate_and_relabelling(tmp_path):
    algo = small()
    algo.set_logger(configure(str(tmp_path), ["csv"]))
    algo.learn(60)
    rows = list(csv.DictReader(open(tmp_path / "progress.csv")))
    assert rows and "rollout/success_rate" in rows[-1]
    assert 0.5 <= float(rows[-1]["tdm/relabelled_share"]) <= 1.0
    assert float(rows[-1]["tdm/goal_distance"]) > 0.0


@pytest.mark.parametrize("agent", ["DDPG", "TD3", "SAC"])
def test_resume_is_exact(agent, tmp_path):
    assert_resume_is_exact(lambda: small(agent), point_goal, 30, 20, tmp_path)


def test_load_restores_everything(tmp_path):
    algo = small("TD3")
    algo.learn(30)
    loaded = assert_load_restores_everything(algo, tmp_path, env=point_goal(), device="cpu")
    assert isinstance(loaded.agent.critic, GoalDistanceCritic)


def test_scalar_tdm_keeps_sb3s_critic_and_sac_trains():
    algo = small("SAC", vectorized=False)
    assert not isinstance(algo.agent.critic, GoalDistanceCritic) and isinstance(algo.agent, SAC)
    algo.learn(30)
    assert algo.sampler.sample(8).rewards.shape == (8, 1)


def test_td3_explores_with_gaussian_noise():
    algo = small("TD3", action_noise=0.3)
    assert isinstance(algo.agent, TD3)
    assert np.allclose(algo.agent.action_noise._sigma, 0.3)


def test_errors_name_the_argument():
    with pytest.raises(UnsupportedSpaceError, match=r"env\.observation_space"):
        TDM(gym.make("Pendulum-v1"))
    box = spaces.Box(-1.0, 1.0, (2,), np.float32)
    wide = spaces.Box(-1.0, 1.0, (3,), np.float32)
    with pytest.raises(UnsupportedSpaceError, match="one shape"):
        horizon_space(
            spaces.Dict({"observation": box, "achieved_goal": box, "desired_goal": wide}), 3
        )
    with pytest.raises(TypeError, match="agent"):
        TDM(point_goal(), "PPO")
    with pytest.raises(TypeError, match="agent"):
        TDM(point_goal(), PPO)
    with pytest.raises(ValueError, match="share_features_extractor"):
        TDM(point_goal(), agent_kwargs={"policy_kwargs": {"share_features_extractor": True}})
    with pytest.raises(ValueError, match="max_tau"):
        TDM(point_goal(), max_tau=-1)


def test_tdm_learns_to_reach_goals():
    """The preset: DDPG reaches the goal in at least 80% of 20 evaluation episodes after
    3,000 real steps (seed 1; measured 0.85-0.90 over evaluation seeds 0-3,
    benchmarks/RESULTS.md)."""
    env = gym.make("mbwrap/PointGoal-v0")
    algo = mbwrap.make_algo("tdm", env, seed=1, device="cpu", **POINT_GOAL_TDM)
    algo.learn(3_000)
    successes = []
    evaluation = gym.make("mbwrap/PointGoal-v0")
    evaluation.reset(seed=0)  # the same goals on every run
    evaluate_policy(
        algo,
        evaluation,
        n_eval_episodes=20,
        callback=lambda local, _: local["done"] and successes.append(local["info"]["is_success"]),
        warn=False,
    )
    assert np.mean(successes) >= 0.8
