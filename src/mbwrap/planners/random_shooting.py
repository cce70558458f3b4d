"""Random shooting (Nagabandi et al. 2018): the best of N uniformly random sequences."""

from __future__ import annotations

from typing import Any

import torch

from mbwrap.models import WorldModel
from mbwrap.planners.base import Objective, Planner, _positive_int
from mbwrap.space_support import SpaceSupport


def sample_uniform_sequences(
    lower: torch.Tensor,
    upper: torch.Tensor,
    *,
    batch: int,
    num: int,
    horizon: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Uniform Box sequences: ``lower, upper: [D] -> [batch, num, horizon, D]``."""
    noise = torch.rand(
        batch, num, horizon, lower.shape[0], device=lower.device, generator=generator
    )
    return lower + noise * (upper - lower)


def best_candidate(candidates: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
    """The highest-return candidate per start state.

    :param candidates: ``[B, N, H, *]``.
    :param returns: ``[B, N]``.
    :return: ``[B, H, *]``.
    """
    best = returns.argmax(dim=1)
    return candidates[torch.arange(candidates.shape[0], device=candidates.device), best]


class RandomShooting(Planner):
    """Random-shooting MPC: evaluate ``population`` random sequences, keep the best.

    The controller of Nagabandi et al. 2018 ("Neural Network Dynamics for Model-Based Deep
    Reinforcement Learning with Model-Free Fine-Tuning"), whose defaults are used: 4096
    candidates over a horizon of 10 (their MuJoCo settings, Section 6), no warm start
    (each plan is drawn afresh). Discrete actions are drawn uniformly.

    :param model: the world model planned over.
    :param population: ``N``, sequences evaluated per decision.
    :param horizon: ``H``.
    :param kwargs: see :class:`~mbwrap.planners.Planner`.
    """

    supports_discrete = True
    registry_name = "random-shooting"
    space_support = SpaceSupport(
        observations=None, actions=("Box", "Discrete"), bounded_actions=True
    )

    def __init__(
        self,
        model: WorldModel,
        *,
        population: int = 4096,  # Nagabandi et al. 2018, Section 6
        horizon: int = 10,  # Nagabandi et al. 2018, Section 6
        **kwargs: Any,
    ) -> None:
        super().__init__(model, horizon=horizon, **kwargs)
        self.population = _positive_int(population, "population")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "population": self.population}

    def optimize(self, state: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
        """``state: [B, *state_shape]``, ``init: [B, H, D]`` (unused) -> ``[B, H, D]``."""
        batch = state.shape[0]
        objective: Objective = self.objective(state)
        if self.discrete:
            picks = torch.randint(
                self.action_dim,
                (batch, self.population, self.horizon),
                device=self.device,
                generator=self.generator,
            )
            best = best_candidate(picks, objective(picks))
            return torch.nn.functional.one_hot(best, self.action_dim).float()
        candidates = sample_uniform_sequences(
            self.lower,
            self.upper,
            batch=batch,
            num=self.population,
            horizon=self.horizon,
            generator=self.generator,
        )
        return best_candidate(candidates, objective(candidates))
