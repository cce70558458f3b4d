"""Deterministic neural dynamics: the model of Nagabandi, Kahn, Fearing & Levine 2018,
"Neural Network Dynamics for Model-Based Deep Reinforcement Learning with Model-Free
Fine-Tuning" (ICRA 2018)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from gymnasium import spaces

from mbwrap.models.losses import mse
from mbwrap.models.neural import NeuralWorldModel, Propagation
from mbwrap.models.neural_rollout import Draw, folded_output_layer


class MLPModel(NeuralWorldModel):
    """An expectation model: a network predicting ``E[s' - s]`` and ``E[r]``.

    Trained with the mean squared error on normalised inputs and targets (Nagabandi et
    al. 2018); :meth:`step` is deterministic given the member. Nagabandi et
    al. took the reward from a known function; here it is a learned output like the state
    change (a registered or given reward function still takes precedence in imagination).

    With ``ensemble_size > 1`` it is an ensemble of deterministic networks that differ by
    initialisation and minibatch order, as in ME-TRPO (Kurutach et al. 2018, "Model-Ensemble
    Trust-Region Policy Optimization"), propagated as ``propagation`` says (ME-TRPO draws a
    random member per step: ``"ts1"``).

    :param ensemble_size: networks ``E`` (1: the single model of Nagabandi et al.).
    :param num_elites: members used for prediction (``None``: all).
    :param propagation: ``"ts1"``, ``"ts-inf"`` or ``"mean"`` (see
        :data:`~mbwrap.models.neural.Propagation`); irrelevant with one network.
    :param bootstrap: train each member on a resample of the data.

    Other parameters as :class:`~mbwrap.models.neural.NeuralWorldModel`.
    """

    registry_name = "mlp"

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        ensemble_size: int = 1,
        num_elites: int | None = None,
        propagation: Propagation = "ts1",
        bootstrap: bool = False,
        # Nagabandi et al. 2018: 2 hidden layers of 500 ReLU units, Adam with learning rate
        # 1e-3, batch 512; 60 epochs in their released configs (anagabandi/nn_dynamics).
        hidden_sizes: Sequence[int] = (500, 500),
        activation: str = "relu",
        weight_decay: float | Sequence[float] = 0.0,
        learning_rate: float = 1e-3,
        batch_size: int = 512,
        holdout_ratio: float = 0.2,  # MBPO, Janner et al. 2019
        max_holdout: int = 5000,  # MBPO
        patience: int = 5,  # MBPO
        min_improvement: float = 0.01,  # MBPO
        max_epochs: int = 60,
        max_grad_norm: float | None = None,
        unroll_steps: int = 1,
        learn_termination: bool = False,
        env_id: str | None = None,
        device: str | torch.device = "auto",
    ) -> None:
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
        self._build_network(self.target_dim)

    def get_config(self) -> dict[str, Any]:
        return {**self._ensemble_config(), **self._training_config()}

    def _loss(self, head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return mse(head, target)

    def _mean(self, head: torch.Tensor) -> torch.Tensor:
        return head

    def _sample(self, head: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return head

    def _prepared_head(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        steps: int,
        rows: int,
        generator: torch.Generator | None,
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], Draw]:
        """The denormaliser folded into the layer: a step's draw is its head."""
        norm = self.target_normalizer
        return folded_output_layer(weight, bias, norm.mean, norm.std), lambda head, t: head
