"""``mbwrap plot``: learning curves of runs written by ``mbwrap train``."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import numpy as np

from mbwrap.checkpoint import atomic_write


def read_run(run: Path) -> dict[str, np.ndarray]:
    """Curves of one run directory: ``eval_steps``/``eval_mean``/``eval_std`` from
    ``evaluations.npz`` and ``train_steps``/``train_return`` from ``progress.csv``."""
    curves: dict[str, np.ndarray] = {}
    evaluations = run / "evaluations.npz"
    if evaluations.exists():
        with np.load(evaluations) as data:
            results = np.asarray(data["results"], dtype=float)
            curves["eval_steps"] = np.asarray(data["timesteps"], dtype=float)
            curves["eval_mean"] = results.mean(-1) if results.size else results
            curves["eval_std"] = results.std(-1) if results.size else results
    progress = run / "progress.csv"
    if progress.exists() and progress.stat().st_size:
        with open(progress, newline="") as handle:
            rows = list(csv.DictReader(handle))
        pairs = [
            (float(r["time/total_timesteps"]), float(r["rollout/ep_rew_mean"]))
            for r in rows
            if r.get("time/total_timesteps") and r.get("rollout/ep_rew_mean")
        ]
        if pairs:
            curves["train_steps"], curves["train_return"] = map(np.array, zip(*pairs, strict=True))
    return curves


def find_runs(directory: Path) -> list[Path]:
    """``directory`` itself if it holds a run, else its immediate sub-directories that do."""

    def is_run(path: Path) -> bool:
        return (path / "evaluations.npz").exists() or (path / "progress.csv").exists()

    if is_run(directory):
        return [directory]
    return sorted(p for p in directory.iterdir() if p.is_dir() and is_run(p))


def plot_runs(directory: str | Path, out: str | Path | None = None) -> Path:
    """Plot evaluation (and training) return against real env steps for every run found.

    :return: the PNG's path (default ``DIR/learning_curves.png``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"directory: {str(directory)!r} is not a directory")
    runs = find_runs(directory)
    if not runs:
        raise ValueError(
            f"directory: no run (evaluations.npz or progress.csv) in {str(directory)!r}"
        )
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for run in runs:
        curves = read_run(run)
        label = run.name
        if "eval_steps" in curves and curves["eval_steps"].size:
            line = ax.plot(curves["eval_steps"], curves["eval_mean"], label=f"{label} (eval)")[0]
            ax.fill_between(
                curves["eval_steps"],
                curves["eval_mean"] - curves["eval_std"],
                curves["eval_mean"] + curves["eval_std"],
                color=line.get_color(),
                alpha=0.2,
            )
        if "train_steps" in curves:
            ax.plot(
                curves["train_steps"],
                curves["train_return"],
                linestyle="--",
                alpha=0.7,
                label=f"{label} (training episodes)",
            )
    ax.set_xlabel("real env steps")
    ax.set_ylabel("episode return")
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(out) if out is not None else directory / "learning_curves.png"
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
    return path


def run(args: argparse.Namespace) -> int:
    print(f"wrote {plot_runs(args.dir, args.out)}")
    return 0


def add_plot_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "plot",
        help="plot learning curves of runs as PNG",
        description="Plot the evaluation and training returns of a run directory written by "
        "`mbwrap train` (or of every run directory inside it) against real env steps.",
    )
    parser.add_argument("dir", help="a run directory, or a directory of runs")
    parser.add_argument("--out", help="PNG path (default DIR/learning_curves.png)")
    parser.set_defaults(run=run)
