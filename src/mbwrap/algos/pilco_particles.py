"""PILCO's cost predicted from particles instead of one Gaussian: samples from each
start Gaussian pushed through the GPs' predictive distribution with reparameterised
noise (Parmas et al. 2018, PIPPS; Gal et al. 2016, Deep PILCO), as a pure function.

Why: where a controller's real outcomes split (a pole some starts swing round a full
turn), one Gaussian over the angle cannot hold them and its predicted cost goes flat;
particles can (benchmarks/RESULTS.md, "PILCO")."""

from __future__ import annotations

from collections.abc import Callable

import torch

from mbwrap.models.gp import GPModel


def particle_costs(
    model: GPModel,
    controller: Callable[[torch.Tensor], torch.Tensor],
    cost: Callable[[torch.Tensor], torch.Tensor],
    mean: torch.Tensor,
    cov: torch.Tensor,
    horizon: int,
    count: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """The mean cost of ``count`` particles from each start Gaussian at each step:
    ``[horizon, k]``, differentiable in the controller's parameters.

    :param model: the fitted GPs (``predict_delta``, ``to_state``, ``to_observation``).
    :param controller: observations ``[N, D]`` to actions ``[N, U]``.
    :param cost: observations ``[N, D]`` to costs ``[N]``.
    :param mean: ``[k, S]`` start means over the model's states. :param cov: ``[k, S, S]``.
    :param generator: a CPU generator; all noise is drawn from it on the host at once (the
        same numbers on every device), so that a generator seeded alike gives the same
        objective on every call.
    """
    k, dim = mean.shape
    start_noise = torch.randn(k, count, dim, 1, generator=generator, dtype=mean.dtype)
    step_noise = torch.randn(horizon, k * count, dim, generator=generator, dtype=mean.dtype)
    step_noise = step_noise.to(mean.device)
    chol = torch.linalg.cholesky(cov)[:, None]  # [k, 1, S, S]
    start = mean[:, None] + (chol @ start_noise.to(mean.device))[..., 0]  # [k, P, S]
    obs = model.to_observation(start.reshape(k * count, dim))  # [kP, D]
    costs = []
    for eps in step_noise:
        action = controller(obs)
        step_mean, step_var = model.predict_delta(torch.cat([obs, action.to(obs)], 1))
        delta = step_mean + step_var.sqrt() * eps
        obs = model.to_observation(model.to_state(obs) + delta)
        costs.append(cost(obs).reshape(k, count).mean(1))
    return torch.stack(costs)
