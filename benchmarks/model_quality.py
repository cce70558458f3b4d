"""Prediction quality of the world models on held-out real data, side by side.

For each env, two buffers of uniformly random real transitions are collected with
different seeds: one to fit on, one held out. Every available model among ``linear``
(the ``mbwrap-linear`` example plugin), ``mlp``, ``gaussian-ensemble`` and ``mdn`` is fitted
with its defaults (its own early stopping, up to its own ``max_epochs`` unless
``--max-epochs`` caps them) and scored on the held-out buffer with :mod:`mbwrap.diagnostics`:

- one-step NLL: the mean negative log-likelihood of ``[s' - s, r]`` in nats, for models
  with a predictive density (``-`` otherwise);
- one-step and 10-step MSE: the squared error of the predicted observation after ``h``
  steps fed the real actions and the model's own predictions (open loop), averaged over
  the dimensions and over the same start states for every ``h``; likewise the reward.

A ``no change`` row (predict ``s_h = s_0``) gives the scale of the errors. A model that is
not installed, or fails to load, is skipped with a note.

Usage::

    python benchmarks/model_quality.py                    # full run (GPU: minutes)
    python benchmarks/model_quality.py --max-epochs 20    # full data, fewer epochs (CPU)
    python benchmarks/model_quality.py --quick            # small data, 3 epochs: a smoke test
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import mbwrap
from mbwrap.diagnostics import one_step_nll, open_loop_error, plot_open_loop_error
from mbwrap.errors import PluginLoadError, UnknownPluginError
from mbwrap.types import ModelStep

#: (Gymnasium env id, transitions to fit on, held-out transitions); --quick: (2000, 1000).
ENVS = (
    ("Pendulum-v1", 10_000, 5_000),  # 50 + 25 episodes of 200 steps
    ("HalfCheetah-v5", 20_000, 5_000),  # 20 + 5 episodes of 1000 steps
)
QUICK_STEPS = (2_000, 1_000)
MODELS = ("linear", "mlp", "gaussian-ensemble", "mdn")
#: The models trained by epochs, whose ``max_epochs`` ``--max-epochs`` caps.
EPOCH_TRAINED = ("mlp", "gaussian-ensemble", "mdn")
QUICK_MAX_EPOCHS = 3
HORIZON = 10


class NoChange(mbwrap.WorldModel):
    """The reference predictor ``s_{t+1} = s_t`` (no reward head)."""

    def fit(self, buffer: Any, **kwargs: Any) -> dict[str, Any]:
        return {}

    def get_config(self) -> dict[str, Any]:
        return {}

    def step(self, state, action, *, generator=None, member=None) -> ModelStep:
        return ModelStep(next_state=state, reward=None, terminated=None)


def collect(env_id: str, steps: int, seed: int, device: str) -> mbwrap.ReplayBuffer:
    """``steps`` uniformly random real transitions of ``env_id``."""
    env = gym.make(env_id)
    buffer = mbwrap.ReplayBuffer(env.observation_space, env.action_space, steps, device=device)
    mbwrap.collect(env, buffer, steps, seed=seed)
    env.close()
    return buffer


def evaluate(model: mbwrap.WorldModel, held_out: mbwrap.ReplayBuffer, args) -> dict[str, Any]:
    """One-step NLL and the open-loop errors after 1 and ``HORIZON`` steps."""
    errors = open_loop_error(model, held_out, HORIZON, num_starts=args.num_starts, seed=args.seed)
    reward = errors["reward_mse"]
    return {
        "errors": errors,
        "nll": one_step_nll(model, held_out),
        "mse_1": float(errors["mse"][0]),
        "mse_h": float(errors["mse"][-1]),
        "reward_1": None if reward is None else float(reward[0]),
        "reward_h": None if reward is None else float(reward[-1]),
    }


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.2e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, 3 epochs")
    parser.add_argument(
        "--max-epochs", type=int, default=None, help="cap the neural models' epochs"
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="registry names")
    parser.add_argument("--envs", nargs="+", default=[e[0] for e in ENVS], help="env ids")
    parser.add_argument("--num-starts", type=int, default=2000, help="held-out start states")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="torch device of models and data")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--plots", type=Path, default=None, help="write error curves here")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    max_epochs = args.max_epochs or (QUICK_MAX_EPOCHS if args.quick else None)
    device = str(mbwrap.resolve_device(args.device))
    print(
        f"device: {device}, torch threads: {torch.get_num_threads()}, "
        f"load average at start: {os.getloadavg()[0]:.2f}"
    )
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"gymnasium {gym.__version__}, numpy {np.__version__}, mbwrap {mbwrap.__version__}"
    )

    rows, notes, data = [], [], []
    for env_id, fit_steps, held_out_steps in ENVS:
        if env_id not in args.envs:
            continue
        if args.quick:
            fit_steps, held_out_steps = QUICK_STEPS
        train = collect(env_id, fit_steps, seed=args.seed, device=device)
        held_out = collect(env_id, held_out_steps, seed=args.seed + 1, device=device)
        data.append(f"{env_id}: fit on {len(train)}, held out {len(held_out)} transitions")
        space = (train.observation_space, train.action_space)
        curves = {"no change": evaluate(NoChange(*space, device=device), held_out, args)}
        rows.append((env_id, "no change", "-", "-", curves["no change"]))
        for name in args.models:
            kwargs = {"max_epochs": max_epochs} if max_epochs and name in EPOCH_TRAINED else {}
            torch.manual_seed(args.seed)  # initial weights and fit alike, whatever ran before
            try:
                model = mbwrap.make_model(name, *space, env_id=env_id, device=device, **kwargs)
            except (UnknownPluginError, PluginLoadError) as err:
                notes.append(f"skipped {name!r}: {err}")
                continue
            print(f"fitting {name} on {len(train)} {env_id} transitions ...", flush=True)
            start = time.perf_counter()
            metrics = model.fit(train)
            fit_time = time.perf_counter() - start
            result = evaluate(model, held_out, args)
            rows.append((env_id, name, f"{fit_time:.1f}", metrics.get("epochs", "-"), result))
            curves[name] = result
        if args.plots is not None:
            path = args.plots / f"open_loop_{env_id.replace('/', '_')}.png"
            errors = {label: result["errors"] for label, result in curves.items()}
            plot_open_loop_error(errors, path, title=f"{env_id}: held-out open-loop error")
            print(f"wrote {path}")

    print()
    for line in data:
        print(line)
    for note in notes:
        print(f"note: {note}")
    h = HORIZON
    print(
        f"| env | model | fit s | epochs | 1-step NLL | 1-step MSE | {h}-step MSE "
        f"| 1-step reward MSE | {h}-step reward MSE |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for env_id, name, fit_time, epochs, r in rows:
        print(
            f"| {env_id} | {name} | {fit_time} | {epochs} | {fmt(r['nll'])} | {fmt(r['mse_1'])} "
            f"| {fmt(r['mse_h'])} | {fmt(r['reward_1'])} | {fmt(r['reward_h'])} |"
        )
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
