"""MB-MF on Pendulum: an MPC expert from a learned model, distilled into SB3's SAC, then
fine-tuned model-free (Nagabandi, Kahn, Fearing & Levine 2018).

1. model-based: random steps, fit an MLP dynamics model, then act with random-shooting MPC
   on it, refitting after every episode;
2. distill: behaviour cloning of the MPC expert into SAC's actor, then DAgger: SAC's policy
   acts, the expert labels the states it visits, SAC's actor is retrained on all labels;
3. finetune: SAC learns in the real env for the rest of the budget.

Prints the return of the expert, of the distilled policy and of the fine-tuned policy, on
the same start states.

    python examples/mb_mf_pendulum.py
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from mbwrap.algos import MBMF
from mbwrap.algos.presets import PENDULUM_MB_MF, PENDULUM_MB_MF_TIMESTEPS


@dataclass
class Config:
    env_id: str = "Pendulum-v1"
    total_timesteps: int = PENDULUM_MB_MF_TIMESTEPS  # real steps, all three phases
    # Model, planner, DAgger and SAC settings (see mbwrap.algos.presets.PENDULUM_MB_MF).
    settings: dict[str, Any] = field(default_factory=lambda: dict(PENDULUM_MB_MF))
    eval_episodes: int = 10
    seed: int = 0
    threads: int = 1  # small networks: more threads only add overhead


def evaluate(policy, config: Config) -> float:
    env = Monitor(gym.make(config.env_id))
    env.reset(seed=10_000 + config.seed)  # the same start states for every evaluation
    mean, _ = evaluate_policy(policy, env, n_eval_episodes=config.eval_episodes, warn=False)
    return float(mean)


def main(config: Config | None = None) -> dict[str, float]:
    config = config or Config()
    torch.set_num_threads(config.threads)
    settings = config.settings
    algo = MBMF(gym.make(config.env_id), **settings, seed=config.seed, device="cpu")
    returns = {}

    algo.learn(settings["model_based_steps"])
    returns["MPC expert"] = evaluate(algo.planner, config)
    print(f"after {algo.num_timesteps} real steps, MPC expert: {returns['MPC expert']:.1f}")

    algo.learn(settings["dagger_iterations"] * settings["dagger_steps"], reset_num_timesteps=False)
    returns["distilled"] = evaluate(algo, config)
    print(f"after {algo.num_timesteps} real steps, distilled policy: {returns['distilled']:.1f}")

    algo.learn(config.total_timesteps - algo.num_timesteps, reset_num_timesteps=False)
    returns["fine-tuned"] = evaluate(algo, config)
    print(f"after {algo.num_timesteps} real steps, fine-tuned policy: {returns['fine-tuned']:.1f}")
    return returns


if __name__ == "__main__":
    main()
