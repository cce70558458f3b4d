"""Plot what Dreamer logged across runs of ``benchmarks/dreamer.py --log-dir DIR``: the
real episodes' returns and the evaluations (deterministic, and sampled with
``--sampled-eval``) beside the imagined returns, the critic's values, the imagined chance
to continue, the return scale, the actor's entropy, and the actor, critic and world-model
losses, one line per seed against real steps. A decline of the real return shows here
against what the agent saw.

Usage::

    python benchmarks/dreamer.py --seeds 0 1 2 --steps 15000 --no-stop --log-dir runs
    python benchmarks/plot_dreamer_run.py runs --out dreamer_runs.png
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PANELS = [
    ("rollout/ep_rew_mean", "real return (last 100 episodes)"),
    ("train/imagined_return", "imagined return"),
    ("train/return_scale", "return scale S"),
    ("train/entropy", "actor entropy"),
    ("train/actor_loss", "actor loss"),
    ("train/critic_loss", "critic loss"),
    ("train/loss", "world-model loss"),
    ("train/kl", "KL (posterior, prior)"),
    ("eval/mean_return", "evaluation return, deterministic"),
    ("eval/sampled_return", "evaluation return, sampled actions"),
    ("train/imagined_value", "critic's value of imagined states"),
    ("train/imagined_continue", "imagined chance to continue"),
]


def read(path: Path) -> dict[str, list[tuple[float, float]]]:
    """``metric -> [(real step, value)]`` of a ``progress.csv``, empty cells skipped."""
    series: dict[str, list[tuple[float, float]]] = {}
    with path.open() as handle:
        for row in csv.DictReader(handle):
            step = row.get("time/total_timesteps")
            if not step:
                continue
            for key, value in row.items():
                if value:
                    series.setdefault(key, []).append((float(step), float(value)))
    return series


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log_dir", type=Path)
    parser.add_argument("--out", default="dreamer_runs.png")
    args = parser.parse_args()
    runs = sorted(args.log_dir.glob("seed*/progress.csv"))
    if not runs:
        raise SystemExit(f"log_dir: no seed*/progress.csv under {args.log_dir}")
    fig, axes = plt.subplots(3, 4, figsize=(18, 10), sharex=True)
    for path in runs:
        series = read(path)
        for ax, (key, title) in zip(axes.flat, PANELS, strict=True):
            points = series.get(key, [])
            if points:
                marker = "o" if key.startswith("eval/") else None
                ax.plot(
                    *zip(*points, strict=True),
                    label=path.parent.name,
                    linewidth=1,
                    marker=marker,
                    markersize=3,
                )
            ax.set_title(title)
    for ax in axes[-1]:
        ax.set_xlabel("real steps")
    axes.flat[0].legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
