"""The cross-entropy method (CEM) as PETS plans with it (Chua et al. 2018)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from mbwrap.models import WorldModel
from mbwrap.planners.base import Objective, Planner, _positive_int
from mbwrap.space_support import SpaceSupport

# Standard normal quantiles that bound PETS's samples to two standard deviations
# (``tf.truncated_normal`` redraws anything further out).
_TRUNCATION = 2.0
_CDF_LOW = 0.5 * (1.0 + math.erf(-_TRUNCATION / math.sqrt(2.0)))
_CDF_HIGH = 0.5 * (1.0 + math.erf(_TRUNCATION / math.sqrt(2.0)))


def _checked_float(value: Any, name: str, expected: str, ok: Callable[[float], bool]) -> float:
    """``float(value)`` when it is a finite real for which ``ok`` holds, else a ValueError."""
    real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not real or not math.isfinite(value) or not ok(float(value)):
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return float(value)


def _still_valid(
    valid: torch.Tensor | None, episode_start: Any, device: torch.device
) -> torch.Tensor | None:
    """Which envs keep a per-env planner memory after ``reset(episode_start)``.

    :param valid: ``[B]`` bool, the envs whose memory is usable, or ``None`` (no memory).
    :param episode_start: ``[B]`` bool, or ``None`` to forget every env.
    :return: ``[B]`` bool, or ``None`` when the memory is to be dropped altogether.
    """
    if valid is None or episode_start is None:
        return None
    done = torch.as_tensor(np.asarray(episode_start, dtype=bool), device=device)
    if done.shape != valid.shape:
        return None
    return valid & ~done


def _smoothing(value: Any, name: str = "alpha") -> float:
    # alpha = 1 would keep the first distribution forever: the elites would count for nothing.
    return _checked_float(value, name, "a float in [0, 1)", lambda x: 0.0 <= x < 1.0)


def truncated_normal_sequences(
    mean: torch.Tensor,
    std: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    *,
    num: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """PETS's sampling: a normal truncated at two standard deviations, its deviation first
    shrunk so that those two deviations stay within the bounds.

    Sampling by the inverse CDF draws every sample exactly once (no rejection loop), so it
    stays one batched operation.

    :param mean: ``[B, H, D]``, within ``[lower, upper]``.
    :param std: ``[B, H, D]`` (or broadcastable to it), non-negative.
    :param lower: ``[D]``.
    :param upper: ``[D]``.
    :param num: ``N``, sequences drawn per start state.
    :return: ``[B, N, H, D]`` sequences within ``[lower, upper]``.
    """
    std = torch.minimum(std, torch.minimum(mean - lower, upper - mean) / _TRUNCATION)
    std = std.clamp(min=0.0)
    batch, horizon, dim = mean.shape
    uniform = torch.rand(batch, num, horizon, dim, device=mean.device, generator=generator)
    quantile = _CDF_LOW + uniform * (_CDF_HIGH - _CDF_LOW)
    z = math.sqrt(2.0) * torch.erfinv(2.0 * quantile - 1.0)
    # erfinv of a float32 quantile can overshoot the truncation point by a rounding error.
    z = z.clamp(-_TRUNCATION, _TRUNCATION)
    return mean.unsqueeze(1) + z * std.unsqueeze(1)


def select_elites(
    candidates: torch.Tensor, returns: torch.Tensor, num_elites: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``K`` highest-return candidates of every start state, best first.

    :param candidates: ``[B, N, H, *]``.
    :param returns: ``[B, N]``.
    :param num_elites: ``K <= N``.
    :return: ``(elites [B, K, H, *], elite_returns [B, K])``.
    """
    elite_returns, index = returns.topk(num_elites, dim=1)
    rows = torch.arange(candidates.shape[0], device=candidates.device).unsqueeze(1)
    return candidates[rows, index], elite_returns


def cem_update(
    mean: torch.Tensor, std: torch.Tensor, elites: torch.Tensor, alpha: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Refit the Gaussian to the elites, smoothed: ``new = alpha * old + (1 - alpha) * fit``.

    As in PETS, the mean and the variance are smoothed (the fit is the elites' mean and
    population variance per step and dimension); the deviation is returned.

    :param mean: ``[B, H, D]``.
    :param std: ``[B, H, D]``.
    :param elites: ``[B, K, H, D]``.
    :param alpha: weight of the old distribution, in ``[0, 1)``.
    :return: ``(mean [B, H, D], std [B, H, D])``.
    """
    # Written out: torch.var_mean over a middle dimension is about 10x slower on a CPU.
    fit_mean = elites.mean(1)
    fit_var = (elites - fit_mean.unsqueeze(1)).square().mean(1)
    var = alpha * std.square() + (1 - alpha) * fit_var
    return alpha * mean + (1 - alpha) * fit_mean, var.sqrt()


def categorical_sequences(
    probs: torch.Tensor, *, num: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw Discrete sequences, every step independently from its categorical distribution.

    :param probs: ``[B, H, n]`` probabilities (rows may be unnormalised, not all zero).
    :param num: ``N``, sequences per start state.
    :return: ``[B, N, H]`` int64 action indices.
    """
    batch, horizon, n = probs.shape
    picks = torch.multinomial(
        probs.reshape(batch * horizon, n), num, replacement=True, generator=generator
    )
    return picks.reshape(batch, horizon, num).transpose(1, 2)


def categorical_cem_update(probs: torch.Tensor, elites: torch.Tensor, alpha: float) -> torch.Tensor:
    """Refit the categoricals to the elites' action frequencies, smoothed as :func:`cem_update`.

    :param probs: ``[B, H, n]``.
    :param elites: ``[B, K, H]`` int64 action indices.
    :param alpha: weight of the old distribution, in ``[0, 1)``.
    :return: ``[B, H, n]`` probabilities.
    """
    counts = torch.nn.functional.one_hot(elites, probs.shape[-1]).to(probs.dtype)
    return alpha * probs + (1 - alpha) * counts.mean(dim=1)


class CEM(Planner):
    """Cross-entropy-method MPC as in PETS (Chua et al. 2018, "Deep Reinforcement Learning
    in a Handful of Trials using Probabilistic Dynamics Models").

    Every decision starts from the previous solution shifted one step (the mean) and a
    standard deviation of a quarter of the action range; each iteration samples
    ``population`` sequences (:func:`truncated_normal_sequences`), keeps the ``num_elites``
    best and refits the Gaussian (:func:`cem_update`). The final mean is executed, as in
    PETS. PETS's early stop on a small variance is left out: it would need the variance on
    the host in every iteration.

    For Discrete actions each step is a categorical distribution, warm-started from the
    previous solution's probabilities and refitted to the elites' action frequencies
    (:func:`categorical_cem_update`); the most probable first action is executed. A
    warm start that has collapsed onto one action keeps it; use ``warm_start=False`` to
    start every decision from the uniform distribution.

    :param model: the world model planned over.
    :param population: ``N``, sequences sampled per iteration.
    :param num_elites: ``K <= N``, the best sequences the distribution is refitted to.
    :param iterations: refits per decision.
    :param alpha: weight of the old distribution in each refit, in ``[0, 1)``.
    :param horizon: ``H``.
    :param particles: rollouts per candidate (TS, Chua et al. 2018).
    :param kwargs: see :class:`~mbwrap.planners.Planner`.
    """

    supports_discrete = True
    registry_name = "cem"
    space_support = SpaceSupport(
        observations=None, actions=("Box", "Discrete"), bounded_actions=True,
        action_note="categorical CEM for Discrete actions",
    )

    def __init__(
        self,
        model: WorldModel,
        *,
        # PETS, Chua et al. 2018, as released (kchua/handful-of-trials,
        # dmbrl/config/halfcheetah.py): popsize 500, 50 elites, 5 iterations, alpha 0.1,
        # planning horizon 30; P = 20 particles for trajectory sampling.
        population: int = 500,
        num_elites: int = 50,
        iterations: int = 5,
        alpha: float = 0.1,
        horizon: int = 30,
        particles: int = 20,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, horizon=horizon, particles=particles, **kwargs)
        self.population = _positive_int(population, "population")
        self.num_elites = _positive_int(num_elites, "num_elites")
        if self.num_elites > self.population:
            raise ValueError(
                f"num_elites: expected at most population = {self.population}, got {num_elites!r}"
            )
        self.iterations = _positive_int(iterations, "iterations")
        self.alpha = _smoothing(alpha)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "population": self.population,
            "num_elites": self.num_elites,
            "iterations": self.iterations,
            "alpha": self.alpha,
        }

    @torch.no_grad()
    def optimize(self, state: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
        """``state: [B, *state_shape]``, ``init: [B, H, D]`` -> the final mean ``[B, H, D]``
        (for Discrete actions, the final probabilities ``[B, H, n]``)."""
        objective: Objective = self.objective(state)
        if self.discrete:
            probs = init
            for _ in range(self.iterations):
                candidates = categorical_sequences(
                    probs, num=self.population, generator=self.generator
                )
                elites, _ = select_elites(candidates, objective(candidates), self.num_elites)
                probs = categorical_cem_update(probs, elites, self.alpha)
            return probs
        mean = init
        # PETS's implementation starts every decision from variance (upper - lower)^2 / 16.
        std = ((self.upper - self.lower) / 4).expand_as(mean)
        for _ in range(self.iterations):
            candidates = truncated_normal_sequences(
                mean, std, self.lower, self.upper, num=self.population, generator=self.generator
            )
            elites, _ = select_elites(candidates, objective(candidates), self.num_elites)
            mean, std = cem_update(mean, std, elites, self.alpha)
        return mean
