"""CMA-ES trajectory optimisation for model-predictive control, with Hansen's ``cma``.

The decision variable of one start state is its whole action sequence, flattened to
``n = H * D`` numbers and mapped from the action Box to ``[-1, 1]^n``; one
``cma.CMAEvolutionStrategy`` (Hansen & Ostermeier 2001, "Completely Derandomized
Self-Adaptation in Evolution Strategies"; Hansen 2016, "The CMA Evolution Strategy: A
Tutorial") searches that cube for each start state, warm-started at the previous plan.
"""

from __future__ import annotations

import math
from typing import Any

import cma
import numpy as np
import torch
from mbwrap.errors import ModelOutputError
from mbwrap.models import WorldModel
from mbwrap.planners import Objective, Planner
from mbwrap.planners.base import NONFINITE_RETURN


def to_unit_box(actions: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """Map Box actions to the cube CMA-ES searches: ``[lower, upper] -> [-1, 1]`` per dimension.

    Values outside the Box are clipped to it; a dimension with ``lower == upper`` maps to 0.

    :param actions: ``[..., D]``.
    :param lower: ``[D]``.
    :param upper: ``[D]``.
    :return: ``[..., D]`` in ``[-1, 1]``.
    """
    half = (upper - lower) / 2
    unit = (actions - (upper + lower) / 2) / torch.where(half > 0, half, torch.ones_like(half))
    return torch.where(half > 0, unit, torch.zeros_like(unit)).clamp(-1.0, 1.0)


def from_unit_box(unit: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`to_unit_box`: ``[-1, 1] -> [lower, upper]`` per dimension.

    :param unit: ``[..., D]``.
    :param lower: ``[D]``.
    :param upper: ``[D]``.
    :return: ``[..., D]``.
    """
    return (upper + lower) / 2 + (upper - lower) / 2 * unit


def default_population(dimension: int) -> int:
    """CMA-ES's default population size ``4 + floor(3 ln n)`` for ``n`` decision variables.

    Hansen 2016, "The CMA Evolution Strategy: A Tutorial", Table 1; the same formula as
    ``cma``'s ``popsize`` option.
    """
    return 4 + int(3 * math.log(dimension))


def _int_at_least(value: Any, minimum: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def _positive_float(value: Any, name: str) -> float:
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, bool
    )
    if not number or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a finite float > 0, got {value!r}")
    return float(value)


class CMAESPlanner(Planner):
    """CMA-ES model-predictive control: one evolution strategy per start state.

    At every decision, for each of the ``B`` start states, a ``cma.CMAEvolutionStrategy``
    searches the flattened action sequence (``n = horizon * action_dim`` variables, each
    action dimension mapped from its Box bounds to ``[-1, 1]``, see :func:`to_unit_box`),
    with ``cma``'s own boundary handling (``BoundTransform``, so every candidate it asks
    for is inside the Box). Each strategy starts at the warm-start plan with step size
    ``sigma0`` and runs ``iterations`` generations of ``population`` candidates. In every
    generation the ``B * population`` candidates of all strategies are stacked into one
    ``[B, population, H, D]`` tensor and scored by **one** call of the objective on the
    model's device.

    The plan returned is the **best sequence evaluated**, not the final mean: with a few
    generations per decision the mean has never been evaluated (and lives in ``cma``'s
    unbounded genotype space), whereas the best candidate's predicted return is known.
    The warm-start plan is scored with the first generation, so for a deterministic
    model the returned plan is never predicted worse than the previous plan shifted. With
    a stochastic model and few ``particles``, the best candidate is partly the luckiest
    one; raise ``particles``.

    **Caveat: host round trips.** ``cma`` keeps each strategy's state on the host in
    NumPy, so every generation copies the candidates host -> device and the returns
    device -> host (one synchronisation per generation, on a GPU too), and ``ask``/``tell``
    run in a Python loop over the ``B`` strategies, each costing ``O(population * n^2)``
    on the CPU (a strategy also takes milliseconds to construct, once per decision). Only
    the model evaluation is batched. For large batches or long horizons on a GPU, a
    planner that stays on the device (``"cem"``, ``"icem"``, ``"mppi"``) is faster; CMA-ES
    earns its cost where the return is ill-conditioned or its variables strongly
    correlated, which its covariance adaptation learns.

    Randomness comes from the planner's ``seed`` only: strategy ``b`` of decision ``k``
    draws from its own ``numpy`` generator seeded by ``SeedSequence(seed, spawn_key=(k,
    b))``, so a start state's plan does not depend on the others in its batch, and
    NumPy's global generator (which ``cma`` reseeds by default) is left alone.

    :param model: the world model planned over (Box actions only).
    :param horizon: ``H``, steps planned ahead.
    :param population: candidates per generation per start state (``cma``'s ``popsize``,
        lambda); ``None``: ``cma``'s default :func:`default_population` of ``H * D``.
        Larger populations cost little model time (they are batched) and help on rugged
        returns (Hansen & Kern 2004, "Evaluating the CMA Evolution Strategy on Multimodal
        Test Functions").
    :param iterations: generations per decision.
    :param sigma0: initial step size in the ``[-1, 1]`` cube.
    :param kwargs: see :class:`~mbwrap.planners.Planner`.
    :raises ValueError: for a bad setting, or fewer than 2 decision variables (``cma``
        does not support 1-D optimisation).
    """

    supports_discrete = False
    registry_name = "cma-es"

    def __init__(
        self,
        model: WorldModel,
        *,
        horizon: int = 30,  # PETS, Chua et al. 2018 (HalfCheetah)
        population: int | None = None,  # Hansen 2016, Table 1: 4 + floor(3 ln n)
        iterations: int = 5,  # as PETS's CEM, Chua et al. 2018
        # pycma: "sigma0 should be about 1/4th of the search domain width"; the cube
        # [-1, 1] is 2 wide.
        sigma0: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, horizon=horizon, **kwargs)
        self.dimension = self.horizon * self.action_dim
        if self.dimension < 2:
            raise ValueError(
                f"horizon: CMA-ES needs at least 2 decision variables (horizon * action_dim), "
                f"got horizon={self.horizon} with action_dim={self.action_dim}; cma does not "
                "support 1-D optimisation, use horizon >= 2"
            )
        self.population = (
            default_population(self.dimension)
            if population is None
            else _int_at_least(population, 2, "population")
        )
        self.iterations = _int_at_least(iterations, 1, "iterations")
        self.sigma0 = _positive_float(sigma0, "sigma0")
        # SeedSequence needs a non-negative entropy; torch accepts negative seeds.
        seed = None if self.seed is None else self.seed % 2**64
        self._entropy = np.random.SeedSequence(seed).entropy
        self._decisions = 0

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "population": self.population,
            "iterations": self.iterations,
            "sigma0": self.sigma0,
        }

    def _strategy(self, x0: np.ndarray, index: int) -> cma.CMAEvolutionStrategy:
        """A fresh strategy at ``x0: [n]`` (unit cube), with its own seeded generator."""
        rng = np.random.default_rng(
            np.random.SeedSequence(self._entropy, spawn_key=(self._decisions, index))
        )
        options = {
            "bounds": [-1.0, 1.0],
            "popsize": self.population,
            "randn": lambda *shape: rng.standard_normal(shape),
            "seed": math.nan,  # do not reseed NumPy's global generator
            "verbose": -9,
            "verb_disp": 0,
            "verb_log": 0,
        }
        return cma.CMAEvolutionStrategy(x0, self.sigma0, options)

    def optimize(self, state: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
        """``state: [B, *state_shape]``, ``init: [B, H, D]`` -> the best ``[B, H, D]`` seen.

        :raises ModelOutputError: when every candidate of some start state had a
            non-finite predicted return.
        """
        batch = state.shape[0]
        objective: Objective = self.objective(state)
        x0 = to_unit_box(init, self.lower, self.upper).reshape(batch, self.dimension)
        x0 = x0.double().cpu().numpy()
        strategies = [self._strategy(x0[b], b) for b in range(batch)]
        self._decisions += 1
        best_unit = x0.astype(np.float32)  # [B, n]
        best_return = np.full(batch, -np.inf)
        rows = np.arange(batch)
        for iteration in range(self.iterations):
            asked = [strategy.ask() for strategy in strategies]  # B lists of P arrays [n]
            unit = np.asarray(asked, dtype=np.float32)  # [B, P, n]
            if iteration == 0:
                unit = np.concatenate([unit, best_unit[:, None]], axis=1)  # + the warm start
            candidates = torch.as_tensor(unit, device=self.device).reshape(
                batch, -1, self.horizon, self.action_dim
            )
            returns = objective(from_unit_box(candidates, self.lower, self.upper))
            returns = returns.double().cpu().numpy()  # [B, P (+1)]
            for strategy, solutions, value in zip(strategies, asked, returns):
                # cma minimises; the warm start is scored, not told (it was not asked for).
                strategy.tell(solutions, (-value[: self.population]).tolist())
            top = returns.argmax(axis=1)
            improved = returns[rows, top] > best_return
            best_unit[improved] = unit[rows, top][improved]
            best_return[improved] = returns[rows, top][improved]
        if bool((best_return <= NONFINITE_RETURN).any()):
            raise ModelOutputError(
                f"{type(self).__name__}: every candidate of start states "
                f"{np.flatnonzero(best_return <= NONFINITE_RETURN).tolist()} has a non-finite "
                "predicted return; the model predicted NaN or infinite values"
            )
        best = torch.as_tensor(best_unit, device=self.device)
        best = best.reshape(batch, self.horizon, self.action_dim)
        return from_unit_box(best, self.lower, self.upper)
