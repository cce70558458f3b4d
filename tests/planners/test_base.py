"""The planner contract: objective, warm start, SB3 surface, persistence, bad input."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv

import mbwrap
from mbwrap.errors import CheckpointError, ModelOutputError, UnsupportedSpaceError
from mbwrap.models import WorldModel
from mbwrap.planners import Planner, RandomShooting, predicted_returns
from mbwrap.planners.objective import NONFINITE_RETURN
from mbwrap.types import ModelStep


class CountingModel(WorldModel):
    """``s' = s + a`` (1-D), reward ``s'``, terminating once ``s' >= 2``; records calls."""

    def __init__(self, *, terminate: bool = True, env_id=None, device="cpu") -> None:
        super().__init__(
            spaces.Box(-10.0, 10.0, (1,), np.float32),
            spaces.Box(-1.0, 1.0, (1,), np.float32),
            env_id=env_id,
            device=device,
        )
        self.terminate = terminate
        self.batches: list[int] = []

    def get_config(self):
        return {"terminate": self.terminate}

    def fit(self, buffer, **kwargs):
        return {}

    def step(self, state, action, *, generator=None, member=None):
        self.batches.append(state.shape[0])
        next_state = state + action
        done = (next_state[:, 0] >= 2).float() if self.terminate else None
        return ModelStep(next_state=next_state, reward=next_state[:, 0], terminated=done)


def test_predicted_returns_by_hand():
    model = CountingModel(terminate=False)
    state = torch.tensor([[0.0], [1.0]])
    # [B=2, N=2, H=3, 1]: always +1, or +1 then -1 then +1.
    up = torch.ones(3, 1)
    zigzag = torch.tensor([[1.0], [-1.0], [1.0]])
    candidates = torch.stack([up, zigzag]).expand(2, 2, 3, 1)
    returns = predicted_returns(model, state, candidates, particles=3)
    # From 0: states 1, 2, 3 -> 6; zigzag 1, 0, 1 -> 2. From 1: 2, 3, 4 -> 9; 2, 1, 2 -> 5.
    torch.testing.assert_close(returns, torch.tensor([[6.0, 2.0], [9.0, 5.0]]))
    # All B * N * P rollouts stepped together, once per horizon step.
    assert model.batches == [12, 12, 12]
    discounted = predicted_returns(model, state[:1], candidates[:1, :1], discount=0.5)
    torch.testing.assert_close(discounted, torch.tensor([[1 + 0.5 * 2 + 0.25 * 3]]))


def test_predicted_returns_stop_at_termination():
    model = CountingModel(terminate=True)
    candidates = torch.ones(1, 1, 4, 1)
    # States 1, 2 (terminates: reward 2 still counts), then nothing.
    returns = predicted_returns(model, torch.zeros(1, 1), candidates)
    torch.testing.assert_close(returns, torch.tensor([[3.0]]))

    def never(obs, action, next_obs):
        return torch.zeros(obs.shape[0], dtype=torch.bool)

    longer = predicted_returns(model, torch.zeros(1, 1), candidates, termination_fn=never)
    torch.testing.assert_close(longer, torch.tensor([[10.0]]))


def test_reward_and_termination_functions_see_each_steps_transition_once():
    """Both functions are called once on all H x R transitions, each row the (obs, action,
    next obs) of one rollout at one step; a model whose decoded states are a dict of
    tensors (feature states) hands them over as dicts."""

    class DictDecoding(CountingModel):
        def decode(self, state):
            return {"position": state, "double": 2 * state}

    model = DictDecoding(terminate=False)
    seen = []

    def reward(obs, action, next_obs):
        seen.append((obs["position"][:, 0].tolist(), action[:, 0].tolist()))
        assert torch.equal(next_obs["double"], 2 * next_obs["position"])
        return next_obs["position"][:, 0] - obs["position"][:, 0]  # the step's action

    def done(obs, action, next_obs):
        return next_obs["position"][:, 0] >= 2

    candidates = torch.tensor([[[[1.0], [1.0], [1.0]], [[1.0], [-1.0], [1.0]]]])  # [1, 2, 3, 1]
    returns = predicted_returns(model, torch.zeros(1, 1), candidates, reward_fn=reward,
                                termination_fn=done)
    # Step-major: rollouts (up, zigzag) at step 0, then at step 1, then at step 2.
    assert seen == [([0.0, 0.0, 1.0, 1.0, 2.0, 0.0], [1.0, 1.0, 1.0, -1.0, 1.0, 1.0])]
    # up: +1, +1 (reaches 2: terminates), then nothing; zigzag: +1, -1, +1.
    torch.testing.assert_close(returns, torch.tensor([[2.0, 1.0]]))


def test_predicted_returns_replace_nonfinite():
    model = CountingModel(terminate=False)

    def nan_reward(obs, action, next_obs):
        return torch.where(action[:, 0] > 0, math.nan, 1.0)

    candidates = torch.tensor([[[[1.0]], [[-1.0]]]])  # [1, 2, 1, 1]
    returns = predicted_returns(model, torch.zeros(1, 1), candidates, reward_fn=nan_reward)
    assert returns[0, 0] == NONFINITE_RETURN and returns[0, 1] == 1.0


def test_reward_fn_comes_from_registry_for_known_env():
    model = mbwrap.make_model(
        "mlp",
        gym.make("Pendulum-v1").observation_space,
        gym.make("Pendulum-v1").action_space,
        env_id="Pendulum-v1",
        hidden_sizes=[8],
        device="cpu",
    )
    planner = RandomShooting(model, population=8, horizon=2)
    assert planner.reward_fn is mbwrap.registry.get_fn("Pendulum-v1").reward


class Recorder(RandomShooting):
    """Returns ``init + 0.1 * (t + 1)`` and records every ``init`` it was handed."""

    def optimize(self, state, init):
        self.inits = [*getattr(self, "inits", []), init.clone()]
        steps = torch.arange(1, self.horizon + 1, dtype=init.dtype)[None, :, None]
        return init + 0.1 * steps


def test_warm_start_shifts_and_episode_start_resets(shift_model):
    planner = Recorder(shift_model, horizon=3)
    obs = np.zeros((2, 2), dtype=np.float32)
    first, _ = planner.predict(obs)
    np.testing.assert_allclose(first, np.full((2, 2), 0.1), rtol=1e-6)
    planner.predict(obs)
    # Handed the first solution shifted by one step; a fresh (middle of the Box) last step.
    expected = torch.tensor([0.2, 0.3, 0.0])[None, :, None].expand(2, 3, 2)
    torch.testing.assert_close(planner.inits[1], expected)
    planner.predict(obs, episode_start=np.array([True, False]))
    torch.testing.assert_close(planner.inits[2][0], torch.zeros(3, 2))
    torch.testing.assert_close(
        planner.inits[2][1], torch.tensor([0.5, 0.3, 0.0])[:, None].expand(3, 2)
    )
    # A new batch size, or no warm start, starts afresh.
    planner.predict(np.zeros((3, 2), dtype=np.float32))
    torch.testing.assert_close(planner.inits[3], torch.zeros(3, 3, 2))
    cold = Recorder(shift_model, horizon=3, warm_start=False)
    cold.predict(obs)
    cold.predict(obs)
    torch.testing.assert_close(cold.inits[1], torch.zeros(2, 3, 2))
    planner.reset()
    assert planner._solution is None


def test_reward_swap_changes_the_plan(shift_model):
    planner = RandomShooting(shift_model, population=2000, horizon=1, seed=0)
    obs = np.zeros((1, 2), dtype=np.float32)
    towards_origin, _ = planner.predict(obs)
    assert np.abs(towards_origin).max() < 0.2

    def go_to(goal):
        goal = torch.tensor(goal)
        return lambda obs, action, next_obs: -(next_obs - goal).square().sum(-1)

    planner.reward_fn = go_to([1.0, -1.0])
    moved, _ = planner.predict(obs)
    np.testing.assert_allclose(moved[0], [1.0, -1.0], atol=0.15)


def test_discrete_random_shooting(discrete_shift_model):
    planner = mbwrap.make_planner("random-shooting", discrete_shift_model, horizon=2, seed=0)
    actions, _ = planner.predict(np.array([[3.0], [-3.0], [0.0]], dtype=np.float32))
    np.testing.assert_array_equal(actions, [0, 2, 1])  # move down, up, stay


def test_evaluate_policy_on_single_and_vector_envs():
    env = gym.make("Pendulum-v1", max_episode_steps=20)
    model = mbwrap.make_model(
        "mlp", env.observation_space, env.action_space, env_id="Pendulum-v1", device="cpu"
    )
    planner = RandomShooting(model, population=16, horizon=3, seed=0)
    mean, _ = evaluate_policy(planner, env, n_eval_episodes=2, warn=False)
    assert np.isfinite(mean)
    vec = DummyVecEnv([lambda: gym.make("Pendulum-v1", max_episode_steps=20)] * 2)
    mean, _ = evaluate_policy(planner, vec, n_eval_episodes=4, warn=False)
    assert np.isfinite(mean) and planner._solution.shape == (2, 3, 1)


def test_save_load_round_trip(tmp_path):
    env = gym.make("Pendulum-v1")
    model = mbwrap.make_model(
        "mlp", env.observation_space, env.action_space, env_id="Pendulum-v1", hidden_sizes=[8]
    )
    planner = mbwrap.make_planner("random-shooting", model, population=32, horizon=5, seed=3)
    planner.save(tmp_path / "planner.pt")
    loaded = Planner.load(tmp_path / "planner.pt", device="cpu")
    assert type(loaded) is RandomShooting and loaded.get_config() == planner.get_config()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[key], value.cpu())
    obs = env.reset(seed=0)[0]
    np.testing.assert_allclose(loaded.predict(obs)[0], planner.predict(obs)[0])
    # Same class check and a corrupt file.
    with pytest.raises(CheckpointError, match="not a"):
        type("Other", (RandomShooting,), {}).load(tmp_path / "planner.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        Planner.load(tmp_path / "bad.pt")


def test_load_warns_about_a_given_reward_fn(tmp_path):
    env = gym.make("Pendulum-v1")
    model = mbwrap.make_model("mlp", env.observation_space, env.action_space, hidden_sizes=[8])

    def reward(obs, action, next_obs):
        return -next_obs.square().sum(-1)

    RandomShooting(model, horizon=2, reward_fn=reward).save(tmp_path / "p.pt")
    with pytest.warns(UserWarning, match="reward_fn"):
        Planner.load(tmp_path / "p.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = Planner.load(tmp_path / "p.pt", reward_fn=reward)
    assert loaded.reward_fn is reward


def test_bad_input(shift_model):
    with pytest.raises(ValueError, match="horizon"):
        RandomShooting(shift_model, horizon=0)
    with pytest.raises(ValueError, match="particles"):
        RandomShooting(shift_model, particles=0)
    with pytest.raises(ValueError, match="gamma"):
        RandomShooting(shift_model, gamma=1.5)
    with pytest.raises(TypeError, match="WorldModel"):
        RandomShooting("mlp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"device.*model lives on cpu"):
        RandomShooting(shift_model, device="cuda")
    unbounded = mbwrap.make_model(
        "mlp",
        spaces.Box(-1.0, 1.0, (2,), np.float32),
        spaces.Box(-np.inf, np.inf, (1,), np.float32),
        hidden_sizes=[8],
    )
    with pytest.raises(UnsupportedSpaceError, match="bounded Box"):
        RandomShooting(unbounded)
    multi = mbwrap.make_model(
        "mlp", spaces.Box(-1.0, 1.0, (2,), np.float32), spaces.MultiDiscrete([2, 3])
    )
    with pytest.raises(UnsupportedSpaceError, match="Box and Discrete"):
        RandomShooting(multi)
    planner = RandomShooting(shift_model, horizon=2)
    with pytest.raises(mbwrap.errors.SpaceMismatchError, match="obs"):
        planner.plan(torch.zeros(3, 5))


def test_nonfinite_model_raises(shift_model):
    def broken(obs, action, next_obs):
        return torch.full((obs.shape[0],), math.nan)

    planner = RandomShooting(shift_model, horizon=2, population=4, reward_fn=broken)
    with pytest.raises(ModelOutputError, match="NaN or infinite"):
        planner.predict(np.zeros(2, dtype=np.float32))

    def partly(obs, action, next_obs):  # NaN for half of the candidates only
        return torch.where(action[:, 0] > 0, math.nan, -action[:, 0].square())

    planner = RandomShooting(shift_model, horizon=1, population=64, reward_fn=partly)
    action, _ = planner.predict(np.zeros(2, dtype=np.float32))
    assert action[0] <= 0


def test_sample_uniform_sequences_and_best_candidate():
    from mbwrap.planners.random_shooting import best_candidate, sample_uniform_sequences

    lower, upper = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 4.0])
    gen = torch.Generator().manual_seed(0)
    seqs = sample_uniform_sequences(lower, upper, batch=3, num=2000, horizon=4, generator=gen)
    assert seqs.shape == (3, 2000, 4, 2)
    assert (seqs >= lower).all() and (seqs <= upper).all()
    torch.testing.assert_close(seqs.mean((0, 1, 2)), (lower + upper) / 2, atol=0.05, rtol=0)
    candidates = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2, 1)
    returns = torch.tensor([[0.0, 5.0, 1.0], [7.0, -1.0, 2.0]])
    best = best_candidate(candidates, returns)
    torch.testing.assert_close(best, torch.stack([candidates[0, 1], candidates[1, 0]]))
