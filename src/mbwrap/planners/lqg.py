"""The trajectory optimisation of guided policy search: maximum-entropy LQG under a KL bound
to a previous linear-Gaussian controller.

Levine & Abbeel 2014, "Learning Neural Network Policies with Guided Policy Search under
Unknown Dynamics" (NIPS), Section 3 and appendix: minimise ``E[sum_t l(x_t, u_t)]`` over
linear-Gaussian controllers ``p`` subject to ``KL(p(tau) || p_prev(tau)) <= epsilon``. With
the dynamics shared, the trajectory KL is the sum over steps of the expected KL between
the controllers, and the Lagrangian with dual variable ``eta`` is minimised by the
maximum-entropy LQG solution for the cost ``l(x, u) / eta - log p_prev(u | x)``: the mean
controller of the Riccati recursion for that cost and the covariance ``Q_uu^{-1}``
(:func:`lqg_backward`). :func:`kl_step` searches ``eta`` so that the KL meets the bound.
Mirror-descent GPS (Montgomery & Levine 2016) takes the same step with ``p_prev`` replaced
by the linearised global policy.

Everything is batched over a leading axis of ``M`` conditions (initial states) solved
independently; ``X``, ``U`` are the state and action sizes and ``Z = X + U``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

#: ``z [N, Z] -> cost [N]``: a batched stage cost of ``z = [x; u]``, composable with vmap.
CostFn = Callable[[Tensor], Tensor]

# The dual search of the GPS code released with Levine & Abbeel 2014 / Finn et al. 2016
# (gps/algorithm/traj_opt: TRAJ_OPT_LQR min_eta 1e-8, max_eta 1e16, DGD_MAX_ITER 50, and a
# KL within 10 % of its bound counts as met).
ETA_MIN = 1e-8
ETA_MAX = 1e16
DUAL_TOLERANCE = 0.1
DUAL_MAX_ITERATIONS = 50
# Outside the bracket the search moves eta by at most this factor per iteration, as the GPS
# code does, so that one evaluation never jumps across many decades of eta.
_MAX_STEP = math.log(10.0)


class NotPositiveDefiniteError(ValueError):
    """``Q_uu`` was not positive definite: ``eta`` is too small for this cost.

    :ivar conditions: the indices of the conditions that failed.
    """

    def __init__(self, message: str, conditions: list[int]) -> None:
        super().__init__(message)
        self.conditions = conditions


@dataclass(frozen=True)
class LinearGaussianDynamics:
    """``x_{t+1} ~ N(fx_t [x_t; u_t] + fc_t, cov_t)``; ``x_0 ~ N(x0_mean, x0_cov)``.

    :ivar fx: ``[M, T, X, Z]``.
    :ivar fc: ``[M, T, X]``.
    :ivar cov: ``[M, T, X, X]``.
    :ivar x0_mean: ``[M, X]``.
    :ivar x0_cov: ``[M, X, X]``.
    """

    fx: Tensor
    fc: Tensor
    cov: Tensor
    x0_mean: Tensor
    x0_cov: Tensor

    def __post_init__(self) -> None:
        m, t, x, _ = self.fx.shape
        _check_shapes(
            "LinearGaussianDynamics",
            {
                "fc": (self.fc, (m, t, x)),
                "cov": (self.cov, (m, t, x, x)),
                "x0_mean": (self.x0_mean, (m, x)),
                "x0_cov": (self.x0_cov, (m, x, x)),
            },
        )


@dataclass(frozen=True)
class LinearGaussianController:
    """``u_t ~ N(gain_t x_t + offset_t, cov_t)``.

    :ivar gain: ``[M, T, U, X]``.
    :ivar offset: ``[M, T, U]``.
    :ivar cov: ``[M, T, U, U]``.
    """

    gain: Tensor
    offset: Tensor
    cov: Tensor

    def __post_init__(self) -> None:
        m, t, u, _ = self.gain.shape
        _check_shapes(
            "LinearGaussianController",
            {"offset": (self.offset, (m, t, u)), "cov": (self.cov, (m, t, u, u))},
        )

    @classmethod
    def initial(
        cls,
        num_conditions: int,
        horizon: int,
        state_dim: int,
        action_dim: int,
        variance: float,
        *,
        device: torch.device | str | None = None,
    ) -> LinearGaussianController:
        """The zero-gain, zero-offset controller with covariance ``variance * I`` (float64).

        :return: a controller with ``M = num_conditions``, ``T = horizon``, ``X =
            state_dim``, ``U = action_dim``.
        """
        if not variance > 0:
            raise ValueError(f"variance: expected a positive float, got {variance!r}")
        shape = (num_conditions, horizon)
        kwargs = {"dtype": torch.float64, "device": device}
        eye = torch.eye(action_dim, **kwargs)
        return cls(
            gain=torch.zeros(*shape, action_dim, state_dim, **kwargs),
            offset=torch.zeros(*shape, action_dim, **kwargs),
            cov=(variance * eye).expand(*shape, action_dim, action_dim).clone(),
        )

    def mean_action(self, x: Tensor, t: int) -> Tensor:
        """``gain_t x + offset_t``.

        :param x: ``[M, *batch, X]``.
        :return: ``[M, *batch, U]``.
        """
        m, *batch, dim = x.shape
        flat = x.reshape(m, -1, dim) @ self.gain[:, t].mT + self.offset[:, t, None]
        return flat.reshape(m, *batch, -1)

    def sample(self, x: Tensor, t: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``u_t ~ N(gain_t x + offset_t, cov_t)``.

        :param x: ``[M, *batch, X]``.
        :return: ``[M, *batch, U]``.
        """
        mean = self.mean_action(x, t)
        m, *batch, u = mean.shape
        noise = torch.randn(
            m, math.prod(batch), u, dtype=x.dtype, device=x.device, generator=generator
        )
        chol = torch.linalg.cholesky(self.cov[:, t])
        return mean + (noise @ chol.mT).reshape(mean.shape)


@dataclass(frozen=True)
class QuadraticCost:
    """``cost_t(z) ~= 1/2 z^T hessian_t z + gradient_t^T z + constant_t`` for ``z = [x; u]``,
    the expansion in absolute coordinates (not deviations from a nominal trajectory).

    :ivar hessian: ``[M, T, Z, Z]``, symmetric.
    :ivar gradient: ``[M, T, Z]``.
    :ivar constant: ``[M, T]``, or ``None`` for zero; it moves :func:`expected_cost` only.
    """

    hessian: Tensor
    gradient: Tensor
    constant: Tensor | None = None

    def __post_init__(self) -> None:
        m, t, z, _ = self.hessian.shape
        shapes = {"gradient": (self.gradient, (m, t, z))}
        if self.constant is not None:
            shapes["constant"] = (self.constant, (m, t))
        _check_shapes("QuadraticCost", shapes)


class KLStep(NamedTuple):
    """The result of :func:`kl_step`.

    :ivar controller: the new controller, ``[M, T, ...]``.
    :ivar eta: ``[M]`` the dual variable it was solved with.
    :ivar kl: ``[M]`` its KL to the previous controller, summed over time, under its own
        trajectory distribution.
    :ivar converged: ``[M]`` bool: the KL is within tolerance of the bound, or ``eta`` sits
        at a bound (at ``eta_min`` the constraint is inactive); false where the search ran
        out of iterations (the last positive-definite solution is returned).
    """

    controller: LinearGaussianController
    eta: Tensor
    kl: Tensor
    converged: Tensor


def _check_shapes(owner: str, fields: dict[str, tuple[Tensor, tuple[int, ...]]]) -> None:
    for name, (value, expected) in fields.items():
        if tuple(value.shape) != expected:
            raise ValueError(
                f"{owner}.{name}: expected shape {list(expected)}, got {list(value.shape)}"
            )


def _quad(vector: Tensor, matrix: Tensor) -> Tensor:
    """``v^T A v``: ``vector [..., n]``, ``matrix [..., n, n]`` -> ``[...]``."""
    return (vector.unsqueeze(-2) @ matrix @ vector.unsqueeze(-1))[..., 0, 0]


def _matvec(matrix: Tensor, vector: Tensor) -> Tensor:
    """``A v``: ``matrix [..., n, k]``, ``vector [..., k]`` -> ``[..., n]``."""
    return (matrix @ vector.unsqueeze(-1)).squeeze(-1)


def quadratic_expansion(cost_fn: CostFn, mean: Tensor) -> QuadraticCost:
    """The second-order Taylor expansion of a stage cost around every point of a trajectory,
    rewritten in absolute coordinates.

    Around ``z_bar`` with value ``c``, gradient ``g`` and Hessian ``H``:
    ``c + g^T (z - z_bar) + 1/2 (z - z_bar)^T H (z - z_bar)
    = 1/2 z^T H z + (g - H z_bar)^T z + (c - g^T z_bar + 1/2 z_bar^T H z_bar)``.

    :param cost_fn: ``z [N, Z] -> [N]``, composable with ``torch.func.vmap``.
    :param mean: ``[M, T, Z]`` the points expanded around.
    :return: the expansion, ``hessian [M, T, Z, Z]``, ``gradient [M, T, Z]``,
        ``constant [M, T]``.
    """
    m, t, z = mean.shape

    def point_cost(point: Tensor) -> Tensor:
        return cost_fn(point.unsqueeze(0)).squeeze(0)

    def gradient(point: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        grad, value = torch.func.grad_and_value(point_cost)(point)
        return grad, (grad, value)

    # Forward over reverse: the Hessian, with the gradient and value as by-products.
    hess, (grad, value) = torch.func.vmap(torch.func.jacfwd(gradient, has_aux=True))(
        mean.reshape(-1, z)
    )
    hess = (hess + hess.mT) / 2
    flat = mean.reshape(-1, z)
    h_mean = _matvec(hess, flat)
    constant = value - (grad * flat).sum(-1) + 0.5 * (flat * h_mean).sum(-1)
    return QuadraticCost(
        hessian=hess.reshape(m, t, z, z),
        gradient=(grad - h_mean).reshape(m, t, z),
        constant=constant.reshape(m, t),
    )


def trajectory_marginals(
    controller: LinearGaussianController, dynamics: LinearGaussianDynamics
) -> tuple[Tensor, Tensor]:
    """The Gaussian marginals of ``z_t = [x_t; u_t]`` under a controller and the dynamics.

    :return: ``(mean [M, T, Z], cov [M, T, Z, Z])``.
    """
    gain, offset = controller.gain, controller.offset
    m, t_len, u_dim, x_dim = gain.shape
    z_dim = x_dim + u_dim
    means = gain.new_empty(m, t_len, z_dim)
    covs = gain.new_empty(m, t_len, z_dim, z_dim)
    x_mean, x_cov = dynamics.x0_mean, dynamics.x0_cov
    for t in range(t_len):
        k = gain[:, t]
        xu = k @ x_cov  # Cov(u, x)
        u_cov = xu @ k.mT + controller.cov[:, t]
        means[:, t] = torch.cat([x_mean, _matvec(k, x_mean) + offset[:, t]], -1)
        covs[:, t] = torch.cat(
            [torch.cat([x_cov, xu.mT], -1), torch.cat([xu, (u_cov + u_cov.mT) / 2], -1)], -2
        )
        fx = dynamics.fx[:, t]
        x_mean = _matvec(fx, means[:, t]) + dynamics.fc[:, t]
        x_cov = fx @ covs[:, t] @ fx.mT + dynamics.cov[:, t]
        x_cov = (x_cov + x_cov.mT) / 2
    return means, covs


def expected_cost(cost: QuadraticCost, mean: Tensor, cov: Tensor) -> Tensor:
    """``E[sum_t cost_t(z_t)]`` for Gaussian ``z_t``:
    ``1/2 tr(H Sigma) + 1/2 mu^T H mu + g^T mu + constant`` summed over time.

    :param mean: ``[M, T, Z]``.
    :param cov: ``[M, T, Z, Z]``.
    :return: ``[M]``.
    """
    per_step = (
        0.5 * (cost.hessian * cov).sum((-2, -1))
        + 0.5 * _quad(mean, cost.hessian)
        + (cost.gradient * mean).sum(-1)
    )
    if cost.constant is not None:
        per_step = per_step + cost.constant
    return per_step.sum(-1)


def controller_penalty(controller: LinearGaussianController) -> QuadraticCost:
    """``-log p(u | x)`` of a linear-Gaussian controller as a quadratic cost of ``z = [x; u]``.

    With ``r = u - K x - k = [-K, I] z - k`` and precision ``P = cov^{-1}``:
    ``1/2 r^T P r = 1/2 z^T [-K, I]^T P [-K, I] z - ([-K, I]^T P k)^T z + const``; the
    normalising constant is left out (``constant`` is ``None``).

    :return: ``hessian [M, T, Z, Z]``, ``gradient [M, T, Z]``.
    """
    precision = torch.cholesky_inverse(torch.linalg.cholesky(controller.cov))
    u_dim = controller.gain.shape[-2]
    eye = torch.eye(u_dim, dtype=precision.dtype, device=precision.device)
    residual = torch.cat([-controller.gain, eye.expand_as(precision)], -1)  # [M, T, U, Z]
    p_residual = precision @ residual
    return QuadraticCost(
        hessian=residual.mT @ p_residual,
        gradient=-_matvec(p_residual.mT, controller.offset),
    )


def _max_entropy_lqg(
    dynamics: LinearGaussianDynamics, cost: QuadraticCost
) -> tuple[LinearGaussianController, Tensor]:
    """The maximum-entropy LQG solution: minimise ``E[sum_t cost_t] - H(p)``.

    The soft value ``-log int exp(-Q(x, u)) du`` of a quadratic ``Q`` is ``Q`` at its
    minimiser plus a constant, so the recursion is the Riccati recursion of LQR (in absolute
    coordinates, with the dynamics' offset) and the action distribution is
    ``N(argmin_u Q, Q_uu^{-1})``. No terminal cost: ``V_T = 0``.

    :return: the controller and ``[M]`` bool, whether every ``Q_uu`` was positive definite
        (where false, that condition's controller is meaningless but finite).
    """
    m, t_len, z_dim, _ = cost.hessian.shape
    x_dim = dynamics.fx.shape[-2]
    u_dim = z_dim - x_dim
    dtype, device = cost.hessian.dtype, cost.hessian.device
    eye = torch.eye(u_dim, dtype=dtype, device=device)
    v_xx = cost.hessian.new_zeros(m, x_dim, x_dim)
    v_x = cost.hessian.new_zeros(m, x_dim)
    gain = cost.hessian.new_empty(m, t_len, u_dim, x_dim)
    offset = cost.hessian.new_empty(m, t_len, u_dim)
    cov = cost.hessian.new_empty(m, t_len, u_dim, u_dim)
    ok = torch.ones(m, dtype=torch.bool, device=device)
    for t in reversed(range(t_len)):
        fx = dynamics.fx[:, t]
        q = cost.hessian[:, t] + fx.mT @ v_xx @ fx
        q_vec = cost.gradient[:, t] + _matvec(fx.mT, _matvec(v_xx, dynamics.fc[:, t]) + v_x)
        q_ux, q_uu = q[:, x_dim:, :x_dim], q[:, x_dim:, x_dim:]
        chol, info = torch.linalg.cholesky_ex(q_uu)
        good = info == 0
        # A failed factorisation leaves garbage; the identity keeps the row finite and the
        # row is reported through the mask.
        chol = torch.where(good[:, None, None], chol, eye)
        ok = ok & good
        step = -torch.cholesky_solve(torch.cat([q_vec[:, x_dim:, None], q_ux], -1), chol)
        offset[:, t], gain[:, t] = step[..., 0], step[..., 1:]
        cov[:, t] = torch.cholesky_inverse(chol)
        q_xu = q[:, :x_dim, x_dim:]
        v_xx = q[:, :x_dim, :x_dim] + q_xu @ gain[:, t]
        v_xx = (v_xx + v_xx.mT) / 2
        v_x = q_vec[:, :x_dim] + _matvec(q_xu, offset[:, t])
    return LinearGaussianController(gain, offset, cov), ok


def _modified_cost(cost: QuadraticCost, penalty: QuadraticCost, eta: Tensor) -> QuadraticCost:
    """``l / eta - log p_prev(u | x)``, ``eta: [M]``."""
    scale = eta.reciprocal().to(cost.hessian.dtype)
    return QuadraticCost(
        hessian=cost.hessian * scale[:, None, None, None] + penalty.hessian,
        gradient=cost.gradient * scale[:, None, None] + penalty.gradient,
    )


def lqg_backward(
    dynamics: LinearGaussianDynamics,
    cost: QuadraticCost,
    prev: LinearGaussianController,
    eta: Tensor,
) -> LinearGaussianController:
    """The controller minimising the Lagrangian ``E[sum_t l] + eta KL(p || prev)`` for a fixed
    ``eta``: the maximum-entropy LQG solution for the cost ``l / eta - log prev(u | x)``
    (Levine & Abbeel 2014, Section 3), with covariance ``Q_uu^{-1}``.

    A large ``eta`` returns (nearly) ``prev``; ``eta -> 0`` the LQR solution for ``l`` with a
    vanishing covariance.

    :param eta: ``[M]`` positive dual variables.
    :return: the new controller, ``[M, T, ...]``.
    :raises NotPositiveDefiniteError: where some ``Q_uu`` is not positive definite (the cost
        is not convex enough in ``u`` for this ``eta``); the caller should increase ``eta``
        there, as :func:`kl_step` does.
    """
    controller, ok = _max_entropy_lqg(dynamics, _modified_cost(cost, controller_penalty(prev), eta))
    if not bool(ok.all()):
        failed = (~ok).nonzero().flatten().tolist()
        raise NotPositiveDefiniteError(
            f"lqg_backward: Q_uu is not positive definite for conditions {failed} "
            f"(eta = {eta[failed].tolist()}); increase eta there",
            failed,
        )
    return controller


def controller_kl(
    new: LinearGaussianController,
    prev: LinearGaussianController,
    mean: Tensor,
    cov: Tensor,
) -> Tensor:
    """``E_{x ~ N(mean_x, cov_x)} KL(new(. | x) || prev(. | x))`` at every step, closed form.

    With ``P = prev.cov^{-1}``, ``dK = K_new - K_prev``, ``dk = k_new - k_prev``:
    ``1/2 [tr(P S_new) - U + log det S_prev - log det S_new
    + (dK mu + dk)^T P (dK mu + dk) + tr(P dK Sigma dK^T)]``.

    :param mean: ``[M, T, Z]`` (only the state part ``[..., :X]`` is used).
    :param cov: ``[M, T, Z, Z]`` (only ``[..., :X, :X]`` is used).
    :return: ``[M, T]``.
    """
    x_dim = new.gain.shape[-1]
    u_dim = new.gain.shape[-2]
    x_mean, x_cov = mean[..., :x_dim], cov[..., :x_dim, :x_dim]
    chol_prev = torch.linalg.cholesky(prev.cov)
    chol_new = torch.linalg.cholesky(new.cov)
    d_gain = new.gain - prev.gain
    d_mean = _matvec(d_gain, x_mean) + new.offset - prev.offset
    # Every term is a trace of P times a PSD matrix; whitening by chol_prev keeps it >= 0.
    whitened_cov = torch.linalg.solve_triangular(chol_prev, chol_new, upper=False)
    whitened_gain = torch.linalg.solve_triangular(chol_prev, d_gain, upper=False)
    whitened_mean = torch.linalg.solve_triangular(chol_prev, d_mean.unsqueeze(-1), upper=False)
    log_det_ratio = 2 * (
        chol_prev.diagonal(dim1=-2, dim2=-1).log() - chol_new.diagonal(dim1=-2, dim2=-1).log()
    ).sum(-1)
    return 0.5 * (
        whitened_cov.square().sum((-2, -1))
        - u_dim
        + log_det_ratio
        + whitened_mean.square().sum((-2, -1))
        + (whitened_gain @ x_cov * whitened_gain).sum((-2, -1))
    )


def kl_step(
    dynamics: LinearGaussianDynamics,
    cost: QuadraticCost,
    prev: LinearGaussianController,
    epsilon: Tensor | float,
    *,
    eta_init: float = 1.0,
    eta_min: float = ETA_MIN,
    eta_max: float = ETA_MAX,
    tolerance: float = DUAL_TOLERANCE,
    max_iterations: int = DUAL_MAX_ITERATIONS,
) -> KLStep:
    """The KL-constrained LQG step: minimise ``E[sum_t l]`` subject to
    ``sum_t E[KL(p(u_t | x_t) || prev(u_t | x_t))] <= epsilon``, per condition.

    The KL of :func:`lqg_backward`'s solution falls as ``eta`` grows, so ``eta`` is found
    by a bracketed search on ``g = log(kl / epsilon)`` over ``log eta``, every condition at
    once: a secant step through the last two iterates when it lands inside the bracket,
    else geometric bisection (steps of at most a factor 10 while a side is unbracketed).
    A condition stops when ``|kl - epsilon| <= tolerance * epsilon``, when ``eta_min``
    still gives ``kl < epsilon`` (the constraint is inactive: that solution is returned) or
    when ``eta_max`` still gives ``kl > epsilon``. A ``Q_uu`` that is not positive definite
    counts as ``eta`` too small. The KL is measured under the new controller's own
    trajectory distribution.

    :param epsilon: ``[M]`` (or a float for all) positive KL bounds.
    :param eta_init: the first ``eta`` tried, in ``[eta_min, eta_max]``.
    :return: the controller, ``eta [M]``, ``kl [M]`` and ``converged [M]``.
    :raises NotPositiveDefiniteError: where no ``eta`` tried gave a positive-definite
        ``Q_uu``.
    """
    if not 0 < eta_min <= eta_init <= eta_max:
        raise ValueError(
            f"eta: expected 0 < eta_min <= eta_init <= eta_max, "
            f"got {eta_min!r}, {eta_init!r}, {eta_max!r}"
        )
    if not tolerance > 0:
        raise ValueError(f"tolerance: expected a positive float, got {tolerance!r}")
    if not (isinstance(max_iterations, int) and max_iterations > 0):
        raise ValueError(f"max_iterations: expected a positive int, got {max_iterations!r}")
    device = cost.hessian.device
    m = cost.hessian.shape[0]
    eps = torch.as_tensor(epsilon, dtype=torch.float64, device=device).expand(m)
    if not bool((eps > 0).all()):
        raise ValueError(f"epsilon: expected positive bounds, got {eps.tolist()}")
    penalty = controller_penalty(prev)
    log_min, log_max = math.log(eta_min), math.log(eta_max)
    tiny = torch.finfo(torch.float64).tiny

    def full(value: float) -> Tensor:
        return torch.full((m,), value, dtype=torch.float64, device=device)

    log_eta, lo, hi = full(math.log(eta_init)), full(log_min), full(log_max)
    lo_known = torch.zeros(m, dtype=torch.bool, device=device)
    hi_known, done, have = lo_known.clone(), lo_known.clone(), lo_known.clone()
    prev_log_eta, prev_g = full(math.nan), full(math.nan)
    result = prev
    result_eta, result_kl = full(math.nan), full(math.nan)
    for _ in range(max_iterations):
        controller, ok = _max_entropy_lqg(dynamics, _modified_cost(cost, penalty, log_eta.exp()))
        kl = controller_kl(controller, prev, *trajectory_marginals(controller, dynamics)).sum(-1)
        kl = torch.where(ok, kl, torch.inf)
        g = kl.clamp(min=tiny).log() - eps.log()
        take = ~done & ok
        result = _where(take, controller, result)
        result_eta = torch.where(take, log_eta.exp(), result_eta)
        result_kl = torch.where(take, kl, result_kl)
        have = have | take
        stop = (
            ((kl - eps).abs() <= tolerance * eps)
            | ((g < 0) & (log_eta <= log_min))
            | ((g > 0) & (log_eta >= log_max))
        )
        done = done | stop
        if bool(done.all()):
            break
        too_small = g > 0
        lo, lo_known = torch.where(too_small, log_eta, lo), lo_known | too_small
        hi, hi_known = torch.where(too_small, hi, log_eta), hi_known | ~too_small
        bisection = torch.where(
            too_small,
            torch.where(hi_known, (log_eta + hi) / 2, (log_eta + _MAX_STEP).clamp(max=log_max)),
            torch.where(lo_known, (lo + log_eta) / 2, (log_eta - _MAX_STEP).clamp(min=log_min)),
        )
        secant = (log_eta - g * (log_eta - prev_log_eta) / (g - prev_g)).clamp(log_min, log_max)
        # An unbracketed side may be reached exactly: that is how a bound is tested.
        inside = ((secant > lo) | (~lo_known & (secant == lo))) & (
            (secant < hi) | (~hi_known & (secant == hi))
        )
        proposal = torch.where(torch.isfinite(secant) & inside, secant, bisection)
        prev_log_eta, prev_g = log_eta, g
        log_eta = torch.where(done, log_eta, proposal)
    if not bool(have.all()):
        failed = (~have).nonzero().flatten().tolist()
        raise NotPositiveDefiniteError(
            f"kl_step: Q_uu was never positive definite for conditions {failed} "
            f"(up to eta = {log_eta.exp()[failed].tolist()})",
            failed,
        )
    return KLStep(result, result_eta, result_kl, done)


def _where(
    mask: Tensor, new: LinearGaussianController, old: LinearGaussianController
) -> LinearGaussianController:
    """Per condition, ``new`` where ``mask [M]`` holds, else ``old``."""
    return LinearGaussianController(
        torch.where(mask[:, None, None, None], new.gain, old.gain),
        torch.where(mask[:, None, None], new.offset, old.offset),
        torch.where(mask[:, None, None, None], new.cov, old.cov),
    )
