"""STEVE on Pendulum: TD3 whose critics learn from model rollouts of every horizon, mixed
by how much an ensemble of models and critics agrees on each (Buckman et al. 2018).

Trains STEVE-TD3 with the Pendulum preset, prints the return of the learned policy on
fixed start states, and plots the weight STEVE gave each horizon over training (from the
CSV log): early, when the model is fitted on little data and the critics disagree, and
later. With ``--plot FILE`` the figure is written there.

    python examples/steve_pendulum.py --plot steve_weights.png
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor

from mbwrap.algos import STEVE
from mbwrap.algos.presets import PENDULUM_STEVE


@dataclass
class Config:
    env_id: str = "Pendulum-v1"
    total_timesteps: int = 4_000  # real steps
    settings: dict[str, Any] = field(default_factory=lambda: dict(PENDULUM_STEVE))
    eval_episodes: int = 10
    seed: int = 0
    threads: int = 1
    plot: str | None = None


def horizon_weights(progress: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(real steps [N], weights [N, H + 1])`` from the logged ``expansion/horizon_weight_i``."""
    with open(progress, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("expansion/horizon_weight_0")]
    columns = sorted(
        (k for k in rows[0] if k.startswith("expansion/horizon_weight_")),
        key=lambda k: int(k.rsplit("_", 1)[1]),
    )
    steps = np.array([float(r["time/total_timesteps"]) for r in rows])
    return steps, np.array([[float(r[c]) for c in columns] for r in rows])


def plot(steps: np.ndarray, weights: np.ndarray, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.stackplot(steps, weights.T, labels=[f"horizon {i}" for i in range(weights.shape[1])])
    ax.set_xlabel("real steps")
    ax.set_ylabel("mean weight of the target")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(config: Config | None = None) -> dict[str, Any]:
    config = config or Config()
    torch.set_num_threads(config.threads)
    algo = STEVE(gym.make(config.env_id), **config.settings, seed=config.seed, device="cpu")
    with tempfile.TemporaryDirectory() as logs:
        algo.set_logger(configure(logs, ["csv"]))
        algo.learn(config.total_timesteps)
        steps, weights = horizon_weights(Path(logs) / "progress.csv")
    env = Monitor(gym.make(config.env_id))
    env.reset(seed=10_000 + config.seed)
    mean, _ = evaluate_policy(algo, env, n_eval_episodes=config.eval_episodes, warn=False)
    print(f"after {algo.num_timesteps} real steps: mean return {mean:.1f}")
    third = max(len(steps) // 3, 1)
    for name, part in (("first third", weights[:third]), ("last third", weights[-third:])):
        shares = ", ".join(f"{w:.2f}" for w in part.mean(0))
        print(f"weight on horizons 0..{weights.shape[1] - 1}, {name} of training: {shares}")
    if config.plot:
        plot(steps, weights, config.plot)
        print(f"wrote {config.plot}")
    return {"return": float(mean), "steps": steps, "weights": weights}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=Config.total_timesteps)
    parser.add_argument("--seed", type=int, default=Config.seed)
    parser.add_argument("--plot", default=None, help="write the horizon weights' figure here")
    args = parser.parse_args()
    main(Config(total_timesteps=args.steps, seed=args.seed, plot=args.plot))
