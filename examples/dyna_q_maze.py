"""Dyna-Q on the Dyna maze (Sutton & Barto 2018, section 8.2), read top to bottom.

Learns with n planning steps per real step and prints how many steps each episode took.

    python examples/dyna_q_maze.py
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
from stable_baselines3.common.callbacks import StopTrainingOnMaxEpisodes

import mbwrap


@dataclass
class Config:
    env_id: str = "mbwrap/DynaMaze-v0"
    planning_steps: int = 50  # n; the book compares 0, 5 and 50
    learning_rate: float = 0.1  # Sutton & Barto 2018, Figure 8.2
    gamma: float = 0.95
    exploration_rate: float = 0.1
    episodes: int = 30
    seed: int = 0


def main(config: Config | None = None) -> list[int]:
    config = config or Config()
    env = gym.make(config.env_id)
    algo = mbwrap.make_algo(
        "dyna-q",
        env,
        planning_steps=config.planning_steps,
        learning_rate=config.learning_rate,
        gamma=config.gamma,
        exploration_rate=config.exploration_rate,
        seed=config.seed,
    )
    stats = mbwrap.EpisodeStatsCallback()
    algo.learn(10**7, callback=[stats, StopTrainingOnMaxEpisodes(config.episodes)])
    for episode, length in enumerate(stats.episode_lengths, start=1):
        print(f"episode {episode:3d}: {length:5d} steps")
    return stats.episode_lengths


if __name__ == "__main__":
    main()
