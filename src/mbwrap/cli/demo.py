"""``mbwrap demo``: Dyna-Q on the Dyna maze, reproducing Sutton & Barto (2018), Figure 8.2."""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import StopTrainingOnMaxEpisodes
from tqdm.auto import tqdm

from mbwrap.algos import EpisodeStatsCallback
from mbwrap.checkpoint import atomic_write
from mbwrap.registry import make_algo

# Sutton & Barto 2018, Figure 8.2: n = 0, 5, 50 planning steps, 30 runs, 50 episodes.
PLANNING_STEPS = (0, 5, 50)
SEEDS = 30
EPISODES = 50
# Each run stops after EPISODES episodes; this only guards against a run that never ends.
_STEP_LIMIT = 10**7


def dyna_maze_curves(
    planning_steps: Sequence[int] = PLANNING_STEPS,
    seeds: int = SEEDS,
    episodes: int = EPISODES,
    progress: bool = False,
) -> dict[int, np.ndarray]:
    """Steps per episode of Dyna-Q on ``mbwrap/DynaMaze-v0`` for each ``n``.

    :return: ``{n: [seeds, episodes]}`` episode lengths; seed ``s`` runs with ``seed=s``.
    """
    curves: dict[int, np.ndarray] = {}
    runs = tqdm(total=len(planning_steps) * seeds, desc="Dyna-Q runs", disable=not progress)
    for n in planning_steps:
        lengths = np.zeros((seeds, episodes), dtype=np.int64)
        for seed in range(seeds):
            algo = make_algo("dyna-q", gym.make("mbwrap/DynaMaze-v0"), planning_steps=n, seed=seed)
            stats = EpisodeStatsCallback()
            algo.learn(_STEP_LIMIT, callback=[stats, StopTrainingOnMaxEpisodes(episodes)])
            lengths[seed] = stats.episode_lengths[:episodes]
            runs.update()
        curves[n] = lengths
    runs.close()
    return curves


def first_episode_below(mean_curve: np.ndarray, threshold: float) -> int:
    """First episode (1-based) whose mean steps per episode is below ``threshold``;
    ``len(mean_curve) + 1`` if none is.

    :param mean_curve: ``[episodes]``.
    """
    below = np.flatnonzero(mean_curve < threshold)
    return int(below[0]) + 1 if below.size else len(mean_curve) + 1


def format_curves(curves: dict[int, np.ndarray], rows: Sequence[int] | None = None) -> str:
    """A markdown table of mean steps per episode (one column per ``n``)."""
    episodes = next(iter(curves.values())).shape[1]
    rows = rows or [e for e in (1, 2, 3, 4, 5, 10, 15, 20, 25, 30, 40, 50) if e <= episodes]
    header = "| episode | " + " | ".join(f"n = {n}" for n in curves) + " |"
    lines = [header, "|" + "---|" * (len(curves) + 1)]
    for episode in rows:
        means = [f"{curves[n][:, episode - 1].mean():.1f}" for n in curves]
        lines.append(f"| {episode} | " + " | ".join(means) + " |")
    return "\n".join(lines)


def save_curves(curves: dict[int, np.ndarray], path: Path) -> None:
    """Write the mean curve of each ``n`` as CSV (episode, n, mean, std)."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["episode", "planning_steps", "mean_steps", "std_steps"])
            for n, lengths in curves.items():
                for episode in range(lengths.shape[1]):
                    column = lengths[:, episode]
                    writer.writerow([episode + 1, n, f"{column.mean():.3f}", f"{column.std():.3f}"])

    atomic_write(path, write)


def plot_curves(curves: dict[int, np.ndarray], path: Path) -> None:
    """Plot mean steps per episode from episode 2, as in the book's Figure 8.2."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for n, lengths in curves.items():
        episodes = np.arange(1, lengths.shape[1] + 1)
        ax.plot(episodes[1:], lengths.mean(0)[1:], label=f"{n} planning steps")
    ax.axhline(14, color="grey", linestyle=":", linewidth=1, label="shortest path (14)")
    ax.set_xlabel("episode")
    ax.set_ylabel(f"steps per episode (mean of {next(iter(curves.values())).shape[0]} runs)")
    ax.set_ylim(0, 800)
    ax.set_title("Dyna-Q on the Dyna maze (Sutton & Barto, Fig. 8.2)")
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    seeds, episodes = (5, 20) if args.quick else (args.seeds, args.episodes)
    print(
        f"Dyna-Q on mbwrap/DynaMaze-v0: n = {', '.join(map(str, PLANNING_STEPS))} planning steps, "
        f"{seeds} seeds, {episodes} episodes"
    )
    curves = dyna_maze_curves(PLANNING_STEPS, seeds, episodes, progress=not args.no_progress)
    print()
    print(format_curves(curves))
    print()
    for n, lengths in curves.items():
        reach = first_episode_below(lengths.mean(0), 20.0)
        print(f"n = {n:>2}: mean steps per episode first below 20 at episode {reach}")
    out = Path(args.out)
    save_curves(curves, out / "dyna_maze_curves.csv")
    plot_curves(curves, out / "dyna_maze.png")
    print(f"\nwrote {out / 'dyna_maze_curves.csv'} and {out / 'dyna_maze.png'}")
    return 0


def add_demo_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "demo",
        help="run the end-to-end demo (Dyna-Q on the Dyna maze)",
        description="Dyna-Q with 0, 5 and 50 planning steps on the Dyna maze of Sutton & Barto "
        "(Figure 8.2): prints steps per episode and saves the learning curves as CSV and PNG.",
    )
    parser.add_argument("--seeds", type=int, default=SEEDS, help="runs per n (default %(default)s)")
    parser.add_argument(
        "--episodes", type=int, default=EPISODES, help="episodes per run (default %(default)s)"
    )
    parser.add_argument("--quick", action="store_true", help="5 seeds, 20 episodes")
    parser.add_argument(
        "--out", default="mbwrap-demo", help="output directory (default %(default)s)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(run=run)
