"""Guided policy search teaches a neural policy to reach (Montgomery & Levine 2016).

Trains mirror-descent GPS on Reacher-v5 from four fixed initial conditions: local
linear-Gaussian controllers, one per condition, improve by LQG on local dynamics within a
KL bound of the neural policy, and the neural policy (an SB3 PPO policy, trained only by
supervised learning) learns from their samples. Then the neural policy acts alone, from
the training conditions and from four it never saw, and its fingertip paths are plotted
beside the local controllers'. With ``--plot FILE`` the figure is written there.

    python examples/gps_reacher.py --plot gps_reacher.png
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mbwrap.algos.gps import GPS
from mbwrap.envs import condition_vec_env, rollout_conditions

ENV_ID = "Reacher-v5"
TO_TARGET = slice(8, 10)  # observation indices: fingertip - target


@dataclass
class Config:
    iterations: int = 20  # each: 5 episodes of 50 steps per condition
    conditions: list[int] = field(default_factory=lambda: [100, 101, 102, 103])
    held_out: list[int] = field(default_factory=lambda: [200, 201, 202, 203])
    settings: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    threads: int = 1
    plot: str | None = None


def episodes(actor: Any, seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """One deterministic episode per condition: fingertip positions ``[M, 51, 2]`` (the
    target's frame: the target at the origin) and returns ``[M]``."""
    observations, returns = rollout_conditions(actor, ENV_ID, seeds)
    return observations[..., TO_TARGET], returns


def main(config: Config | None = None) -> dict[str, Any]:
    config = config or Config()
    torch.set_num_threads(config.threads)
    algo = GPS(condition_vec_env(ENV_ID, config.conditions), seed=config.seed, **config.settings)
    per_iteration = algo.config.samples * algo.horizon * len(config.conditions)
    curve = []
    for _ in range(config.iterations):
        algo.learn(per_iteration, reset_num_timesteps=False)
        curve.append(float(episodes(algo, config.conditions)[1].mean()))
    policy_paths, policy_returns = episodes(algo, config.conditions)
    local_paths, local_returns = episodes(algo.local_controllers(), config.conditions)
    held_paths, held_returns = episodes(algo, config.held_out)

    def final_distance(paths: np.ndarray) -> float:
        return float(np.linalg.norm(paths[:, -10:], axis=-1).mean())

    result = {
        "curve": curve,
        "real_steps": algo.real_steps,
        "policy_return": float(policy_returns.mean()),
        "local_return": float(local_returns.mean()),
        "held_out_return": float(held_returns.mean()),
        "policy_distance": final_distance(policy_paths),
        "local_distance": final_distance(local_paths),
        "held_out_distance": final_distance(held_paths),
        "paths": policy_paths,
    }
    print(
        f"{algo.real_steps} real steps. Return / fingertip distance (last 10 steps): "
        f"neural policy {result['policy_return']:.2f} / {result['policy_distance']:.3f}, "
        f"local controllers {result['local_return']:.2f} / {result['local_distance']:.3f}, "
        f"policy on held-out starts {result['held_out_return']:.2f} / "
        f"{result['held_out_distance']:.3f}"
    )
    if config.plot:
        plot(config.plot, curve, local_paths, policy_paths, held_paths)
    return result


def plot(path: str, curve: list[float], *paths: np.ndarray) -> None:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 4, figsize=(16, 4))
    titles = ("local controllers", "neural policy", "neural policy, held-out starts")
    for axis, title, tips in zip(axes[:3], titles, paths, strict=True):
        for tip in tips:
            axis.plot(tip[:, 0], tip[:, 1], marker=".", markersize=2)
            axis.plot(*tip[0], "ko", markersize=4)
        axis.plot(0, 0, "r*", markersize=12)
        axis.set(title=title, xlabel="fingertip - target, x (m)", aspect="equal")
    axes[0].set_ylabel("y (m)")
    axes[3].plot(np.arange(1, len(curve) + 1), curve)
    axes[3].set(title="neural policy's return", xlabel="iteration")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=Config.iterations)
    parser.add_argument("--seed", type=int, default=Config.seed)
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()
    main(Config(iterations=args.iterations, seed=args.seed, plot=args.plot))
