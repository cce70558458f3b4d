"""Imagination over a latent model (DreamVecEnv, DreamEnv) and the real env seen through
its posterior (LatentFilterWrapper): same features, so one SB3 agent acts in both."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.evaluation import evaluate_policy

import mbwrap
from mbwrap import DreamEnv, DreamVecEnv, LatentFilterWrapper, ReplayBuffer
from mbwrap.envs.latent_filter import LatentFilterPolicy
from mbwrap.errors import SpaceMismatchError
from mbwrap.models import RSSM
from mbwrap.types import Sequence

SMALL = {"deter": 32, "hidden": 32, "layers": 1, "stoch": 4, "classes": 4, "start_context": 6}


@pytest.fixture(scope="module")
def cartpole() -> tuple[RSSM, ReplayBuffer]:
    """A small RSSM of CartPole, briefly fitted on random play, and that play."""
    torch.manual_seed(0)
    env = gym.make("CartPole-v1")
    buffer = ReplayBuffer(env.observation_space, env.action_space, 400, device="cpu")
    mbwrap.collect(env, buffer, 400, seed=0)
    model = RSSM(env.observation_space, env.action_space, device="cpu", sequence_length=16, **SMALL)
    model.fit(buffer, steps=5)
    return model, buffer


def test_dream_vec_env_emits_the_latent_features(cartpole):
    model, buffer = cartpole
    env = DreamVecEnv(model, 4, start_states=buffer, horizon=10)
    features = model.dream_observation_space
    assert features == gym.spaces.Box(-np.inf, np.inf, (32 + 16,), np.float32)
    assert env.single_observation_space == features
    assert env.single_action_space == model.action_space
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 48) and obs.dtype == np.float32
    # Start states are posteriors: the stochastic part is one-hot.
    np.testing.assert_allclose(obs[:, 32:].reshape(4, 4, 4).sum(-1), 1.0, atol=1e-6)
    for _ in range(12):
        obs, reward, terminated, truncated, info = env.step(np.array([0, 1, 0, 1]))
        assert obs.shape == (4, 48) and reward.shape == (4,)
        assert np.isfinite(obs).all() and np.isfinite(reward).all()
    assert truncated.dtype == np.bool_ and terminated.dtype == np.bool_


def test_seeded_reset_reproduces_imagined_rollouts(cartpole):
    model, buffer = cartpole
    actions = np.random.default_rng(0).integers(0, 2, (25, 3))

    def rollout(seed: int) -> list[np.ndarray]:
        env = DreamVecEnv(model, 3, start_states=buffer, horizon=8)
        out = [env.reset(seed=seed)[0]]
        for action in actions:
            obs, reward, terminated, truncated, _ = env.step(action)
            out += [obs, reward, terminated, truncated]
        return out

    first, again, other = rollout(5), rollout(5), rollout(6)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))

    single = DreamEnv(model, buffer, horizon=8)
    obs_a = [single.reset(seed=2)[0]] + [single.step(int(a))[0] for a in actions[:8, 0]]
    obs_b = [single.reset(seed=2)[0]] + [single.step(int(a))[0] for a in actions[:8, 0]]
    np.testing.assert_array_equal(np.stack(obs_a), np.stack(obs_b))


def test_env_checkers_pass_on_dream_env_and_latent_filter(cartpole):
    model, buffer = cartpole
    with warnings.catch_warnings():
        # Unbounded feature boxes draw advice (normalise observations), not errors.
        warnings.simplefilter("ignore", UserWarning)
        dream = DreamEnv(model, buffer, horizon=20)
        gym_check_env(dream, skip_render_check=True)
        sb3_check_env(DreamEnv(model, buffer, horizon=20), warn=False)
        real = LatentFilterWrapper(gym.make("CartPole-v1"), model, seed=0)
        gym_check_env(real, skip_render_check=True)
        sb3_check_env(LatentFilterWrapper(gym.make("CartPole-v1"), model, seed=0), warn=False)


def test_latent_filter_gives_the_features_observe_computes(cartpole):
    model, _ = cartpole
    env = gym.make("CartPole-v1")
    wrapped = LatentFilterWrapper(gym.make("CartPole-v1"), model, sample=False)
    assert wrapped.observation_space == model.dream_observation_space
    features, _ = wrapped.reset(seed=3)
    obs, _ = env.reset(seed=3)
    observations, actions, seen = [obs], [], [features]
    for action in [0, 1, 1, 0, 1, 0, 0]:
        features, *_ = wrapped.step(action)
        obs, *_ = env.step(action)
        observations.append(obs)
        actions.append(action)
        seen.append(features)
    obs_t = torch.as_tensor(np.stack(observations))[None]
    steps = len(actions)
    sequence = Sequence(
        obs=obs_t[:, :-1],
        action=torch.tensor(actions)[None],
        reward=torch.ones(1, steps),
        next_obs=obs_t[:, 1:],
        terminated=torch.zeros(1, steps, dtype=torch.bool),
        truncated=torch.zeros(1, steps, dtype=torch.bool),
    )
    with torch.no_grad():
        out = model.observe(sequence, sample=False)
    expected = torch.cat([out["start"][:, None], out["states"]], 1)[0].numpy()
    np.testing.assert_allclose(np.stack(seen), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(wrapped.latent_state[0], out["states"][0, -1])


def test_latent_filter_seeded_sampling_is_reproducible(cartpole):
    model, _ = cartpole

    def run(seed: int) -> np.ndarray:
        env = LatentFilterWrapper(gym.make("CartPole-v1"), model)
        out = [env.reset(seed=seed)[0]]
        out += [env.step(i % 2)[0] for i in range(6)]
        return np.stack(out)

    np.testing.assert_array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


def test_ppo_learns_in_imagination_and_acts_through_the_filter(cartpole):
    model, buffer = cartpole
    dream = DreamVecEnv(model, 4, start_states=buffer, horizon=16)
    agent = PPO(
        "MlpPolicy",
        mbwrap.sb3.as_vec_env(dream),
        n_steps=32,
        batch_size=64,
        n_epochs=2,
        seed=0,
        device="cpu",
    )
    before = [p.detach().clone() for p in agent.policy.parameters()]
    agent.learn(256)
    assert agent.num_timesteps >= 256
    assert any(
        not torch.equal(a, b) for a, b in zip(before, agent.policy.parameters(), strict=True)
    )
    real = LatentFilterWrapper(gym.make("CartPole-v1", max_episode_steps=30), model, seed=0)
    assert real.observation_space == agent.observation_space
    returns, lengths = evaluate_policy(
        agent, real, n_eval_episodes=2, return_episode_rewards=True, warn=False
    )
    assert len(returns) == 2 and all(1 <= r <= 30 for r in returns)
    assert returns == [float(n) for n in lengths]


class _SignAgent:
    """Pushes toward the sign of the first latent feature; remembers what it saw."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def predict(self, features, state=None, episode_start=None, deterministic=False):
        self.seen.append(np.array(features, copy=True))
        return (np.asarray(features)[..., 0] > 0).astype(np.int64), state


def test_latent_filter_policy_collects_real_data_as_the_agent_acts_through_the_wrapper(cartpole):
    # The agent sees the same features through the policy as through the wrapper, and the
    # buffer holds the real observations: no wrapper of the user's is needed to collect.
    model, _ = cartpole
    through_wrapper = _SignAgent()
    env = LatentFilterWrapper(gym.make("CartPole-v1"), model, sample=False)
    features, _ = env.reset(seed=4)
    real = gym.make("CartPole-v1")
    observations = [real.reset(seed=4)[0]]
    for _ in range(12):
        action = int(through_wrapper.predict(features[None])[0][0])
        features, _, terminated, truncated, _ = env.step(action)
        observations.append(real.step(action)[0])
        assert not (terminated or truncated)
    through_policy = _SignAgent()
    buffer = ReplayBuffer(real.observation_space, real.action_space, 100, device="cpu")
    policy = LatentFilterPolicy(through_policy, model, sample=False)
    mbwrap.collect(gym.make("CartPole-v1"), buffer, 12, policy=policy, seed=4)
    np.testing.assert_allclose(
        np.concatenate(through_policy.seen), np.concatenate(through_wrapper.seen), atol=1e-6
    )
    data = buffer.transitions()
    np.testing.assert_array_equal(data.obs.numpy(), np.stack(observations[:-1]))
    np.testing.assert_array_equal(data.next_obs.numpy(), np.stack(observations[1:]))
    # A batch of envs filters each on its own and restarts where an episode starts.
    obs = np.stack(observations[:2])
    policy.predict(obs, episode_start=np.array([True, True]))
    before = policy.filter.state.clone()
    policy.predict(obs, episode_start=np.array([True, False]))
    torch.testing.assert_close(policy.filter.state[0], before[0])
    assert not torch.allclose(policy.filter.state[1], before[1])
    with pytest.raises(TypeError, match="agent: expected an object with predict"):
        LatentFilterPolicy(object(), model)


def test_latent_filter_rejects_other_spaces_and_non_latent_models(cartpole):
    model, _ = cartpole
    with pytest.raises(SpaceMismatchError, match="observation_space"):
        LatentFilterWrapper(gym.make("Acrobot-v1"), model)
    with pytest.raises(SpaceMismatchError, match="action_space"):
        LatentFilterWrapper(
            gym.wrappers.TransformObservation(
                gym.make("MountainCarContinuous-v0"),
                lambda o: np.zeros(4, np.float32),
                gym.make("CartPole-v1").observation_space,
            ),
            model,
        )
    cartpole_env = gym.make("CartPole-v1")
    mlp = mbwrap.MLPModel(cartpole_env.observation_space, cartpole_env.action_space, device="cpu")
    with pytest.raises(TypeError, match="not a latent filtering model"):
        LatentFilterWrapper(cartpole_env, mlp)
    with pytest.raises(TypeError, match="WorldModel"):
        LatentFilterWrapper(cartpole_env, object())
    wrapped = LatentFilterWrapper(gym.make("CartPole-v1"), model)
    with pytest.raises(gym.error.ResetNeeded):
        wrapped.step(0)
