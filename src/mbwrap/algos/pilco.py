"""PILCO (Deisenroth & Rasmussen 2011, "PILCO: A Model-Based and Data-Efficient Approach
to Policy Search", Algorithm 1)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from mbwrap.algos.base import Algorithm
from mbwrap.algos.pilco_config import KNOWN_ANGLE_PAIRS, KNOWN_COSTS, PILCOConfig
from mbwrap.algos.pilco_moments import expected_saturating_cost, propagate
from mbwrap.algos.pilco_particles import particle_costs
from mbwrap.device import make_generator
from mbwrap.envs.sb3_vec_env import env_id
from mbwrap.errors import NonFiniteModelWarning
from mbwrap.models.gp import GPModel
from mbwrap.networks import RBFController
from mbwrap.space_support import SpaceSupport


class _NonFinite(Exception):
    """An evaluation of the predicted cost overflowed."""


class PILCO(Algorithm):
    """PILCO: a GP dynamics model, the state distribution propagated over the horizon by
    moment matching, and an RBF controller optimised by the analytic gradient of the
    expected saturating cost (L-BFGS through the whole propagation).

    ``learn(total_timesteps)``: one episode of uniformly random actions, then, after each
    real episode, refit the GPs on all real data, optimise the controller from the
    start-state distribution (the real episodes' first observations: their mean, and
    their covariance floored at ``start_std``), and act with it for one episode. The
    controller acts deterministically (:meth:`predict`).

    Logs ``pilco/predicted_cost`` (the expected cost summed over the horizon after the
    optimisation, per step), ``model/nll`` and the real episodes' returns.

    Settings: :class:`~mbwrap.algos.pilco_config.PILCOConfig`.
    """

    registry_name = "pilco"
    space_support = SpaceSupport(
        observations=("Box",),
        actions=("Box",),
        bounded_actions=True,
        observation_note="flat Box states, one GP per dimension",
    )
    Config = PILCOConfig
    saved_state = (
        "model",
        "controller",
        "real_episodes",
        "policy_updates",
        "start_states",
        "_generator",
    )
    saved_buffers = ("buffer",)
    config: PILCOConfig

    def __init__(self, env: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(env, *args, **kwargs)
        config = self.config
        if config.cost_target is None:
            known = KNOWN_COSTS.get(env_id(self.env) or "")
            if known is None:
                raise ValueError(
                    f"cost_target, cost_weight: PILCO knows the costs of {sorted(KNOWN_COSTS)}; "
                    f"give both for {env_id(self.env)!r}"
                )
            config.cost_target, config.cost_weight = known
        dim = self.observation_space.shape[0]  # type: ignore[index]
        self._target = torch.tensor(config.cost_target, dtype=torch.float64, device=self.device)
        self._weight = torch.tensor(config.cost_weight, dtype=torch.float64, device=self.device)
        if self._target.shape != (dim,) or self._weight.shape != (dim, dim):
            raise ValueError(
                f"cost_target, cost_weight: expected [{dim}] and [{dim}, {dim}] for the "
                f"observations, got {list(self._target.shape)} and {list(self._weight.shape)}"
            )
        if config.start_means is not None:
            means = np.asarray(config.start_means, dtype=np.float64)
            if means.ndim != 2 or means.shape[0] < 1 or means.shape[1] != dim:
                raise ValueError(
                    f"start_means: expected a list of observations [k >= 1, {dim}], got "
                    f"shape {list(means.shape)}"
                )
            if not np.isfinite(means).all():
                raise ValueError("start_means: holds NaN or infinite values")
        if config.angle_pairs is None:
            config.angle_pairs = KNOWN_ANGLE_PAIRS.get(env_id(self.env) or "", [])
        self.model = GPModel(
            self.observation_space,
            self.action_space,
            env_id=env_id(self.env),
            device=self.device,
            angle_pairs=config.angle_pairs,
            **config.model_kwargs,
        )
        self.buffer = self._make_buffer()
        self._generator = make_generator(torch.device("cpu"), config.seed)
        self.controller = RBFController(
            dim,
            self.action_space,  # type: ignore[arg-type]
            config.num_basis,
            torch.zeros(dim),
            torch.ones(dim),
            generator=self._generator,
            mirror=config.mirror,
        ).to(self.device)
        #: Controller optimisations done.
        self.policy_updates = 0
        #: The first observation of every real episode (lists of floats).
        self.start_states: list[list[float]] = []

    # ------------------------------------------------------------------ acting
    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """The controller's action for one observation ``[D]`` or a batch ``[n, D]``."""
        obs = torch.as_tensor(np.asarray(observation), dtype=torch.float64, device=self.device)
        single = obs.dim() == 1
        with torch.no_grad():
            action = self.controller(obs.reshape(-1, obs.shape[-1])).float().cpu().numpy()
        return (action[0] if single else action), state

    # ------------------------------------------------------------------ the loop's hooks
    def _warming_up(self) -> bool:
        return self.real_episodes < 1

    def _refit_due(self) -> bool:
        return False  # _collect refits before each episode it acts in

    def _collect(self, callback: BaseCallback, remaining: int) -> bool:
        """One whole episode: random while warming up, else after :meth:`_improve`."""
        obs = np.asarray(self._last_obs, np.float64)
        starting = np.ones(len(obs), bool) if self._episode_starts is None else self._episode_starts
        self.start_states.extend(row.tolist() for row in obs[starting])
        policy = None
        if not self._warming_up():
            self._improve()
            policy = self
        return self._collect_steps(callback, remaining, policy, until_episode_end=True)

    def start_distribution(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean [k, S], cov [k, S, S])`` over the model's states
        (:meth:`~mbwrap.models.gp.GPModel.to_state`): the task's ``start_means`` where
        given, each with covariance ``start_std^2 I``; else with ``start_batch`` 1, the
        mean and covariance (floored at ``start_std``) of the episodes' first states; else
        the latest ``start_batch`` of them, each with covariance ``start_std^2 I``."""
        given = self.config.start_means
        observed = torch.tensor(
            self.start_states if given is None else given, dtype=torch.float64,
            device=self.device,
        )
        starts = self.model.to_state(observed)
        dim = starts.shape[1]
        floor = self.config.start_std**2 * torch.eye(dim, dtype=starts.dtype, device=starts.device)
        if given is not None:
            return starts, floor.expand(len(starts), dim, dim)
        if self.config.start_batch > 1:
            latest = starts[-self.config.start_batch :]
            return latest, floor.expand(len(latest), dim, dim)
        spread = torch.cov(starts.T).reshape(dim, dim) if len(starts) > 1 else 0.0
        return starts.mean(0, keepdim=True), (floor + spread).unsqueeze(0)

    def _start_samples(self, count: int) -> torch.Tensor:
        """``[count, D]`` observations drawn from the start distribution: a component of
        :meth:`start_distribution` uniformly at random for each, then its Gaussian over
        the model's states, mapped to observations."""
        mean, cov = self.start_distribution()
        pick = torch.randint(len(mean), (count,), generator=self._generator)
        noise = torch.randn(count, mean.shape[1], generator=self._generator, dtype=mean.dtype)
        pick, noise = pick.to(mean.device), noise.to(mean.device)
        chol = torch.linalg.cholesky(cov)[pick]
        states = mean[pick] + (chol @ noise.unsqueeze(-1)).squeeze(-1)
        return self.model.to_observation(states)

    def predicted_trajectory(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The state distribution at each of the ``horizon`` steps from the start
        distribution under the current controller and model: ``(mean [H, k, S], cov
        [H, k, S, S])`` for ``k`` start distributions (``start_batch``), over the model's
        states (the observation with each angle pair as its angle, ``angle_pairs``),
        differentiable in the controller's parameters."""
        dynamics = self.model.expansion()
        noise = self.model.hyperparameters()[2].detach()
        controller = self.controller.expansion()
        half, mid = self.controller.action_half, self.controller.action_mid
        layout = self.model.layout()
        mean, cov = self.start_distribution()
        means, covs = [], []
        for _ in range(self.config.horizon):
            mean, cov = propagate(dynamics, noise, controller, half, mean, cov, mid, layout)
            means.append(mean)
            covs.append(cov)
        return torch.stack(means), torch.stack(covs)

    def predicted_observations(self) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`predicted_trajectory` as observations: their exact mean ``[H, k, D]`` and
        covariance ``[H, k, D, D]`` (an angle's sine and cosine from its Gaussian)."""
        means, covs = self.predicted_trajectory()
        flat_mean, flat_cov = self.model.observation_moments(
            means.flatten(0, 1), covs.flatten(0, 1)
        )
        dim = flat_mean.shape[-1]
        return flat_mean.reshape(*means.shape[:2], dim), flat_cov.reshape(
            *means.shape[:2], dim, dim
        )

    def expected_cost(self, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        """The expected saturating cost ``[B]`` of observations ``N(mean [B, D], cov [B, D,
        D])`` (a zero covariance: the cost of ``mean`` itself), averaged over the widths of
        ``cost_scales``."""
        scales = self.config.cost_scales
        return sum(
            expected_saturating_cost(mean, cov, self._target, self._weight / s**2)
            for s in scales
        ) / len(scales)

    def predicted_costs(self, per_start: bool = False) -> torch.Tensor:
        """The expected saturating cost at each of the ``horizon`` steps
        (:meth:`predicted_observations`, :meth:`expected_cost`): ``[horizon]`` averaged
        over the ``k`` start distributions, or ``[horizon, k]`` with ``per_start``;
        differentiable in the controller's parameters."""
        if self.config.propagation == "particles":
            # A stream per (seed, policy update): 7919 is a prime above any run's updates.
            seed = int(self.seed or 0) * 7919 + self.policy_updates
            mean, cov = self.start_distribution()
            costs = particle_costs(
                self.model, self.controller, self._point_cost, mean, cov,
                self.config.horizon, self.config.particles, torch.Generator().manual_seed(seed),
            )
        else:
            means, covs = self.predicted_observations()
            flat = self.expected_cost(means.flatten(0, 1), covs.flatten(0, 1))
            costs = flat.reshape(means.shape[:2])
        return costs if per_start else costs.mean(1)

    def _point_cost(self, obs: torch.Tensor) -> torch.Tensor:
        """:meth:`expected_cost` of the points ``obs: [N, D]``: ``[N]``."""
        return self.expected_cost(obs, obs.new_zeros(*obs.shape, obs.shape[1]))

    def _improve(self) -> None:
        """Refit the GPs on all real data, then optimise the controller (L-BFGS) from the
        current one and from ``restarts - 1`` fresh ones, keeping the lowest predicted
        cost any evaluation reached."""
        self._refit()
        if self.policy_updates == 0:
            self._reinitialise_controller(weights=False)  # the centres on real states
        before = {k: v.clone() for k, v in self.controller.state_dict().items()}
        best: tuple[float, dict[str, torch.Tensor]] = (float("inf"), before)
        for restart in range(self.config.restarts):
            if restart and self.config.restart_spread > 0:
                self._perturb_controller(best[1], self.config.restart_spread)
            elif restart:
                self._reinitialise_controller(weights=True)
            best = min(best, self._optimise_controller(), key=lambda pair: pair[0])
        self.policy_updates += 1
        self.controller.load_state_dict(best[1])
        if not np.isfinite(best[0]):
            # Every line search stepped where the propagation overflows; keep the last
            # controller rather than act with NaN.
            warnings.warn(
                "PILCO: the controller's optimisation reached non-finite values; the "
                "previous controller is kept for this episode",
                NonFiniteModelWarning,
                stacklevel=2,
            )
        with torch.no_grad():
            predicted = float(self.predicted_costs().mean())
        self.logger.record("pilco/predicted_cost", predicted)
        self.logger.record("pilco/policy_updates", self.policy_updates)

    def _reinitialise_controller(self, weights: bool) -> None:
        """Centres on ``num_basis`` random real states (``centres="data"``) or drawn from
        the start distribution (``"start"``); with ``weights``, also fresh weights
        ``N(0, 0.1^2)`` and unit lengthscales (a restart)."""
        if self.config.centres == "start":
            states = self._start_samples(self.config.num_basis)
        else:
            states = self.buffer.transitions().obs.to(self.device, torch.float64)
            pick = torch.randperm(len(states), generator=self._generator)
            states = states[pick[: self.config.num_basis].to(states.device)]
        controller = self.controller
        with torch.no_grad():
            controller.centers[: len(states)] = states
            if weights:
                fresh = torch.randn(controller.weights.shape, generator=self._generator)
                controller.weights.copy_(0.1 * fresh.to(controller.weights))
                controller.log_lengthscales.zero_()

    def _perturb_controller(self, state: dict[str, torch.Tensor], spread: float) -> None:
        """Load ``state`` with each parameter tensor moved by ``N(0, (spread * std)^2)``
        noise, ``std`` that tensor's own standard deviation over its entries (1 where
        they are all equal, as the unit lengthscales of a fresh controller)."""
        self.controller.load_state_dict(state)
        with torch.no_grad():
            for param in self.controller.parameters():
                std = param.std() if param.numel() > 1 else param.new_zeros(())
                scale = torch.where(std > 0, std, torch.ones_like(std))
                noise = torch.randn(param.shape, generator=self._generator, dtype=param.dtype)
                param.add_(spread * scale * noise.to(param.device))

    def _optimise_controller(self) -> tuple[float, dict[str, torch.Tensor]]:
        """L-BFGS on the summed predicted cost from the current controller: ``(the lowest
        finite cost an evaluation reached, that controller's state)`` (``inf`` if none).
        A line search that steps where the propagation overflows ends the optimisation
        there (torch's line search cannot bracket a non-finite value); the best
        evaluation before it is kept."""
        optimizer = torch.optim.LBFGS(
            self.controller.parameters(),
            max_iter=self.config.policy_iterations,
            line_search_fn="strong_wolfe",
        )
        best: list[Any] = [float("inf"), None]

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = self.predicted_costs().sum()
            value = float(loss.detach())
            if not np.isfinite(value):
                raise _NonFinite
            loss.backward()
            finite = all(torch.isfinite(p.grad).all() for p in self.controller.parameters())
            if finite and value < best[0]:
                best[:] = [value, {k: v.clone() for k, v in self.controller.state_dict().items()}]
            return loss

        try:
            optimizer.step(closure)
        except _NonFinite:
            pass
        return best[0], best[1] if best[1] is not None else self.controller.state_dict()
