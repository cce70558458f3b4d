"""The improved cross-entropy method (iCEM, Pinneri et al. 2020)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from mbwrap.models import WorldModel
from mbwrap.planners.base import Objective, Planner, _positive_int, _unit_float
from mbwrap.planners.cem import _checked_float, _smoothing, _still_valid, select_elites
from mbwrap.space_support import SpaceSupport


def colored_noise(
    beta: float,
    shape: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Gaussian noise whose power spectrum along the last axis falls as ``1 / f^beta``.

    Built in the frequency domain: random complex amplitudes scaled by ``f^(-beta / 2)``,
    transformed back by an inverse real FFT. The zero frequency gets the amplitude of the
    lowest non-zero one (``1 / f^beta`` is infinite there), and the result is scaled to
    unit variance. ``beta = 0`` is white noise; larger ``beta`` is smoother in time.

    :param beta: the spectral exponent, ``>= 0``.
    :param shape: ``[..., T]``; every series along the last axis is independent.
    :param generator: source of randomness (its device is used when ``device`` is None).
    :param device: where the noise is made.
    :return: ``shape`` float32, each element with mean 0 and variance 1.
    """
    *lead, steps = shape
    if device is None:
        device = generator.device if generator is not None else "cpu"
    freqs = torch.fft.rfftfreq(steps, device=device)
    freqs[0] = 1.0 / steps
    amplitude = freqs.pow(-beta / 2)
    real = torch.randn(*lead, freqs.shape[0], device=device, generator=generator) * amplitude
    imag = torch.randn(*lead, freqs.shape[0], device=device, generator=generator) * amplitude
    # The zero (and, for even T, the Nyquist) frequency of a real signal has no imaginary
    # part; doubling its real variance keeps the expected power 2 * amplitude^2 at every
    # frequency, so the spectrum is exactly 1 / f^beta.
    imag[..., 0] = 0
    real[..., 0] *= math.sqrt(2)
    # Each inner frequency appears twice (with its conjugate) in the length-T signal.
    multiplicity = torch.full_like(amplitude, 4.0)
    multiplicity[0] = 2.0
    if steps % 2 == 0:
        imag[..., -1] = 0
        real[..., -1] *= math.sqrt(2)
        multiplicity[-1] = 2.0
    noise = torch.fft.irfft(torch.complex(real, imag), n=steps)
    std = (multiplicity * amplitude.square()).sum().sqrt() / steps
    return noise / std


def population_sizes(population: int, num_elites: int, decay: float, iterations: int) -> list[int]:
    """Sequences sampled in each iteration: ``N_i = max(2 K, int(N_{i-1} / decay))``.

    :return: ``iterations`` sizes, the first ``population``.
    """
    sizes = [population]
    for _ in range(iterations - 1):
        sizes.append(max(2 * num_elites, int(sizes[-1] / decay)))
    return sizes


def icem_update(
    mean: torch.Tensor, std: torch.Tensor, elites: torch.Tensor, alpha: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """iCEM's refit: ``new = alpha * old + (1 - alpha) * fit`` for the mean and the standard
    deviation (PETS smooths the variance instead, :func:`~mbwrap.planners.cem.cem_update`).

    :param mean: ``[B, H, D]``.
    :param std: ``[B, H, D]``.
    :param elites: ``[B, K, H, D]``.
    :param alpha: momentum, in ``[0, 1)``.
    :return: ``(mean [B, H, D], std [B, H, D])``.
    """
    fit_std, fit_mean = torch.std_mean(elites, dim=1, correction=0)
    return alpha * mean + (1 - alpha) * fit_mean, alpha * std + (1 - alpha) * fit_std


class ICEM(Planner):
    """The improved cross-entropy method (Pinneri et al. 2020, "Sample-efficient
    Cross-Entropy Method for Real-time Planning"). Box action spaces only.

    CEM with, per decision: coloured noise along the horizon (:func:`colored_noise`);
    samples clipped to the bounds rather than truncated; a population divided by
    ``population_decay`` every iteration, never below ``2 * num_elites``
    (:func:`population_sizes`); the best ``keep_elites_fraction`` of each iteration's
    elites kept into the next one, with their returns; those of the last iteration
    shifted one step into the next decision (a fresh last step appended); the mean added
    as a candidate in the last iteration; and the best sequence seen is executed.

    Two departures: the warm start is that best sequence shifted (iCEM shifts the mean:
    the base planner keeps one solution per env, the one executed); and shifted elites
    are forgotten for envs that start a new episode, sampled afresh instead.

    :param model: the world model planned over.
    :param population: ``N``, sequences sampled in the first iteration.
    :param num_elites: ``K <= N // 2``.
    :param iterations: refits per decision.
    :param alpha: momentum of the refit, in ``[0, 1)``.
    :param noise_beta: the noise's spectral exponent ``beta >= 0`` (0: white noise).
        Pinneri et al. tune it per task, from 0.25 (HalfCheetah running) to 3.5
        (Relocate): lower for high-frequency control.
    :param population_decay: ``gamma >= 1``, the population's divisor per iteration.
    :param keep_elites_fraction: ``xi`` in ``[0, 1]``, the share of elites kept and shifted.
    :param init_std: the initial deviation, as a fraction of half the action range.
    :param horizon: ``H``.
    :param kwargs: see :class:`~mbwrap.planners.Planner`.
    """

    supports_discrete = False
    registry_name = "icem"
    space_support = SpaceSupport(observations=None, actions=("Box",), bounded_actions=True)

    def __init__(
        self,
        model: WorldModel,
        *,
        # iCEM, Pinneri et al. 2020, as released (martius-lab/iCEM,
        # icem/settings/defaults/i-cem-blitz.json): 40 trajectories, 10 elites, 3
        # iterations, alpha 0.1, noise_beta 3.0, decay 1.25, fraction of elites reused
        # 0.3, init_std 0.5, horizon 30 (the horizon of their ground-truth experiments).
        population: int = 40,
        num_elites: int = 10,
        iterations: int = 3,
        alpha: float = 0.1,
        noise_beta: float = 3.0,
        population_decay: float = 1.25,
        keep_elites_fraction: float = 0.3,
        init_std: float = 0.5,
        horizon: int = 30,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, horizon=horizon, **kwargs)
        self.population = _positive_int(population, "population")
        self.num_elites = _positive_int(num_elites, "num_elites")
        if 2 * self.num_elites > self.population:
            raise ValueError(
                f"num_elites: expected at most population // 2 = {self.population // 2} "
                f"(iCEM samples at least 2 * num_elites per iteration), got {num_elites!r}"
            )
        self.iterations = _positive_int(iterations, "iterations")
        self.alpha = _smoothing(alpha)
        self.noise_beta = _checked_float(noise_beta, "noise_beta", "a float >= 0", _non_negative)
        self.population_decay = _checked_float(
            population_decay, "population_decay", "a float >= 1", lambda x: x >= 1.0
        )
        self.keep_elites_fraction = _unit_float(
            keep_elites_fraction, "keep_elites_fraction", low_open=False
        )
        self.init_std = _checked_float(init_std, "init_std", "a float > 0", lambda x: x > 0)
        # The kept elites of the last decision, [B, k, H, D], and which envs may use them.
        self._elites: torch.Tensor | None = None
        self._elites_valid: torch.Tensor | None = None

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "population": self.population,
            "num_elites": self.num_elites,
            "iterations": self.iterations,
            "alpha": self.alpha,
            "noise_beta": self.noise_beta,
            "population_decay": self.population_decay,
            "keep_elites_fraction": self.keep_elites_fraction,
            "init_std": self.init_std,
        }

    def reset(self, episode_start: Any = None) -> None:
        """Forget the warm start and the shifted elites, for every env or where
        ``episode_start`` is true."""
        super().reset(episode_start)
        self._elites_valid = _still_valid(self._elites_valid, episode_start, self.device)
        if self._elites_valid is None:
            self._elites = None

    def _sample(self, mean: torch.Tensor, std: torch.Tensor, num: int) -> torch.Tensor:
        """``[B, num, H, D]`` coloured-noise sequences around ``mean``, clipped to the bounds."""
        batch, horizon, dim = mean.shape
        # Correlated along time: the noise's last axis is the horizon.
        noise = colored_noise(
            self.noise_beta,
            (batch, num, dim, horizon),
            generator=self.generator,
            device=self.device,
        ).transpose(-1, -2)
        return torch.clamp(mean.unsqueeze(1) + std.unsqueeze(1) * noise, self.lower, self.upper)

    def _shiftable_elites(
        self, batch: int, horizon: int
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The last decision's kept elites ``[B, k, H, D]`` and ``[B]`` which envs may use
        them, when they fit this decision."""
        elites, valid = self._elites, self._elites_valid
        if not self.warm_start or elites is None or valid is None:
            return None
        if elites.shape[0] != batch or elites.shape[2] != horizon:
            return None
        return elites, valid

    @staticmethod
    def _with_shifted(
        candidates: torch.Tensor, elites: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """Overwrite the last ``k`` candidates by ``elites`` shifted one step, where
        ``valid``; the sampled last step becomes their fresh final action.

        :param candidates: ``[B, N, H, D]``.
        :param elites: ``[B, k, H, D]``.
        :param valid: ``[B]`` bool.
        """
        num = elites.shape[1]
        tail = candidates[:, -num:]
        shifted = torch.cat([elites[:, :, 1:], tail[:, :, -1:]], dim=2)
        tail = torch.where(valid.view(-1, 1, 1, 1), shifted, tail)
        return torch.cat([candidates[:, :-num], tail], dim=1)

    @torch.no_grad()
    def optimize(self, state: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
        """``state: [B, *state_shape]``, ``init: [B, H, D]`` -> the best sequence seen
        ``[B, H, D]``."""
        objective: Objective = self.objective(state)
        batch = init.shape[0]
        mean = init
        std = (self.init_std * (self.upper - self.lower) / 2).expand_as(mean)
        num_kept = int(self.keep_elites_fraction * self.num_elites)
        best = init
        best_return = torch.full((batch,), -math.inf, device=self.device)
        kept: tuple[torch.Tensor, torch.Tensor] | None = None
        sizes = population_sizes(
            self.population, self.num_elites, self.population_decay, self.iterations
        )
        shiftable = self._shiftable_elites(batch, init.shape[1])
        for i, size in enumerate(sizes):
            if i == 0 and shiftable is not None:
                previous, valid = shiftable
                candidates = self._sample(mean, std, size + previous.shape[1])
                candidates = self._with_shifted(candidates, previous, valid)
            else:
                candidates = self._sample(mean, std, size)
            if i == len(sizes) - 1:
                # The mean itself is rarely drawn in many dimensions, yet often good.
                candidates[:, 0] = torch.clamp(mean, self.lower, self.upper)
            returns = objective(candidates)
            if kept is not None:
                candidates = torch.cat([candidates, kept[0]], dim=1)
                returns = torch.cat([returns, kept[1]], dim=1)
            elites, elite_returns = select_elites(candidates, returns, self.num_elites)
            better = elite_returns[:, 0] > best_return
            best = torch.where(better.view(-1, 1, 1), elites[:, 0], best)
            best_return = torch.maximum(best_return, elite_returns[:, 0])
            mean, std = icem_update(mean, std, elites, self.alpha)
            if num_kept > 0:
                kept = (elites[:, :num_kept], elite_returns[:, :num_kept])
        if kept is not None:
            self._elites = kept[0]
            self._elites_valid = torch.ones(batch, dtype=torch.bool, device=self.device)
        return best


def _non_negative(x: float) -> bool:
    return x >= 0
