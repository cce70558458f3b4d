"""PETS on Pendulum-v1, then a new goal for the same model: no retraining.

PETS (Chua et al. 2018) learns a probabilistic ensemble of the dynamics from a few real
episodes and acts by CEM model-predictive control with Pendulum's known reward. Because
the planner, not a policy network, turns the model into actions, a new reward function
changes the behaviour at once: here, holding the pendulum horizontal instead of upright.

Run: ``python examples/pets_new_goal.py`` (about 10 minutes on a laptop CPU;
``--episodes 3 --eval-episodes 1`` for a quick look).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

import mbwrap
from mbwrap.algos.presets import PENDULUM_PETS


@dataclass
class Config:
    seed: int = 0
    episodes: int = 10  # real episodes of 200 steps to learn from
    eval_episodes: int = 3
    threads: int = 1  # small networks: a second thread mostly waits


def horizontal(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """A new goal: the tip level with the pivot (cos theta = 0), ``[n]``."""
    return -next_obs[:, 0].square() - 0.1 * next_obs[:, 2].square()


def run_episodes(algo, episodes: int, seed: int) -> tuple[float, float]:
    """Mean return and mean |cos theta| over the last 100 steps of each episode."""
    env = gym.make("Pendulum-v1")
    returns, level = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, cosines, done = 0.0, [], False
        algo.planner.reset()
        while not done:
            action, _ = algo.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            cosines.append(abs(float(obs[0])))
            done = terminated or truncated
        returns.append(total)
        level.append(float(np.mean(cosines[-100:])))
    return float(np.mean(returns)), float(np.mean(level))


def main(config: Config) -> dict[str, float]:
    torch.set_num_threads(config.threads)
    algo = mbwrap.make_algo(
        "pets", gym.make("Pendulum-v1"), seed=config.seed, device="auto", **PENDULUM_PETS
    )
    algo.learn(config.episodes * 200, progress_bar=True)
    upright, upright_cos = run_episodes(algo, config.eval_episodes, 10_000 + config.seed)
    print(f"swing-up: mean return {upright:.1f}, mean |cos theta| {upright_cos:.2f} (1 = upright)")

    algo.planner.reward_fn = horizontal  # same model, new objective
    _, level_cos = run_episodes(algo, config.eval_episodes, 20_000 + config.seed)
    print(f"new goal: mean |cos theta| {level_cos:.2f} (0 = horizontal), no retraining")
    return {"return": upright, "upright_cos": upright_cos, "level_cos": level_cos}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=Config.seed)
    parser.add_argument("--episodes", type=int, default=Config.episodes)
    parser.add_argument("--eval-episodes", type=int, default=Config.eval_episodes)
    args = parser.parse_args()
    result = main(Config(seed=args.seed, episodes=args.episodes, eval_episodes=args.eval_episodes))
    assert math.isfinite(result["return"])
