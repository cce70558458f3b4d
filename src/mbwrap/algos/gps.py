"""Guided policy search with mirror descent (MDGPS: Montgomery & Levine 2016, "Guided Policy
Search via Approximate Mirror Descent", Algorithm 2; local models as in Levine & Abbeel
2014, "Learning Neural Network Policies with Guided Policy Search under Unknown
Dynamics")."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy

from mbwrap.algos.agents import resolve_agent
from mbwrap.algos.base import Algorithm
from mbwrap.algos.gps_config import GPSConfig
from mbwrap.algos.gps_global import (
    linearise_policy,
    policy_actions,
    policy_covariance,
    step_multiplier,
    train_global_policy,
)
from mbwrap.algos.gps_local import LocalControllers, latest_episodes
from mbwrap.device import make_generator
from mbwrap.envs.sb3_vec_env import env_id
from mbwrap.envs.spaces_only import spaces_only_vec_env
from mbwrap.errors import UnsupportedSpaceError
from mbwrap.models.local_linear import DynamicsPriorGMM, fit_linear_gaussian
from mbwrap.planners.lqg import (
    LinearGaussianController,
    LinearGaussianDynamics,
    QuadraticCost,
    expected_cost,
    kl_step,
    quadratic_expansion,
    trajectory_marginals,
)
from mbwrap.registry import get_fn
from mbwrap.space_support import SpaceSupport

# A floor on the start-state covariance estimated from a few samples.
_START_VARIANCE = 1e-6


class GPS(Algorithm):
    """Mirror-descent guided policy search: local linear-Gaussian controllers, one per
    initial condition, improved by LQG on local dynamics under a KL bound to the
    linearised global policy (C-step), and a neural SB3 policy trained by supervised
    learning on their samples (S-step), which then acts alone (:meth:`predict`).

    The real env is a vector env with one env per condition, each starting every episode
    from the same state (:func:`~mbwrap.envs.condition_vec_env`); episodes have a fixed
    length ``T`` (its time limit). Each iteration of ``learn``:

    1. ``samples`` episodes per condition from the local controllers;
    2. time-varying linear-Gaussian dynamics per condition and step, fitted on them with a
       Gaussian-mixture prior over all real transitions (``"local-linear"``'s fit);
    3. the global policy fitted linearly at the samples (under a mixture prior); the step
       size adapted by the improvement the last step predicted against the one realised;
    4. C-step: each controller minimises the expected cost (a second-order expansion of
       the cost around the samples) subject to ``KL(p || linearised policy) <= kl_step T``;
    5. S-step: the policy's mean regresses on the controllers' actions, weighted by their
       precision; its standard deviation is set to theirs.

    The cost is minus the env's registered reward function (group ``mbwrap.fns``) at
    ``(x_t, u_t)``. Logs ``gps/cost`` (the samples' mean cost per episode), ``gps/kl``,
    ``gps/step_mult``, ``gps/eta`` and ``gps/policy_loss``.

    Settings: :class:`~mbwrap.algos.gps_config.GPSConfig`.
    """

    registry_name = "gps"
    space_support = SpaceSupport(
        observations=("Box",),
        actions=("Box",),
        bounded_actions=True,
        observation_note="flat Box states: linear-Gaussian dynamics on them",
    )
    Config = GPSConfig
    saved_state = (
        "agent",
        "local",
        "previous",
        "step_mult",
        "prior_data",
        "policy_prior_data",
        "iterations",
        "_generator",
    )
    saved_buffers = ("buffer",)
    config: GPSConfig

    def __init__(self, env: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(env, *args, **kwargs)
        config = self.config
        if len(self.observation_space.shape) != 1:  # type: ignore[arg-type]
            raise UnsupportedSpaceError(
                f"observation_space: GPS needs flat Box states, got {self.observation_space}"
            )
        if config.horizon is None:
            config.horizon = self._episode_length()
        self.horizon = config.horizon
        fns = get_fn(env_id(self.env)) if self.env is not None else None
        self._reward = getattr(fns, "reward", None)
        if self.env is not None and self._reward is None:
            raise ValueError(
                f"env: GPS's cost is minus a registered reward function (group mbwrap.fns) "
                f"and none is registered for {env_id(self.env)!r}"
            )
        agent_env = self.env
        if agent_env is None:
            agent_env = spaces_only_vec_env(self.observation_space, self.action_space)
        self.agent, config.agent, config.agent_kwargs = resolve_agent(
            config.agent,
            config.agent_kwargs,
            agent_env,
            seed=config.seed,
            device=self.device,
        )
        if not isinstance(self.agent.policy, ActorCriticPolicy):
            raise ValueError(
                f"agent: GPS trains a Gaussian actor-critic policy (PPO, A2C, TRPO), got "
                f"{type(self.agent).__name__}'s {type(self.agent.policy).__name__}"
            )
        # The policy's own optimizer, so that the agent's checkpoint keeps its moments.
        self._optimizer = self.agent.policy.optimizer
        for group in self._optimizer.param_groups:
            group["lr"] = config.policy_learning_rate
        self.buffer = self._make_buffer()
        self._generator = make_generator(torch.device("cpu"), config.seed)
        dims = self.observation_space.shape[0], self.action_space.shape[0]  # type: ignore[index]
        kw = {"dtype": torch.float64, "device": self.device}
        #: The local controllers, ``[M, T, ...]`` tensors of a LinearGaussianController.
        self.local: dict[str, torch.Tensor] = {
            "gain": torch.zeros(self.n_envs, self.horizon, dims[1], dims[0], **kw),
            "offset": torch.zeros(self.n_envs, self.horizon, dims[1], **kw),
            "cov": config.init_var
            * torch.eye(dims[1], **kw).expand(self.n_envs, self.horizon, -1, -1).clone(),
        }
        #: What the step-size rule compares against: the last iteration's dynamics, cost
        #: and linearised policy (empty before the second iteration).
        self.previous: dict[str, torch.Tensor] = {}
        #: The KL step of each condition, as a multiple of ``kl_step``.
        self.step_mult = torch.ones(self.n_envs, **kw)
        self.prior = DynamicsPriorGMM(
            max_clusters=config.prior_clusters,
            min_samples_per_cluster=config.prior_min_samples,
        )
        #: The same kind of mixture over ``(x, pi(x))``: the policy's linearisation prior.
        self.policy_prior = DynamicsPriorGMM(
            max_clusters=config.prior_clusters,
            min_samples_per_cluster=config.prior_min_samples,
        )
        #: Iterations (C- and S-steps) done.
        self.iterations = 0
        #: The last iteration's samples' cost (per episode) and its C-step's bound, KL and
        #: dual variable, each ``[M]`` (empty before the first iteration).
        self.last_step: dict[str, torch.Tensor] = {}

    def _episode_length(self) -> int:
        spec = None if self.env is None else self.env.get_attr("spec", indices=[0])[0]
        steps = getattr(spec, "max_episode_steps", None)
        if not steps:
            raise ValueError(
                "env: GPS needs episodes of a fixed length, the env's time limit "
                "(spec.max_episode_steps); make it with gymnasium.make and a time limit"
            )
        return int(steps)

    @property
    def prior_data(self) -> torch.Tensor | None:
        """``[S, X + U + X]``: the transitions the dynamics prior holds (what a checkpoint
        keeps of it: the mixture is refitted on them at the next iteration)."""
        return self.prior.data

    @prior_data.setter
    def prior_data(self, value: torch.Tensor | None) -> None:
        self.prior.data = value

    @property
    def policy_prior_data(self) -> torch.Tensor | None:
        """``[S, X + U]``: the (state, policy action) pairs the policy's prior holds."""
        return self.policy_prior.data

    @policy_prior_data.setter
    def policy_prior_data(self, value: torch.Tensor | None) -> None:
        self.policy_prior.data = value

    # ------------------------------------------------------------------ acting
    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """The global policy's action: it acts alone, in any start state."""
        return self.agent.predict(observation, state, episode_start, deterministic)

    def local_controllers(self) -> LocalControllers:
        """The local controllers as a predictor for the conditions' vector env."""
        return LocalControllers(
            LinearGaussianController(**self.local),
            self.action_space,  # type: ignore[arg-type]
            self._generator,
        )

    # ------------------------------------------------------------------ the loop's hooks
    def _warming_up(self) -> bool:
        return False

    def _refit_due(self) -> bool:
        return False

    def _collect(self, callback: BaseCallback, remaining: int) -> bool:
        """``samples`` episodes per condition from the local controllers."""
        if remaining < self.config.samples * self.horizon * self.n_envs:
            return False  # not a whole iteration's samples left
        policy = self.local_controllers()
        for _ in range(self.config.samples):
            steps = self.horizon * self.n_envs
            if not self._collect_steps(callback, steps, policy, until_episode_end=True):
                return False
        return True

    def _train(self) -> None:
        """Fit local dynamics, adapt the step size, then the C-step and the S-step."""
        config = self.config
        x, u, x_next = latest_episodes(self.buffer, config.samples, self.horizon)
        dynamics = self._fit_dynamics(x, u, x_next)
        z = torch.cat([x, u], -1)
        cost = quadratic_expansion(self._cost, z.mean(1))
        current = LinearGaussianController(**self.local)
        # What the step is bounded to and judged by: the linearised policy (mirror
        # descent) or the controllers that sampled (trajectory optimisation alone).
        if config.kl_anchor == "policy":
            reference = self._linear_policy(x, policy_covariance(current))
        else:
            reference = current
        if self.previous:
            self._adapt_step(dynamics, cost, reference)
        anchor = current if self.iterations == 0 else reference
        epsilon = config.kl_step * self.horizon * self.step_mult
        step = kl_step(dynamics, cost, anchor, epsilon)
        sample_cost = self._cost(z.reshape(-1, z.shape[-1])).reshape(z.shape[:3]).sum(-1)
        self.last_step = {
            "cost": sample_cost.mean(1),
            "epsilon": epsilon,
            "kl": step.kl,
            "eta": step.eta,
        }
        self.local = {
            "gain": step.controller.gain,
            "offset": step.controller.offset,
            "cov": step.controller.cov,
        }
        self.previous = {
            **{f"dynamics.{k}": v for k, v in vars(dynamics).items()},
            **{f"cost.{k}": v for k, v in vars(cost).items()},
            **{f"policy.{k}": v for k, v in vars(reference).items()},
        }
        loss = train_global_policy(
            self.agent.policy,
            self._optimizer,
            x,
            step.controller,
            steps=config.policy_steps,
            batch_size=config.policy_batch_size,
            generator=self._generator,
        )
        self.iterations += 1
        self.logger.record("gps/cost", float(sample_cost.mean()))
        self.logger.record("gps/kl", float(step.kl.mean()))
        self.logger.record("gps/eta", float(step.eta.mean()))
        self.logger.record("gps/step_mult", float(self.step_mult.mean()))
        self.logger.record("gps/policy_loss", loss)
        self.logger.record("gps/iterations", self.iterations)

    # ------------------------------------------------------------------ parts
    def _cost(self, z: torch.Tensor) -> torch.Tensor:
        """``[B]`` cost of ``z = [x, u]``: minus the registered reward at ``(x, u)``."""
        dim = self.observation_space.shape[0]  # type: ignore[index]
        x, u = z[..., :dim], z[..., dim:]
        return -self._reward(x, u, x)  # type: ignore[misc]

    def _fit_dynamics(
        self, x: torch.Tensor, u: torch.Tensor, x_next: torch.Tensor
    ) -> LinearGaussianDynamics:
        """Local dynamics per condition with the mixture prior refitted on all real data."""
        self.prior.update(
            x.flatten(0, 2), u.flatten(0, 2), x_next.flatten(0, 2), generator=self._generator
        )
        points = torch.cat([x, u, x_next], -1).transpose(1, 2)  # [M, T, N, D]
        fx, fc, cov = fit_linear_gaussian(x, u, x_next, self.prior.eval(points))
        start = x[:, :, 0]
        centred = start - start.mean(1, keepdim=True)
        start_cov = torch.einsum("mni,mnj->mij", centred, centred) / max(len(start[0]) - 1, 1)
        eye = torch.eye(start.shape[-1], dtype=start.dtype, device=start.device)
        return LinearGaussianDynamics(
            fx=fx, fc=fc, cov=cov, x0_mean=start.mean(1), x0_cov=start_cov + _START_VARIANCE * eye
        )

    def _linear_policy(self, x: torch.Tensor, cov: torch.Tensor) -> LinearGaussianController:
        """The policy fitted linearly at the samples, under its mixture prior refitted on
        all sample states (:func:`~mbwrap.algos.gps_global.linearise_policy`)."""
        actions = policy_actions(self.agent.policy, x)
        self.policy_prior.update(
            x.flatten(0, 2),
            x[..., :0].flatten(0, 2),
            actions.flatten(0, 2),
            generator=self._generator,
        )
        points = torch.cat([x, actions], -1).transpose(1, 2)  # [M, T, N, X + U]
        return linearise_policy(x, actions, cov, self.policy_prior.eval(points))

    def _adapt_step(
        self,
        dynamics: LinearGaussianDynamics,
        cost: QuadraticCost,
        linear: LinearGaussianController,
    ) -> None:
        """MDGPS's step-size rule (:func:`~mbwrap.algos.gps_global.step_multiplier`) on
        ``linear``, the current reference controller."""

        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k.split(".", 1)[1]: v for k, v in self.previous.items() if k.startswith(prefix)}

        old_dynamics = LinearGaussianDynamics(**part("dynamics."))
        old_cost = QuadraticCost(**part("cost."))
        old_policy = LinearGaussianController(**part("policy."))

        def expected(controller: Any, dynamics: Any, cost: Any) -> torch.Tensor:
            return expected_cost(cost, *trajectory_marginals(controller, dynamics))  # [M]

        previous = expected(old_policy, old_dynamics, old_cost)
        predicted = expected(linear, old_dynamics, old_cost)
        actual = expected(linear, dynamics, cost)
        self.step_mult = step_multiplier(
            previous,
            predicted,
            actual,
            self.step_mult,
            low=self.config.min_step_mult,
            high=self.config.max_step_mult,
        )
