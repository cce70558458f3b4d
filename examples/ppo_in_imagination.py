"""Train an unmodified SB3 PPO agent inside a learned model, then act in the real env.

1. collect random real transitions of the Dyna maze,
2. fit a table-lookup model to them,
3. train PPO on a DreamVecEnv (imagined episodes from real start states),
4. evaluate the agent on the real maze.

    python examples/ppo_in_imagination.py
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy

import mbwrap


@dataclass
class Config:
    env_id: str = "mbwrap/DynaMaze-v0"
    real_steps: int = 5_000  # random real transitions the model is fitted on
    num_envs: int = 16  # imagined episodes stepped together
    horizon: int = 100  # imagined episode length before truncation
    imagined_steps: int = 49_152  # PPO's training budget, all in imagination
    # PPO settings for a sparse-reward maze: short rollouts, the book's gamma, some entropy.
    n_steps: int = 128
    batch_size: int = 512
    n_epochs: int = 4
    gamma: float = 0.95
    learning_rate: float = 1e-3
    ent_coef: float = 0.01
    eval_episodes: int = 10
    seed: int = 0


def main(config: Config | None = None) -> float:
    config = config or Config()
    env = gym.make(config.env_id)
    buffer = mbwrap.ReplayBuffer(env.observation_space, env.action_space, config.real_steps)
    mbwrap.collect(env, buffer, config.real_steps, seed=config.seed)

    model = mbwrap.make_model(
        "tabular", env.observation_space, env.action_space, env_id=config.env_id
    )
    print("model fit:", model.fit(buffer))

    dream = mbwrap.DreamVecEnv(model, config.num_envs, start_states=buffer, horizon=config.horizon)
    agent = PPO(
        "MlpPolicy",
        mbwrap.sb3.as_vec_env(dream),
        n_steps=config.n_steps,
        batch_size=config.batch_size,
        n_epochs=config.n_epochs,
        gamma=config.gamma,
        learning_rate=config.learning_rate,
        ent_coef=config.ent_coef,
        seed=config.seed,
        verbose=0,
    )
    agent.learn(config.imagined_steps)

    real = gym.make(config.env_id, max_episode_steps=config.horizon)
    mean_return, _ = evaluate_policy(agent, real, n_eval_episodes=config.eval_episodes, warn=False)
    print(f"real return after {config.real_steps} real steps: {mean_return:.2f} (goal reached = 1)")
    return float(mean_return)


if __name__ == "__main__":
    main()
