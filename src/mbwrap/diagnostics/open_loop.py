"""Open-loop prediction error: how far a model drifts from real trajectories.

From a real start state, the model is fed the *real* action sequence for ``h`` steps with
its own predictions fed back and never corrected by the real observations, and its
predicted observations (and rewards) are compared to the real ones at every ``h``. A
model whose one-step error looks small can still compound errors over a rollout; this is
the error a planner or an imagined episode of ``h`` steps actually sees (Talvitie 2014,
"Model Regularization for Stable Sample Rollouts"; Janner et al. 2019, "When to Trust Your
Model: Model-Based Policy Optimization").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

import numpy as np
import torch

from mbwrap.buffers import ReplayBuffer
from mbwrap.device import make_generator
from mbwrap.errors import SpaceMismatchError
from mbwrap.models import WorldModel
from mbwrap.spaces import check_same_space, element_shape
from mbwrap.types import Sequence

#: Start states drawn from a buffer when ``num_starts`` is not given: the standard error of
#: a per-horizon mean is then about 3% of the error's spread across starts.
DEFAULT_NUM_STARTS = 1000


def _check_positive_int(value: Any, *, name: str) -> int:
    """Return ``value`` as an int, or raise naming ``name`` unless it is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
    return int(value)


def _map_fields(sequences: Sequence, fn: Callable[[torch.Tensor], torch.Tensor]) -> Sequence:
    """``sequences`` with ``fn`` applied to every field (e.g. to slice rows or steps)."""
    return Sequence(
        **{
            f.name: None if getattr(sequences, f.name) is None else fn(getattr(sequences, f.name))
            for f in fields(sequences)
        }
    )


def _check_sequences(model: WorldModel, sequences: Sequence, *, name: str = "data") -> None:
    """Raise :class:`SpaceMismatchError` unless ``sequences`` hold the model's observations
    ``[B, L, *obs_shape]`` and actions ``[B, L, *act_shape]`` with ``B, L >= 1``."""
    obs_shape = element_shape(model.observation_space)
    act_shape = element_shape(model.action_space)
    obs, action = sequences.obs, sequences.action
    if obs.ndim != 2 + len(obs_shape) or tuple(obs.shape[2:]) != obs_shape:
        raise SpaceMismatchError(
            f"{name}.obs: expected shape (batch, length, *{obs_shape}) for the model's "
            f"{model.observation_space!r}, got {tuple(obs.shape)}"
        )
    if tuple(action.shape[:2]) != tuple(obs.shape[:2]) or tuple(action.shape[2:]) != act_shape:
        raise SpaceMismatchError(
            f"{name}.action: expected shape {tuple(obs.shape[:2]) + act_shape} for the model's "
            f"{model.action_space!r}, got {tuple(action.shape)}"
        )
    if obs.shape[0] == 0 or obs.shape[1] == 0:
        raise ValueError(f"{name}: holds no transitions (shape {tuple(obs.shape)})")


@torch.no_grad()
def open_loop_predictions(
    model: WorldModel,
    sequences: Sequence,
    *,
    generator: torch.Generator | None = None,
    member: int | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Roll ``model`` out from each sequence's first observation under its real actions.

    The first observation is encoded once; after that the model only sees its own
    predictions. One :meth:`~mbwrap.models.WorldModel.step` per time step, batched over
    every sequence, on the model's device.

    :param model: any :class:`~mbwrap.models.WorldModel`.
    :param sequences: real sub-trajectories, ``obs: [B, L, *obs_shape]`` and
        ``action: [B, L, *act_shape]`` (other fields unused).
    :param generator: randomness for stochastic models, on the model's device.
    :param member: the ensemble member each rollout follows: ``[B]`` int64, or one int for
        all; ``None`` draws them with :meth:`~mbwrap.models.WorldModel.sample_members`, as
        imagination does.
    :return: ``(obs, reward)``: the predicted observation after each step
        ``[B, L, *obs_shape]`` (``obs[:, t]`` predicts ``sequences.next_obs[:, t]``), and
        the predicted reward ``[B, L]``, or ``None`` when the model has no reward head.
    """
    _check_sequences(model, sequences, name="sequences")
    obs = sequences.obs.to(model.device)
    action = sequences.action.to(model.device)
    batch, length = obs.shape[:2]
    if member is None:
        member = model.sample_members(batch, generator)
    elif not torch.is_tensor(member):
        if isinstance(member, bool) or not isinstance(member, (int, np.integer)) or member < 0:
            raise ValueError(f"member: expected None or an ensemble index >= 0, got {member!r}")
        member = torch.full((batch,), int(member), dtype=torch.long, device=model.device)
    state = model.encode(obs[:, 0])
    predicted_obs: list[torch.Tensor] = []
    predicted_reward: list[torch.Tensor] = []
    for t in range(length):
        step = model.step(state, action[:, t], generator=generator, member=member)
        state = step.next_state
        predicted_obs.append(model.decode(state))
        if step.reward is not None:
            predicted_reward.append(step.reward.reshape(batch))
    pred_obs = torch.stack(predicted_obs, dim=1)
    if tuple(pred_obs.shape[2:]) != tuple(obs.shape[2:]):
        raise SpaceMismatchError(
            f"model: {type(model).__name__}.decode() returned observations of shape "
            f"{tuple(pred_obs.shape[2:])}, expected {tuple(obs.shape[2:])}"
        )
    pred_reward = torch.stack(predicted_reward, dim=1) if predicted_reward else None
    return pred_obs, pred_reward


def _held_out_sequences(
    data: ReplayBuffer | Sequence,
    model: WorldModel,
    horizon: int,
    num_starts: int | None,
    generator: torch.Generator,
) -> Sequence:
    """The real sub-trajectories of ``horizon`` steps to evaluate on."""
    if isinstance(data, ReplayBuffer):
        check_same_space(
            model.observation_space, data.observation_space, name="data.observation_space"
        )
        check_same_space(model.action_space, data.action_space, name="data.action_space")
        num_starts = DEFAULT_NUM_STARTS if num_starts is None else num_starts
        if len(data) == 0:
            raise ValueError("data: the buffer is empty; collect held-out real episodes first")
        try:
            return data.sample_sequences(num_starts, horizon, generator=generator)
        except ValueError as err:
            raise ValueError(
                f"horizon: no stored sub-trajectory of {horizon} steps lies within one episode "
                f"of the buffer ({len(data)} transitions); collect longer episodes or lower "
                "the horizon"
            ) from err
    if isinstance(data, Sequence):
        if num_starts is not None:
            raise ValueError(
                "num_starts: only applies to a buffer; every row of a Sequence is a start"
            )
        _check_sequences(model, data)
        if data.obs.shape[1] < horizon:
            raise ValueError(
                f"horizon: the sequences are {data.obs.shape[1]} steps long, "
                f"shorter than horizon={horizon}"
            )
        return _map_fields(data, lambda x: x[:, :horizon])
    raise TypeError(
        f"data: expected a ReplayBuffer or a Sequence of real episodes, got {type(data).__name__}"
    )


def open_loop_error(
    model: WorldModel,
    data: ReplayBuffer | Sequence,
    horizon: int,
    *,
    num_starts: int | None = None,
    seed: int | None = None,
    member: int | None = None,
) -> dict[str, Any]:
    """Open-loop prediction error of ``model`` on held-out real episodes, per horizon.

    From each real start state, the model is fed the real actions for ``horizon`` steps
    with its own predictions fed back (:func:`open_loop_predictions`); the squared error of
    its predicted observation (and reward, where it has a reward head) after ``h`` steps is
    averaged over the starts. Stochastic models are sampled as imagination samples them,
    so their error includes their own noise. Observations are compared as floats (for a
    discrete observation space, the raw integer values). A model that diverges to NaN or
    infinity gives non-finite errors from that horizon on.

    :param model: any :class:`~mbwrap.models.WorldModel`.
    :param data: held-out real data, not used to fit ``model``: a
        :class:`~mbwrap.buffers.ReplayBuffer`, from which ``num_starts`` sub-trajectories
        of ``horizon`` steps are drawn uniformly with replacement (none crosses an
        episode boundary), or a :class:`~mbwrap.types.Sequence` ``[B, L >= horizon]``
        whose every row is used.
    :param horizon: the longest rollout, ``H >= 1``.
    :param num_starts: start states drawn from a buffer (default
        :data:`DEFAULT_NUM_STARTS`); not for a Sequence.
    :param seed: seeds the draw of start states and the model's randomness (``None``:
        fresh entropy).
    :param member: follow this one ensemble member from every start; ``None`` lets the
        model choose (:meth:`~mbwrap.models.WorldModel.sample_members`).
    :return: ``{"horizon": H, "num_starts": B, "mse": [H], "mse_per_dim": [H, obs_dim],
        "reward_mse": [H] or None}``, float64 tensors on the CPU, where index ``h - 1``
        holds the error after ``h`` steps; ``obs_dim`` is the flattened observation size
        (1 for ``Discrete``), ``mse`` the mean over those dimensions, and ``reward_mse``
        is ``None`` for a model without a reward head.
    :raises ValueError: for ``horizon < 1``, a buffer with no episode piece of ``horizon``
        steps, or sequences shorter than ``horizon``.
    :raises SpaceMismatchError: when the data's spaces or shapes are not the model's.
    """
    if not isinstance(model, WorldModel):
        raise TypeError(f"model: expected an mbwrap.models.WorldModel, got {type(model).__name__}")
    horizon = _check_positive_int(horizon, name="horizon")
    if num_starts is not None:
        num_starts = _check_positive_int(num_starts, name="num_starts")
    base = np.random.SeedSequence(seed)
    model_seed, start_seed = base.generate_state(2, dtype=np.uint64)
    model_gen = make_generator(model.device, int(model_seed) >> 1)
    start_device = data.device if isinstance(data, ReplayBuffer) else torch.device("cpu")
    start_gen = make_generator(start_device, int(start_seed) >> 1)
    sequences = _held_out_sequences(data, model, horizon, num_starts, start_gen)
    batch = sequences.obs.shape[0]
    pred_obs, pred_reward = open_loop_predictions(
        model, sequences, generator=model_gen, member=member
    )
    true_obs = sequences.next_obs.to(model.device)
    error = (pred_obs.double() - true_obs.double()).reshape(batch, horizon, -1)
    mse_per_dim = error.square().mean(0)  # [H, obs_dim]
    reward_mse = None
    if pred_reward is not None:
        true_reward = sequences.reward.to(model.device).double()
        reward_mse = (pred_reward.double() - true_reward).square().mean(0).cpu()
    return {
        "horizon": horizon,
        "num_starts": batch,
        "mse": mse_per_dim.mean(-1).cpu(),
        "mse_per_dim": mse_per_dim.cpu(),
        "reward_mse": reward_mse,
    }
