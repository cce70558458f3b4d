"""SimPLe learns a game's video model and plays inside it (Kaiser et al. 2019).

Trains SimPLe on an Atari game (Pong by default) with the small CPU settings: a few
iterations of real play, video-model fits and PPO in the simulated game. Then it plays a
real stretch of the game and lets the model imagine the same stretch open loop (from the
same first frames, with the same actions): the figure shows real frames above imagined
ones. With ``--plot FILE`` the figure is written there.

    python examples/simple_atari.py --plot simple_pong.png
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mbwrap.algos.presets import ATARI_SIMPLE_SMALL
from mbwrap.algos.simple import SimPLe
from mbwrap.envs import make_atari_vec_env


@dataclass
class Config:
    game: str = "ALE/Pong-v5"
    screen_size: int = 42
    iterations: int = 2
    settings: dict[str, Any] = field(default_factory=lambda: dict(ATARI_SIMPLE_SMALL))
    open_loop_steps: int = 8
    seed: int = 0
    threads: int = 2
    plot: str | None = None


def open_loop(algo: SimPLe, config: Config) -> tuple[np.ndarray, np.ndarray]:
    """A real stretch of the game and the model's imagination of it: the newest frame of
    each of ``open_loop_steps`` steps, ``([T, H, W], [T, H, W])`` uint8."""
    env = make_atari_vec_env(config.game, 1, seed=config.seed + 1, screen_size=config.screen_size)
    obs = env.reset()
    for _ in range(60):  # past the game's opening frames
        obs, *_ = env.step(algo.predict(obs)[0])
    state = algo.model.encode(torch.as_tensor(obs, device=algo.model.device))
    generator = torch.Generator(device=algo.model.device).manual_seed(config.seed)
    real, imagined = [], []
    for _ in range(config.open_loop_steps):
        action, _ = algo.predict(obs)
        obs, *_ = env.step(action)
        with torch.no_grad():
            step = algo.model.step(state, torch.as_tensor(action), generator=generator)
        state = step.next_state
        real.append(obs[0, -1])
        imagined.append(algo.model.decode(state)[0, -1].cpu().numpy())
    return np.stack(real), np.stack(imagined)


def main(config: Config | None = None) -> dict[str, Any]:
    config = config or Config()
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    env = make_atari_vec_env(config.game, 1, seed=config.seed, screen_size=config.screen_size)
    algo = SimPLe(env, seed=config.seed, device="cpu", **config.settings)
    algo.learn(
        algo.config.learning_starts + config.iterations * algo.config.train_freq,
        log_interval=None,
    )
    metrics = dict(algo.logger.name_to_value)
    real, imagined = open_loop(algo, config)
    # Share of pixels the imagination gets within 8 intensity levels, step by step.
    close = (np.abs(real.astype(int) - imagined.astype(int)) <= 8).mean((1, 2))
    print(
        f"{algo.real_steps} real steps, {algo.agent.num_timesteps} simulated. Last fit: "
        f"pixel accuracy {metrics.get('model/pixel_accuracy')}, reward accuracy "
        f"{metrics.get('model/reward_accuracy')}. Open loop, share of pixels within 8 "
        f"levels per step: {np.round(close, 3).tolist()}"
    )
    if config.plot:
        plot(config.plot, real, imagined)
    return {"real": real, "imagined": imagined, "close": close, "metrics": metrics}


def plot(path: str, real: np.ndarray, imagined: np.ndarray) -> None:
    import matplotlib.pyplot as plt

    steps = len(real)
    figure, axes = plt.subplots(2, steps, figsize=(1.6 * steps, 3.6), squeeze=False)
    for t in range(steps):
        for row, frames in enumerate((real, imagined)):
            axes[row, t].imshow(frames[t], cmap="gray", vmin=0, vmax=255)
            axes[row, t].set_xticks([])
            axes[row, t].set_yticks([])
        axes[0, t].set_title(f"t+{t + 1}", fontsize=8)
    axes[0, 0].set_ylabel("real")
    axes[1, 0].set_ylabel("imagined")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default=Config.game)
    parser.add_argument("--iterations", type=int, default=Config.iterations)
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()
    main(Config(game=args.game, iterations=args.iterations, plot=args.plot))
