"""PlaNet on Pendulum-v1: a latent model learned from real episodes, planned over by CEM.

PlaNet (Hafner et al. 2019) trains a recurrent state-space model on the real episodes and
acts without a policy network: at every decision it filters its belief about the latent
state with the new observation and runs CEM over action sequences imagined from that
belief, scored by the model's own reward head (Pendulum's reward is never given to it).

The sizes here are CPU-sized, far below the paper's (RSSM 200 units, 1000 CEM
candidates); see ``benchmarks/planet.py`` for measured returns.

Run: ``python examples/planet_pendulum.py`` (about 10 minutes on a laptop CPU;
``--episodes 4 --eval-episodes 1`` for a quick look).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from mbwrap.algos.planet import PlaNet


@dataclass
class Config:
    seed: int = 0
    episodes: int = 12  # real episodes of 200 steps; the first 2 act at random
    eval_episodes: int = 3
    action_repeat: int = 2  # one decision per 2 env steps (the paper uses 2 to 8)
    population: int = 150  # CEM candidates (paper: 1000)
    threads: int = 1  # small networks: a second thread mostly waits


def main(config: Config) -> dict[str, float]:
    torch.set_num_threads(config.threads)
    env = gym.make("Pendulum-v1")
    algo = PlaNet(
        env,
        seed=config.seed,
        device="cpu",
        learning_starts=400,  # the first 2 episodes act at random
        gradient_steps=50,
        batch_size=16,
        action_repeat=config.action_repeat,
        model_kwargs={"deter": 64, "hidden": 64, "stoch": 16, "layers": 1},
        planner_kwargs={
            "population": config.population,
            "num_elites": config.population // 10,
            "iterations": 5,
        },
        verbose=1,
    )
    # One decision per iteration of the loop: 100 iterations are one episode of 200 steps.
    algo.learn(200 * config.episodes, progress_bar=True, log_interval=100)

    eval_env = Monitor(gym.make("Pendulum-v1"))
    eval_env.reset(seed=config.seed + 1000)
    planet, _ = evaluate_policy(algo, eval_env, n_eval_episodes=config.eval_episodes)

    # The same evaluation episodes with uniformly random torques.
    eval_env.reset(seed=config.seed + 1000)
    eval_env.action_space.seed(config.seed)
    random_returns = []
    for _ in range(config.eval_episodes):
        eval_env.reset()
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = eval_env.step(eval_env.action_space.sample())
            total += float(reward)
            done = terminated or truncated
        random_returns.append(total)
    random = float(np.mean(random_returns))
    print(f"PlaNet: {planet:.1f}   random: {random:.1f}   (mean return, higher is better)")
    return {"planet": float(planet), "random": random}


if __name__ == "__main__":
    defaults = Config()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--episodes", type=int, default=defaults.episodes)
    parser.add_argument("--eval-episodes", type=int, default=defaults.eval_episodes)
    main(Config(**vars(parser.parse_args())))
