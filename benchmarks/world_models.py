"""World Models on CartPole from 64x64 pixels: a controller evolved entirely in the dream
against one evolved with the same CMA-ES budget in the real env.

Both controllers are the same linear ``a = argmax(W [z, h] + b)`` over the same VAE and
MDN-RNN (fitted on random real rollouts); the LSTM state ``h`` is what supplies the
velocities a single frame lacks, as in the paper. Each controller is then scored by its
mean return over deterministic real evaluation episodes.

Target: the dream controller scores at least 90% of the real one (``ratio >= 0.9``).

Usage::

    python benchmarks/world_models.py --seeds 0 1 2 --threads 1
    python benchmarks/world_models.py --seeds 0 1 2 --temperatures 1.15 2.0
    python benchmarks/world_models.py --seeds 0 --random-steps 3000 --generations 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import gymnasium as gym
import torch
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from mbwrap.algos.presets import WORLD_MODELS_CARTPOLE_PIXELS
from mbwrap.algos.world_models import WorldModels
from mbwrap.envs.pixels import PixelObservation

ENV_ID = "CartPole-v1"


def make_env(max_steps: int) -> gym.Env:
    env = gym.make(ENV_ID, render_mode="rgb_array", max_episode_steps=max_steps)
    # Drawn at 300x200 rather than 600x400, the pole stays 2 pixels wide at 64x64.
    env.unwrapped.screen_width, env.unwrapped.screen_height = 300, 200
    return PixelObservation(env, grayscale=True)


def evaluate(algo: WorldModels, max_steps: int, seed: int, episodes: int) -> float:
    env = Monitor(make_env(max_steps))
    env.reset(seed=seed + 10_000)
    mean, _ = evaluate_policy(algo, env, n_eval_episodes=episodes, deterministic=True, warn=False)
    return float(mean)


def run(seed: int, args: argparse.Namespace) -> dict[str, float]:
    preset = WORLD_MODELS_CARTPOLE_PIXELS
    algo = WorldModels(
        make_env(args.max_steps),
        model_kwargs={
            **preset["model_kwargs"],
            "latent_dim": args.latent_dim,
            "hidden_size": args.hidden_size,
            "temperature": args.temperatures[0],
        },
        fit_kwargs={"vae_epochs": args.vae_epochs, "rnn_epochs": args.rnn_epochs},
        population=args.population,
        rollouts=args.rollouts,
        generations=args.generations,
        learning_starts=args.random_steps,  # learn() takes just these random steps
        seed=seed,
        verbose=args.verbose,
    )
    start = time.perf_counter()
    algo.learn(args.random_steps)
    dream_time = time.perf_counter() - start
    scores = {}
    for tau in args.temperatures:
        if tau != algo.model.temperature:  # the same V and M, a dream at another temperature
            algo.model.temperature, algo.controller = tau, torch.zeros_like(algo.controller)
            algo.evolve_in_dream()
        scores[f"dream_tau{tau}"] = evaluate(algo, args.max_steps, seed, args.eval_episodes)
        print(
            f"  seed {seed} dream controller (tau {tau}): {scores[f'dream_tau{tau}']:.1f} "
            f"(V, M and the first dream: {dream_time:.0f} s)",
            flush=True,
        )

    algo.controller = torch.zeros_like(algo.controller)  # CMA-ES starts where the dream did
    venv = DummyVecEnv([lambda: make_env(args.max_steps) for _ in range(args.real_envs)])
    venv.seed(seed + 20_000)
    start = time.perf_counter()
    real = algo.evolve_in_real_env(venv, generations=args.generations)
    real_time = time.perf_counter() - start
    real_score = evaluate(algo, args.max_steps, seed, args.eval_episodes)
    print(
        f"  seed {seed} real-env controller: {real_score:.1f} ({real_time:.0f} s, "
        f"{real['real_steps']} real steps)",
        flush=True,
    )
    return {**scores, "real": real_score, "real_steps": real["real_steps"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--random-steps", type=int, default=5000)
    defaults = WORLD_MODELS_CARTPOLE_PIXELS
    model_defaults = defaults["model_kwargs"]
    parser.add_argument("--latent-dim", type=int, default=model_defaults["latent_dim"])
    parser.add_argument("--hidden-size", type=int, default=model_defaults["hidden_size"])
    parser.add_argument("--population", type=int, default=defaults["population"])
    parser.add_argument("--rollouts", type=int, default=defaults["rollouts"])
    parser.add_argument("--generations", type=int, default=defaults["generations"])
    # The first is the paper's Doom setting (Table 2); others re-evolve in the same dream.
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.15])
    parser.add_argument("--vae-epochs", type=int, default=defaults["fit_kwargs"]["vae_epochs"])
    parser.add_argument("--rnn-epochs", type=int, default=defaults["fit_kwargs"]["rnn_epochs"])
    parser.add_argument("--real-envs", type=int, default=8)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    print(
        f"World Models, {ENV_ID} from 64x64 pixels (episodes <= {args.max_steps} steps): "
        f"{args.random_steps} random real steps; CMA-ES {args.population} x {args.rollouts} "
        f"rollouts x {args.generations} generations",
        flush=True,
    )
    results = [run(seed, args) for seed in args.seeds]
    for key in results[0]:
        values = [r[key] for r in results]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{key:>16}: {statistics.mean(values):.1f} ± {spread:.1f}  {values}")
    real = statistics.mean(r["real"] for r in results)
    for tau in args.temperatures:
        ratio = statistics.mean(r[f"dream_tau{tau}"] for r in results) / max(real, 1e-9)
        verdict = "met" if ratio >= 0.9 else "NOT met"
        print(f"tau {tau}: dream / real = {ratio:.3f} (target >= 0.9: {verdict})")


if __name__ == "__main__":
    main()
