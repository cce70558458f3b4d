"""MBPO: its schedule and buffer arithmetic by hand, branched rollouts, the SB3-style
surface, exact resume, errors, and learning Pendulum (the mixing buffer's tests are in
tests/buffers/test_mixed_buffer.py)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.callbacks import (
    BaseCallback,
    EvalCallback,
    StopTrainingOnRewardThreshold,
)
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure

import mbwrap
from mbwrap.algos import MBPO, model_buffer_capacity, rollout_length
from mbwrap.algos.presets import CARTPOLE_MBPO, PENDULUM_MBPO
from mbwrap.errors import NonFiniteModelWarning, SpaceMismatchError, UnsupportedSpaceError
from mbwrap.models import WorldModel
from mbwrap.testing import assert_load_restores_everything, assert_resume_is_exact
from mbwrap.types import ModelStep


def small_mbpo(env: gym.Env | None = None, **overrides: Any) -> MBPO:
    """MBPO scaled down to a few dozen real steps, on Pendulum with the linear model."""
    kwargs: dict[str, Any] = {
        "agent": "SAC",
        "model": "linear",
        "agent_kwargs": {"batch_size": 32, "policy_kwargs": {"net_arch": [16]}},
        "epoch_length": 20,
        "model_train_freq": 10,
        "rollout_batch_size": 8,
        "rollout_schedule": (0, 2, 1, 3),
        "gradient_steps": 2,
        "learning_starts": 20,
        "seed": 0,
        "device": "cpu",
    }
    kwargs.update(overrides)
    return MBPO(env if env is not None else gym.make("Pendulum-v1"), **kwargs)


# ---------------------------------------------------------------------- pure functions
def test_rollout_length_schedule_by_hand():
    hopper = (20, 100, 1, 15)  # Janner et al. 2019, Appendix C
    # Up to epoch 20: 1; then 1 + 14 * (epoch - 20) / 80, truncated; 15 from epoch 100.
    expected = {0: 1, 20: 1, 21: 1, 26: 2, 60: 8, 99: 14, 100: 15, 500: 15}
    assert {epoch: rollout_length(epoch, hopper) for epoch in expected} == expected
    assert rollout_length(7, (1, 15, 1, 1)) == 1  # InvertedPendulum: always 1
    assert rollout_length(5, (0, 10, 1, 5)) == 3


def test_model_buffer_capacity_by_hand():
    # Official defaults: 1e5 rollouts every 250 of 1000 steps = 4e5 rollouts per epoch.
    assert model_buffer_capacity(100_000, 1000, 250, 1, 1) == 400_000
    assert model_buffer_capacity(100_000, 1000, 250, 15, 1) == 6_000_000
    assert model_buffer_capacity(100_000, 1000, 250, 1, 20) == 8_000_000
    assert model_buffer_capacity(8, 20, 10, 2, 1) == 32


# ---------------------------------------------------------------------- the algorithm
def test_buffers_schedule_and_update_counts(tmp_path):
    algo = small_mbpo()
    assert isinstance(algo.agent, SAC) and algo.agent.replay_buffer is algo.mixed_buffer
    algo.set_logger(configure(str(tmp_path), ["csv"]))
    record = []

    class Record(BaseCallback):
        def _on_step(self) -> bool:
            record.append(self.num_timesteps)
            return True

    algo.learn(60, callback=Record())
    assert algo.num_timesteps == 60 and len(algo.buffer) == 60
    assert record == list(range(1, 61))
    # 20 random steps, then 40 steps with 2 updates each.
    assert algo.agent_updates == 80 and algo.epoch == 2
    # Epoch 0 (real steps 20-39) rolled out k = 1, epoch 1 (40-59) k = 2, refitting every
    # 10 steps. The buffer keeps one epoch of rollouts: 2 refits x 8 rollouts x 2 steps.
    buffer = algo.model_buffer
    assert buffer.capacity == 32 and len(buffer) == 32
    data = buffer.transitions()
    # Oldest first: per refit, 8 first steps then 8 second steps continuing them, so
    # nothing of epoch 0's one-step rollouts is left.
    for start in (0, 16):
        torch.testing.assert_close(
            data.obs[start + 8 : start + 16], data.next_obs[start : start + 8]
        )
    # Rollouts branch from real states.
    real_obs = algo.buffer.transitions().obs
    first_steps = torch.cat([data.obs[0:8], data.obs[16:24]])
    assert (first_steps[:, None] == real_obs[None]).all(-1).any(1).all()
    assert data.action.abs().max() <= 2.0
    header, *rows = (tmp_path / "progress.csv").read_text().splitlines()
    columns = dict(zip(header.split(","), rows[-1].split(","), strict=True))
    assert float(columns["train/n_updates"]) == 80  # SAC's own count of gradient steps
    assert float(columns["imagination/rollout_length"]) == 2
    assert float(columns["imagination/model_buffer_size"]) == 32
    assert "model/train_mse" in columns


def test_two_retained_epochs_keep_both():
    algo = small_mbpo(model_retain_epochs=2)
    algo.learn(60)
    # 2 x (8 rollouts x 2 steps x 2 refits); epoch 0's 16 one-step transitions still fit.
    assert algo.model_buffer.capacity == 64 and len(algo.model_buffer) == 16 + 32


class Line(gym.Env):
    """``x' = clip(x + a, -3, 3)``; never terminates by itself."""

    observation_space = gym.spaces.Box(-10.0, 10.0, shape=(1,), dtype=np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = np.zeros(1, dtype=np.float32)
        return self.x.copy(), {}

    def step(self, action):
        self.x = np.clip(self.x + action, -3.0, 3.0).astype(np.float32)
        return self.x.copy(), 0.0, False, False, {}


class ClimbModel(WorldModel):
    """``x' = x + 1`` whatever the action; terminates (probability 1) once ``x' >= 2``."""

    def fit(self, buffer, **kwargs):
        return {"fitted": 1}

    def step(self, state, action, *, generator=None, member=None):
        next_state = state + 1.0
        terminated = (next_state[:, 0] >= 2.0).float()
        return ModelStep(next_state, torch.zeros(state.shape[0]), terminated)

    def get_config(self):
        return {}


def test_terminated_rollouts_stop():
    model = ClimbModel(Line.observation_space, Line.action_space, device="cpu")
    algo = MBPO(
        Line(),
        "SAC",
        model,
        agent_kwargs={"batch_size": 16, "policy_kwargs": {"net_arch": [8]}},
        epoch_length=100,
        model_train_freq=100,
        rollout_batch_size=64,
        rollout_schedule=(0, 1, 6, 6),
        gradient_steps=1,
        learning_starts=30,
        seed=0,
        device="cpu",
    )
    algo.learn(31)
    data = algo.model_buffer.transitions()
    # No transition starts at or beyond a terminal state, every crossing terminates.
    assert (data.obs[:, 0] < 2.0).all()
    assert torch.equal(data.terminated, data.next_obs[:, 0] >= 2.0)
    # Each rollout from x0 lasts ceil(2 - x0) steps at most (k = 6 is never reached).
    assert len(data) < 64 * 6 and data.terminated.sum() == 64


class NaNAboveZero(ClimbModel):
    """``x' = x + 1``, but NaN for states above 0."""

    def step(self, state, action, *, generator=None, member=None):
        next_state = torch.where(state > 0, torch.nan, state + 1.0)
        return ModelStep(next_state, torch.zeros(state.shape[0]), None)


def test_nonfinite_model_outputs_are_dropped_with_a_warning():
    model = NaNAboveZero(Line.observation_space, Line.action_space, device="cpu")
    algo = MBPO(
        Line(),
        "SAC",
        model,
        agent_kwargs={"batch_size": 16, "policy_kwargs": {"net_arch": [8]}},
        rollout_batch_size=64,
        rollout_schedule=(0, 1, 3, 3),
        learning_starts=30,
        gradient_steps=1,
        seed=0,
        device="cpu",
    )
    with pytest.warns(NonFiniteModelWarning, match="NaN or infinite"):
        algo.learn(31)
    data = algo.model_buffer.transitions()
    assert len(data) > 0 and torch.isfinite(data.next_obs).all()
    assert (data.obs[:, 0] <= 0).all()


def test_callbacks_eval_and_save_load_round_trip(tmp_path):
    algo = small_mbpo()
    evaluate = EvalCallback(gym.make("Pendulum-v1"), n_eval_episodes=1, eval_freq=30, verbose=0)
    algo.learn(40, callback=evaluate)
    # One evaluation, after real step 30: a full 200-step Pendulum episode.
    assert evaluate.n_calls == 40 and -2000 < evaluate.best_mean_reward < 0
    algo.save(tmp_path / "mbpo.pt")
    loaded = MBPO.load(tmp_path / "mbpo.pt", env=gym.make("Pendulum-v1"), device="cpu")
    assert loaded.get_config() == algo.get_config()
    assert (loaded.num_timesteps, loaded.real_steps, loaded.agent_updates) == (40, 40, 40)
    obs = np.random.default_rng(0).uniform(-1, 1, size=(32, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0], algo.predict(obs, deterministic=True)[0]
    )
    assert len(loaded.buffer) == 40 and loaded.agent.replay_buffer is loaded.mixed_buffer
    # Continues: refits and rolls out first, since the model buffer is not saved.
    loaded.learn(10, reset_num_timesteps=False)
    assert loaded.num_timesteps == 50 and loaded.agent_updates == 60
    assert len(loaded.model_buffer) > 0


def test_an_agent_instance_is_used_as_given():
    env = gym.make("Pendulum-v1")
    agent = SAC("MlpPolicy", env, batch_size=16, policy_kwargs={"net_arch": [8]}, seed=0)
    algo = small_mbpo(agent=agent, agent_kwargs=None)
    assert algo.agent is agent and agent.replay_buffer is algo.mixed_buffer
    algo.learn(25)
    assert algo.agent_updates == 10
    assert algo.get_config()["agent_kwargs"]["batch_size"] == 16


def test_bad_arguments():
    with pytest.raises(TypeError, match="agent: MBPO trains its agent from a replay buffer"):
        small_mbpo(agent="PPO")
    with pytest.raises(TypeError, match="agent: MBPO"):
        small_mbpo(agent=PPO("MlpPolicy", gym.make("Pendulum-v1"), n_steps=8))
    with pytest.raises(TypeError, match="agent: expected"):
        small_mbpo(agent=object())
    with pytest.raises(ValueError, match="agent_kwargs: only used when agent is a name"):
        small_mbpo(agent=SAC("MlpPolicy", gym.make("Pendulum-v1")))
    # Discrete actions need a DQN-family agent, Box ones a continuous-control agent.
    with pytest.raises(UnsupportedSpaceError, match="agent: SAC takes Box actions"):
        small_mbpo(gym.make("CartPole-v1"), agent="SAC")
    with pytest.raises(UnsupportedSpaceError, match="agent: DQN takes Discrete actions"):
        small_mbpo(agent="DQN")
    with pytest.raises(ValueError, match="rollout_schedule"):
        small_mbpo(rollout_schedule=(10, 5, 1, 1))
    with pytest.raises(ValueError, match="real_ratio"):
        small_mbpo(real_ratio=-0.1)
    with pytest.raises(ValueError, match="epoch_length"):
        small_mbpo(epoch_length=0)
    other = mbwrap.make_model(
        "linear", gym.spaces.Box(-1, 1, (2,)), gym.spaces.Box(-1, 1, (1,)), device="cpu"
    )
    with pytest.raises(SpaceMismatchError, match="model: has spaces"):
        small_mbpo(model=other)


# ---------------------------------------------------------------------- discrete actions
class DiscreteLine(gym.Env):
    """``x' = clip(x -+ 0.1, -3, 3)`` for actions 0 / 1, reward ``-|x'|``; episodes of
    25 steps (never terminates by itself)."""

    observation_space = gym.spaces.Box(-10.0, 10.0, shape=(1,), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = np.zeros(1, dtype=np.float32)
        self.t = 0
        return self.x.copy(), {}

    def step(self, action):
        self.x = np.clip(self.x + (0.1 if action == 1 else -0.1), -3.0, 3.0).astype(np.float32)
        self.t += 1
        return self.x.copy(), -float(abs(self.x[0])), False, self.t >= 25, {}


def small_dqn_mbpo(env: gym.Env | None = None, **overrides: Any) -> MBPO:
    """:func:`small_mbpo` with DQN, copying its target network every 10 real steps."""
    kwargs: dict[str, Any] = {
        "agent": "DQN",
        "agent_kwargs": {
            "batch_size": 32,
            "target_update_interval": 10,
            "exploration_fraction": 0.5,
            "policy_kwargs": {"net_arch": [16]},
        },
    }
    return small_mbpo(env if env is not None else DiscreteLine(), **{**kwargs, **overrides})


def test_dqn_trains_on_branched_rollouts_of_discrete_actions():
    algo = small_dqn_mbpo(gym.make("CartPole-v1"))
    assert isinstance(algo.agent, DQN) and algo.agent.replay_buffer is algo.mixed_buffer
    assert algo.agent.exploration_rate == 0.0  # SB3's value before any step
    initial_target = [p.clone() for p in algo.agent.q_net_target.parameters()]
    algo.learn(60)
    assert algo.num_timesteps == 60 and algo.agent_updates == 80
    # The rollouts store actions as the env takes them: int64 indices, one per transition.
    data = algo.model_buffer.transitions()
    assert len(data) == 32 and data.action.dtype == torch.int64 and data.action.shape == (32,)
    assert set(data.action.tolist()) <= {0, 1}
    # DQN's minibatches hold them as SB3's own buffer does: [B, 1].
    batch = algo.mixed_buffer.sample(16)
    assert batch.actions.shape == (16, 1) and batch.actions.dtype == torch.int64
    # The agent's clock is the real steps: its exploration rate reached the end of its
    # schedule (half of the 60 steps), and its target network was copied from the
    # trained one (every 10 real steps; the 2 updates after step 60 came after the last).
    assert algo.agent.num_timesteps == algo.agent._n_calls == 60
    assert algo.agent.exploration_rate == pytest.approx(algo.agent.exploration_final_eps)
    targets = list(algo.agent.q_net_target.parameters())
    assert not any(torch.equal(t, t0) for t, t0 in zip(targets, initial_target, strict=True))
    online = list(algo.agent.q_net.parameters())
    assert not any(torch.equal(t, q) for t, q in zip(targets, online, strict=True))


def test_rollouts_act_epsilon_greedily_with_the_agents_exploration_rate():
    algo = small_dqn_mbpo()
    obs = torch.linspace(-3, 3, 2000).reshape(-1, 1)
    greedy = algo.agent.q_net(obs).argmax(1)
    algo.agent.exploration_rate = 0.0
    assert torch.equal(algo._policy_actions(obs), greedy)
    algo.agent.exploration_rate = 0.5
    torch.manual_seed(0)
    actions = algo._policy_actions(obs)
    # Half explore uniformly, so a quarter of all actions differ from the greedy ones.
    changed = float((actions != greedy).float().mean())
    assert 0.2 < changed < 0.3


def test_a_dqn_run_resumed_at_an_episode_boundary_follows_the_uninterrupted_one(tmp_path):
    # The clock, exploration rate and target network continue as in one run.
    assert_resume_is_exact(small_dqn_mbpo, DiscreteLine, 50, 50, tmp_path)


# ---------------------------------------------------------------------- resume
def _pendulum() -> gym.Env:
    return gym.make("Pendulum-v1", max_episode_steps=50)


def test_load_restores_the_whole_run(tmp_path):
    algo = small_mbpo(_pendulum())
    algo.learn(70)  # k = 3 from epoch 2 (real step 60): the model buffer was resized twice
    loaded = assert_load_restores_everything(algo, tmp_path, env=_pendulum(), device="cpu")
    assert len(loaded.buffer) == 70 and len(loaded.model_buffer) == len(algo.model_buffer)
    assert loaded.model_buffer.capacity == algo.model_buffer.capacity == 48
    assert loaded.mixed_buffer.model is loaded.model_buffer
    assert loaded.agent.replay_buffer is loaded.mixed_buffer
    assert loaded.agent_updates == algo.agent_updates == 100
    small = tmp_path / "small.pt"
    algo.save(small, include_buffer=False)
    assert small.stat().st_size < (tmp_path / "saved.pt").stat().st_size
    bare = MBPO.load(small, device="cpu")
    assert len(bare.buffer) == 0 and bare.model_buffer is None
    obs = np.zeros((4, 3), dtype=np.float32)
    np.testing.assert_array_equal(
        bare.predict(obs, deterministic=True)[0], algo.predict(obs, deterministic=True)[0]
    )


def test_a_run_resumed_at_an_episode_boundary_follows_the_uninterrupted_one(tmp_path):
    assert_resume_is_exact(lambda: small_mbpo(_pendulum()), _pendulum, 100, 50, tmp_path)


# ---------------------------------------------------------------------- learning
class UniformPolicy:
    """Uniformly random actions through SB3's ``predict``."""

    def __init__(self, space: gym.spaces.Box) -> None:
        self.space = space
        space.seed(0)

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        return np.stack([self.space.sample() for _ in range(len(obs))]), None


def _evaluate(policy: Any, seed: int = 123) -> float:
    """Mean return of 10 episodes from the same 10 start states whatever the policy."""
    env = gym.make("Pendulum-v1")
    env.reset(seed=seed)  # later resets continue this generator
    mean, _ = evaluate_policy(policy, env, n_eval_episodes=10, deterministic=True, warn=False)
    return float(mean)


PENDULUM_SMALL = PENDULUM_MBPO


def test_learns_pendulum_beyond_the_random_policy():
    # On the same 10 start states, a uniformly random policy averages -1328 (over 100
    # episodes it averages -1208 with a std of 294, so a mean of 10 varies by about 93);
    # a policy that never swings the pendulum up does no better. After 200 random steps
    # and 300 MBPO steps (6000 SAC updates), the better of two evaluations (after 400 and
    # 500 real steps, 10 deterministic episodes each) must beat it by more than 300.
    # Seeds 0-3 gave -755, -219, -137 and -913.
    algo = MBPO(
        gym.make("Pendulum-v1"),
        "SAC",
        "mlp",
        model_kwargs={"hidden_sizes": [200, 200]},
        **PENDULUM_SMALL,
        seed=0,
        device="cpu",
    )
    algo.learn(400)
    first = _evaluate(algo)
    algo.learn(100, reset_num_timesteps=False)
    assert algo.num_timesteps == 500 and algo.agent_updates == 6000
    best = max(first, _evaluate(algo))
    assert best > _evaluate(UniformPolicy(algo.action_space)) + 300


@pytest.mark.slow
def test_reaches_minus_200_on_pendulum_within_1500_real_steps():
    # Issue target: a mean return >= -200 over 10 deterministic episodes within 1,500
    # real steps, at most a third of the ~4,000-5,000 SAC alone needs. The paper's
    # probabilistic ensemble (7 members, 5 elites).
    stop = StopTrainingOnRewardThreshold(reward_threshold=-200)
    eval_env = gym.make("Pendulum-v1")
    eval_env.reset(seed=123)  # the evaluations' start states follow from this seed
    evaluate = EvalCallback(eval_env, callback_on_new_best=stop, n_eval_episodes=10, eval_freq=100)
    algo = MBPO(gym.make("Pendulum-v1"), "SAC", "gaussian-ensemble", **PENDULUM_SMALL, seed=0)
    algo.learn(1500, callback=evaluate)
    assert evaluate.best_mean_reward >= -200


def _cartpole_return(policy: Any) -> float:
    """Mean return of 10 deterministic CartPole-v1 episodes from fixed start states."""
    env = gym.make("CartPole-v1")
    env.reset(seed=123)
    mean, _ = evaluate_policy(policy, env, n_eval_episodes=10, deterministic=True, warn=False)
    return float(mean)


def _dqn_on_cartpole(seed: int) -> float:
    algo = MBPO(gym.make("CartPole-v1"), **CARTPOLE_MBPO, seed=seed, device="cpu")
    algo.learn(1000)
    assert algo.num_timesteps == 1000 and algo.agent_updates == 5 * 800
    return _cartpole_return(algo)


def test_dqn_learns_cartpole_within_1000_real_steps():
    # A uniformly random policy lasts about 22 steps. After 200 random and 800 MBPO steps
    # (4000 DQN updates), 10 deterministic episodes must average at least 150.
    # Seeds 0-6 gave 184, 213, 176, 180, 267, 153 and 262.
    assert _dqn_on_cartpole(seed=0) >= 150


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_dqn_learns_cartpole_within_1000_real_steps_on_other_seeds(seed):
    assert _dqn_on_cartpole(seed) >= 150
