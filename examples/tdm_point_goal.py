"""TDM on a goal-reaching task: DDPG learns a goal- and horizon-conditioned Q-function
from relabelled goals and horizons (Pong et al. 2018, with HER), and that Q-function is a
model: it predicts how far from the goal the point will be ``tau + 1`` steps on.

Trains TDM with the ``mbwrap/PointGoal-v0`` preset, prints the success rate of the learned
policy, checks the TDM's predictions against the distances the episodes then reached, and
plots the evaluation trajectories in the plane. With ``--plot FILE`` the figure is written
there.

    python examples/tdm_point_goal.py --plot tdm_trajectories.png
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import mbwrap
from mbwrap.algos import TDM
from mbwrap.algos.presets import POINT_GOAL_TDM


@dataclass
class Config:
    env_id: str = "mbwrap/PointGoal-v0"
    total_timesteps: int = 3_000  # real steps
    settings: dict[str, Any] = field(default_factory=lambda: dict(POINT_GOAL_TDM))
    eval_episodes: int = 20
    seed: int = 1
    threads: int = 1
    plot: str | None = None


def predicted_distance(algo: TDM, obs: dict[str, np.ndarray], tau: int) -> float:
    """The TDM's prediction of ``|s_{t + tau + 1} - g|_1`` (summed over goal dimensions)
    when the policy acts from ``obs`` with horizon ``tau``."""
    agent = algo.agent
    agent_obs = {
        "observation": torch.as_tensor(obs["observation"]).reshape(1, -1),
        "desired_goal": torch.as_tensor(obs["desired_goal"]).reshape(1, -1),
        "tau": torch.tensor([[float(tau)]]),
    }
    rows = agent_obs["desired_goal"].shape[1]  # one row per goal dimension
    agent_obs = {k: v.float().repeat_interleave(rows, 0) for k, v in agent_obs.items()}
    with torch.no_grad():
        action = agent.actor(agent_obs)
        return -float(agent.critic.q1_forward(agent_obs, action).sum())


def episodes(algo: TDM, config: Config) -> dict[str, Any]:
    """Run the deterministic policy; record paths, successes and, at every step where the
    count restarts, the TDM's prediction against the distance reached."""
    env = gym.make(config.env_id)
    max_tau = algo.config.max_tau
    paths, goals, successes, pairs = [], [], [], []
    for episode in range(config.eval_episodes):
        obs, _ = env.reset(seed=config.seed + 10_000 + episode)
        state, path, pending = None, [obs["achieved_goal"]], []
        goal = obs["desired_goal"]
        for t in range(env.spec.max_episode_steps):
            tau = max_tau if state is None else int(state[0][0])
            if tau == max_tau:
                pending.append((t + tau + 1, predicted_distance(algo, obs, tau)))
            action, state = algo.predict(obs, state, deterministic=True)
            obs, _, terminated, truncated, info = env.step(action)
            path.append(obs["achieved_goal"])
            reached = float(np.abs(obs["achieved_goal"] - goal).sum())
            pairs.extend((prediction, reached) for when, prediction in pending if when == t + 1)
            if terminated or truncated:
                successes.append(bool(info["is_success"]))
                break
        paths.append(np.array(path))
        goals.append(goal)
    predicted, reached = np.array(pairs).T
    return {
        "success": float(np.mean(successes)),
        "paths": paths,
        "goals": np.array(goals),
        "prediction_error": float(np.mean(np.abs(predicted - reached))),
        "start_distance": float(
            np.mean([np.abs(p[0] - g).sum() for p, g in zip(paths, goals, strict=True)])
        ),
    }


def plot(paths: list[np.ndarray], goals: np.ndarray, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for i, (trajectory, goal) in enumerate(zip(paths, goals, strict=True)):
        color = plt.cm.tab10(i % 10)
        ax.plot(trajectory[:, 0], trajectory[:, 1], "-", color=color, lw=1)
        ax.plot(*trajectory[0], "o", color=color, ms=3)
        ax.plot(*goal, "*", color=color, ms=9)
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.set_aspect("equal")
    ax.set_title("TDM policy: start (o) to goal (*)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(config: Config | None = None) -> dict[str, Any]:
    config = config or Config()
    torch.set_num_threads(config.threads)
    env = gym.make(config.env_id)
    algo = mbwrap.make_algo("tdm", env, **config.settings, seed=config.seed, device="cpu")
    algo.learn(config.total_timesteps)
    result = episodes(algo, config)
    print(
        f"TDM after {config.total_timesteps} real steps: success rate {result['success']:.2f}; "
        f"predicted distance after max_tau + 1 steps off by {result['prediction_error']:.3f} "
        f"on average (start distance {result['start_distance']:.3f}, L1)"
    )
    if config.plot:
        plot(result["paths"], result["goals"], config.plot)
        print(f"trajectories written to {config.plot}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=Config.total_timesteps)
    parser.add_argument("--seed", type=int, default=Config.seed)
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()
    main(Config(total_timesteps=args.steps, seed=args.seed, plot=args.plot))
