"""PETS on Pendulum-v1: the return after each real episode, and after 10 episodes the mean
of 10 deterministic evaluation episodes, beside SB3's SAC after the same real steps.

Settings: ``mbwrap.algos.presets.PENDULUM_PETS`` (a CPU-sized CEM and ensemble). The
target: a mean return of at least -200 within 10 real episodes (2,000 steps).

Usage::

    python benchmarks/pets.py --seeds 0 1 2 --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import gymnasium as gym
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.evaluation import evaluate_policy

import mbwrap
from mbwrap.algos.presets import PENDULUM_PETS

ENV_ID = "Pendulum-v1"
EPISODE = 200  # Pendulum-v1's time limit


def evaluate(policy, seed: int, episodes: int) -> float:
    env = gym.make(ENV_ID)
    env.reset(seed=seed + 10_000)
    mean, _ = evaluate_policy(policy, env, n_eval_episodes=episodes, deterministic=True, warn=False)
    return float(mean)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-sac", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average {os.getloadavg()[0]:.2f}, {args.threads} threads", flush=True)
    rows = []
    for seed in args.seeds:
        start = time.perf_counter()
        algo = mbwrap.make_algo("pets", gym.make(ENV_ID), seed=seed, device="cpu", **PENDULUM_PETS)
        curve = []
        for _ in range(args.episodes):
            algo.learn(EPISODE, reset_num_timesteps=False)
            curve.append(round(algo.ep_info_buffer[-1]["r"]))
        pets = evaluate(algo, seed, args.eval_episodes)
        pets_s = time.perf_counter() - start
        sac = float("nan")
        if not args.no_sac:
            agent = SAC("MlpPolicy", gym.make(ENV_ID), seed=seed, verbose=0)
            agent.learn(args.episodes * EPISODE)
            sac = evaluate(agent, seed, args.eval_episodes)
        rows.append((seed, curve, pets, sac, pets_s))
        print(
            f"seed {seed}: episodes {curve}, PETS eval {pets:.1f}, SAC eval {sac:.1f} "
            f"({pets_s:.0f} s)",
            flush=True,
        )
    print(
        f"\n| seed | training episode returns | PETS eval ({args.eval_episodes} eps) "
        f"| SAC eval at {args.episodes * EPISODE} steps |"
    )
    print("|---|---|---:|---:|")
    for seed, curve, pets, sac, _ in rows:
        print(f"| {seed} | {', '.join(map(str, curve))} | {pets:.1f} | {sac:.1f} |")
    print(f"\nmean PETS eval {statistics.mean(r[2] for r in rows):.1f}")


if __name__ == "__main__":
    main()
