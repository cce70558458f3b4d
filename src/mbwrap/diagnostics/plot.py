"""Pictures of open-loop prediction: a real episode against the model's rollout, and the
error against the horizon.

Figures are drawn on a bare :class:`matplotlib.figure.Figure` (the Agg renderer, no
``pyplot``), so plotting neither opens windows nor touches the caller's matplotlib state,
and files are written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from collections.abc import Sequence as SequenceOf
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mbwrap.buffers import ReplayBuffer
from mbwrap.checkpoint import atomic_write
from mbwrap.device import make_generator
from mbwrap.diagnostics.open_loop import (
    _check_positive_int,
    _check_sequences,
    _map_fields,
    open_loop_predictions,
)
from mbwrap.models import WorldModel
from mbwrap.spaces import check_same_space
from mbwrap.types import Sequence


def _episode(buffer: ReplayBuffer, index: int) -> Sequence:
    """Episode ``index`` of ``buffer`` as a :class:`Sequence` ``[1, length]``.

    Episodes are numbered oldest first (by their first stored step, then by stream); each
    is a stored piece of one stream that ends at a terminated or truncated step, where the
    next step does not start at this one's ``next_obs`` (a reset without a terminal step,
    an interrupted collection, transitions stored with ``extend``), or at the newest step.
    Negative indices count from the newest.
    """
    data = buffer.transitions()
    n_envs = buffer.n_envs
    rows = len(data) // n_envs
    if rows == 0:
        raise ValueError("data: the buffer is empty; collect real episodes first")

    def grid(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(rows, n_envs, *x.shape[1:])

    obs, next_obs = grid(data.obs), grid(data.next_obs)
    ends = grid(data.terminated | data.truncated).clone()  # [rows, n_envs]
    continues = (obs[1:] == next_obs[:-1]).reshape(rows - 1, n_envs, -1).all(-1)
    ends[:-1] |= ~continues
    ends[-1] = True
    starts = torch.ones_like(ends)
    starts[1:] = ends[:-1]
    first = torch.nonzero(starts)  # [num_episodes, 2] as (row, stream), oldest first
    count = first.shape[0]
    if not -count <= index < count:
        raise IndexError(f"episode_index: the buffer holds {count} episodes, got {index}")
    row, stream = (int(v) for v in first[index])
    last = row + int(torch.nonzero(ends[row:, stream])[0])
    return Sequence(
        **{
            name: grid(value)[row : last + 1, stream].unsqueeze(0)
            for name, value in vars(data).items()
        }
    )


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` atomically in the format ``path``'s suffix names (PNG without one)."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(
            f"path: cannot write a figure as {fmt!r}; use one of {', '.join(sorted(supported))}"
        )
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=120))


def plot_open_loop(
    model: WorldModel,
    data: ReplayBuffer | Sequence,
    path: str | os.PathLike,
    *,
    dims: SequenceOf[int] | None = None,
    horizon: int | None = None,
    episode_index: int = 0,
    seed: int | None = None,
    member: int | None = None,
) -> Path:
    """Plot a real episode against the model's open-loop rollout from its first state.

    One panel per observation dimension in ``dims`` with the real trajectory and the
    model's (:func:`~mbwrap.diagnostics.open_loop_predictions`: the real actions, the
    model's own predictions fed back), and a panel of real against predicted reward when
    the model has a reward head.

    :param model: any :class:`~mbwrap.models.WorldModel`.
    :param data: a :class:`~mbwrap.buffers.ReplayBuffer` of real episodes, or a
        :class:`~mbwrap.types.Sequence` ``[B, L]`` of real sub-trajectories.
    :param path: where the figure goes, written atomically; the suffix picks the format
        (``.png``, ``.svg``, ``.pdf``, ...), PNG without one.
    :param dims: indices into the flattened observation; the first three (or fewer) when
        ``None``.
    :param horizon: the most steps to roll out; the whole episode when ``None`` or longer.
    :param episode_index: which episode of a buffer, numbered oldest first (a piece of one
        stream between episode ends or collection breaks; negative counts from the
        newest), or which row of a Sequence.
    :param seed: seeds the model's randomness (``None``: fresh entropy).
    :param member: follow this one ensemble member; ``None`` lets the model choose.
    :return: ``path``.
    """
    if not isinstance(model, WorldModel):
        raise TypeError(f"model: expected an mbwrap.models.WorldModel, got {type(model).__name__}")
    if isinstance(data, ReplayBuffer):
        check_same_space(
            model.observation_space, data.observation_space, name="data.observation_space"
        )
        check_same_space(model.action_space, data.action_space, name="data.action_space")
        episode = _episode(data, episode_index)
    elif isinstance(data, Sequence):
        _check_sequences(model, data)
        rows = data.obs.shape[0]
        if not -rows <= episode_index < rows:
            raise IndexError(f"episode_index: the Sequence holds {rows} rows, got {episode_index}")
        episode = _map_fields(data, lambda x: x[episode_index].unsqueeze(0))
    else:
        raise TypeError(
            f"data: expected a ReplayBuffer or a Sequence of real episodes, "
            f"got {type(data).__name__}"
        )
    length = episode.obs.shape[1]
    if horizon is not None:
        length = min(length, _check_positive_int(horizon, name="horizon"))
    episode = _map_fields(episode, lambda x: x[:, :length])
    obs_dim = int(np.prod(episode.obs.shape[2:], dtype=np.int64))
    dims = tuple(range(min(3, obs_dim))) if dims is None else tuple(dims)
    if not dims or any(
        isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not -obs_dim <= d < obs_dim
        for d in dims
    ):
        raise ValueError(
            f"dims: expected indices into the {obs_dim} observation dimensions, got {dims!r}"
        )
    pred_obs, pred_reward = open_loop_predictions(
        model, episode, generator=make_generator(model.device, seed), member=member
    )
    start = episode.obs[0, :1].reshape(1, -1).double().cpu()
    real = torch.cat([start, episode.next_obs[0].reshape(length, -1).double().cpu()])
    predicted = torch.cat([start, pred_obs[0].reshape(length, -1).double().cpu()])
    steps = np.arange(length + 1)

    panels = len(dims) + (pred_reward is not None)
    fig = Figure(figsize=(7.0, 1.9 * panels + 0.6), layout="constrained")
    axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    for ax, d in zip(axes[: len(dims)], dims, strict=True):
        ax.plot(steps, real[:, d].numpy(), color="black", label="real")
        ax.plot(steps, predicted[:, d].numpy(), color="tab:orange", ls="--", label="model")
        ax.set_ylabel(f"obs[{d}]")
    if pred_reward is not None:
        ax = axes[-1]
        ax.plot(steps[1:], episode.reward[0].double().cpu().numpy(), color="black", label="real")
        ax.plot(
            steps[1:],
            pred_reward[0].double().cpu().numpy(),
            color="tab:orange",
            ls="--",
            label="model",
        )
        ax.set_ylabel("reward")
    axes[0].legend(loc="best", fontsize="small")
    axes[-1].set_xlabel("steps of open-loop prediction")
    fig.suptitle(
        f"{type(model).__name__}: real actions, model fed its own predictions "
        f"(episode {episode_index})"
    )
    return _save(fig, path)


def plot_open_loop_error(
    errors: Mapping[str, Mapping[str, Any]], path: str | os.PathLike, *, title: str | None = None
) -> Path:
    """Plot open-loop error against the horizon, one line per model.

    :param errors: label -> the result of :func:`~mbwrap.diagnostics.open_loop_error`
        (e.g. ``{"linear": open_loop_error(linear, held_out, 20)}``).
    :param path: where the figure goes, written atomically; the suffix picks the format,
        PNG without one.
    :param title: the figure's title.
    :return: ``path``.

    The observation error gets one panel and the reward error (for results that have
    one) another; the error axis is logarithmic unless some error is zero or negative.
    """
    if not isinstance(errors, Mapping) or not errors:
        raise ValueError(
            "errors: expected a non-empty mapping of label -> open_loop_error() result, "
            f"got {errors!r}"
        )
    for label, result in errors.items():
        if not isinstance(result, Mapping) or "mse" not in result or "reward_mse" not in result:
            raise ValueError(
                f"errors[{label!r}]: expected a result of open_loop_error(), got {result!r}"
            )
    with_reward = {k: r for k, r in errors.items() if r["reward_mse"] is not None}
    panels = [("mse", "observation MSE", errors)]
    if with_reward:
        panels.append(("reward_mse", "reward MSE", with_reward))
    color = {label: f"C{i % 10}" for i, label in enumerate(errors)}  # the same in each panel
    fig = Figure(figsize=(7.0, 3.0 * len(panels) + 0.4), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (key, ylabel, results) in zip(axes, panels, strict=True):
        curves = {k: torch.as_tensor(r[key]).double().cpu().numpy() for k, r in results.items()}
        for label, curve in curves.items():
            steps = np.arange(1, len(curve) + 1)
            ax.plot(steps, curve, marker=".", color=color[label], label=label)
        if all(np.all(np.isfinite(c) & (c > 0)) for c in curves.values()):
            ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.legend(loc="best", fontsize="small")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("horizon h (steps of open-loop prediction)")
    fig.suptitle(title or "Open-loop prediction error on held-out real episodes")
    return _save(fig, path)
