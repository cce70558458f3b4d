"""Dreamer learns CartPole-v1 in its own imagination, then the agent and its world model
are saved and loaded back in one line.

Dreamer (DreamerV3 recipe, Hafner et al. 2023) learns a recurrent state-space model of
the env from replayed real sequences and trains an actor-critic only on 15-step rollouts
imagined from the model's latent states. Acting in the real env, the agent filters its
latent state with every new observation. The world model is an ordinary
``gymnasium`` env too: at the end, a few imagined steps are taken through
``DreamVecEnv``.

Training stops at the first evaluation (10 deterministic episodes every 2,500 real steps,
SB3's ``EvalCallback``) whose mean return reaches ``--target`` (475, CartPole-v1's
threshold), or after ``--steps`` real steps.

Run: ``python examples/dreamer_cartpole.py`` (5-10 minutes on one CPU core;
``--steps 2000`` for a quick look).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnRewardThreshold
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

import mbwrap
from mbwrap.algos.dreamer import Dreamer
from mbwrap.algos.presets import PRESETS


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Train, evaluate, save and load. Returns the ``best`` mean return of the evaluations
    during training, the mean ``return`` of 10 fresh deterministic episodes after it, that
    of the ``loaded`` agent, and the real ``steps`` trained."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15_000, help="most real env steps")
    parser.add_argument(
        "--target", type=float, default=475.0, help="stop at an evaluation this good"
    )
    parser.add_argument("--eval-every", type=int, default=2_500, help="real steps")
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
    # SB3's own evaluation callback, on its own episodes (seeded apart from the final
    # evaluation's); the Dreamer agent is an ordinary SB3 algorithm to it.
    stop = StopTrainingOnRewardThreshold(reward_threshold=args.target, verbose=1)
    watch = EvalCallback(
        make_vec_env("CartPole-v1", n_envs=10, seed=args.seed + 2000),
        callback_on_new_best=stop,
        n_eval_episodes=10,
        eval_freq=args.eval_every,
        deterministic=True,
        verbose=1,
    )
    start = time.perf_counter()
    agent.learn(args.steps, callback=watch, progress_bar=args.progress_bar)
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
    return {
        "best": float(watch.best_mean_reward),
        "return": float(mean),
        "loaded": float(loaded_mean),
        "steps": agent.num_timesteps,
    }


if __name__ == "__main__":
    main()
