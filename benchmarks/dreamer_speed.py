"""Dreamer's speed beside sheeprl's DreamerV3, on the same configuration and step count.

Both train on CartPole-v1 from vector observations, one env, on the CPU with one torch
thread, for ``--steps`` env steps of which ``--learning-starts`` are random, with the
same model sizes, batch, sequence length, imagination horizon and number of gradient
steps (sheeprl's ``replay_ratio`` = gradient steps per env step = mbwrap's
``gradient_steps / train_freq``). sheeprl runs in its own virtual environment
(``benchmarks/setup_sheeprl_venv.sh``: ``$SHEEPRL_VENV``, else
``$MBWRAP_PEERS_DIR/sheeprl-venv``, else the repository's ignored ``.peers/sheeprl-venv``),
driven by ``benchmarks/_sheeprl_dreamer.py``; mbwrap runs in this process. Both report the time of
the training loop alone (env steps, acting, gradient steps), without imports and setup.

Configurations (``--config``):

- ``tiny``: mbwrap's CartPole preset sizes (GRU 64, 8 x 8 latent, 64 units, 1 layer),
  batch 16 x 32, one gradient step per 8 env steps.
- ``xs``: DreamerV3's XS size as sheeprl defines it (GRU 256, 32 x 32 latent, 256 units)
  with 2 MLP layers, batch 16 x 64, one gradient step per 32 env steps.

Usage::

    bash benchmarks/setup_sheeprl_venv.sh
    python benchmarks/dreamer_speed.py --config tiny --steps 4000
    python benchmarks/dreamer_speed.py --config xs --steps 2000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import torch

from mbwrap.algos.dreamer import Dreamer

HERE = Path(__file__).resolve().parent
# Peer libraries run in venvs of their own under $MBWRAP_PEERS_DIR, by default the
# repository's ignored .peers/ folder (benchmarks/setup_sheeprl_venv.sh builds sheeprl's there).
PEERS_DIR = Path(os.environ.get("MBWRAP_PEERS_DIR") or HERE.parent / ".peers")
SHEEPRL_VENV = Path(os.environ.get("SHEEPRL_VENV") or PEERS_DIR / "sheeprl-venv")
SHEEPRL_PYTHON = SHEEPRL_VENV / "bin" / "python"

CONFIGS = {
    "tiny": {
        "recurrent": 64,
        "stoch": 8,
        "discrete": 8,
        "units": 64,
        "layers": 1,
        "batch": 16,
        "sequence": 32,
        "train_freq": 8,
    },
    "xs": {
        "recurrent": 256,
        "stoch": 32,
        "discrete": 32,
        "units": 256,
        "layers": 2,
        "batch": 16,
        "sequence": 64,
        "train_freq": 32,
    },
}
HORIZON = 15


def run_mbwrap(cfg: dict, steps: int, learning_starts: int, seed: int) -> dict:
    env = gym.make("CartPole-v1")
    algo = Dreamer(
        env,
        seed=seed,
        device="cpu",
        model_kwargs={
            "deter": cfg["recurrent"],
            "hidden": cfg["units"],
            "layers": cfg["layers"],
            "stoch": cfg["stoch"],
            "classes": cfg["discrete"],
            "batch_size": cfg["batch"],
            "sequence_length": cfg["sequence"],
        },
        hidden=cfg["units"],
        layers=cfg["layers"],
        imagination_horizon=HORIZON,
        train_freq=cfg["train_freq"],
        gradient_steps=1,
        learning_starts=learning_starts,
    )
    start = time.perf_counter()
    algo.learn(steps)
    wall = time.perf_counter() - start
    return {
        "env_steps": algo.num_timesteps,
        "gradient_steps": algo.n_updates,
        "wall_seconds": wall,
    }


def run_sheeprl(cfg: dict, steps: int, learning_starts: int, seed: int) -> dict:
    if not SHEEPRL_PYTHON.exists():
        raise SystemExit(
            f"sheeprl's venv is missing ({SHEEPRL_PYTHON}); run benchmarks/setup_sheeprl_venv.sh"
        )
    command = [
        str(SHEEPRL_PYTHON),
        str(HERE / "_sheeprl_dreamer.py"),
        "--steps",
        str(steps),
        "--learning-starts",
        str(learning_starts),
        "--replay-ratio",
        str(1 / cfg["train_freq"]),
        "--threads",
        "1",
        "--seed",
        str(seed),
        "--recurrent",
        str(cfg["recurrent"]),
        "--stoch",
        str(cfg["stoch"]),
        "--discrete",
        str(cfg["discrete"]),
        "--units",
        str(cfg["units"]),
        "--layers",
        str(cfg["layers"]),
        "--batch",
        str(cfg["batch"]),
        "--sequence",
        str(cfg["sequence"]),
        "--horizon",
        str(HORIZON),
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"sheeprl run failed (exit {out.returncode})")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--learning-starts", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs of each")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = CONFIGS[args.config]
    print(
        f"config {args.config}: {cfg}, horizon {HORIZON}, {args.steps} env steps "
        f"({args.learning_starts} random)",
        flush=True,
    )
    results: dict[str, list[dict]] = {"mbwrap": [], "sheeprl": []}
    for _ in range(args.repeats):
        # Alternate so that both see the same machine load.
        results["sheeprl"].append(run_sheeprl(cfg, args.steps, args.learning_starts, args.seed))
        print("sheeprl:", json.dumps(results["sheeprl"][-1]), flush=True)
        results["mbwrap"].append(run_mbwrap(cfg, args.steps, args.learning_starts, args.seed))
        print("mbwrap: ", json.dumps(results["mbwrap"][-1]), flush=True)
    mb = min(r["wall_seconds"] for r in results["mbwrap"])
    sh = min(r["wall_seconds"] for r in results["sheeprl"])
    grad_mb = results["mbwrap"][0]["gradient_steps"]
    grad_sh = results["sheeprl"][0].get("gradient_steps")
    print(
        f"\ntraining loop, best of {args.repeats}: mbwrap {mb:.1f} s, sheeprl {sh:.1f} s "
        f"-> mbwrap is {sh / mb:.2f}x as fast (gradient steps: mbwrap {grad_mb}, "
        f"sheeprl {grad_sh})"
    )
    print(
        f"env steps/s: mbwrap {args.steps / mb:.1f}, sheeprl {args.steps / sh:.1f}; "
        f"gradient steps/s: mbwrap {grad_mb / mb:.3f}, sheeprl {(grad_sh or 0) / sh:.3f}"
    )


if __name__ == "__main__":
    main()
