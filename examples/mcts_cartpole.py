"""Tree search over a learned model plays CartPole-v1, through SB3's evaluate_policy.

An ``"mlp"`` model (Nagabandi et al. 2018) learns CartPole's dynamics from random play;
the ``"mcts"`` planner searches over it at every step: pUCT over the two actions, each new
node valued by a short random rollout in the model, CartPole's known termination rule
(registered in ``mbwrap.fns``) ending branches. The planner is an SB3 policy, so SB3's
``evaluate_policy`` runs it on the real env unchanged, several envs searched at once.

Run: ``python examples/mcts_cartpole.py`` (about a minute on a laptop CPU).
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
    random_steps: int = 3_000  # real steps of random play to learn the model from
    num_simulations: int = 25
    rollout_horizon: int = 20  # model steps of the random rollout that values a new node
    gamma: float = 0.99
    eval_episodes: int = 4
    max_episode_steps: int = 500  # CartPole-v1's own limit
    threads: int = 1


def main(config: Config) -> dict[str, float]:
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    env = gym.make("CartPole-v1")
    data = mbwrap.ReplayBuffer(env.observation_space, env.action_space, capacity=5_000)
    mbwrap.collect(env, data, steps=config.random_steps, seed=config.seed)
    model = mbwrap.make_model("mlp", env.observation_space, env.action_space,
                              env_id="CartPole-v1")
    model.fit(data)

    planner = mbwrap.make_planner(
        "mcts", model, num_simulations=config.num_simulations, gamma=config.gamma,
        rollout_horizon=config.rollout_horizon, seed=config.seed,
    )
    envs = make_vec_env("CartPole-v1", n_envs=config.eval_episodes, seed=config.seed + 1,
                        env_kwargs={"max_episode_steps": config.max_episode_steps})
    planned, _ = evaluate_policy(planner, envs, n_eval_episodes=config.eval_episodes)
    random_policy, _ = evaluate_policy(
        RandomPolicy(env.action_space), envs, n_eval_episodes=config.eval_episodes
    )
    print(f"tree search over the learned model: {planned:.1f}   random play: {random_policy:.1f}")
    return {"mcts": float(planned), "random": float(random_policy)}


class RandomPolicy:
    """Uniform actions with SB3's ``predict`` signature, for comparison."""

    def __init__(self, space: gym.spaces.Space) -> None:
        self.space = space

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        return np.array([self.space.sample() for _ in range(len(obs))]), None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=Config.seed)
    parser.add_argument("--simulations", type=int, default=Config.num_simulations)
    parser.add_argument("--eval-episodes", type=int, default=Config.eval_episodes)
    args = parser.parse_args()
    main(Config(seed=args.seed, num_simulations=args.simulations,
                eval_episodes=args.eval_episodes))
