"""PlaNet on Pendulum-v1 from its vector observations, next to a random policy.

PlaNet (Hafner et al. 2019) learns a recurrent state-space model from real episodes and
acts by CEM planning from the filtered latent state with the model's own reward head
(no known reward function). The sizes are CPU-sized, not the paper's: an RSSM of
deter 64 / hidden 64 / stoch 16 (paper: 200 / 200 / 30) and a CEM of 150 candidates,
15 elites, 5 iterations (paper: 1000, 100, 10), horizon 12 with action repeat 2.

Per seed: ``--steps`` real env steps of learning (the first ``learning_starts`` steps
random), the return of every real episode, then the mean return of ``--eval-episodes``
deterministic episodes on the real env; a uniformly random policy is evaluated in the
same process on the same evaluation seeds.

Usage::

    python benchmarks/planet.py --seeds 0 1 2 --threads 1
    python benchmarks/planet.py --seeds 0 --steps 1000 --eval-episodes 2   # a quick look
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy

from mbwrap.algos.planet import PlaNet


@dataclass
class Settings:
    """PlaNet's keywords for this benchmark (CPU-sized; paper values in the docstring)."""

    learning_starts: int = 400  # two random episodes of Pendulum-v1
    gradient_steps: int = 50
    batch_size: int = 16
    sequence_length: int = 50
    action_repeat: int = 2
    exploration_noise: float = 0.3
    model_kwargs: dict[str, Any] = field(
        default_factory=lambda: {"deter": 64, "hidden": 64, "stoch": 16, "layers": 1}
    )
    planner_kwargs: dict[str, Any] = field(
        default_factory=lambda: {"population": 150, "num_elites": 15, "iterations": 5}
    )


class EpisodeLog(BaseCallback):
    """Prints and keeps the return of every real episode as it ends."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed, self.returns = seed, []

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                self.returns.append(round(float(info["episode"]["r"]), 1))
                print(
                    f"  seed {self.seed} episode {len(self.returns)} "
                    f"({self.num_timesteps} steps): {self.returns[-1]}",
                    flush=True,
                )
        return True


class RandomPolicy:
    """Uniformly random actions, with SB3's ``predict``."""

    def __init__(self, space: gym.spaces.Box, seed: int) -> None:
        self.space = space
        self.space.seed(seed)

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        obs = np.asarray(obs)
        actions = np.stack([self.space.sample() for _ in range(len(obs) if obs.ndim > 1 else 1)])
        return (actions if obs.ndim > 1 else actions[0]), None


def evaluate(policy: Any, seed: int, episodes: int) -> float:
    env = gym.make("Pendulum-v1")
    env.reset(seed=seed + 10_000)
    mean, _ = evaluate_policy(policy, env, n_eval_episodes=episodes, deterministic=True, warn=False)
    return float(mean)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=3_000, help="real env steps per seed")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = Settings()
    print(
        f"Pendulum-v1: {args.steps} real steps per seed, load average "
        f"{os.getloadavg()[0]:.2f}, {args.threads} thread(s)\n{asdict(settings)}",
        flush=True,
    )
    rows = []
    for seed in args.seeds:
        start = time.perf_counter()
        algo = PlaNet(gym.make("Pendulum-v1"), seed=seed, device="cpu", **asdict(settings))
        episodes = EpisodeLog(seed)
        algo.learn(args.steps, callback=episodes)
        learned = time.perf_counter() - start
        score = evaluate(algo, seed, args.eval_episodes)
        random = evaluate(
            RandomPolicy(gym.make("Pendulum-v1").action_space, seed), seed, args.eval_episodes
        )
        seconds = time.perf_counter() - start
        rows.append((seed, episodes.returns, score, random, learned, seconds))
        print(f"seed {seed}: PlaNet {score:.1f}, random {random:.1f} ({seconds:.0f} s)", flush=True)
    print(
        "\n| seed | return of each real episode | PlaNet eval | random eval | learn s | total s |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for seed, curve, score, random, learned, seconds in rows:
        print(f"| {seed} | {curve} | {score:.1f} | {random:.1f} | {learned:.0f} | {seconds:.0f} |")
    if len(rows) > 1:
        scores = [r[2] for r in rows]
        randoms = [r[3] for r in rows]
        print(
            f"\nPlaNet {statistics.mean(scores):.1f} +- {statistics.stdev(scores):.1f}, "
            f"random {statistics.mean(randoms):.1f} +- {statistics.stdev(randoms):.1f} "
            f"({args.eval_episodes} evaluation episodes per seed)"
        )


if __name__ == "__main__":
    main()
