"""``mbwrap demo``: the mission end to end, and the Dyna maze of Sutton & Barto.

- ``mbwrap demo`` (``cartpole``): learn a model of CartPole-v1 from real steps, train an
  unmodified SB3 PPO agent only inside it (Dyna), evaluate on the real env, and plot the
  real-step learning curve beside plain PPO's.
- ``mbwrap demo maze``: Dyna-Q with 0, 5 and 50 planning steps on the Dyna maze,
  reproducing Sutton & Barto (2018), Figure 8.2.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnMaxEpisodes
from stable_baselines3.common.monitor import Monitor
from tqdm.auto import tqdm

from mbwrap.algos import EpisodeStatsCallback
from mbwrap.algos.presets import CARTPOLE_DYNA
from mbwrap.checkpoint import atomic_write
from mbwrap.cli.plot import plot_runs, read_run
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


CARTPOLE_SOLVED = 475.0  # Gymnasium's reward threshold for CartPole-v1


def cartpole_mission(
    out: Path,
    *,
    seed: int = 0,
    dyna_steps: int = 3_000,
    ppo_steps: int = 20_000,
    eval_episodes: int = 10,
    progress: bool = False,
) -> dict[str, dict[str, np.ndarray]]:
    """Dyna (PPO trained only in a learned model) and plain PPO on CartPole-v1.

    Both are evaluated on the real env (``eval_episodes`` deterministic episodes) at
    regular real-step intervals by SB3's ``EvalCallback``, which writes
    ``out/<method>/evaluations.npz``.

    :return: ``{method: {"eval_steps": [...], "eval_mean": [...], "eval_std": [...]}}``.
    """
    runs = {
        "dyna-ppo": (
            lambda env: make_algo("dyna", env, seed=seed, **CARTPOLE_DYNA),
            dyna_steps,
            500,
        ),
        "ppo": (lambda env: PPO("MlpPolicy", env, seed=seed, verbose=0), ppo_steps, 2_000),
    }
    curves = {}
    for name, (build, steps, every) in runs.items():
        eval_env = Monitor(gym.make("CartPole-v1"))
        eval_env.reset(seed=seed + 10_000)
        evaluation = EvalCallback(
            eval_env,
            eval_freq=every,
            n_eval_episodes=eval_episodes,
            log_path=str(out / name),
            verbose=0,
        )
        if progress:
            print(f"training {name} for {steps:,} real steps", flush=True)
        build(gym.make("CartPole-v1")).learn(steps, callback=evaluation, progress_bar=progress)
        curves[name] = read_run(out / name)
    return curves


def first_step_reaching(curve: dict[str, np.ndarray], threshold: float) -> int | None:
    """First evaluated real step count whose mean return reached ``threshold``."""
    reached = np.flatnonzero(curve["eval_mean"] >= threshold)
    return int(curve["eval_steps"][reached[0]]) if reached.size else None


def run_cartpole(args: argparse.Namespace) -> int:
    out = Path(args.out)
    print("CartPole-v1: PPO trained only in a learned model (Dyna) vs plain PPO, by real steps")
    curves = cartpole_mission(
        out,
        seed=args.seed,
        dyna_steps=2_500 if args.quick else 4_000,
        ppo_steps=4_000 if args.quick else 20_000,
        progress=not args.no_progress,
    )
    print()
    print("| method | real steps | mean return (10 real episodes) |")
    print("|---|---:|---:|")
    for name, curve in curves.items():
        for steps, mean in zip(curve["eval_steps"], curve["eval_mean"], strict=True):
            print(f"| {name} | {int(steps):,} | {mean:.1f} |")
    print()
    for name, curve in curves.items():
        reached = first_step_reaching(curve, CARTPOLE_SOLVED)
        when = f"at {reached:,} real steps" if reached else "not within its budget"
        print(f"{name}: mean return >= {CARTPOLE_SOLVED:.0f} {when}")
    png = plot_runs(out, out / "cartpole.png")
    print(f"\nwrote {png} and evaluations.npz under {out}")
    return 0


def run_maze(args: argparse.Namespace) -> int:
    seeds, episodes = (5, 20) if args.quick else (args.seeds, args.episodes)
    print(
        f"Dyna-Q on mbwrap/DynaMaze-v0: n = {', '.join(map(str, PLANNING_STEPS))} planning "
        f"steps, {seeds} seeds, {episodes} episodes"
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


def run(args: argparse.Namespace) -> int:
    return run_maze(args) if args.which == "maze" else run_cartpole(args)


def add_demo_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "demo",
        help="run the end-to-end demo (CartPole in imagination; or the Dyna maze)",
        description="cartpole (default): learn a model of CartPole-v1, train PPO only inside "
        "it, evaluate on the real env and plot the real-step learning curve beside plain PPO. "
        "maze: Dyna-Q with 0, 5 and 50 planning steps on the Dyna maze of Sutton & Barto "
        "(Figure 8.2).",
    )
    parser.add_argument("which", nargs="?", choices=["cartpole", "maze"], default="cartpole")
    parser.add_argument("--seed", type=int, default=1, help="cartpole: seed (default 1)")
    parser.add_argument(
        "--seeds", type=int, default=SEEDS, help="maze: runs per n (default %(default)s)"
    )
    parser.add_argument(
        "--episodes",
        type=int,
        default=EPISODES,
        help="maze: episodes per run (default %(default)s)",
    )
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument(
        "--out", default="mbwrap-demo", help="output directory (default %(default)s)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(run=run)
