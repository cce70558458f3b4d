"""The example plugin ``mbwrap-linear``: discovery, exact recovery of linear systems, the
dream envs over it, a real env, persistence and errors."""

from __future__ import annotations

import importlib.metadata

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from mbwrap_linear import LinearModel, linear_features, ridge_regression

import mbwrap
from mbwrap.errors import UnsupportedSpaceError

OBS_SPACE = spaces.Box(-10.0, 10.0, shape=(3,), dtype=np.float32)
BOX_ACTIONS = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)


class LinearSystem:
    """``x' = A x + B u + e`` and ``r = c^T x + d^T u + r0``, with fixed random coefficients.

    ``u`` is the action as :func:`_encode` writes it: discrete parts one-hot.
    """

    def __init__(self, action_dim: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.A = np.eye(3) + 0.1 * rng.standard_normal((3, 3))
        self.B = rng.standard_normal((3, action_dim))
        self.e = 0.1 * rng.standard_normal(3)
        self.c = rng.standard_normal(3)
        self.d = rng.standard_normal(action_dim)
        self.r0 = 0.5

    def step(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``x: [B, 3]``, ``u: [B, action_dim]`` -> ``(x' [B, 3], r [B])``."""
        return x @ self.A.T + u @ self.B.T + self.e, x @ self.c + u @ self.d + self.r0


def _encode(actions: np.ndarray, space: spaces.Space) -> np.ndarray:
    """``[B, *act_shape] -> [B, U]``: discrete parts one-hot, the rest as floats."""
    if isinstance(space, spaces.Discrete):
        return np.eye(space.n)[actions - space.start]
    if isinstance(space, spaces.MultiDiscrete):
        return np.concatenate([np.eye(n)[actions[:, i]] for i, n in enumerate(space.nvec)], 1)
    return actions.reshape(len(actions), -1).astype(np.float64)


def _random_actions(space: spaces.Space, n: int, seed: int) -> np.ndarray:
    space.seed(seed)
    return np.stack([space.sample() for _ in range(n)])


def _system_buffer(
    system: LinearSystem, action_space: spaces.Space, n: int = 2000, seed: int = 0
) -> mbwrap.ReplayBuffer:
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-2.0, 2.0, (n, 3)).astype(np.float32)
    actions = _random_actions(action_space, n, seed)
    next_obs, reward = system.step(obs, _encode(actions, action_space))
    buffer = mbwrap.ReplayBuffer(OBS_SPACE, action_space, capacity=n, device="cpu")
    buffer.extend(obs, actions, reward, next_obs, np.zeros(n, bool), np.zeros(n, bool))
    return buffer


@pytest.fixture
def box_system() -> tuple[LinearSystem, LinearModel]:
    system = LinearSystem(action_dim=2)
    model = mbwrap.make_model("linear", OBS_SPACE, BOX_ACTIONS, device="cpu")
    model.fit(_system_buffer(system, BOX_ACTIONS))
    return system, model


def _pendulum_buffer(steps: int, seed: int) -> mbwrap.ReplayBuffer:
    env = gym.make("Pendulum-v1")
    buffer = mbwrap.ReplayBuffer(
        env.observation_space, env.action_space, capacity=steps, device="cpu"
    )
    mbwrap.collect(env, buffer, steps, seed=seed)
    env.close()
    return buffer


# ---------------------------------------------------------------------- pure functions
def test_ridge_regression_matches_hand_solution():
    # One feature x = (1, 2, 3), y = 2x: w = sum(xy) / (sum(x^2) + penalty) = 28 / (14 + p).
    x = torch.tensor([[1.0], [2.0], [3.0]])
    y = 2.0 * x
    assert ridge_regression(x, y, torch.tensor([0.0])).item() == pytest.approx(2.0)
    assert ridge_regression(x, y, torch.tensor([7.0])).item() == pytest.approx(28.0 / 21.0)


def test_ridge_regression_singular_without_penalty_is_a_value_error():
    x = torch.tensor([[1.0, 1.0], [2.0, 2.0]])  # two identical columns
    with pytest.raises(ValueError, match="ridge > 0"):
        ridge_regression(x, x[:, :1], torch.zeros(2))


def test_linear_features_one_hot_discrete_actions_with_start():
    obs = torch.tensor([[0.5, -1.0], [2.0, 3.0]])
    action = torch.tensor([1, 3])
    x = linear_features(obs, action, spaces.Discrete(3, start=1))
    expected = torch.tensor([[0.5, -1.0, 1.0, 0.0, 0.0, 1.0], [2.0, 3.0, 0.0, 0.0, 1.0, 1.0]])
    assert torch.equal(x, expected)


# ---------------------------------------------------------------------- registry
def test_plugin_is_discovered_with_its_distribution():
    info = mbwrap.registry.available("model")["linear"]
    assert info.dist == "mbwrap-linear"
    assert info.version == importlib.metadata.version("mbwrap-linear")
    assert info.target == "mbwrap_linear.model:LinearModel"
    assert info.load() is LinearModel


def test_make_model_builds_an_unfitted_model_that_predicts_no_change():
    model = mbwrap.make_model("linear", OBS_SPACE, BOX_ACTIONS, device="cpu", ridge=1e-3)
    assert isinstance(model, LinearModel)
    assert model.device == torch.device("cpu")
    assert model.ridge == 1e-3
    state = torch.randn(4, 3)
    out = model.step(state, torch.zeros(4, 2))
    assert torch.equal(out.next_state, state)
    assert torch.equal(out.reward, torch.zeros(4))
    assert out.terminated is None


# ---------------------------------------------------------------------- known linear systems
def test_fit_recovers_a_linear_system_with_box_actions(box_system):
    system, model = box_system
    w_d = model.delta_weight.double().numpy()  # rows: obs (3), action (2), bias (1)
    np.testing.assert_allclose(w_d[:3].T, system.A - np.eye(3), atol=1e-4)
    np.testing.assert_allclose(w_d[3:5].T, system.B, atol=1e-4)
    np.testing.assert_allclose(w_d[5], system.e, atol=1e-4)
    w_r = model.reward_weight.double().numpy()
    np.testing.assert_allclose(w_r[:3], system.c, atol=1e-4)
    np.testing.assert_allclose(w_r[3:5], system.d, atol=1e-4)
    assert w_r[5] == pytest.approx(system.r0, abs=1e-4)


def test_fit_metrics():
    system = LinearSystem(action_dim=2)
    model = LinearModel(OBS_SPACE, BOX_ACTIONS, device="cpu")
    metrics = model.fit(_system_buffer(system, BOX_ACTIONS, n=500))
    assert metrics["transitions"] == 500
    assert metrics["train_mse"] < 1e-8
    assert metrics["reward_mse"] < 1e-8
    assert metrics["no_change_mse"] > 0.1
    assert metrics["fit_time"] > 0


@pytest.mark.parametrize(
    ("action_space", "action_dim"),
    [
        (spaces.Discrete(4, start=1), 4),
        (spaces.MultiDiscrete([2, 3]), 5),
        (spaces.MultiBinary(3), 3),
    ],
)
def test_fit_predicts_a_linear_system_with_discrete_actions(action_space, action_dim):
    # One-hot actions plus the bias column are collinear: only predictions are identified,
    # and the ridge is what makes the normal equations solvable.
    system = LinearSystem(action_dim=action_dim, seed=1)
    model = LinearModel(OBS_SPACE, action_space, device="cpu")
    model.fit(_system_buffer(system, action_space, seed=1))
    x = np.random.default_rng(7).uniform(-2.0, 2.0, (64, 3)).astype(np.float32)
    a = _random_actions(action_space, 64, seed=7)
    out = model.step(torch.as_tensor(x), torch.as_tensor(a))
    true_next, true_reward = system.step(x, _encode(a, action_space))
    np.testing.assert_allclose(out.next_state.numpy(), true_next, atol=1e-3)
    np.testing.assert_allclose(out.reward.numpy(), true_reward, atol=1e-3)


def test_dream_vec_env_steps_like_the_true_system(box_system):
    system, model = box_system
    starts = np.random.default_rng(3).uniform(-1.0, 1.0, (32, 3)).astype(np.float32)
    horizon = 4
    env = mbwrap.DreamVecEnv(model, num_envs=8, start_states=starts, horizon=horizon)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (8, 3) and obs.dtype == np.float32
    assert all(any(np.array_equal(o, s) for s in starts) for o in obs)
    for t in range(1, horizon + 1):
        actions = env.action_space.sample()
        true_next, true_reward = system.step(obs.astype(np.float64), actions)
        obs, reward, terminated, truncated, info = env.step(actions)
        np.testing.assert_allclose(reward, true_reward, atol=1e-4)
        assert not terminated.any()  # no termination head, no registered fn
        if t < horizon:
            assert not truncated.any()
            np.testing.assert_allclose(obs, true_next, atol=1e-4)
        else:
            assert truncated.all()
            final = np.stack(info["final_obs"])
            np.testing.assert_allclose(final, true_next, atol=1e-4)


def test_dream_env_steps_like_the_true_system(box_system):
    system, model = box_system
    starts = np.array([[0.5, -0.5, 1.0]], dtype=np.float32)
    env = mbwrap.DreamEnv(model, start_states=starts, horizon=10)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, starts[0])
    for action in ([1.0, -1.0], [0.0, 0.5], [-0.3, 0.2]):
        u = np.asarray(action, dtype=np.float32)
        true_next, true_reward = system.step(obs[None].astype(np.float64), u[None])
        obs, reward, terminated, truncated, _ = env.step(u)
        np.testing.assert_allclose(obs, true_next[0], atol=1e-4)
        assert reward == pytest.approx(true_reward[0], abs=1e-4)
        assert not terminated and not truncated


# ---------------------------------------------------------------------- a real env
def test_pendulum_one_step_error_beats_predicting_no_change():
    env = gym.make("Pendulum-v1")
    model = mbwrap.make_model(
        "linear", env.observation_space, env.action_space, env_id="Pendulum-v1", device="cpu"
    )
    model.fit(_pendulum_buffer(2000, seed=0))
    held_out = _pendulum_buffer(1000, seed=1).transitions()
    pred = model.step(held_out.obs, held_out.action)
    model_mse = float((pred.next_state - held_out.next_obs).square().mean())
    no_change_mse = float((held_out.obs - held_out.next_obs).square().mean())
    # Measured: about 0.009 against 0.11; the velocity update is linear in sin(theta) and u.
    assert model_mse < 0.25 * no_change_mse
    reward_mse = float((pred.reward - held_out.reward).square().mean())
    assert reward_mse < float(held_out.reward.var())


# ---------------------------------------------------------------------- persistence
def test_save_load_round_trip_gives_identical_predictions(box_system, tmp_path):
    _, model = box_system
    path = tmp_path / "linear.mbw"
    model.save(path)
    state, action = torch.randn(16, 3), torch.rand(16, 2) * 2 - 1
    expected = model.step(state, action)
    for loaded in (
        LinearModel.load(path, device="cpu"),
        mbwrap.WorldModel.load(path, device="cpu"),
    ):
        assert type(loaded) is LinearModel
        assert loaded.ridge == model.ridge
        out = loaded.step(state, action)
        assert torch.equal(out.next_state, expected.next_state)
        assert torch.equal(out.reward, expected.reward)


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "obs_space",
    [spaces.Discrete(5), spaces.MultiDiscrete([2, 3]), spaces.Box(0, 255, (4,), dtype=np.uint8)],
)
def test_non_float_box_observations_are_unsupported(obs_space):
    with pytest.raises(UnsupportedSpaceError, match="Box of floats"):
        LinearModel(obs_space, BOX_ACTIONS, device="cpu")


def test_fit_on_an_empty_buffer_is_a_value_error():
    model = LinearModel(OBS_SPACE, BOX_ACTIONS, device="cpu")
    buffer = mbwrap.ReplayBuffer(OBS_SPACE, BOX_ACTIONS, capacity=10, device="cpu")
    with pytest.raises(ValueError, match="empty"):
        model.fit(buffer)


@pytest.mark.parametrize("ridge", [-1.0, float("nan"), "small"])
def test_bad_ridge_is_a_value_error(ridge):
    with pytest.raises(ValueError, match="ridge"):
        LinearModel(OBS_SPACE, BOX_ACTIONS, device="cpu", ridge=ridge)
