"""Tests of the KL-constrained LQG step of guided policy search (mbwrap.planners.lqg)."""

from __future__ import annotations

import math

import pytest
import torch

from mbwrap.planners.lqg import (
    LinearGaussianController,
    LinearGaussianDynamics,
    NotPositiveDefiniteError,
    QuadraticCost,
    controller_kl,
    controller_penalty,
    expected_cost,
    kl_step,
    lqg_backward,
    quadratic_expansion,
    trajectory_marginals,
)

F64 = torch.float64


def _spd(gen: torch.Generator, *batch: int, n: int, scale: float, floor: float) -> torch.Tensor:
    a = torch.randn(*batch, n, n, generator=gen, dtype=F64)
    return scale * a @ a.mT / n + floor * torch.eye(n, dtype=F64)


def random_dynamics(m: int, t: int, x: int, u: int, seed: int) -> LinearGaussianDynamics:
    gen = torch.Generator().manual_seed(seed)
    a = 0.9 * torch.eye(x, dtype=F64) + 0.2 * torch.randn(m, t, x, x, generator=gen, dtype=F64)
    b = 0.5 * torch.randn(m, t, x, u, generator=gen, dtype=F64)
    return LinearGaussianDynamics(
        fx=torch.cat([a, b], -1),
        fc=0.1 * torch.randn(m, t, x, generator=gen, dtype=F64),
        cov=_spd(gen, m, t, n=x, scale=0.02, floor=0.01),
        x0_mean=torch.randn(m, x, generator=gen, dtype=F64),
        x0_cov=_spd(gen, m, n=x, scale=0.1, floor=0.05),
    )


def random_controller(m: int, t: int, x: int, u: int, seed: int) -> LinearGaussianController:
    gen = torch.Generator().manual_seed(seed)
    return LinearGaussianController(
        gain=0.3 * torch.randn(m, t, u, x, generator=gen, dtype=F64),
        offset=0.3 * torch.randn(m, t, u, generator=gen, dtype=F64),
        cov=_spd(gen, m, t, n=u, scale=0.2, floor=0.1),
    )


def random_cost(m: int, t: int, z: int, seed: int) -> QuadraticCost:
    gen = torch.Generator().manual_seed(seed)
    return QuadraticCost(
        hessian=_spd(gen, m, t, n=z, scale=1.0, floor=0.2),
        gradient=torch.randn(m, t, z, generator=gen, dtype=F64),
        constant=torch.randn(m, t, generator=gen, dtype=F64),
    )


def sample_trajectories(
    controller: LinearGaussianController,
    dynamics: LinearGaussianDynamics,
    num: int,
    gen: torch.Generator,
) -> torch.Tensor:
    """``[M, num, T, Z]`` trajectories drawn step by step."""
    m, t_len, _, x_dim = controller.gain.shape
    noise = torch.randn(m, num, x_dim, generator=gen, dtype=F64)
    x = dynamics.x0_mean[:, None] + noise @ torch.linalg.cholesky(dynamics.x0_cov).mT
    steps = []
    for t in range(t_len):
        z = torch.cat([x, controller.sample(x, t, generator=gen)], -1)
        steps.append(z)
        noise = torch.randn(m, num, x_dim, generator=gen, dtype=F64)
        chol = torch.linalg.cholesky(dynamics.cov[:, t])
        x = z @ dynamics.fx[:, t].mT + dynamics.fc[:, t, None] + noise @ chol.mT
    return torch.stack(steps, 2)


def lqr_by_quadratic_program(
    dynamics: LinearGaussianDynamics, cost: QuadraticCost, m: int, x0: torch.Tensor
) -> torch.Tensor:
    """The deterministic LQR actions ``[T, U]`` from ``x0 [X]`` for condition ``m``, found as
    one quadratic program over the whole action sequence (no Riccati recursion)."""
    t_len, x_dim, z_dim = dynamics.fx.shape[1], dynamics.fx.shape[2], dynamics.fx.shape[3]
    u_dim = z_dim - x_dim

    def total_cost(actions: torch.Tensor) -> torch.Tensor:
        x, total = x0, x0.new_zeros(())
        for t in range(t_len):
            z = torch.cat([x, actions[t]])
            total = total + 0.5 * z @ cost.hessian[m, t] @ z + cost.gradient[m, t] @ z
            x = dynamics.fx[m, t] @ z + dynamics.fc[m, t]
        return total

    zero = torch.zeros(t_len * u_dim, dtype=F64)
    flat_cost = lambda w: total_cost(w.reshape(t_len, u_dim))  # noqa: E731
    hess = torch.autograd.functional.hessian(flat_cost, zero)
    grad = torch.autograd.functional.jacobian(flat_cost, zero)
    return torch.linalg.solve(hess, -grad).reshape(t_len, u_dim)


def mean_rollout(
    controller: LinearGaussianController, dynamics: LinearGaussianDynamics, m: int, x0
) -> torch.Tensor:
    """The noise-free actions ``[T, U]`` of the mean controller from ``x0 [X]``."""
    x, actions = x0, []
    for t in range(controller.gain.shape[1]):
        u = controller.gain[m, t] @ x + controller.offset[m, t]
        actions.append(u)
        x = dynamics.fx[m, t] @ torch.cat([x, u]) + dynamics.fc[m, t]
    return torch.stack(actions)


# --- the forward pass --------------------------------------------------------------------


def test_trajectory_marginals_match_monte_carlo():
    dynamics = random_dynamics(2, 5, 2, 1, seed=0)
    controller = random_controller(2, 5, 2, 1, seed=1)
    mean, cov = trajectory_marginals(controller, dynamics)
    assert mean.shape == (2, 5, 3) and cov.shape == (2, 5, 3, 3)
    samples = sample_trajectories(controller, dynamics, 100_000, torch.Generator().manual_seed(2))
    centred = samples - samples.mean(1, keepdim=True)
    mc_cov = torch.einsum("mntz,mnty->mtzy", centred, centred) / samples.shape[1]
    torch.testing.assert_close(mean, samples.mean(1), atol=0.01, rtol=0)
    torch.testing.assert_close(cov, mc_cov, atol=0.01, rtol=0.02)
    # The state covariance grows with the process noise: the pass is not trivially right.
    assert cov[:, -1, :2, :2].diagonal(dim1=-2, dim2=-1).min() > 0.05


def test_expected_cost_matches_monte_carlo():
    dynamics = random_dynamics(2, 5, 2, 1, seed=3)
    controller = random_controller(2, 5, 2, 1, seed=4)
    cost = random_cost(2, 5, 3, seed=5)
    exact = expected_cost(cost, *trajectory_marginals(controller, dynamics))
    z = sample_trajectories(controller, dynamics, 100_000, torch.Generator().manual_seed(6))
    per_sample = (
        0.5 * torch.einsum("mntz,mtzy,mnty->mnt", z, cost.hessian, z)
        + torch.einsum("mntz,mtz->mnt", z, cost.gradient)
        + cost.constant[:, None]
    ).sum(-1)
    assert exact.shape == (2,)
    stderr = per_sample.std(1) / math.sqrt(z.shape[1])
    assert ((exact - per_sample.mean(1)).abs() < 4 * stderr).all()


# --- the cost expansion ------------------------------------------------------------------


def test_quadratic_expansion_of_a_quadratic_reproduces_it():
    gen = torch.Generator().manual_seed(7)
    hessian = _spd(gen, n=3, scale=1.0, floor=0.1)
    gradient = torch.randn(3, generator=gen, dtype=F64)

    def cost_fn(z):
        return 0.5 * ((z @ hessian) * z).sum(-1) + z @ gradient + 1.5

    mean = torch.randn(2, 4, 3, generator=gen, dtype=F64)
    expansion = quadratic_expansion(cost_fn, mean)
    torch.testing.assert_close(expansion.hessian, hessian.expand(2, 4, 3, 3))
    torch.testing.assert_close(expansion.gradient, gradient.expand(2, 4, 3))
    torch.testing.assert_close(expansion.constant, torch.full((2, 4), 1.5, dtype=F64))


def test_quadratic_expansion_of_a_nonlinear_cost_matches_autograd_at_the_mean():
    def cost_fn(z):
        return torch.sin(z[:, 0]) * z[:, 1] + torch.exp(0.5 * z[:, 2]) + (z[:, 0] * z[:, 2]) ** 2

    mean = torch.randn(2, 3, 3, generator=torch.Generator().manual_seed(8), dtype=F64)
    expansion = quadratic_expansion(cost_fn, mean)
    for m in range(2):
        for t in range(3):
            point = mean[m, t]

            def at(z):
                return cost_fn(z.unsqueeze(0)).squeeze(0)

            hess = torch.autograd.functional.hessian(at, point)
            grad = torch.autograd.functional.jacobian(at, point)
            h, g, c = expansion.hessian[m, t], expansion.gradient[m, t], expansion.constant[m, t]
            torch.testing.assert_close(h, hess)
            # In absolute coordinates the expansion's value and slope at the mean are the cost's.
            torch.testing.assert_close(0.5 * point @ h @ point + g @ point + c, at(point))
            torch.testing.assert_close(h @ point + g, grad)


# --- the backward pass -------------------------------------------------------------------


def test_lqg_backward_with_a_huge_eta_returns_prev():
    dynamics = random_dynamics(2, 6, 2, 1, seed=9)
    prev = random_controller(2, 6, 2, 1, seed=10)
    cost = random_cost(2, 6, 3, seed=11)
    new = lqg_backward(dynamics, cost, prev, torch.full((2,), 1e12, dtype=F64))
    torch.testing.assert_close(new.gain, prev.gain, atol=1e-9, rtol=0)
    torch.testing.assert_close(new.offset, prev.offset, atol=1e-9, rtol=0)
    torch.testing.assert_close(new.cov, prev.cov, atol=1e-9, rtol=0)
    # A moderate eta does move it: the comparison above is not vacuous.
    moved = lqg_backward(dynamics, cost, prev, torch.full((2,), 1.0, dtype=F64))
    assert (moved.gain - prev.gain).abs().max() > 0.1


def test_lqg_backward_with_a_tiny_eta_is_the_deterministic_lqr():
    dynamics = random_dynamics(2, 6, 2, 1, seed=12)
    prev = random_controller(2, 6, 2, 1, seed=13)
    cost = random_cost(2, 6, 3, seed=14)
    new = lqg_backward(dynamics, cost, prev, torch.full((2,), 1e-9, dtype=F64))
    gen = torch.Generator().manual_seed(15)
    for m in range(2):
        for _ in range(3):
            x0 = torch.randn(2, generator=gen, dtype=F64)
            torch.testing.assert_close(
                mean_rollout(new, dynamics, m, x0),
                lqr_by_quadratic_program(dynamics, cost, m, x0),
                atol=1e-6,
                rtol=1e-6,
            )
    # The covariance Q_uu^{-1} ~ eta / l_uu vanishes with eta.
    assert new.cov.abs().max() < 1e-7


def test_lqg_backward_names_the_condition_whose_q_uu_is_not_positive_definite():
    dynamics = random_dynamics(2, 3, 2, 1, seed=16)
    prev = LinearGaussianController.initial(2, 3, 2, 1, 1.0)
    cost = random_cost(2, 3, 3, seed=17)
    # Concave in u for condition 1: at the last step Q_uu = -1 / eta + 1 < 0 for eta < 1.
    hessian = cost.hessian.clone()
    hessian[1, :, 2, :] = 0.0
    hessian[1, :, :, 2] = 0.0
    hessian[1, :, 2, 2] = -1.0
    concave = QuadraticCost(hessian, cost.gradient)
    with pytest.raises(NotPositiveDefiniteError, match=r"conditions \[1\]") as info:
        lqg_backward(dynamics, concave, prev, torch.full((2,), 0.5, dtype=F64))
    assert info.value.conditions == [1]
    lqg_backward(dynamics, concave, prev, torch.full((2,), 2.0, dtype=F64))  # large enough


# --- the KL ------------------------------------------------------------------------------


def test_controller_penalty_is_the_negative_log_density_up_to_a_constant():
    gen = torch.Generator().manual_seed(3)
    m, t, x_dim, u_dim = 2, 3, 3, 2
    controller = LinearGaussianController(
        gain=torch.randn(m, t, u_dim, x_dim, generator=gen, dtype=F64),
        offset=torch.randn(m, t, u_dim, generator=gen, dtype=F64),
        cov=_spd(gen, m, t, n=u_dim, scale=0.5, floor=0.1),
    )
    penalty = controller_penalty(controller)
    assert penalty.constant is None
    z = torch.randn(5, m, t, x_dim + u_dim, generator=gen, dtype=F64)
    quadratic = 0.5 * torch.einsum("...i,...ij,...j->...", z, penalty.hessian, z)
    quadratic = quadratic + (penalty.gradient * z).sum(-1)  # [5, M, T]
    x, u = z[..., :x_dim], z[..., x_dim:]
    mean = (controller.gain @ x.unsqueeze(-1)).squeeze(-1) + controller.offset
    log_density = torch.distributions.MultivariateNormal(mean, controller.cov).log_prob(u)
    # The same function of z apart from a constant per (condition, step).
    torch.testing.assert_close(quadratic - quadratic[0], -(log_density - log_density[0]))


def test_controller_kl_of_identical_controllers_is_zero():
    dynamics = random_dynamics(2, 4, 2, 2, seed=18)
    controller = random_controller(2, 4, 2, 2, seed=19)
    kl = controller_kl(controller, controller, *trajectory_marginals(controller, dynamics))
    assert kl.shape == (2, 4)
    torch.testing.assert_close(kl, torch.zeros(2, 4, dtype=F64), atol=1e-12, rtol=0)


def test_controller_kl_by_hand_in_one_dimension():
    # new: u ~ N(0.5 x + 0.2, 0.3); prev: u ~ N(-0.1 x + 0.4, 0.8); x ~ N(1.5, 0.6).
    def controller(a, b, var):
        return LinearGaussianController(
            torch.tensor([[[[a]]]], dtype=F64),
            torch.tensor([[[b]]], dtype=F64),
            torch.tensor([[[[var]]]], dtype=F64),
        )

    mean = torch.tensor([[[1.5, 0.0]]], dtype=F64)
    cov = torch.tensor([[[[0.6, 0.0], [0.0, 1.0]]]], dtype=F64)
    kl = controller_kl(controller(0.5, 0.2, 0.3), controller(-0.1, 0.4, 0.8), mean, cov)
    # E[(0.6 x - 0.2)^2] = (0.6 * 1.5 - 0.2)^2 + 0.6^2 * 0.6 = 0.49 + 0.216.
    by_hand = 0.5 * (0.3 / 0.8 - 1 + math.log(0.8 / 0.3) + (0.49 + 0.216) / 0.8)
    assert kl.item() == pytest.approx(by_hand, rel=1e-12)


def test_controller_kl_matches_monte_carlo():
    new = random_controller(1, 1, 2, 2, seed=20)
    prev = random_controller(1, 1, 2, 2, seed=21)
    gen = torch.Generator().manual_seed(22)
    x_mean = torch.tensor([[[0.5, -1.0]]], dtype=F64)
    x_cov = _spd(gen, 1, 1, n=2, scale=0.5, floor=0.2)
    mean = torch.cat([x_mean, torch.zeros(1, 1, 2, dtype=F64)], -1)
    cov = torch.zeros(1, 1, 4, 4, dtype=F64)
    cov[..., :2, :2] = x_cov
    kl = controller_kl(new, prev, mean, cov)
    num = 200_000
    x = (
        x_mean[0]
        + torch.randn(1, num, 2, generator=gen, dtype=F64) @ torch.linalg.cholesky(x_cov[0]).mT
    )
    u = new.sample(x, 0, generator=gen)

    def log_prob(controller):
        dist = torch.distributions.MultivariateNormal(
            controller.mean_action(x, 0), controller.cov[0, 0]
        )
        return dist.log_prob(u)

    ratio = log_prob(new) - log_prob(prev)
    assert abs(kl.item() - ratio.mean().item()) < 4 * ratio.std().item() / math.sqrt(num)
    assert kl.item() > 0.1


# --- the KL-constrained step -------------------------------------------------------------


def _problem(m: int, seed: int):
    dynamics = random_dynamics(m, 8, 2, 1, seed=seed)
    cost = random_cost(m, 8, 3, seed=seed + 1)
    prev = LinearGaussianController.initial(m, 8, 2, 1, 1.0)
    return dynamics, cost, prev


def test_kl_step_keeps_the_kl_within_tolerance_of_each_bound():
    dynamics, cost, prev = _problem(3, seed=30)
    epsilon = torch.tensor([0.2, 1.0, 5.0], dtype=F64)
    step = kl_step(dynamics, cost, prev, epsilon)
    assert step.converged.all()
    assert ((step.kl - epsilon).abs() <= 0.1 * epsilon).all()
    assert len(set(step.eta.tolist())) == 3
    assert (step.eta > 1e-8).all() and (step.eta < 1e16).all()
    # The reported KL and eta are those of the returned controller.
    new_marginals = trajectory_marginals(step.controller, dynamics)
    torch.testing.assert_close(
        step.kl, controller_kl(step.controller, prev, *new_marginals).sum(-1)
    )
    again = lqg_backward(dynamics, cost, prev, step.eta)
    torch.testing.assert_close(again.gain, step.controller.gain)
    # The step lowers the expected cost.
    before = expected_cost(cost, *trajectory_marginals(prev, dynamics))
    after = expected_cost(cost, *new_marginals)
    assert (after < before).all()


def test_kl_step_with_an_inactive_bound_is_the_unconstrained_solution():
    dynamics, cost, prev = _problem(2, seed=40)
    step = kl_step(dynamics, cost, prev, 1e6)
    assert step.converged.all()
    torch.testing.assert_close(step.eta, torch.full((2,), 1e-8, dtype=F64))
    assert (step.kl < 1e6).all()
    x0 = dynamics.x0_mean
    for m in range(2):
        torch.testing.assert_close(
            mean_rollout(step.controller, dynamics, m, x0[m]),
            lqr_by_quadratic_program(dynamics, cost, m, x0[m]),
            atol=1e-5,
            rtol=1e-5,
        )


def test_kl_step_raises_eta_where_q_uu_is_not_positive_definite():
    dynamics, cost, prev = _problem(1, seed=50)
    hessian = cost.hessian.clone()
    hessian[..., 2, :] = 0.0
    hessian[..., :, 2] = 0.0
    hessian[..., 2, 2] = -1.0  # Q_uu = -1 / eta + 1 at the last step: needs eta > 1
    step = kl_step(dynamics, QuadraticCost(hessian, cost.gradient), prev, 1e6)
    assert step.eta.item() > 1.0
    assert torch.linalg.eigvalsh(step.controller.cov).min() > 0


def test_kl_step_solves_conditions_independently():
    dynamics, cost, prev = _problem(2, seed=60)
    epsilon = torch.tensor([0.5, 3.0], dtype=F64)
    together = kl_step(dynamics, cost, prev, epsilon)
    for m in range(2):
        alone = kl_step(
            LinearGaussianDynamics(
                *(getattr(dynamics, f)[m : m + 1] for f in ("fx", "fc", "cov", "x0_mean", "x0_cov"))
            ),
            QuadraticCost(cost.hessian[m : m + 1], cost.gradient[m : m + 1]),
            LinearGaussianController(
                prev.gain[m : m + 1], prev.offset[m : m + 1], prev.cov[m : m + 1]
            ),
            epsilon[m : m + 1],
        )
        torch.testing.assert_close(alone.eta, together.eta[m : m + 1])
        torch.testing.assert_close(alone.kl, together.kl[m : m + 1])
        torch.testing.assert_close(alone.controller.gain, together.controller.gain[m : m + 1])
        torch.testing.assert_close(alone.controller.cov, together.controller.cov[m : m + 1])


# --- construction ------------------------------------------------------------------------


def test_initial_controller_has_zero_gain_and_the_given_variance():
    controller = LinearGaussianController.initial(3, 4, 2, 2, 0.5)
    assert controller.gain.shape == (3, 4, 2, 2) and controller.gain.dtype == F64
    assert not controller.gain.any() and not controller.offset.any()
    torch.testing.assert_close(controller.cov, 0.5 * torch.eye(2, dtype=F64).expand(3, 4, 2, 2))


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (
            lambda: LinearGaussianController(
                torch.zeros(1, 2, 1, 2), torch.zeros(1, 3, 1), torch.ones(1, 2, 1, 1)
            ),
            r"LinearGaussianController.offset: expected shape \[1, 2, 1\], got \[1, 3, 1\]",
        ),
        (
            lambda: QuadraticCost(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 2)),
            r"QuadraticCost.gradient: expected shape \[1, 2, 3\]",
        ),
        (lambda: LinearGaussianController.initial(1, 2, 2, 1, 0.0), "variance"),
        (lambda: kl_step(*_problem(1, seed=70), 0.0), "epsilon"),
        (lambda: kl_step(*_problem(1, seed=70), 1.0, eta_init=1e20), "eta"),
        (lambda: kl_step(*_problem(1, seed=70), 1.0, max_iterations=0), "max_iterations"),
    ],
)
def test_bad_inputs_name_the_argument(build, match):
    with pytest.raises(ValueError, match=match):
        build()
