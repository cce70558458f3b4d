"""Dreamer's gradient steps per second at DreamerV3's size S on 64x64 pixel observations.

Dreamer (``"dreamer"``, its defaults: DreamerV3's size S, batch 16 x 64, imagination
horizon 15) on an env of random 64x64 RGB frames and 4 discrete actions: the cost of a
gradient step does not depend on what the frames show. The replay is filled with
``--fill`` random steps, then ``--steps`` calls of ``Dreamer.train_step`` (one world-model
step and one actor-critic step on imagined rollouts) are timed after ``--warmup``
untimed ones; on CUDA the clock stops after a synchronise.

Usage::

    python benchmarks/dreamer_pixels.py --device cuda
    python benchmarks/dreamer_pixels.py --device cpu --steps 2 --warmup 1
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

import mbwrap


class RandomFrames(gym.Env):
    """64x64 RGB frames of uniform noise, 4 actions, reward 0, 200-step episodes."""

    observation_space = spaces.Box(0, 255, (64, 64, 3), np.uint8)
    action_space = spaces.Discrete(4)

    def __init__(self) -> None:
        self._t = 0

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._t += 1
        return self.observation_space.sample(), 0.0, False, self._t >= 200, {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--fill", type=int, default=1_100, help="random real steps first")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    algo = mbwrap.make_algo(
        "dreamer", RandomFrames(), seed=0, device=args.device, learning_starts=args.fill
    )
    algo.learn(args.fill)  # random actions only: learning starts after `fill` steps
    device = algo.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(args.warmup):
        algo.train_step()
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        algo.train_step()
    sync()
    rate = args.steps / (time.perf_counter() - start)
    cfg = algo.model.config
    print(f"device {device}, torch {torch.__version__}")
    print("\n| Dreamer size S, 64x64x3 | batch | gradient steps/s |\n|---|---:|---:|")
    print(f"| {device.type} | {cfg['batch_size']} x {cfg['sequence_length']} | {rate:.2f} |")


if __name__ == "__main__":
    main()
