"""iLQR: the LQ problem's Riccati solution, the known optimum of ShiftModel, batching,
bounds, bad input, the SB3 surface, persistence and a fitted plugin model."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import scipy.linalg
import torch
from gymnasium import spaces

import mbwrap
from mbwrap.errors import ModelOutputError, UnsupportedSpaceError
from mbwrap.models import WorldModel
from mbwrap.planners import Planner
from mbwrap.planners.ilqr import (
    ILQR,
    at_one_point,
    forward_pass,
    linearize_dynamics,
    lqr_backward,
    quadratize_reward,
    rollout,
    update_regularization,
)
from mbwrap.types import ModelStep

# A lightly damped oscillator with a drift term and two inputs: controllable, open-loop
# unstable (spectral radius > 1), so the finite-horizon gains converge to the DARE's.
A = np.array([[1.0, 0.1, 0.0], [-0.1, 1.0, 0.1], [0.0, 0.0, 1.02]])
B = np.array([[0.0, 0.0], [0.1, 0.0], [0.05, 0.1]])
Q = np.diag([1.0, 0.5, 0.2])
R = np.array([[0.1, 0.02], [0.02, 0.2]])


class LinearQuadraticModel(WorldModel):
    """``s' = A s + B a`` with reward ``-(s^T Q s + a^T R a)`` of the *current* state and
    action: step ``t`` pays the DARE's stage cost ``x_t^T Q x_t + u_t^T R u_t``."""

    def __init__(self, *, low: Any = -100.0, high: Any = 100.0, dtype=torch.float32) -> None:
        super().__init__(
            spaces.Box(-1e3, 1e3, (3,), np.float32),
            spaces.Box(
                np.broadcast_to(low, (2,)).astype(np.float32),
                np.broadcast_to(high, (2,)).astype(np.float32),
            ),
            device="cpu",
        )
        for name, value in {"A": A, "B": B, "Q": Q, "R": R}.items():
            self.register_buffer(name, torch.as_tensor(value, dtype=dtype))

    def get_config(self) -> dict[str, Any]:
        return {}

    def fit(self, buffer: Any, **kwargs: Any) -> dict[str, Any]:
        return {}

    def mean_step(self, state, action):
        state, action = state.to(self.A.dtype), action.to(self.A.dtype)
        next_state = state @ self.A.T + action @ self.B.T
        cost = ((state @ self.Q) * state).sum(-1) + ((action @ self.R) * action).sum(-1)
        return next_state, -cost

    def step(self, state, action, *, generator=None, member=None) -> ModelStep:
        next_state, reward = self.mean_step(state, action)
        return ModelStep(next_state=next_state, reward=reward, terminated=None)


class NoMeanStepModel(LinearQuadraticModel):
    """A valid model with ``step`` only: the base class's ``mean_step`` raises."""

    mean_step = WorldModel.mean_step


def _dare_gain() -> np.ndarray:
    """The infinite-horizon LQR gain ``K = (R + B^T P B)^{-1} B^T P A``, ``u = -K x``."""
    P = scipy.linalg.solve_discrete_are(A, B, Q, R)
    return np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)


def _finite_horizon_gains(horizon: int) -> list[np.ndarray]:
    """The time-varying LQR gains ``K_t`` (``u_t = -K_t x_t``) with no terminal cost."""
    P = np.zeros((3, 3))
    gains = []
    for _ in range(horizon):
        K = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        P = Q + A.T @ P @ (A - B @ K)
        gains.append(K)
    return gains[::-1]


X0 = np.array([[1.0, -2.0, 0.5], [-3.0, 0.5, 2.0], [0.2, 0.1, -0.3], [4.0, 4.0, -4.0]])


# ---------------------------------------------------------------------- pure functions
def test_first_backward_pass_gives_the_finite_horizon_riccati_gains():
    horizon = 12
    model = LinearQuadraticModel(dtype=torch.float64)

    def stage(x, u):
        return model.mean_step(x, u)

    dynamics, reward = at_one_point(stage)

    # A nominal trajectory away from the optimum, so that k is not trivially zero.
    x0 = torch.as_tensor(X0, dtype=torch.float64)
    nominal = torch.linspace(-1.0, 1.0, horizon * 2, dtype=torch.float64).reshape(1, horizon, 2)
    nominal = nominal.expand(len(X0), horizon, 2).contiguous()
    weights = torch.ones(horizon, dtype=torch.float64)
    states, cost = rollout(stage, x0, nominal, weights=weights)
    f_x, f_u = linearize_dynamics(dynamics, states[:, :-1], nominal)
    r = quadratize_reward(reward, states[:, :-1], nominal)
    l_x, l_u, l_xx, l_uu, l_ux = (-d for d in r)
    # The derivatives are the textbook ones: f_x = A, f_u = B, l_xx = 2Q, l_uu = 2R, l_ux = 0.
    torch.testing.assert_close(f_x, torch.as_tensor(A).expand_as(f_x))
    torch.testing.assert_close(f_u, torch.as_tensor(B).expand_as(f_u))
    torch.testing.assert_close(l_xx, torch.as_tensor(2 * Q).expand_as(l_xx))
    torch.testing.assert_close(l_uu, torch.as_tensor(2 * R).expand_as(l_uu))
    torch.testing.assert_close(l_ux, torch.zeros_like(l_ux))
    torch.testing.assert_close(l_x, 2 * states[:, :-1] @ torch.as_tensor(Q))

    solution = lqr_backward(f_x, f_u, l_x, l_u, l_xx, l_uu, l_ux, torch.zeros(len(X0)))
    assert solution.positive_definite.all()
    gains = np.stack(_finite_horizon_gains(horizon))  # [H, 2, 3]
    for b in range(len(X0)):
        np.testing.assert_allclose(solution.K[b].numpy(), -gains, rtol=1e-10, atol=1e-12)
    # At t = 0 the state is the nominal one, so the optimal action is u_bar + k = -K_0 x0.
    optimal_first = -X0 @ gains[0].T
    np.testing.assert_allclose((nominal[:, 0] + solution.k[:, 0]).numpy(), optimal_first)
    # For an LQ problem the full step is exact: the cost falls by the predicted amount.
    _, _, new_cost = forward_pass(
        stage,
        x0,
        states,
        nominal,
        solution.k,
        solution.K,
        step_sizes=torch.ones(1, dtype=torch.float64),
        lower=torch.full((2,), -1e9, dtype=torch.float64),
        upper=torch.full((2,), 1e9, dtype=torch.float64),
        weights=weights,
    )
    predicted = solution.expected_improvement.sum(-1)
    torch.testing.assert_close(cost - new_cost[:, 0], predicted)
    assert (predicted > 0).all()


def test_lqr_backward_flags_a_non_positive_definite_q_uu():
    # One step, reward convex in u (cost -u^2): Q_uu = -2 is not positive definite, unless
    # mu > 2 makes it so.
    f_x, f_u = torch.ones(2, 1, 1, 1), torch.ones(2, 1, 1, 1)
    l_x, l_u = torch.zeros(2, 1, 1), torch.ones(2, 1, 1)
    l_xx, l_uu, l_ux = torch.zeros(2, 1, 1, 1), -2 * torch.ones(2, 1, 1, 1), torch.zeros(2, 1, 1, 1)
    solution = lqr_backward(f_x, f_u, l_x, l_u, l_xx, l_uu, l_ux, torch.tensor([0.0, 3.0]))
    assert solution.positive_definite.tolist() == [False, True]
    assert solution.k[1, 0, 0].item() == pytest.approx(-1.0)  # -(Q_uu + mu)^-1 Q_u
    assert torch.isfinite(solution.k).all()


def test_regularization_schedule_of_tassa_et_al():
    mu, delta = torch.tensor([1.0, 1.0, 1e-6]), torch.ones(3)
    success = torch.tensor([True, False, True])
    mu, delta = update_regularization(mu, delta, success, factor=2.0, mu_min=1e-6, mu_max=1e10)
    # Success: delta = min(1/2, 1/2), mu = 1/2; failure: delta = max(2, 2), mu = 2;
    # success below mu_min: mu = 0.
    assert mu.tolist() == [0.5, 2.0, 0.0]
    assert delta.tolist() == [0.5, 2.0, 0.5]
    # Repeated success accelerates the decrease, repeated failure the increase.
    mu, delta = update_regularization(mu, delta, success, factor=2.0, mu_min=1e-6, mu_max=1e10)
    assert mu.tolist() == [0.125, 8.0, 0.0]
    # A failure from mu = 0 jumps to mu_min at least; mu never exceeds mu_max.
    mu, _ = update_regularization(
        torch.tensor([0.0, 1e9]),
        torch.tensor([0.5, 100.0]),
        torch.tensor([False, False]),
        factor=2.0,
        mu_min=1e-6,
        mu_max=1e10,
    )
    assert mu.tolist() == pytest.approx([1e-6, 1e10])


# ---------------------------------------------------------------------- the planner
def test_long_horizon_ilqr_acts_as_the_dare_controller():
    planner = ILQR(LinearQuadraticModel(), horizon=100)
    first = planner.optimize(torch.as_tensor(X0, dtype=torch.float32), planner.fresh_solution(4))
    expected = -X0 @ _dare_gain().T
    np.testing.assert_allclose(first[:, 0].numpy(), expected, rtol=1e-3, atol=1e-4)


def test_shift_model_first_action_is_the_clipped_step_to_the_goal(shift_model):
    planner = ILQR(shift_model, horizon=5)
    states = torch.tensor([[3.0, -0.5], [0.2, 0.3], [-5.0, 4.0], [0.9, -1.5]])
    solution = planner.optimize(states, planner.fresh_solution(4))
    expected = torch.clamp(-states, -1.0, 1.0)
    torch.testing.assert_close(solution[:, 0], expected, atol=1e-3, rtol=0)


def _smooth_reward(obs, action, next_obs):
    """A non-quadratic reward, so that iLQR needs several iterations."""
    return -torch.log1p(next_obs.square().sum(-1)) - 0.1 * action.square().sum(-1)


def test_batched_plan_equals_planning_each_state_alone():
    env = gym.make("Pendulum-v1")
    torch.manual_seed(0)
    model = mbwrap.make_model(
        "mlp", env.observation_space, env.action_space, hidden_sizes=[8], device="cpu"
    )
    planner = ILQR(model, horizon=8, iterations=5, reward_fn=_smooth_reward)
    states = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, -2.0], [-0.6, 0.8, 4.0]])
    together = planner.optimize(states, planner.fresh_solution(3))
    for i in range(3):
        alone = planner.optimize(states[i : i + 1], planner.fresh_solution(1))
        torch.testing.assert_close(alone[0], together[i], atol=1e-5, rtol=1e-5)
    # The plan moved away from the initial middle of the Box.
    assert together.abs().max() > 0.1


def test_plans_respect_asymmetric_bounds():
    low, high = np.array([-0.3, 0.1]), np.array([0.7, 0.2])
    planner = ILQR(LinearQuadraticModel(low=low, high=high), horizon=20)
    solution = planner.optimize(torch.as_tensor(X0, dtype=torch.float32), planner.fresh_solution(4))
    lower, upper = (
        torch.as_tensor(low, dtype=torch.float32),
        torch.as_tensor(high, dtype=torch.float32),
    )
    assert (solution >= lower).all() and (solution <= upper).all()
    # The unconstrained controller would leave the Box from these states; the plan saturates.
    unconstrained = -X0 @ _dare_gain().T
    outside = (unconstrained < low) | (unconstrained > high)
    assert outside.any()
    at_bound = torch.isclose(solution[:, 0], lower) | torch.isclose(solution[:, 0], upper)
    assert at_bound.numpy()[outside].all()
    actions, _ = planner.predict(X0.astype(np.float32))
    assert (actions >= low - 1e-6).all() and (actions <= high + 1e-6).all()


# ---------------------------------------------------------------------- bad input
def test_discrete_actions_are_unsupported(discrete_shift_model):
    with pytest.raises(UnsupportedSpaceError, match="ILQR plans over Box actions only"):
        ILQR(discrete_shift_model)


def test_zero_horizon_is_a_value_error(shift_model):
    with pytest.raises(ValueError, match="horizon"):
        ILQR(shift_model, horizon=0)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("iterations", 0),
        ("mu_init", -1.0),
        ("mu_factor", 1.0),
        ("step_sizes", []),
        ("particles", 4),
    ],
)
def test_bad_settings_are_value_errors(shift_model, setting, value):
    with pytest.raises(ValueError, match=setting):
        ILQR(shift_model, **{setting: value})


def test_model_without_mean_step_fails_at_construction():
    with pytest.raises(NotImplementedError, match="NoMeanStepModel has no differentiable mean"):
        ILQR(NoMeanStepModel())


def test_model_with_non_differentiable_mean_step_fails_at_construction():
    class Frozen(LinearQuadraticModel):
        @torch.no_grad()
        def mean_step(self, state, action):
            return super().mean_step(state, action)

    with pytest.raises(TypeError, match="not differentiable"):
        ILQR(Frozen())


def test_model_that_torch_func_cannot_differentiate_fails_at_construction():
    class Branching(LinearQuadraticModel):
        def mean_step(self, state, action):
            # Data-dependent control flow: fine for autograd, impossible under vmap.
            scale = 2.0 if state.sum().item() > 0 else 1.0
            next_state, reward = super().mean_step(state, action)
            return scale * next_state, reward

    with pytest.raises(TypeError, match=r"torch\.func"):
        ILQR(Branching())


def test_model_without_reward_needs_a_reward_fn(shift_model):
    class NoReward(LinearQuadraticModel):
        def mean_step(self, state, action):
            return super().mean_step(state, action)[0], None

    with pytest.raises(ValueError, match="reward_fn"):
        ILQR(NoReward())
    assert isinstance(ILQR(NoReward(), reward_fn=_smooth_reward), ILQR)


def test_a_model_that_breaks_down_is_reported():
    class Broken(LinearQuadraticModel):
        def mean_step(self, state, action):
            next_state, reward = super().mean_step(state, action)
            return next_state, reward * torch.nan

    planner = ILQR(Broken(), horizon=3, iterations=2)
    with pytest.raises(ModelOutputError, match="NaN or infinite"):
        planner.predict(X0.astype(np.float32))


# ---------------------------------------------------------------------- SB3 and files
def test_predict_takes_and_returns_numpy_batches(shift_model):
    planner = ILQR(shift_model, horizon=4)
    obs = np.array([[3.0, -0.5], [0.2, 0.3], [-5.0, 4.0]], dtype=np.float32)
    actions, state = planner.predict(obs)
    assert isinstance(actions, np.ndarray) and actions.shape == (3, 2) and state is None
    np.testing.assert_allclose(actions, np.clip(-obs, -1, 1), atol=1e-3)
    # Warm-started second decision, and one env restarting.
    actions, _ = planner.predict(obs, episode_start=np.array([False, True, False]))
    assert actions.shape == (3, 2)


def test_save_and_load_round_trip(tmp_path):
    env = gym.make("Pendulum-v1")
    model = mbwrap.make_model(
        "mlp", env.observation_space, env.action_space, hidden_sizes=[8], device="cpu"
    )
    planner = ILQR(model, horizon=7, iterations=3, mu_init=0.5, step_sizes=[1.0, 0.3], gamma=0.9)
    planner.save(tmp_path / "ilqr.mbw")
    mbwrap.registry.refresh()  # the entry point is declared in pyproject.toml
    loaded = Planner.load(tmp_path / "ilqr.mbw", device="cpu")
    assert type(loaded) is ILQR
    assert loaded.get_config() == planner.get_config()
    obs = np.array([[1.0, 0.0, 0.5]], dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(obs)[0], planner.predict(obs)[0], atol=1e-6)


def test_ilqr_over_the_linear_plugin_fitted_on_pendulum():
    env = gym.make("Pendulum-v1")
    buffer = mbwrap.ReplayBuffer(
        env.observation_space, env.action_space, capacity=300, device="cpu"
    )
    mbwrap.collect(env, buffer, 300, seed=0)
    model = mbwrap.make_model(
        "linear", env.observation_space, env.action_space, env_id="Pendulum-v1", device="cpu"
    )
    model.fit(buffer)
    planner = ILQR(model, horizon=15, iterations=5)
    assert planner.reward_fn is not None  # Pendulum's registered reward, differentiated
    obs, _ = env.reset(seed=1)
    for _ in range(3):
        action, _ = planner.predict(obs[None])
        assert action.shape == (1, 1) and np.isfinite(action).all()
        assert (np.abs(action) <= 2.0).all()
        obs, *_ = env.step(action[0])
