"""Dyna-Q on the Dyna maze (Sutton & Barto 2018, section 8.2), read top to bottom.

Learns with n planning steps per real step and prints how many steps each episode took.

    python examples/dyna_q_maze.py
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
from stable_baselines3.common.callbacks import StopTrainingOnMaxEpisodes

import mbwrap


@dataclass
class Config:
    env_id: str = "mbwrap/DynaMaze-v0"
    episodes: int = 30
    # Dyna-Q's own settings: the book's alpha, gamma and epsilon (its defaults) with n = 50
    # planning steps per real step (the book compares 0, 5 and 50).
    dyna_q: mbwrap.DynaQ.Config = field(
        default_factory=lambda: mbwrap.DynaQ.Config(planning_steps=50, seed=0)
    )


def main(config: Config | None = None) -> list[int]:
    config = config or Config()
    env = gym.make(config.env_id)
    algo = mbwrap.make_algo("dyna-q", env, config=config.dyna_q)
    stats = mbwrap.EpisodeStatsCallback()
    algo.learn(10**7, callback=[stats, StopTrainingOnMaxEpisodes(config.episodes)])
    for episode, length in enumerate(stats.episode_lengths, start=1):
        print(f"episode {episode:3d}: {length:5d} steps")
    return stats.episode_lengths


if __name__ == "__main__":
    main()
