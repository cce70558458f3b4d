"""Dreamer learns CartPole-v1 in its own imagination, then the agent and its world model
are saved and loaded back in one line.

Dreamer (DreamerV3 recipe, Hafner et al. 2023) learns a recurrent state-space model of
the env from replayed real sequences and trains an actor-critic only on 15-step rollouts
imagined from the model's latent states. Acting in the real env, the agent filters its
latent state with every new observation. The world model is an ordinary
``gymnasium`` env too: at the end, a few imagined steps are taken through
``DreamVecEnv``.

Run: ``python examples/dreamer_cartpole.py`` (a few minutes on one CPU core;
``--steps 2000`` for a quick look).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

import mbwrap
from mbwrap.algos.dreamer import Dreamer
from mbwrap.algos.presets import PRESETS


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Train, evaluate, save and load; returns the mean evaluation ``return`` (10
    deterministic episodes) and that of the ``loaded`` agent."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5_000, help="real env steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress-bar", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    env = make_vec_env("CartPole-v1", n_envs=1, seed=args.seed)
    agent = Dreamer(env, seed=args.seed, verbose=0, **PRESETS[("dreamer", "CartPole-v1")])
    print(
        f"{agent.config.gradient_steps} gradient step(s) every {agent.config.train_freq} "
        f"env steps: {agent.gradient_steps_per_env_step():.3f} per env step"
    )
    start = time.perf_counter()
    agent.learn(args.steps, progress_bar=args.progress_bar)
    print(
        f"{agent.num_timesteps} real steps, {agent.n_updates} gradient steps in "
        f"{time.perf_counter() - start:.0f} s"
    )

    eval_env = make_vec_env("CartPole-v1", n_envs=10, seed=args.seed + 1000)
    mean, std = evaluate_policy(agent, eval_env, n_eval_episodes=10, deterministic=True)
    print(f"evaluation over 10 episodes: {mean:.1f} +- {std:.1f} (random play: about 22)")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dreamer_cartpole.mbwrap"
        agent.save(path)
        # Agent, world model and replay in one line; predict() needs no env (learning
        # would continue with one like the training env: one copy, as the replay's streams).
        loaded = Dreamer.load(path)
        loaded_mean, _ = evaluate_policy(
            loaded, eval_env, n_eval_episodes=10, deterministic=True
        )
        print(f"loaded back from {path.name}: {loaded_mean:.1f}")

    # The learned world model as a Gymnasium vector env over its latent features.
    dream = mbwrap.DreamVecEnv(agent.model, num_envs=4, start_states=agent.buffer, horizon=15)
    obs, _ = dream.reset(seed=0)
    _, reward, terminated, _, _ = dream.step(dream.action_space.sample())
    print(
        f"imagined step: observations {obs.shape}, rewards {reward.round(2)}, "
        f"terminated {terminated}"
    )
    return {"return": float(mean), "loaded": float(loaded_mean)}


if __name__ == "__main__":
    main()
