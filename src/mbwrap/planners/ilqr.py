"""Iterative LQR (Li & Todorov 2004) with the regularisation and line search of Tassa,
Erez & Todorov 2012, "Synthesis and stabilization of complex behaviors through online
trajectory optimization" (IROS 2012).

Each iteration linearises the model's mean dynamics and quadratises the reward along the
current trajectory (``torch.func``, all ``B * H`` points at once), solves the resulting
time-varying LQ problem by a Riccati recursion (:func:`lqr_backward`), and rolls the new
feedback policy out for several step sizes together (:func:`forward_pass`), keeping per
start state the best one that lowers the cost. Costs are negated rewards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces

from mbwrap.models import WorldModel
from mbwrap.planners.base import Planner, _positive_int
from mbwrap.space_support import SpaceSupport

#: ``(state [S], action [D]) -> next_state [S]``: the dynamics at one point (for vmap).
PointDynamics = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: ``(state [S], action [D]) -> reward []``: the stage reward at one point (for vmap).
PointReward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: ``(state [n, S], action [n, D]) -> (next_state [n, S], reward [n])``, batched.
StageFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

# Line search steps 10^linspace(0, -3, 11): the defaults of iLQG.m, the code released with
# Tassa et al. 2012 / Tassa, Mansard & Todorov 2014.
DEFAULT_STEP_SIZES: tuple[float, ...] = tuple(float(a) for a in 10.0 ** np.linspace(0, -3, 11))


class LQRSolution(NamedTuple):
    """The result of :func:`lqr_backward` for a batch of ``B`` problems.

    :ivar k: ``[B, H, A]`` open-loop action changes.
    :ivar K: ``[B, H, A, S]`` feedback gains; the new policy is
        ``u_t = u_bar_t + alpha * k_t + K_t (x_t - x_bar_t)``.
    :ivar expected_improvement: ``[B, 2]`` coefficients ``(e1, e2)`` of the cost reduction
        the quadratic model predicts for step size ``alpha``: ``alpha * e1 + alpha**2 * e2``.
    :ivar positive_definite: ``[B]`` bool, whether every regularised ``Q_uu`` was positive
        definite and the gains finite; where false, the gains are meaningless.
    """

    k: torch.Tensor
    K: torch.Tensor
    expected_improvement: torch.Tensor
    positive_definite: torch.Tensor


def linearize_dynamics(
    dynamics: PointDynamics, states: torch.Tensor, actions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Jacobians of the dynamics at every point of a batch of trajectories.

    :param dynamics: ``(state [S], action [A]) -> next_state [S]`` at one point,
        composable with ``torch.func.vmap``.
    :param states: ``[B, H, S]``.
    :param actions: ``[B, H, A]``.
    :return: ``(f_x [B, H, S, S], f_u [B, H, S, A])``.
    """
    batch, horizon, s = states.shape
    a = actions.shape[-1]
    jacobian = torch.func.vmap(torch.func.jacrev(dynamics, argnums=(0, 1)))
    f_x, f_u = jacobian(states.reshape(-1, s), actions.reshape(-1, a))
    return f_x.reshape(batch, horizon, s, s), f_u.reshape(batch, horizon, s, a)


def quadratize_reward(
    reward: PointReward, states: torch.Tensor, actions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradient and Hessian of the stage reward at every point of a batch of trajectories.

    The reward is differentiated as a function of the state and action only, so a reward
    of the next state is differentiated through the dynamics (second derivatives
    included): it is the exact second-order expansion of the stage reward.

    :param reward: ``(state [S], action [A]) -> reward []`` at one point, composable with
        ``torch.func.vmap``.
    :param states: ``[B, H, S]``.
    :param actions: ``[B, H, A]``.
    :return: ``(r_x [B, H, S], r_u [B, H, A], r_xx [B, H, S, S], r_uu [B, H, A, A],
        r_ux [B, H, A, S])``.
    """
    batch, horizon, s = states.shape
    a = actions.shape[-1]

    def joint(z: torch.Tensor) -> torch.Tensor:
        return reward(z[:s], z[s:])

    def gradient(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.func.jacrev(joint)(z)
        return g, g

    # One forward-over-reverse pass gives the Hessian, and the gradient as its by-product.
    hess, grad = torch.func.vmap(torch.func.jacfwd(gradient, has_aux=True))(
        torch.cat([states, actions], -1).reshape(-1, s + a)
    )
    grad = grad.reshape(batch, horizon, s + a)
    hess = hess.reshape(batch, horizon, s + a, s + a)
    return grad[..., :s], grad[..., s:], hess[..., :s, :s], hess[..., s:, s:], hess[..., s:, :s]


def lqr_backward(
    f_x: torch.Tensor,
    f_u: torch.Tensor,
    l_x: torch.Tensor,
    l_u: torch.Tensor,
    l_xx: torch.Tensor,
    l_uu: torch.Tensor,
    l_ux: torch.Tensor,
    mu: torch.Tensor,
) -> LQRSolution:
    """The Riccati recursion of iLQR for a batch of time-varying LQ problems.

    Minimises ``sum_t l_t(x_t + dx_t, u_t + du_t)`` to second order subject to
    ``dx_{t+1} = f_x dx_t + f_u du_t``, with no terminal cost. ``mu`` is added to every
    ``Q_uu`` (the Levenberg-Marquardt regularisation of Li & Todorov 2004, the default
    ``regType`` of iLQG.m) and the value function is updated with the regularised gains
    but the unregularised ``Q`` terms (Tassa et al. 2012, Eq. 11).

    :param f_x: ``[B, H, S, S]`` dynamics Jacobian in the state.
    :param f_u: ``[B, H, S, A]`` dynamics Jacobian in the action.
    :param l_x: ``[B, H, S]`` cost gradient in the state.
    :param l_u: ``[B, H, A]`` cost gradient in the action.
    :param l_xx: ``[B, H, S, S]`` cost Hessian in the state.
    :param l_uu: ``[B, H, A, A]`` cost Hessian in the action.
    :param l_ux: ``[B, H, A, S]`` mixed cost Hessian.
    :param mu: ``[B]`` non-negative regularisation.
    :return: the gains, the expected improvement and the positive-definiteness mask.
    """
    batch, horizon, s = l_x.shape
    a = l_u.shape[-1]
    eye = torch.eye(a, dtype=l_u.dtype, device=l_u.device)
    v_x = l_x.new_zeros(batch, s)
    v_xx = l_x.new_zeros(batch, s, s)
    k = l_u.new_empty(batch, horizon, a)
    gains = l_u.new_empty(batch, horizon, a, s)
    linear = l_u.new_zeros(batch)
    quadratic = l_u.new_zeros(batch)
    ok = torch.ones(batch, dtype=torch.bool, device=l_u.device)
    for t in reversed(range(horizon)):
        fx_t, fu_t = f_x[:, t].mT, f_u[:, t].mT
        q_x = l_x[:, t] + (fx_t @ v_x.unsqueeze(-1)).squeeze(-1)
        q_u = l_u[:, t] + (fu_t @ v_x.unsqueeze(-1)).squeeze(-1)
        v_fx = v_xx @ f_x[:, t]
        q_xx = l_xx[:, t] + fx_t @ v_fx
        q_ux = l_ux[:, t] + fu_t @ v_fx
        q_uu = l_uu[:, t] + fu_t @ v_xx @ f_u[:, t]
        chol, info = torch.linalg.cholesky_ex(q_uu + mu[:, None, None] * eye)
        good = info == 0
        # A failed factorisation leaves garbage; the identity keeps that row finite and the
        # row is discarded through `positive_definite`.
        chol = torch.where(good[:, None, None], chol, eye)
        # Triangular solves carry no info code to check, so nothing here waits on the device.
        rhs = torch.cat([q_u.unsqueeze(-1), q_ux], -1)  # [B, A, 1 + S]
        half = torch.linalg.solve_triangular(chol, rhs, upper=False)
        step = -torch.linalg.solve_triangular(chol.mT, half, upper=True)
        k_t, gain_t = step[..., 0], step[..., 1:]
        ok = ok & good & torch.isfinite(step).flatten(1).all(-1)
        k[:, t], gains[:, t] = k_t, gain_t
        gain_q = gain_t.mT @ q_uu
        v_x = (
            q_x
            + (gain_q @ k_t.unsqueeze(-1)).squeeze(-1)
            + (gain_t.mT @ q_u.unsqueeze(-1)).squeeze(-1)
            + (q_ux.mT @ k_t.unsqueeze(-1)).squeeze(-1)
        )
        v_xx = q_xx + gain_q @ gain_t + gain_t.mT @ q_ux + q_ux.mT @ gain_t
        v_xx = (v_xx + v_xx.mT) / 2  # keep it symmetric despite rounding
        linear = linear + (k_t * q_u).sum(-1)
        quadratic = quadratic + 0.5 * (k_t.unsqueeze(-2) @ q_uu @ k_t.unsqueeze(-1))[..., 0, 0]
    return LQRSolution(k, gains, torch.stack([-linear, -quadratic], -1), ok)


def forward_pass(
    stage: StageFn,
    x0: torch.Tensor,
    states: torch.Tensor,
    actions: torch.Tensor,
    k: torch.Tensor,
    K: torch.Tensor,
    *,
    step_sizes: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Roll the iLQR policy out for every step size at once (the parallel line search).

    ``u_t = clamp(u_bar_t + alpha k_t + K_t (x_t - x_bar_t), lower, upper)``: actions are
    clamped to the Box, the simple variant, not the box-constrained QP of Tassa, Mansard &
    Todorov 2014 ("Control-limited differential dynamic programming"). ``k = K = 0`` rolls
    ``actions`` out as they are.

    :param stage: batched ``(state [n, S], action [n, A]) -> (next_state [n, S],
        reward [n])``.
    :param x0: ``[B, S]`` start states.
    :param states: ``[B, H + 1, S]`` nominal states ``x_bar``.
    :param actions: ``[B, H, A]`` nominal actions ``u_bar``.
    :param k: ``[B, H, A]``.
    :param K: ``[B, H, A, S]``.
    :param step_sizes: ``[N]`` values of ``alpha``.
    :param lower: ``[A]``.
    :param upper: ``[A]``.
    :param weights: ``[H]`` per-step weight of the cost (the discount ``gamma^t``).
    :return: ``(states [B, N, H + 1, S], actions [B, N, H, A], costs [B, N])``, the cost
        being the weighted sum of negated rewards.
    """
    batch, horizon, a = actions.shape
    num = step_sizes.shape[0]
    x = x0.unsqueeze(1).expand(batch, num, x0.shape[-1])
    alpha = step_sizes[None, :, None]
    xs, us = [x], []
    cost = x0.new_zeros(batch, num)
    for t in range(horizon):
        dx = x - states[:, t].unsqueeze(1)
        u = actions[:, t, None] + alpha * k[:, t, None] + dx @ K[:, t].mT
        u = torch.clamp(u, lower, upper)
        x, reward = stage(x.reshape(batch * num, -1), u.reshape(batch * num, a))
        x = x.reshape(batch, num, -1)
        cost = cost - weights[t] * reward.reshape(batch, num)
        xs.append(x)
        us.append(u)
    return torch.stack(xs, 2), torch.stack(us, 2), cost


def rollout(
    stage: StageFn, x0: torch.Tensor, actions: torch.Tensor, *, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll fixed action sequences out: ``x0: [B, S]``, ``actions: [B, H, A]`` ->
    ``(states [B, H + 1, S], cost [B])``, the cost weighted by ``weights: [H]``."""
    batch, horizon, a = actions.shape
    states, _, cost = forward_pass(
        stage,
        x0,
        x0.new_zeros(batch, horizon + 1, x0.shape[-1]),
        actions,
        actions.new_zeros(batch, horizon, a),
        actions.new_zeros(batch, horizon, a, x0.shape[-1]),
        step_sizes=actions.new_ones(1),
        lower=torch.full((a,), -torch.inf, dtype=actions.dtype, device=actions.device),
        upper=torch.full((a,), torch.inf, dtype=actions.dtype, device=actions.device),
        weights=weights,
    )
    return states[:, 0], cost[:, 0]


def update_regularization(
    mu: torch.Tensor,
    delta: torch.Tensor,
    success: torch.Tensor,
    *,
    factor: float,
    mu_min: float,
    mu_max: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The regularisation schedule of Tassa et al. 2012 (Sec. II-F), per batch element.

    On success, ``delta <- min(1 / factor, delta / factor)`` and ``mu <- mu * delta``, set
    to 0 below ``mu_min``; on failure, ``delta <- max(factor, delta * factor)`` and
    ``mu <- max(mu_min, mu * delta)``, capped at ``mu_max``.

    :param mu: ``[B]``.
    :param delta: ``[B]`` the current modification factor.
    :param success: ``[B]`` bool.
    :return: ``(mu [B], delta [B])``.
    """
    down = torch.minimum(delta / factor, torch.full_like(delta, 1 / factor))
    up = torch.maximum(delta * factor, torch.full_like(delta, factor))
    lowered = mu * down
    lowered = torch.where(lowered < mu_min, torch.zeros_like(mu), lowered)
    raised = torch.clamp(mu * up, min=mu_min, max=mu_max)
    return torch.where(success, lowered, raised), torch.where(success, down, up)


def at_one_point(stage: StageFn) -> tuple[PointDynamics, PointReward]:
    """Split a batched stage function into its dynamics and reward at one point, as
    ``torch.func`` differentiates them: ``(state [S], action [A]) -> [S]`` and ``-> []``."""

    def dynamics(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return stage(x[None], u[None])[0][0]

    def reward(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return stage(x[None], u[None])[1][0]

    return dynamics, reward


def _probe_obs(space: spaces.Space) -> np.ndarray:
    """One observation, ``[1, *obs_shape]``, to probe the model with."""
    if isinstance(space, spaces.Box):
        return np.clip(np.zeros(space.shape), space.low, space.high).astype(space.dtype)[None]
    return np.stack([space.sample()])


class ILQR(Planner):
    """Iterative LQR over the model's differentiable mean prediction (``mean_step``).

    Maximises the discounted predicted return over ``horizon`` steps by minimising its
    negation: ``iterations`` rounds of linearising the dynamics and quadratising the reward
    along the current trajectory, a regularised Riccati backward pass and a parallel line
    search over ``step_sizes``; a step is kept per start state only if it lowers the cost
    (Li & Todorov 2004; regularisation and line search of Tassa et al. 2012). The
    regularisation ``mu`` starts at ``mu_init`` in every plan and follows the schedule of
    Tassa et al. 2012 per start state. Actions are clamped to the Box in the forward pass
    (not the box-QP of Tassa et al. 2014), and each plan starts from the previous one,
    shifted (warm start).

    The model is deterministic here: ``particles`` must be 1, and termination (learned or
    given) is ignored, since a smooth optimiser cannot follow a 0/1 alive mask. The reward
    is ``reward_fn(decode(s), a, decode(s'))`` when there is one, else the model's reward,
    and must be differentiable.

    :param model: a model whose ``mean_step`` is differentiable and composable with
        ``torch.func.vmap``.
    :param horizon: ``H``.
    :param iterations: iLQR iterations per decision.
    :param mu_init: initial Levenberg-Marquardt regularisation of ``Q_uu``.
    :param mu_min: below it ``mu`` becomes 0 (and failure raises it to at least this).
    :param mu_max: cap on ``mu``.
    :param mu_factor: ``Delta_0``, the minimal modification factor of ``mu``.
    :param step_sizes: the line-search values of ``alpha``, evaluated together.
    :param kwargs: see :class:`~mbwrap.planners.Planner`.
    :raises NotImplementedError: when the model has no ``mean_step``.
    :raises ValueError: when there is neither a reward function nor a model reward.
    :raises TypeError: when ``mean_step`` (or the reward) cannot be differentiated, or not
        with ``torch.func``.
    """

    supports_discrete = False
    registry_name = "ilqr"
    space_support = SpaceSupport(
        observations=None, actions=("Box",), bounded_actions=True,
        observation_note="a model with a differentiable mean_step",
    )

    def __init__(
        self,
        model: WorldModel,
        *,
        # Not from Tassa et al. (whose horizon is in seconds of simulation): the planning
        # horizon of PETS (Chua et al. 2018), common for MPC over learned models.
        horizon: int = 30,
        # Our choice: Tassa et al. 2012 re-optimise every control step from the shifted
        # solution, so a few iterations per decision suffice; this is a fixed budget.
        iterations: int = 10,
        mu_init: float = 1.0,  # iLQG.m (Tassa et al. 2012's released code): lambda = 1
        mu_min: float = 1e-6,  # Tassa et al. 2012, Sec. II-F
        mu_max: float = 1e10,  # iLQG.m: lambdaMax
        mu_factor: float = 2.0,  # Tassa et al. 2012, Sec. II-F: Delta_0 = 2
        step_sizes: Sequence[float] = DEFAULT_STEP_SIZES,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, horizon=horizon, **kwargs)
        if self.particles != 1:
            raise ValueError(
                f"particles: iLQR plans over the model's mean prediction, so it takes "
                f"particles=1, got {self.particles}"
            )
        self.iterations = _positive_int(iterations, "iterations")
        self.mu_init = _non_negative(mu_init, "mu_init")
        self.mu_min = _non_negative(mu_min, "mu_min")
        self.mu_max = _non_negative(mu_max, "mu_max")
        if not self.mu_min <= self.mu_max:
            raise ValueError(f"mu_max: expected >= mu_min = {self.mu_min}, got {self.mu_max}")
        self.mu_factor = float(mu_factor)
        if not (np.isfinite(self.mu_factor) and self.mu_factor > 1):
            raise ValueError(f"mu_factor: expected a finite float > 1, got {mu_factor!r}")
        steps = [float(a) for a in step_sizes]
        if not steps or not all(np.isfinite(a) and a > 0 for a in steps):
            raise ValueError(
                f"step_sizes: expected a non-empty list of positive floats, got {step_sizes!r}"
            )
        self.step_sizes = steps
        self._probe()

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "iterations": self.iterations,
            "mu_init": self.mu_init,
            "mu_min": self.mu_min,
            "mu_max": self.mu_max,
            "mu_factor": self.mu_factor,
            "step_sizes": list(self.step_sizes),
        }

    # ------------------------------------------------------------------ the model
    def _stage(self, state_shape: torch.Size) -> StageFn:
        """Batched ``(state [n, S], action [n, D]) -> (next_state [n, S], reward [n])``."""
        model = self.model

        def stage(x: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            n = x.shape[0]
            state = x.reshape(n, *state_shape)
            action = self.to_actions(u)
            next_state, reward = model.mean_step(state, action)
            if self.reward_fn is not None:
                reward = self.reward_fn(model.decode(state), action, model.decode(next_state))
            elif reward is None:
                raise ValueError(
                    f"reward_fn: {type(model).__name__}.mean_step predicts no reward and no "
                    f"reward function is registered for env id {model.env_id!r}; give the "
                    "planner a reward_fn"
                )
            return next_state.reshape(n, -1), reward.reshape(n).to(x.dtype)

        return stage

    def _probe(self) -> None:
        """Run the model once as :meth:`optimize` will, so that a model iLQR cannot use
        fails at construction, with its own message."""
        with torch.no_grad():
            state = self.model.encode(_probe_obs(self.observation_space))
        stage = self._stage(state.shape[1:])
        x = state.reshape(1, -1).float()
        u = self.fresh_solution(1)[:, 0]
        with torch.enable_grad():
            x.requires_grad_(True)
            next_x, _ = stage(x, u)  # NotImplementedError surfaces here, unchanged
            if not next_x.requires_grad:
                raise TypeError(
                    f"model: {type(self.model).__name__}.mean_step is not differentiable "
                    "(its output does not depend on the input through autograd; is it run "
                    "under torch.no_grad?); iLQR needs its derivatives"
                )
            states, actions = x.detach()[:, None], u[:, None]
            dynamics, reward = at_one_point(stage)
            try:
                linearize_dynamics(dynamics, states, actions)
                quadratize_reward(reward, states, actions)
            except RuntimeError as err:
                raise TypeError(
                    f"model: iLQR differentiates {type(self.model).__name__}.mean_step and the "
                    "reward with torch.func (jacrev/jacfwd under vmap, one point at a time), "
                    f"which failed: {err}"
                ) from err

    # ------------------------------------------------------------------ planning
    def optimize(self, state: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
        """``state: [B, *state_shape]``, ``init: [B, H, D]`` -> ``[B, H, D]``.

        Start states whose best trajectory still has a non-finite cost get NaN actions, so
        that :meth:`plan` reports the model's breakdown.
        """
        batch = state.shape[0]
        dtype = state.dtype if state.is_floating_point() else init.dtype
        x0 = state.reshape(batch, -1).to(dtype)
        stage = self._stage(state.shape[1:])
        dynamics, reward = at_one_point(stage)
        lower, upper = self.lower.to(dtype), self.upper.to(dtype)
        weights = self.gamma ** torch.arange(self.horizon, device=self.device, dtype=dtype)
        alphas = torch.tensor(self.step_sizes, device=self.device, dtype=dtype)
        rows = torch.arange(batch, device=self.device)

        actions = torch.clamp(init.to(dtype), lower, upper)
        with torch.no_grad():
            states, cost = rollout(stage, x0, actions, weights=weights)
        cost = _finite_or_inf(cost)
        mu = torch.full((batch,), self.mu_init, device=self.device, dtype=dtype)
        delta = torch.ones_like(mu)
        for _ in range(self.iterations):
            with torch.enable_grad():
                derivatives = (
                    *linearize_dynamics(dynamics, states[:, :-1], actions),
                    *quadratize_reward(reward, states[:, :-1], actions),
                )
            # The model's parameters require grad, so the derivatives hold a graph back to
            # them; nothing here is differentiated further.
            f_x, f_u, r_x, r_u, r_xx, r_uu, r_ux = (d.detach() for d in derivatives)
            w = -weights[None, :, None]  # cost = -gamma^t reward
            w2 = w[..., None]
            solution = lqr_backward(f_x, f_u, w * r_x, w * r_u, w2 * r_xx, w2 * r_uu, w2 * r_ux, mu)
            with torch.no_grad():
                new_states, new_actions, new_cost = forward_pass(
                    stage,
                    x0,
                    states,
                    actions,
                    solution.k,
                    solution.K,
                    step_sizes=alphas,
                    lower=lower,
                    upper=upper,
                    weights=weights,
                )
            new_cost = _finite_or_inf(new_cost)
            best = new_cost.argmin(1)
            best_cost = new_cost[rows, best]
            success = solution.positive_definite & (best_cost < cost)
            states = torch.where(success[:, None, None], new_states[rows, best], states)
            actions = torch.where(success[:, None, None], new_actions[rows, best], actions)
            cost = torch.where(success, best_cost, cost)
            mu, delta = update_regularization(
                mu,
                delta,
                success,
                factor=self.mu_factor,
                mu_min=self.mu_min,
                mu_max=self.mu_max,
            )
        broken = ~torch.isfinite(cost)
        actions = torch.where(broken[:, None, None], torch.nan, actions)
        return actions.to(init.dtype)


def _finite_or_inf(cost: torch.Tensor) -> torch.Tensor:
    """NaN and infinite costs become ``+inf``, so that they never win a comparison."""
    return torch.where(torch.isfinite(cost), cost, torch.inf)


def _non_negative(value: Any, name: str) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if not ok or not np.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected a finite float >= 0, got {value!r}")
    return float(value)


__all__ = [
    "DEFAULT_STEP_SIZES",
    "ILQR",
    "LQRSolution",
    "at_one_point",
    "forward_pass",
    "linearize_dynamics",
    "lqr_backward",
    "quadratize_reward",
    "rollout",
    "update_regularization",
]
