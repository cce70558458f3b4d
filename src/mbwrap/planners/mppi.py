"""Model predictive path integral control (MPPI), with PDDM's filtered sampling."""

from __future__ import annotations

from typing import Any

import torch

from mbwrap.models import WorldModel
from mbwrap.planners.base import Objective, Planner, _positive_int, _unit_float
from mbwrap.planners.cem import _checked_float, _still_valid
from mbwrap.space_support import SpaceSupport


def mppi_weights(returns: torch.Tensor, temperature: float) -> torch.Tensor:
    """The path-integral weights ``softmax(returns / temperature)`` per start state.

    The best return is subtracted first, so that no exponent overflows however large the
    returns or small the temperature.

    :param returns: ``[B, N]``.
    :param temperature: ``lambda > 0``; smaller concentrates the weight on the best.
    :return: ``[B, N]``, non-negative, each row summing to 1.
    """
    shifted = returns - returns.amax(dim=1, keepdim=True)
    return torch.softmax(shifted / temperature, dim=1)


def mppi_update(
    nominal: torch.Tensor, candidates: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Move the nominal sequence by the weighted mean perturbation (Williams et al. 2017).

    The perturbations are measured from the candidates actually evaluated (after filtering
    and clipping), so the result is the weighted mean of the candidates, within bounds.

    :param nominal: ``[B, H, D]``.
    :param candidates: ``[B, N, H, D]``.
    :param weights: ``[B, N]``, rows summing to 1.
    :return: ``[B, H, D]``.
    """
    perturbations = candidates - nominal.unsqueeze(1)
    return nominal + torch.einsum("bn,bnhd->bhd", weights, perturbations)


def filter_sequences(samples: torch.Tensor, past: torch.Tensor, beta: float) -> torch.Tensor:
    """PDDM's temporal filter: ``a_t = beta * u_t + (1 - beta) * a_{t-1}``, from
    ``a_{-1} = past``, the action executed last.

    :param samples: ``[B, N, H, D]`` perturbed sequences ``u``.
    :param past: ``[B, D]``.
    :param beta: in ``(0, 1]``; 1 leaves the samples unfiltered (plain MPPI).
    :return: ``[B, N, H, D]``.
    """
    previous = past.unsqueeze(1)
    steps = []
    for t in range(samples.shape[2]):
        previous = beta * samples[:, :, t] + (1 - beta) * previous
        steps.append(previous)
    return torch.stack(steps, dim=2)


class MPPI(Planner):
    """Model predictive path integral control (Williams et al. 2017, "Information
    Theoretic MPC for Model-Based Reinforcement Learning"), with the filtered sampling of
    PDDM (Nagabandi et al. 2019, "Deep Dynamics Models for Learning Dexterous
    Manipulation").

    Each iteration perturbs the nominal sequence (the previous solution shifted one step)
    with Gaussian noise, filters the perturbed sequences in time, starting from the action
    executed last in that env (:func:`filter_sequences`), clips them to the bounds, and
    replaces the nominal sequence by their average weighted by
    ``softmax(return / temperature)`` (:func:`mppi_weights`, :func:`mppi_update`). The
    nominal sequence is executed. Box action spaces only.

    The filter makes the actions smooth at a price: with ``beta < 1`` every candidate is
    pulled towards the previous action, so the nominal sequence settles short of the
    return's optimum wherever that differs from it; ``beta = 1`` is unbiased MPPI. The
    temperature is in units of return: rescale it with the reward.

    :param model: the world model planned over.
    :param population: ``N``, perturbed sequences per iteration.
    :param temperature: ``lambda > 0`` of the weights.
    :param noise_std: deviation of the perturbations, as a fraction of half the action
        range (PDDM's actions span ``[-1, 1]``).
    :param beta: PDDM's filtering coefficient in ``(0, 1]``; 1 is plain MPPI.
    :param iterations: weighted updates per decision (PDDM and Williams et al.: 1).
    :param horizon: ``H``.
    :param kwargs: see :class:`~mbwrap.planners.Planner`.
    """

    supports_discrete = False
    registry_name = "mppi"
    space_support = SpaceSupport(observations=None, actions=("Box",), bounded_actions=True)

    def __init__(
        self,
        model: WorldModel,
        *,
        # PDDM, Nagabandi et al. 2019, as released for the Baoding-balls task
        # (google-research/pddm, pddm/config/baoding.txt): 700 samples, horizon 7,
        # reward-weighting kappa = 20 (temperature 1 / 20), noise 0.9, beta 0.6, one
        # update per step.
        population: int = 700,
        temperature: float = 0.05,
        noise_std: float = 0.9,
        beta: float = 0.6,
        iterations: int = 1,
        horizon: int = 7,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, horizon=horizon, **kwargs)
        self.population = _positive_int(population, "population")
        self.temperature = _checked_float(temperature, "temperature", "a float > 0", _positive)
        self.noise_std = _checked_float(noise_std, "noise_std", "a float > 0", _positive)
        self.beta = _unit_float(beta, "beta")
        self.iterations = _positive_int(iterations, "iterations")
        # The action executed last, [B, D], and which envs have one (PDDM's past action).
        self._past_action: torch.Tensor | None = None
        self._past_valid: torch.Tensor | None = None

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "population": self.population,
            "temperature": self.temperature,
            "noise_std": self.noise_std,
            "beta": self.beta,
            "iterations": self.iterations,
        }

    def reset(self, episode_start: Any = None) -> None:
        """Forget the warm start and the past action, for every env or where
        ``episode_start`` is true."""
        super().reset(episode_start)
        self._past_valid = _still_valid(self._past_valid, episode_start, self.device)
        if self._past_valid is None:
            self._past_action = None

    def _past(self, init: torch.Tensor) -> torch.Tensor:
        """``[B, D]``: the action executed last per env; for an env without one, the
        nominal first action, so that the filter only scales its perturbation."""
        past, valid = self._past_action, self._past_valid
        if not self.warm_start or past is None or valid is None or past.shape != init[:, 0].shape:
            return init[:, 0]
        return torch.where(valid.unsqueeze(1), past, init[:, 0])

    @torch.no_grad()
    def optimize(self, state: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
        """``state: [B, *state_shape]``, ``init: [B, H, D]`` -> the nominal ``[B, H, D]``."""
        objective: Objective = self.objective(state)
        nominal = init
        past = self._past(init)
        batch, horizon, dim = init.shape
        std = self.noise_std * (self.upper - self.lower) / 2
        for _ in range(self.iterations):
            noise = torch.randn(
                batch, self.population, horizon, dim, device=self.device, generator=self.generator
            )
            candidates = filter_sequences(nominal.unsqueeze(1) + std * noise, past, self.beta)
            candidates = torch.clamp(candidates, self.lower, self.upper)
            weights = mppi_weights(objective(candidates), self.temperature)
            nominal = mppi_update(nominal, candidates, weights)
        self._past_action = torch.clamp(nominal[:, 0], self.lower, self.upper)
        self._past_valid = torch.ones(batch, dtype=torch.bool, device=self.device)
        return nominal


def _positive(x: float) -> bool:
    return x > 0
