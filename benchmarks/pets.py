"""PETS on small control tasks: the return of every real episode, then the mean of
deterministic evaluation episodes on the real env.

Settings: ``mbwrap.algos.presets.PRESETS[("pets", env)]`` (CPU-sized CEM and ensemble).
Targets: Pendulum-v1 reaches a mean return of -200 within 10 real episodes (2,000 steps);
``InvertedPendulum-v5`` and ``Reacher-v5`` as recorded in ``benchmarks/RESULTS.md``.

Usage::

    python benchmarks/pets.py --seeds 0 1 2 --threads 1
    python benchmarks/pets.py --env InvertedPendulum-v5 --steps 1000 --eval-episodes 3
    python benchmarks/pets.py --env Reacher-v5 --steps 1000
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import gymnasium as gym
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy

import mbwrap
from mbwrap.algos.presets import PRESETS


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


def evaluate(policy, env_id: str, seed: int, episodes: int) -> float:
    env = gym.make(env_id)
    env.reset(seed=seed + 10_000)
    mean, _ = evaluate_policy(policy, env, n_eval_episodes=episodes, deterministic=True, warn=False)
    return float(mean)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=2_000, help="real steps")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.env}: load average {os.getloadavg()[0]:.2f}, {args.threads} threads", flush=True)
    rows = []
    for seed in args.seeds:
        start = time.perf_counter()
        env = gym.make(args.env)
        algo = mbwrap.make_algo("pets", env, seed=seed, device="cpu", **PRESETS[("pets", args.env)])
        episodes = EpisodeLog(seed)
        algo.learn(args.steps, callback=episodes)
        curve = episodes.returns
        score = evaluate(algo, args.env, seed, args.eval_episodes)
        seconds = time.perf_counter() - start
        rows.append((seed, curve, score, seconds))
        print(f"seed {seed}: eval {score:.1f} ({seconds:.0f} s)", flush=True)
    print(f"\n| seed | return of each real episode | eval ({args.eval_episodes} episodes) |")
    print("|---|---|---:|")
    for seed, curve, score, _ in rows:
        print(f"| {seed} | {', '.join(map(str, curve))} | {score:.1f} |")
    print(f"\nmean eval {statistics.mean(r[2] for r in rows):.1f} after {args.steps} real steps")


if __name__ == "__main__":
    main()
