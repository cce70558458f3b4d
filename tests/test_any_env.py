"""Any Gymnasium env: every env of Gymnasium's classic-control, toy-text, Box2D and
MuJoCo v5 suites, and ALE (RAM and pixels), goes through the whole mission: collect real
steps, fit a model, imagine with ``DreamEnv`` (Gymnasium's and SB3's env checkers pass)
and ``DreamVecEnv``, train an SB3 agent in imagination, and learn inside
``ModelLearningWrapper``. Budgets are tiny: this checks that every space and shape is
carried, not that anything learns.
"""

from __future__ import annotations

import warnings

import ale_py
import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import mbwrap
from mbwrap.spaces import is_image, leaf_spaces

gym.register_envs(ale_py)

CLASSIC_CONTROL = [
    "CartPole-v1",
    "MountainCar-v0",
    "MountainCarContinuous-v0",
    "Pendulum-v1",
    "Acrobot-v1",
]
TOY_TEXT = ["FrozenLake-v1", "FrozenLake8x8-v1", "CliffWalking-v1", "Taxi-v4", "Blackjack-v1"]
BOX2D = [
    "LunarLander-v3",
    "LunarLanderContinuous-v3",
    "BipedalWalker-v3",
    "BipedalWalkerHardcore-v3",
    "CarRacing-v3",
]
MUJOCO = [
    "Ant-v5",
    "HalfCheetah-v5",
    "Hopper-v5",
    "Humanoid-v5",
    "HumanoidStandup-v5",
    "InvertedDoublePendulum-v5",
    "InvertedPendulum-v5",
    "Pusher-v5",
    "Reacher-v5",
    "Swimmer-v5",
    "Walker2d-v5",
]
ALE = [("ALE/Pong-v5", {"obs_type": "ram"}), ("ALE/Pong-v5", {"obs_type": "rgb"})]

ENVS = (
    [pytest.param(env_id, {}, id=env_id) for env_id in CLASSIC_CONTROL + TOY_TEXT]
    + [pytest.param(env_id, {}, id=env_id) for env_id in BOX2D]
    + [pytest.param(env_id, {}, id=env_id) for env_id in MUJOCO]
    + [pytest.param(env_id, kw, id=f"{env_id}-{kw['obs_type']}") for env_id, kw in ALE]
    + [pytest.param("mbwrap/PointGoal-v0", {}, id="PointGoal-v0")]
)

STEPS = 48


def _model_for(env: gym.Env, env_id: str) -> mbwrap.models.WorldModel:
    """The model a user would pick: a table for discrete states, an RSSM for pixels, a
    feed-forward ensemble of the flat features otherwise."""
    obs_space, act_space = env.observation_space, env.action_space
    if isinstance(obs_space, spaces.Discrete):
        return mbwrap.make_model("tabular", obs_space, act_space, env_id=env_id, device="cpu")
    if any(is_image(leaf) for leaf in leaf_spaces(obs_space).values()):
        return mbwrap.make_model(
            "rssm",
            obs_space,
            act_space,
            env_id=env_id,
            device="cpu",
            deter=32,
            hidden=32,
            layers=1,
            stoch=4,
            classes=4,
            cnn_depth=4,
            reward_bins=15,
            batch_size=2,
            sequence_length=4,
        )
    return mbwrap.make_model(
        "gaussian-ensemble",
        obs_space,
        act_space,
        env_id=env_id,
        ensemble_size=2,
        num_elites=2,
        hidden_sizes=[32],
        learn_termination=True,
        device="cpu",
    )


def _fit(model: mbwrap.models.WorldModel, buffer: mbwrap.ReplayBuffer) -> dict:
    if isinstance(model, mbwrap.TabularModel):
        return model.fit(buffer)
    if isinstance(model, mbwrap.models.RSSM):
        return model.fit(buffer, steps=2)
    return model.fit(buffer, epochs=1)


def _agent_env(dream: gym.Env) -> gym.Env:
    # SB3's policies take no Tuple observations; Gymnasium's wrapper flattens them.
    if isinstance(dream.observation_space, spaces.Tuple):
        return gym.wrappers.FlattenObservation(dream)
    return dream


@pytest.mark.parametrize(("env_id", "kwargs"), ENVS)
def test_any_env_goes_through_the_whole_mission(env_id, kwargs):
    torch.manual_seed(0)
    env = gym.make(env_id, **kwargs)
    buffer = mbwrap.ReplayBuffer(env.observation_space, env.action_space, 256, device="cpu")
    stats = mbwrap.collect(env, buffer, STEPS, seed=0)
    assert stats["steps"] == STEPS and len(buffer) == STEPS
    model = _model_for(env, env_id)
    _fit(model, buffer)

    dream = mbwrap.DreamEnv(model, buffer, horizon=8)
    with warnings.catch_warnings():
        # The checkers advise about the real env's own spaces (asymmetric Box actions...).
        warnings.simplefilter("ignore", UserWarning)
        gym_check_env(dream, skip_render_check=True)
        if not isinstance(dream.observation_space, spaces.Tuple):
            sb3_check_env(dream)
    obs, _ = dream.reset(seed=0)
    for _ in range(10):
        obs, _, terminated, truncated, _ = dream.step(dream.action_space.sample())
        assert dream.observation_space.contains(obs)
        if terminated or truncated:
            obs, _ = dream.reset()

    venv = mbwrap.DreamVecEnv(model, 2, buffer, horizon=8)
    batch, _ = venv.reset(seed=0)
    for _ in range(3):
        batch, *_ = venv.step(venv.action_space.sample())
    assert venv.observation_space.contains(batch)

    agent_env = _agent_env(mbwrap.DreamEnv(model, buffer, horizon=8))
    policy = (
        "MultiInputPolicy"
        if isinstance(agent_env.observation_space, spaces.Dict)
        else ("MlpPolicy" if not is_image(agent_env.observation_space) else "CnnPolicy")
    )
    agent = PPO(policy, agent_env, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu")
    agent.learn(16)
    assert agent.num_timesteps == 16

    wrapped = mbwrap.ModelLearningWrapper(gym.make(env_id, **kwargs), model, fit_every=10**9)
    mbwrap.collect(
        wrapped,
        mbwrap.ReplayBuffer(env.observation_space, env.action_space, 64, device="cpu"),
        16,
        seed=1,
    )
    assert len(wrapped.buffer) == 16
    wrapped.fit(**({"steps": 1} if isinstance(model, mbwrap.models.RSSM) else {}))
    imagined, _ = wrapped.dream(num_envs=2, horizon=4).reset(seed=0)
    assert np.all(np.isfinite(np.concatenate([np.ravel(a) for a in _arrays(imagined)])))


def _arrays(obs) -> list[np.ndarray]:
    if isinstance(obs, dict):
        return [a for value in obs.values() for a in _arrays(value)]
    if isinstance(obs, tuple):
        return [a for value in obs for a in _arrays(value)]
    return [np.asarray(obs, dtype=np.float64)]
