"""Probabilistic ensemble of Gaussian networks: the model of PETS and MBPO.

Chua, Calandra, McAllister & Levine 2018, "Deep Reinforcement Learning in a Handful of
Trials using Probabilistic Dynamics Models" (PETS); Janner, Fu, Zhang & Levine 2019,
"When to Trust Your Model: Model-Based Policy Optimization" (MBPO).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from gymnasium import spaces

from mbwrap.models.losses import gaussian_nll, soft_clamp_logvar
from mbwrap.models.neural import NeuralWorldModel, Propagation
from mbwrap.models.neural_rollout import (
    Draw,
    folded_gaussian_draw,
    folded_gaussian_layer,
    folded_output_layer,
)

#: MBPO's L2 coefficients for its 4 hidden layers and the output layer (Janner et al. 2019,
#: mbpo/models/constructor.py; PETS's HalfCheetah model, Chua et al. 2018).
MBPO_WEIGHT_DECAY = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)


def mbpo_weight_decay(num_hidden: int) -> list[float]:
    """MBPO's per-layer L2 coefficients for a network of ``num_hidden`` hidden layers.

    Exactly MBPO's for 4 hidden layers; for another depth, hidden layer ``i`` takes MBPO's
    value for ``min(i, 3)`` (deeper layers repeat MBPO's deepest, ``7.5e-5``) and the output
    layer keeps ``1e-4``.

    :return: ``num_hidden + 1`` coefficients, the output layer's last.
    """
    hidden = [MBPO_WEIGHT_DECAY[min(i, 3)] for i in range(num_hidden)]
    return [*hidden, MBPO_WEIGHT_DECAY[-1]]


class GaussianEnsemble(NeuralWorldModel):
    """``E`` networks, each predicting a diagonal Gaussian over ``[s' - s, r]``.

    Each member outputs a mean and a log-variance per (normalised) target feature. The
    log-variance is bounded softly (:func:`~mbwrap.models.losses.soft_clamp_logvar`) by
    learned bounds ``max_logvar`` and ``min_logvar`` (one per feature, shared by the
    members), which the loss pulls towards each other with
    ``logvar_bound_coef * (sum(max_logvar) - sum(min_logvar))``. Each member trains on its
    own bootstrap resample of the data with the Gaussian negative log-likelihood, in the
    form PETS and MBPO minimise: ``mean_d[(mu_d - y_d)^2 exp(-logvar_d) + logvar_d]``,
    which is ``2 * NLL - log 2π`` per feature (see :func:`~mbwrap.models.losses.gaussian_nll`).
    Held-out scores and elites use the mean prediction's squared error, as MBPO's do.
    Everything is in normalised target units.

    Propagation (Chua et al. 2018, section 5): ``"ts1"`` draws a random elite for each row
    at every step, ``"ts-inf"`` fixes one elite per trajectory (:meth:`sample_members`),
    and both sample from the chosen member's Gaussian (its mean with ``deterministic``);
    ``"mean"`` returns the average of the elites' means with no noise.

    :param ensemble_size: members ``E``.
    :param num_elites: members used for prediction, chosen by held-out error.
    :param propagation: ``"ts1"``, ``"ts-inf"`` or ``"mean"``.
    :param deterministic: under ``"ts1"``/``"ts-inf"``, return the chosen member's mean
        instead of a sample of its Gaussian.
    :param weight_decay: L2 coefficient, one for all layers or one per layer; ``None``:
        MBPO's per-layer values (:func:`mbpo_weight_decay`).
    :param logvar_bound_coef: weight of the log-variance bound regulariser.

    Other parameters as :class:`~mbwrap.models.neural.NeuralWorldModel`.
    """

    registry_name = "gaussian-ensemble"

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        ensemble_size: int = 7,  # MBPO, Janner et al. 2019, appendix C
        num_elites: int = 5,  # MBPO, appendix C
        # MBPO draws a random elite per sample and step (TS1); PETS's code defaults to TS-inf.
        propagation: Propagation = "ts1",
        deterministic: bool = False,
        bootstrap: bool = True,  # PETS: bootstrap ensembles
        # MBPO's network (mbpo/models/constructor.py), PETS's HalfCheetah network: 4 x 200
        # swish, with a per-layer L2 penalty growing with depth (see MBPO_WEIGHT_DECAY).
        hidden_sizes: Sequence[int] = (200, 200, 200, 200),
        activation: str = "silu",
        weight_decay: float | Sequence[float] | None = None,
        learning_rate: float = 1e-3,  # PETS and MBPO
        batch_size: int = 256,  # MBPO's model training batch
        holdout_ratio: float = 0.2,  # MBPO
        max_holdout: int = 5000,  # MBPO (max_logging)
        patience: int = 5,  # MBPO (max_epochs_since_update)
        min_improvement: float = 0.01,  # MBPO: a 1% relative improvement counts
        max_epochs: int = 200,
        max_grad_norm: float | None = None,
        unroll_steps: int = 1,
        learn_termination: bool = False,
        logvar_bound_coef: float = 0.01,  # PETS and MBPO
        env_id: str | None = None,
        device: str | torch.device = "auto",
    ) -> None:
        if weight_decay is None:
            weight_decay = mbpo_weight_decay(len(hidden_sizes))
        super().__init__(
            observation_space,
            action_space,
            ensemble_size=ensemble_size,
            num_elites=num_elites,
            propagation=propagation,
            bootstrap=bootstrap,
            hidden_sizes=hidden_sizes,
            activation=activation,
            weight_decay=weight_decay,
            learning_rate=learning_rate,
            batch_size=batch_size,
            holdout_ratio=holdout_ratio,
            max_holdout=max_holdout,
            patience=patience,
            min_improvement=min_improvement,
            max_epochs=max_epochs,
            max_grad_norm=max_grad_norm,
            unroll_steps=unroll_steps,
            learn_termination=learn_termination,
            env_id=env_id,
            device=device,
        )
        if isinstance(logvar_bound_coef, bool) or not (
            isinstance(logvar_bound_coef, (int, float)) and logvar_bound_coef >= 0
        ):
            raise ValueError(f"logvar_bound_coef: expected a float >= 0, got {logvar_bound_coef!r}")
        self.deterministic = bool(deterministic)
        self.logvar_bound_coef = float(logvar_bound_coef)
        dim = self.target_dim
        # Initial bounds of PETS and MBPO.
        self.max_logvar = torch.nn.Parameter(torch.full((dim,), 0.5, device=self.device))
        self.min_logvar = torch.nn.Parameter(torch.full((dim,), -10.0, device=self.device))
        self._build_network(2 * dim)

    def get_config(self) -> dict[str, Any]:
        return {
            **self._ensemble_config(),
            "deterministic": self.deterministic,
            **self._training_config(),
            "logvar_bound_coef": self.logvar_bound_coef,
        }

    def _gaussian(self, head: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``head: [..., 2T] -> (mean [..., T], bounded logvar [..., T])``."""
        mean, logvar = head.split(self.target_dim, dim=-1)
        return mean, soft_clamp_logvar(logvar, self.max_logvar, self.min_logvar)

    def _loss(self, head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        mean, logvar = self._gaussian(head)
        # PETS/MBPO minimise 2 * NLL without its constant; the factor keeps the paper's
        # balance between the likelihood and the regularisers.
        return 2.0 * gaussian_nll(mean, logvar, target)

    def _mean(self, head: torch.Tensor) -> torch.Tensor:
        return head[..., : self.target_dim]

    def _sample(self, head: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        mean, logvar = self._gaussian(head)
        if self.deterministic:
            return mean
        noise = torch.randn(mean.shape, device=mean.device, generator=generator)
        return mean + torch.exp(0.5 * logvar) * noise

    def _prepared_head(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        steps: int,
        rows: int,
        generator: torch.Generator | None,
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], Draw]:
        """The denormaliser and half of the log-variance bound folded into the layer, and
        every step's noise drawn at once (:func:`folded_gaussian_draw`)."""
        norm = self.target_normalizer
        if self.deterministic:
            return folded_output_layer(weight, bias, norm.mean, norm.std), lambda head, t: (
                head[:, : self.target_dim]
            )
        top, bottom = self.max_logvar.detach(), self.min_logvar.detach()
        layer = folded_gaussian_layer(weight, bias, norm.mean, norm.std, top, bottom)
        noise = torch.randn(steps, rows, self.target_dim, device=weight.device,
                            generator=generator)
        noise *= norm.std * torch.exp(0.5 * bottom)
        half_span = 0.5 * (top - bottom)
        return layer, lambda head, t: folded_gaussian_draw(head, noise[t], half_span)

    def _regularizer(self) -> torch.Tensor:
        bounds = self.max_logvar.sum() - self.min_logvar.sum()
        return super()._regularizer() + self.logvar_bound_coef * bounds

    @torch.no_grad()
    def predict_distribution(self, state: Any, action: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member's Gaussian over ``[s' - s, r]`` in environment units.

        :param state: ``[B, *obs_shape]``.
        :param action: ``[B, *act_shape]``.
        :return: ``(mean [E, B, obs_dim + 1], logvar [E, B, obs_dim + 1])``.
        """
        _, flat, act = self._flat_inputs(state, action)
        head, _ = self._forward(self._inputs(flat, act))
        mean, logvar = self._gaussian(head)
        std = self.target_normalizer.std
        return self.target_normalizer.denormalize(mean), logvar + 2.0 * torch.log(std)
