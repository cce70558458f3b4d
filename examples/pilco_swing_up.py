"""PILCO swings up a cart-pole in a handful of real episodes (Deisenroth & Rasmussen 2011).

Trains PILCO on its cart-pole swing-up (``mbwrap/CartPoleSwingUp-v0``, 30 steps of 0.1 s)
for a few real episodes, prints how often the tip ends near upright, and plots what PILCO
predicted against what happened: the predicted mean and two standard deviations of the
pole's ``cos theta`` (1 hanging down, -1 upright) and of the cart's position over the
horizon, with the real evaluation episodes drawn over them. With ``--plot FILE`` the figure
is written there.

    python examples/pilco_swing_up.py --plot pilco_swing_up.png
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import mbwrap
from mbwrap.algos.presets import SWING_UP_PILCO

ENV_ID = "mbwrap/CartPoleSwingUp-v0"
COS_THETA, CART = 4, 0  # observation indices


@dataclass
class Config:
    episodes: int = 10  # real episodes, the first random (seed 1 solved it after 9)
    settings: dict[str, Any] = field(default_factory=lambda: dict(SWING_UP_PILCO))
    eval_episodes: int = 10
    seed: int = 1
    threads: int = 1
    plot: str | None = None


def rollouts(algo: Any, config: Config) -> tuple[np.ndarray, float]:
    """Deterministic episodes of the controller: observations ``[episodes, 31, 5]`` and
    the share of episodes that end with the tip near upright."""
    env = gym.make(ENV_ID)
    paths, successes = [], []
    for episode in range(config.eval_episodes):
        obs, _ = env.reset(seed=config.seed + 10_000 + episode)
        path, done, info = [obs], False, {}
        while not done:
            action, _ = algo.predict(obs, deterministic=True)
            obs, _, terminated, truncated, info = env.step(action)
            path.append(obs)
            done = terminated or truncated
        paths.append(np.array(path))
        successes.append(bool(info["is_success"]))
    return np.array(paths), float(np.mean(successes))


def plot(
    predicted_mean: np.ndarray, predicted_std: np.ndarray, paths: np.ndarray, path: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    steps = np.arange(1, len(predicted_mean) + 1)
    for ax, index, label in (
        (axes[0], COS_THETA, "cos theta (-1: upright)"),
        (axes[1], CART, "cart position (m)"),
    ):
        mean, std = predicted_mean[:, index], predicted_std[:, index]
        ax.fill_between(steps, mean - 2 * std, mean + 2 * std, alpha=0.3, label="predicted, 2 std")
        ax.plot(steps, mean, lw=2, label="predicted mean")
        for trajectory in paths:
            ax.plot(np.arange(len(trajectory)), trajectory[:, index], color="k", lw=0.6, alpha=0.5)
        ax.set_xlabel("step (0.1 s)")
        ax.set_ylabel(label)
    axes[0].legend(loc="upper right", fontsize="small")
    fig.suptitle("PILCO: predicted state distribution and real episodes")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(config: Config | None = None) -> dict[str, Any]:
    config = config or Config()
    torch.set_num_threads(config.threads)
    env = gym.make(ENV_ID)
    length = env.spec.max_episode_steps
    algo = mbwrap.make_algo("pilco", env, **config.settings, seed=config.seed, device="cpu")
    algo.learn(config.episodes * length)
    with torch.no_grad():
        means, covs = algo.predicted_observations()
    predicted_mean = means[:, 0].numpy()
    predicted_std = torch.diagonal(covs[:, 0], dim1=-2, dim2=-1).clamp(min=0).sqrt().numpy()
    paths, success = rollouts(algo, config)
    # How often the real states fell within the predicted 2-std band (the pole's angle).
    real = paths[:, 1 : len(predicted_mean) + 1, COS_THETA]
    horizon = real.shape[1]
    band = (
        np.abs(real - predicted_mean[:horizon, COS_THETA]) <= 2 * predicted_std[:horizon, COS_THETA]
    )
    print(
        f"PILCO after {config.episodes} real episodes ({config.episodes * length * 0.1:.0f} s): "
        f"tip near upright at the end of {success:.0%} of {config.eval_episodes} episodes; "
        f"{band.mean():.0%} of the real cos theta within the predicted 2-std band"
    )
    if config.plot:
        plot(predicted_mean, predicted_std, paths, config.plot)
        print(f"figure written to {config.plot}")
    return {
        "success": success,
        "within_band": float(band.mean()),
        "paths": paths,
        "predicted_mean": predicted_mean,
        "predicted_std": predicted_std,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=Config.episodes)
    parser.add_argument("--seed", type=int, default=Config.seed)
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()
    main(Config(episodes=args.episodes, seed=args.seed, plot=args.plot))
