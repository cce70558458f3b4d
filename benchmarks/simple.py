"""SimPLe on Atari, beside random play measured in the same run and the paper's scores.

Two configurations:

- ``small`` (the default; these CPUs): ``ATARI_SIMPLE_SMALL`` of
  ``mbwrap.algos.presets`` on 42x42 frames: 2,000 random steps, then ``--iterations``
  iterations of 2,000 real steps, each followed by a model fit and 32,000 simulated PPO
  steps (16 envs x 50-step rollouts, as in the paper).
- ``paper`` (a GPU): the paper's settings (``SimPLeConfig``'s defaults: 6,400 real steps
  per iteration, the model fitted 45K then 15K steps, 800K simulated steps per iteration)
  on 84x84 frames, for 100K real interactions: the Atari-100k run. One command per game::

      python benchmarks/simple.py --config paper --game ALE/Pong-v5 --seeds 0 1 2
      python benchmarks/simple.py --config paper --game ALE/Freeway-v5 --seeds 0 1 2
      python benchmarks/simple.py --config paper --game ALE/Breakout-v5 --seeds 0 1 2

After training, the agent (sampling its actions, as the paper evaluates) and uniformly
random play each play ``--episodes`` full episodes of the real game; both means are
printed with the paper's published score for the game.

Usage (CPU)::

    python benchmarks/simple.py --game ALE/Assault-v5 --seeds 0 1 2 --episodes 20 --threads 1
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.evaluation import evaluate_policy

from mbwrap.algos.presets import ATARI_SIMPLE_SMALL
from mbwrap.algos.simple import SimPLe
from mbwrap.envs import make_atari_vec_env

# Mean scores after 100K interactions (SimPLe) and of uniformly random play, as tabulated
# in the Atari-100k comparisons that followed (e.g. Srinivas et al. 2020, CURL, Table 2).
PUBLISHED = {
    "ALE/Pong-v5": {"simple": 12.8, "random": -20.7},
    "ALE/Freeway-v5": {"simple": 20.3, "random": 0.0},
    "ALE/Breakout-v5": {"simple": 16.4, "random": 1.7},
    "ALE/CrazyClimber-v5": {"simple": 62583.6, "random": 10780.5},
    "ALE/Assault-v5": {"simple": 527.2, "random": 222.4},
}
CONFIGS: dict[str, dict[str, Any]] = {
    "small": {"settings": ATARI_SIMPLE_SMALL, "screen_size": 42},
    "paper": {"settings": {}, "screen_size": 84},
}


class RandomPlay:
    """Uniformly random actions, with SB3's ``predict``."""

    def __init__(self, space: Any, seed: int) -> None:
        self.space = space
        self.space.seed(seed)

    def predict(self, obs: np.ndarray, *args: Any, **kwargs: Any) -> tuple[np.ndarray, None]:
        return np.array([self.space.sample() for _ in range(len(obs))]), None


def run(
    game: str,
    config: str,
    seed: int,
    iterations: int,
    episodes: int,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    screen = CONFIGS[config]["screen_size"]
    settings = {**CONFIGS[config]["settings"], **(overrides or {})}
    env = make_atari_vec_env(game, 1, seed=seed, screen_size=screen)
    torch.manual_seed(seed)
    algo = SimPLe(env, seed=seed, **settings)
    steps = (
        100_000
        if config == "paper"
        else algo.config.learning_starts + iterations * algo.config.train_freq
    )
    start = time.perf_counter()
    algo.learn(steps, log_interval=None)  # the last fit's metrics stay in the logger
    seconds = time.perf_counter() - start
    fit = algo.logger.name_to_value
    evaluation = make_atari_vec_env(game, 1, seed=10_000 + seed, screen_size=screen)
    agent, agent_std = evaluate_policy(
        algo, evaluation, n_eval_episodes=episodes, deterministic=False, warn=False
    )
    evaluation = make_atari_vec_env(game, 1, seed=10_000 + seed, screen_size=screen)
    random, random_std = evaluate_policy(
        RandomPlay(evaluation.action_space, seed),
        evaluation,
        n_eval_episodes=episodes,
        warn=False,
    )
    return {
        "agent": agent,
        "agent_std": agent_std,
        "random": random,
        "random_std": random_std,
        "steps": algo.real_steps,
        "imagined": algo.agent.num_timesteps,
        "pixel_accuracy": fit.get("model/pixel_accuracy"),
        "reward_accuracy": fit.get("model/reward_accuracy"),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="ALE/Pong-v5")
    parser.add_argument("--config", default="small", choices=sorted(CONFIGS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--iterations", type=int, default=3, help="small config only")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--set",
        default="{}",
        help="JSON of SimPLe settings over the config, e.g. '{\"first_fit_steps\": 1500}'",
    )
    args = parser.parse_args()
    overrides = json.loads(args.set)
    if args.threads:
        torch.set_num_threads(args.threads)
    published = PUBLISHED.get(args.game)
    if published:
        print(
            f"{args.game}: the paper's SimPLe {published['simple']}, random {published['random']}"
        )
    for seed in args.seeds:
        result = run(args.game, args.config, seed, args.iterations, args.episodes, overrides)
        print(
            f"seed {seed} ({args.config}): {result['steps']} real steps, "
            f"{result['imagined']} simulated; SimPLe {result['agent']:.2f} "
            f"(std {result['agent_std']:.2f}) vs random play {result['random']:.2f} "
            f"(std {result['random_std']:.2f}) over {args.episodes} episodes; "
            "last fit: pixel accuracy "
            f"{result['pixel_accuracy']}, reward accuracy {result['reward_accuracy']} "
            f"({result['seconds']:.0f} s)"
        )


if __name__ == "__main__":
    main()
