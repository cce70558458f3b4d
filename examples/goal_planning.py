"""A goal-conditioned task with Dict observations, planned in a learned model.

``mbwrap/PointGoal-v0`` observes a ``Dict`` of ``observation``, ``achieved_goal`` and
``desired_goal``, the layout of Gymnasium-Robotics' goal-conditioned envs. A
``"gaussian-ensemble"`` (Chua et al. 2018) learns it from random play through its flat
features and keeps the Dict structure: the planner's reward function receives each
imagined observation as a dict of leaf tensors, here the negative distance from the
achieved to the desired goal, so a new goal needs no new model. CEM plans through the
ensemble, and SB3's ``evaluate_policy`` runs the planner on the real env, several episodes
at once, beside random play.

Run: ``python examples/goal_planning.py`` (about a minute on a laptop CPU).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

import mbwrap


@dataclass
class Config:
    seed: int = 0
    random_steps: int = 1_000  # real steps of random play to learn the model from
    ensemble_size: int = 5  # PETS's ensemble (Chua et al. 2018)
    epochs: int = 50
    population: int = 100
    horizon: int = 5  # 5 steps of at most 0.1 reach any goal within 0.5
    eval_episodes: int = 4
    threads: int = 1


def goal_distance_reward(
    obs: dict[str, torch.Tensor], action: torch.Tensor, next_obs: dict[str, torch.Tensor]
) -> torch.Tensor:
    """``-||achieved_goal - desired_goal||`` of the imagined next observation: ``[B]``."""
    return -torch.linalg.vector_norm(next_obs["achieved_goal"] - next_obs["desired_goal"], dim=-1)


def success_rate(policy, envs, episodes: int) -> float:
    """Fraction of ``episodes`` whose last step reports ``info["is_success"]``."""
    successes: list[bool] = []

    def record(local_vars, _globals):
        if local_vars["done"]:
            successes.append(bool(local_vars["info"].get("is_success", False)))

    evaluate_policy(policy, envs, n_eval_episodes=episodes, callback=record)
    return float(np.mean(successes))


def main(config: Config) -> dict[str, float]:
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    env = gym.make("mbwrap/PointGoal-v0")
    data = mbwrap.ReplayBuffer(env.observation_space, env.action_space, capacity=5_000)
    mbwrap.collect(env, data, steps=config.random_steps, seed=config.seed)
    model = mbwrap.make_model(
        "gaussian-ensemble", env.observation_space, env.action_space,
        ensemble_size=config.ensemble_size, num_elites=config.ensemble_size,
        hidden_sizes=[64, 64],
    )
    model.fit(data, epochs=config.epochs)

    planner = mbwrap.make_planner(
        "cem", model, population=config.population, num_elites=config.population // 10,
        iterations=3, horizon=config.horizon, particles=1, seed=config.seed,
        reward_fn=goal_distance_reward,
    )
    envs = make_vec_env("mbwrap/PointGoal-v0", n_envs=config.eval_episodes, seed=config.seed + 1)
    planned = success_rate(planner, envs, config.eval_episodes)
    random_play = success_rate(RandomPolicy(env.action_space), envs, config.eval_episodes)
    print(f"goals reached, CEM in the learned model: {planned:.0%}   random: {random_play:.0%}")
    return {"cem": planned, "random": random_play}


class RandomPolicy:
    """Uniform actions with SB3's ``predict`` signature, for comparison."""

    def __init__(self, space: gym.spaces.Space) -> None:
        self.space = space

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        count = len(next(iter(obs.values())))
        return np.array([self.space.sample() for _ in range(count)]), None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=Config.seed)
    parser.add_argument("--eval-episodes", type=int, default=Config.eval_episodes)
    args = parser.parse_args()
    main(Config(seed=args.seed, eval_episodes=args.eval_episodes))
