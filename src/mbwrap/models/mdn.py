"""Mixture density network dynamics (Bishop 1994, "Mixture Density Networks"), the output
model of the MDN-RNN of Ha & Schmidhuber 2018, "World Models"."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from gymnasium import spaces

from mbwrap.models.losses import mixture_nll, soft_clamp_logvar
from mbwrap.models.neural import NeuralWorldModel

# Fixed soft bounds on the components' log-variance (PETS's initial bounds, Chua et al.
# 2018): without them a component collapsing onto a few training points drives its
# log-variance, and the NLL, towards minus infinity.
_MAX_LOGVAR = 0.5
_MIN_LOGVAR = -10.0
_INITIAL_LOGVAR = -4.0


class MDNModel(NeuralWorldModel):
    """One network predicting a mixture of ``K`` diagonal Gaussians over ``[s' - s, r]``.

    The head holds ``K`` mixture logits, then ``K`` means and ``K`` log-variances of the
    normalised target. It is trained by the mixture's negative log-likelihood
    (:func:`~mbwrap.models.losses.mixture_nll`), which is also the held-out score. A
    mixture represents multimodal transitions (a ball that may bounce left or right) that a
    single Gaussian would average.

    :meth:`step` samples a component, then a value from its Gaussian, with the
    ``temperature`` ``τ`` of World Models: the logits are divided by ``τ`` and the
    standard deviations multiplied by ``sqrt(τ)`` (larger ``τ``, more uncertain dreams).
    ``τ = 0`` is deterministic: the most likely component's mean.

    :param num_components: mixture components ``K``.
    :param temperature: ``τ >= 0`` of sampling.

    Other parameters as :class:`~mbwrap.models.neural.NeuralWorldModel`.
    """

    registry_name = "mdn"

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        num_components: int = 5,  # World Models, Ha & Schmidhuber 2018
        temperature: float = 1.0,  # World Models' tau: 1 samples the model as trained
        # World Models' MDN-RNN reads a 256-unit LSTM (CarRacing); a model of the state
        # itself needs no recurrence, so two feed-forward layers of that width.
        hidden_sizes: Sequence[int] = (256, 256),
        activation: str = "silu",
        weight_decay: float | Sequence[float] = 0.0,
        learning_rate: float = 1e-3,  # World Models' MDN-RNN training (Adam)
        batch_size: int = 256,
        holdout_ratio: float = 0.2,  # MBPO, Janner et al. 2019
        max_holdout: int = 5000,  # MBPO
        patience: int = 5,  # MBPO
        min_improvement: float = 0.01,  # MBPO
        max_epochs: int = 200,
        max_grad_norm: float | None = 1.0,  # World Models clips gradients at 1.0
        unroll_steps: int = 1,
        learn_termination: bool = False,
        env_id: str | None = None,
        device: str | torch.device = "auto",
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            ensemble_size=1,
            num_elites=1,
            propagation="ts1",
            bootstrap=False,
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
        if (
            isinstance(num_components, bool)
            or not isinstance(num_components, int)
            or num_components < 1
        ):
            raise ValueError(f"num_components: expected a positive int, got {num_components!r}")
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or not (math.isfinite(temperature) and temperature >= 0)
        ):
            raise ValueError(f"temperature: expected a finite float >= 0, got {temperature!r}")
        self.num_components = int(num_components)
        self.temperature = float(temperature)
        self._build_network(self.num_components * (1 + 2 * self.target_dim))
        # Components that start at one mean sit at a saddle of the mixture likelihood
        # (their gradients are equal), and a wide component can cover several modes alone
        # while the others starve. Starting them apart (means spread over the normalised
        # target's unit range) and narrow (std e^-2 of it) lets each claim a mode first and
        # widen as the data ask, as the centres of k-means/EM initialisation do.
        k, t = self.num_components, self.target_dim
        with torch.no_grad():
            bias = self.net.layers[-1].bias
            bias[..., k : k + k * t].normal_()
            bias[..., k + k * t : k + 2 * k * t].fill_(_INITIAL_LOGVAR)

    def get_config(self) -> dict[str, Any]:
        return {
            "num_components": self.num_components,
            "temperature": self.temperature,
            **self._training_config(),
        }

    def mixture(self, head: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Split a head ``[..., H]`` into ``(logits [..., K], means [..., K, T],
        logvars [..., K, T])`` of the normalised target."""
        k, t = self.num_components, self.target_dim
        logits, means, logvars = head.split([k, k * t, k * t], dim=-1)
        means = means.unflatten(-1, (k, t))
        logvars = soft_clamp_logvar(logvars.unflatten(-1, (k, t)), _MAX_LOGVAR, _MIN_LOGVAR)
        return logits, means, logvars

    def _loss(self, head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return mixture_nll(*self.mixture(head), target)

    def _holdout_loss(self, head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._loss(head, target)

    def _mean(self, head: torch.Tensor) -> torch.Tensor:
        logits, means, _ = self.mixture(head)
        return (torch.softmax(logits, -1).unsqueeze(-1) * means).sum(-2)

    def _sample(self, head: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        logits, means, logvars = self.mixture(head)  # [B, K], [B, K, T], [B, K, T]
        rows = torch.arange(head.shape[0], device=head.device)
        if self.temperature == 0:
            return means[rows, logits.argmax(-1)]
        probs = torch.softmax(logits / self.temperature, dim=-1)
        component = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        mean, logvar = means[rows, component], logvars[rows, component]
        noise = torch.randn(mean.shape, device=mean.device, generator=generator)
        return mean + torch.exp(0.5 * logvar) * math.sqrt(self.temperature) * noise

    @torch.no_grad()
    def predict_mixture(
        self, state: Any, action: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The predicted mixture over ``[s' - s, r]`` in environment units.

        :param state: ``[B, *obs_shape]``.
        :param action: ``[B, *act_shape]``.
        :return: ``(logits [B, K], means [B, K, obs_dim + 1], logvars [B, K, obs_dim + 1])``.
        """
        _, flat, act = self._flat_inputs(state, action)
        head, _ = self._forward(self._inputs(flat, act))
        logits, means, logvars = self.mixture(head[0])
        std = self.target_normalizer.std
        return logits, self.target_normalizer.denormalize(means), logvars + 2.0 * torch.log(std)
