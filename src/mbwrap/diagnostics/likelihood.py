"""One-step negative log-likelihood of real transitions, for models with a likelihood.

Mean squared error judges only a model's mean; the likelihood of held-out transitions also
judges its uncertainty, which is what probabilistic models are for (Chua et al. 2018,
"Deep Reinforcement Learning in a Handful of Trials using Probabilistic Dynamics
Models"). A model has one when it predicts a density over the regression target of
the neural models, ``[flatten(s' - s), r]``, in one of two duck-typed forms (the
built-in :class:`~mbwrap.models.MDNModel` and :class:`~mbwrap.models.GaussianEnsemble`):
:class:`MixtureDensityModel` or :class:`GaussianEnsembleModel`. For any other model the
likelihood is not defined and :func:`one_step_nll` returns ``None``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from mbwrap.buffers import ReplayBuffer
from mbwrap.errors import SpaceMismatchError
from mbwrap.models import WorldModel, mixture_nll
from mbwrap.spaces import check_same_space
from mbwrap.types import Transition


@runtime_checkable
class MixtureDensityModel(Protocol):
    """A model predicting a mixture of ``K`` diagonal Gaussians over ``[s' - s, r]``.

    ``predict_mixture(state: [B, *state_shape], action: [B, *act_shape])`` returns
    ``(logits [B, K], means [B, K, T], logvars [B, K, T])`` in environment units, where
    ``T = state_dim + 1``: the flattened state change, then the reward.
    """

    def predict_mixture(
        self, state: Any, action: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


@runtime_checkable
class GaussianEnsembleModel(Protocol):
    """An ensemble of ``E`` diagonal Gaussians over ``[s' - s, r]``.

    ``predict_distribution(state: [B, *state_shape], action: [B, *act_shape])`` returns
    every member's ``(mean [E, B, T], logvar [E, B, T])`` in environment units. The
    predictive distribution is the uniform mixture of the members the model predicts
    with: those in an ``elite_indices: [num_elites]`` attribute when it has one, else all
    (the distribution TS1 propagation samples, Chua et al. 2018, section 5).
    """

    def predict_distribution(
        self, state: Any, action: Any
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


def predictive_mixture(
    model: WorldModel, state: torch.Tensor, action: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The model's one-step predictive density as a Gaussian mixture, or ``None``.

    :param state: ``[B, *state_shape]`` on the model's device.
    :param action: ``[B, *act_shape]``.
    :return: ``(logits [B, K], means [B, K, T], logvars [B, K, T])`` over
        ``[flatten(s' - s), r]``, or ``None`` for a model with no likelihood.
    """
    if isinstance(model, MixtureDensityModel):
        return model.predict_mixture(state, action)
    if isinstance(model, GaussianEnsembleModel):
        mean, logvar = model.predict_distribution(state, action)  # [E, B, T]
        elites = getattr(model, "elite_indices", None)
        if elites is not None:
            mean, logvar = mean[elites], logvar[elites]
        logits = torch.zeros(mean.shape[1], mean.shape[0], device=mean.device)
        return logits, mean.transpose(0, 1), logvar.transpose(0, 1)
    return None


@torch.no_grad()
def one_step_nll(
    model: WorldModel, data: ReplayBuffer | Transition, *, batch_size: int = 4096
) -> float | None:
    """Mean negative log-likelihood of real transitions under ``model``, in nats.

    Each transition is scored by ``-log p([flatten(s' - s), r] | s, a)`` under
    :func:`predictive_mixture` (the density of the whole vector, state change and reward
    together), where ``s = model.encode(obs)`` and ``s' = model.encode(next_obs)``.

    :param model: any :class:`~mbwrap.models.WorldModel`.
    :param data: held-out real transitions: every one stored in a
        :class:`~mbwrap.buffers.ReplayBuffer`, or a :class:`~mbwrap.types.Transition` batch.
    :param batch_size: transitions scored at once.
    :return: the mean NLL over ``data``, or ``None`` when the model defines no likelihood
        (neither a :class:`MixtureDensityModel` nor a :class:`GaussianEnsembleModel`).
    :raises ValueError: when ``data`` is empty.
    :raises SpaceMismatchError: when the data's spaces are not the model's, or the model's
        density does not match the target's width.
    """
    if not isinstance(model, WorldModel):
        raise TypeError(f"model: expected an mbwrap.models.WorldModel, got {type(model).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    if isinstance(data, ReplayBuffer):
        check_same_space(
            model.observation_space, data.observation_space, name="data.observation_space"
        )
        check_same_space(model.action_space, data.action_space, name="data.action_space")
        data = data.transitions()
    elif not isinstance(data, Transition):
        raise TypeError(
            f"data: expected a ReplayBuffer or a Transition batch, got {type(data).__name__}"
        )
    if not isinstance(model, (MixtureDensityModel, GaussianEnsembleModel)):
        return None
    total = len(data)
    if total == 0:
        raise ValueError("data: holds no transitions; collect held-out real data first")
    nll = torch.zeros((), dtype=torch.float64, device=model.device)
    for start in range(0, total, batch_size):
        part = slice(start, start + batch_size)
        state = model.encode(data.obs[part].to(model.device))
        next_state = model.encode(data.next_obs[part].to(model.device))
        action = data.action[part].to(model.device)
        count = state.shape[0]
        target = torch.cat(
            [
                (next_state.double() - state.double()).reshape(count, -1),
                data.reward[part].to(model.device).double().unsqueeze(-1),
            ],
            dim=-1,
        )
        logits, means, logvars = predictive_mixture(model, state, action)
        if means.shape[0] != count or means.shape[-1] != target.shape[-1]:
            raise SpaceMismatchError(
                f"model: {type(model).__name__} predicts a density over "
                f"{tuple(means.shape)} (batch, components, features) for {count} "
                f"transitions with {target.shape[-1]} target features [s' - s, r]"
            )
        nll += mixture_nll(logits.double(), means.double(), logvars.double(), target).sum()
    return float(nll) / total
