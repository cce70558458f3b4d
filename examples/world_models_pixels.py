"""World Models on CartPole seen only through 64x64 pixels, its controller evolved in the
dream.

World Models (Ha & Schmidhuber 2018) compresses each frame with a VAE, learns the
dynamics of the compressed frames with an MDN-RNN, and evolves a linear controller on
``[z, h]`` with CMA-ES. Here every candidate controller is scored inside the MDN-RNN's
dream (no real step), then the result plays real episodes from pixels; the LSTM state
``h`` supplies the velocities one frame cannot show.

Run: ``python examples/world_models_pixels.py`` (a minute or two on a laptop CPU).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from mbwrap.algos.presets import WORLD_MODELS_CARTPOLE_PIXELS
from mbwrap.algos.world_models import WorldModels
from mbwrap.envs.pixels import PixelObservation


@dataclass
class Config:
    seed: int = 0
    random_steps: int = 3000  # real steps of random play to learn V and M from
    generations: int = 10  # CMA-ES generations in the dream
    eval_episodes: int = 5
    threads: int = 1  # small networks: a second thread mostly waits


def make_env() -> gym.Env:
    env = gym.make("CartPole-v1", render_mode="rgb_array", max_episode_steps=200)
    # Drawn at 300x200 rather than 600x400, the pole stays 2 pixels wide at 64x64.
    env.unwrapped.screen_width, env.unwrapped.screen_height = 300, 200
    return PixelObservation(env, grayscale=True)


def main(config: Config) -> dict[str, float]:
    torch.set_num_threads(config.threads)
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    algo = WorldModels(
        make_env(),
        # CPU-sized: the paper's 32/64/128/256 VAE and 256-unit LSTM train for hours.
        **{
            **WORLD_MODELS_CARTPOLE_PIXELS,
            "fit_kwargs": {"vae_epochs": 5, "rnn_epochs": 50},
            "generations": config.generations,
            "learning_starts": config.random_steps,  # learn() below takes just these steps
        },
        seed=config.seed,
        verbose=1,
    )
    algo.learn(config.random_steps, progress_bar=False)
    print(f"controller: {algo.controller.numel()} parameters, evolved in the dream only")

    eval_env = Monitor(make_env())
    eval_env.reset(seed=config.seed + 1000)
    mean, std = evaluate_policy(
        algo, eval_env, n_eval_episodes=config.eval_episodes, deterministic=True
    )
    rng = np.random.default_rng(config.seed)
    random_returns = []
    for _ in range(config.eval_episodes):
        eval_env.reset()
        done, total = False, 0.0
        while not done:
            _, reward, terminated, truncated, _ = eval_env.step(int(rng.integers(2)))
            total += float(reward)
            done = terminated or truncated
        random_returns.append(total)
    print(
        f"real CartPole from pixels: {mean:.1f} ± {std:.1f} (random actions: "
        f"{np.mean(random_returns):.1f})"
    )
    return {"dream_controller": float(mean), "random": float(np.mean(random_returns))}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, value in vars(Config()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    main(Config(**vars(parser.parse_args())))
