"""Imagined transitions per second of a HalfCheetah-sized ``gaussian-ensemble`` against
the real ``HalfCheetah-v5``, measured side by side in one run.

The ensemble is PETS/MBPO-sized (obs 17, act 6, 7 members of 4 x 200 SiLU, 5 elites),
fitted for one epoch on random real data (the speed of a step does not depend on how
well it is fitted), propagating TS1. ``DreamVecEnv`` is stepped through the Gymnasium
``VectorEnv`` API with a fixed batch of random actions.

Usage::

    python benchmarks/ensemble_throughput.py                 # 256 .. 4096 envs
    python benchmarks/ensemble_throughput.py --num-envs 65536 --device cuda
"""

from __future__ import annotations

import argparse
import os
import time

import gymnasium as gym
import numpy as np
import torch

import mbwrap


def real_steps_per_second(env_id: str, seconds: float) -> float:
    env = gym.make(env_id)
    env.reset(seed=0)
    env.action_space.seed(0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def dream_steps_per_second(model, buffer, num_envs: int, seconds: float) -> float:
    venv = mbwrap.DreamVecEnv(model, num_envs, start_states=buffer, horizon=1000)
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (num_envs, *venv.single_action_space.shape)).astype(np.float32)
    venv.step(actions)  # warm-up
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < seconds:
        venv.step(actions)
        calls += 1
    return calls * num_envs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    env = gym.make(args.env)
    buffer = mbwrap.ReplayBuffer(env.observation_space, env.action_space, 2_000, device="cpu")
    mbwrap.collect(env, buffer, 2_000, seed=0)
    model = mbwrap.make_model(
        "gaussian-ensemble",
        env.observation_space,
        env.action_space,
        env_id=args.env,
        device=args.device,
        propagation="ts1",
    )
    model.fit(buffer, epochs=1)
    print(
        f"device {model.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    real = real_steps_per_second(args.env, args.seconds)
    print("\n| stepping | num_envs | transitions/s | / real env |\n|---|---:|---:|---:|")
    print(f"| real {args.env} (gymnasium.Env) | 1 | {real:,.0f} | 1.00 |")
    for n in args.num_envs:
        rate = dream_steps_per_second(model, buffer, n, args.seconds)
        print(f"| DreamVecEnv, gaussian-ensemble TS1 | {n:,} | {rate:,.0f} | {rate / real:.2f} |")


if __name__ == "__main__":
    main()
