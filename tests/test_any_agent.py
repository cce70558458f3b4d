"""Any SB3 or sb3-contrib agent, by name: Dyna trains every one of them in imagination and
MBPO every off-policy one on branched rollouts; discrete agents on CartPole-v1, continuous
ones on Pendulum-v1. Tiny budgets: each run checks that the pieces fit, not that it learns
(the learning tests are in tests/algos/)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import sb3_contrib
import stable_baselines3 as sb3
import torch

from mbwrap.algos import MBPO, Dyna, available_agents

# The smallest settings SB3 accepts that still train once per iteration: on-policy agents
# collect 16 imagined steps per env, off-policy ones start updating after 20.
ON_POLICY = {"n_steps": 16, "batch_size": 32}
OFF_POLICY = {"learning_starts": 20, "buffer_size": 1000, "batch_size": 32}
DYNA_AGENTS: list[tuple[str, str, dict[str, Any]]] = [
    ("A2C", "CartPole-v1", {"n_steps": 8}),
    ("PPO", "CartPole-v1", ON_POLICY),
    ("DQN", "CartPole-v1", OFF_POLICY),
    ("QRDQN", "CartPole-v1", OFF_POLICY),
    ("TRPO", "CartPole-v1", ON_POLICY),
    ("RecurrentPPO", "CartPole-v1", ON_POLICY),
    ("MaskablePPO", "CartPole-v1", ON_POLICY),
    ("ARS", "CartPole-v1", {"n_delta": 2}),
    ("SAC", "Pendulum-v1", OFF_POLICY),
    ("TD3", "Pendulum-v1", OFF_POLICY),
    ("DDPG", "Pendulum-v1", OFF_POLICY),
    ("TQC", "Pendulum-v1", OFF_POLICY),
    ("CrossQ", "Pendulum-v1", OFF_POLICY),
]
MBPO_AGENTS: list[tuple[str, str]] = [
    ("SAC", "Pendulum-v1"),
    ("TD3", "Pendulum-v1"),
    ("DDPG", "Pendulum-v1"),
    ("TQC", "Pendulum-v1"),
    ("CrossQ", "Pendulum-v1"),
    ("DQN", "CartPole-v1"),
    ("QRDQN", "CartPole-v1"),
]


def _assert_predicts_in_the_space(algo: Any, env_id: str) -> None:
    env = gym.make(env_id)
    obs = np.stack([env.reset(seed=i)[0] for i in range(5)])
    actions, _ = algo.predict(obs, deterministic=True)
    assert len(actions) == 5
    assert all(env.action_space.contains(np.asarray(a, env.action_space.dtype)) for a in actions)


def test_every_agent_of_both_libraries_is_listed():
    names = {name for name, _, _ in DYNA_AGENTS}
    assert names <= set(available_agents())
    libraries = {sb3.A2C, sb3.PPO, sb3.DQN, sb3.SAC, sb3.TD3, sb3.DDPG}
    libraries |= {getattr(sb3_contrib, name) for name in sb3_contrib.__all__}
    assert {cls.__name__ for cls in libraries} == names
    assert {name for name, _ in MBPO_AGENTS} == {
        name for name, _, kwargs in DYNA_AGENTS if kwargs is OFF_POLICY
    }


@pytest.mark.parametrize(("agent", "env_id", "agent_kwargs"), DYNA_AGENTS)
def test_dyna_trains_any_agent_in_imagination(agent, env_id, agent_kwargs):
    algo = Dyna(
        gym.make(env_id),
        agent,
        "linear",
        agent_kwargs={**agent_kwargs, "policy_kwargs": {"net_arch": [16]}},
        num_imagined_envs=2,
        imagination_horizon=20,
        train_freq=30,
        imagined_steps=32,
        learning_starts=30,
        seed=0,
        device="cpu",
    )
    assert type(algo.agent).__name__ == agent
    before = {k: v.clone() for k, v in algo.agent.policy.state_dict().items()}
    algo.learn(60)
    assert algo.num_timesteps == 60 and len(algo.buffer) == 60
    assert algo.agent.num_timesteps >= 64  # two iterations of 32 imagined steps
    after = algo.agent.policy.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    _assert_predicts_in_the_space(algo, env_id)


@pytest.mark.parametrize(("agent", "env_id"), MBPO_AGENTS)
def test_mbpo_trains_any_off_policy_agent_on_branched_rollouts(agent, env_id):
    algo = MBPO(
        gym.make(env_id),
        agent,
        "linear",
        agent_kwargs={"batch_size": 16, "policy_kwargs": {"net_arch": [16]}},
        epoch_length=20,
        model_train_freq=10,
        rollout_batch_size=8,
        rollout_schedule=(0, 2, 1, 2),
        gradient_steps=2,
        learning_starts=20,
        seed=0,
        device="cpu",
    )
    assert type(algo.agent).__name__ == agent
    assert algo.agent.replay_buffer is algo.mixed_buffer
    before = {k: v.clone() for k, v in algo.agent.policy.state_dict().items()}
    algo.learn(40)
    assert algo.num_timesteps == 40
    # 20 policy steps, 2 updates each, on batches that mix in the rollouts.
    assert algo.agent_updates == 40 and len(algo.model_buffer) > 0
    # The agent's clock follows the real steps, as if it had taken them itself.
    assert algo.agent.num_timesteps == 40
    after = algo.agent.policy.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    _assert_predicts_in_the_space(algo, env_id)


@pytest.mark.parametrize(
    ("agent", "agent_kwargs", "policy"),
    [
        ("PPO", ON_POLICY, "MultiInputActorCriticPolicy"),
        ("RecurrentPPO", ON_POLICY, "RecurrentMultiInputActorCriticPolicy"),
        ("SAC", OFF_POLICY, "MultiInputPolicy"),
    ],
)
def test_dyna_gives_dict_observations_a_multi_input_policy(agent, agent_kwargs, policy):
    # Goal-conditioned observations: the dream returns the same Dict the real env does.
    algo = Dyna(
        gym.make("mbwrap/PointGoal-v0"),
        agent,
        "mlp",
        agent_kwargs={**agent_kwargs, "policy_kwargs": {"net_arch": [16]}},
        num_imagined_envs=2,
        imagination_horizon=20,
        train_freq=30,
        imagined_steps=32,
        learning_starts=30,
        seed=0,
        device="cpu",
    )
    assert isinstance(algo.dream.single_observation_space, gym.spaces.Dict)
    assert type(algo.agent.policy).__name__ == policy
    algo.learn(60)
    assert algo.agent.num_timesteps >= 64
    obs, _ = gym.make("mbwrap/PointGoal-v0").reset(seed=0)
    action, _ = algo.predict(obs, deterministic=True)
    assert algo.action_space.contains(action)
