"""Seconds per CEM planning decision: mbwrap against mbrl-lib, side by side in one run.

Both plan with PETS's CEM (horizon 15, population 350, 35 elites, 5 iterations, alpha 0.1,
20 particles: mbrl-lib's PETS example settings) over a Gaussian ensemble of 5 members of
4 x 200 SiLU with random weights (a decision costs the same however well the model is
fitted), propagating TS1, with the known reward ``-|s'|^2 - 0.1 |a|^2`` and no
termination, from the same fixed observations. mbrl-lib runs in its own virtual
environment (``benchmarks/setup_mbrl_venv.sh``) through ``benchmarks/_mbrl_cem_decision.py``;
its time for ``N`` envs is ``N`` sequential decisions, since it plans for one observation
at a time. mbwrap plans for all ``N`` in one batched optimisation.

Usage::

    python benchmarks/planning_speed.py                        # HalfCheetah-sized, 1 and 16 envs
    python benchmarks/planning_speed.py --obs-dim 3 --act-dim 1
    python benchmarks/planning_speed.py --mbrl-python none     # mbwrap only
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

import mbwrap
from mbwrap.algos.presets import PENDULUM_PETS
from mbwrap.models import WorldModel

HERE = Path(__file__).resolve().parent
# Peer libraries run in venvs of their own under $MBWRAP_PEERS_DIR, by default the
# repository's ignored .peers/ folder (benchmarks/setup_mbrl_venv.sh builds mbrl-lib's there).
PEERS_DIR = Path(os.environ.get("MBWRAP_PEERS_DIR") or HERE.parent / ".peers")


def reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """The same reward as the mbrl-lib side: ``-|s'|^2 - 0.1 |a|^2``, ``[n]``."""
    return -next_obs.square().sum(-1) - 0.1 * action.square().sum(-1)


def mbwrap_planner(args: argparse.Namespace, stepwise: bool = False) -> Any:
    """PETS's CEM over a randomly initialised ensemble; ``stepwise``: its rollouts step the
    model ``H`` times, as every shooting planner imagined before ``WorldModel.rollout``
    was prepared once (each step checks, normalises and deals its rows anew)."""
    obs_space = spaces.Box(-np.inf, np.inf, (args.obs_dim,), np.float32)
    act_space = spaces.Box(-1.0, 1.0, (args.act_dim,), np.float32)
    torch.manual_seed(args.seed)
    model = mbwrap.make_model(
        "gaussian-ensemble",
        obs_space,
        act_space,
        ensemble_size=args.ensemble_size,
        num_elites=args.ensemble_size,
        hidden_sizes=[args.hidden] * args.layers,
        propagation="ts1",
        device=args.device,
    )
    if stepwise:
        model.rollout = functools.partial(WorldModel.rollout, model)  # type: ignore[method-assign]
    return mbwrap.make_planner(
        "cem",
        model,
        horizon=args.horizon,
        population=args.population,
        num_elites=round(args.population * args.elite_ratio),
        iterations=args.iterations,
        alpha=args.alpha,
        particles=args.particles,
        reward_fn=reward,
        seed=args.seed,
    )


def mbwrap_seconds(args: argparse.Namespace, num_envs: int) -> list[list[float]]:
    """Seconds per decision of each planner (the prepared one, and with ``--stepwise`` the
    stepwise one), their calls alternated so that both see the same machine load."""
    planners = [mbwrap_planner(args)] + ([mbwrap_planner(args, True)] if args.stepwise else [])
    obs = np.random.default_rng(args.seed).standard_normal((num_envs, args.obs_dim))
    obs = obs.astype(np.float32)
    for planner in planners:
        planner.predict(obs)  # warm-up; later decisions warm-start from the shifted plan
    times: list[list[float]] = [[] for _ in planners]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    for _ in range(args.repeats):
        for planner, spent in zip(planners, times, strict=True):
            sync()
            start = time.perf_counter()
            planner.predict(obs)  # returns numpy: the decision is complete on the host
            spent.append(time.perf_counter() - start)
    return times


def plain_forward_seconds(args: argparse.Namespace, num_envs: int) -> float:
    """The arithmetic floor of a decision: the ``horizon x iterations`` forwards it needs,
    each of a plain ``torch.nn`` MLP of the ensemble's member size on all the decision's
    rows (``population x particles x num_envs``), median of ``--repeats``."""
    widths = [args.obs_dim + args.act_dim, *[args.hidden] * args.layers, 2 * (args.obs_dim + 1)]
    layers: list[torch.nn.Module] = []
    for fan_in, fan_out in itertools.pairwise(widths):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.SiLU()]
    net = torch.nn.Sequential(*layers[:-1]).to(args.device)
    rows = args.population * args.particles * num_envs
    x = torch.randn(rows, widths[0], device=args.device)
    times = []
    with torch.no_grad():
        net(x)
        for _ in range(args.repeats):
            if x.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(args.horizon * args.iterations):
                net(x)
            if x.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def mbrl_seconds(args: argparse.Namespace, num_envs: int) -> dict | None:
    if args.mbrl_python == "none" or not Path(args.mbrl_python).exists():
        return None
    command = [
        args.mbrl_python,
        str(HERE / "_mbrl_cem_decision.py"),
        *("--obs-dim", str(args.obs_dim), "--act-dim", str(args.act_dim)),
        *("--ensemble-size", str(args.ensemble_size), "--hidden", str(args.hidden)),
        *("--layers", str(args.layers), "--horizon", str(args.horizon)),
        *("--population", str(args.population), "--elite-ratio", str(args.elite_ratio)),
        *("--iterations", str(args.iterations), "--particles", str(args.particles)),
        *("--alpha", str(args.alpha), "--num-envs", str(num_envs)),
        *("--repeats", str(args.mbrl_repeats), "--threads", str(torch.get_num_threads())),
        *("--seed", str(args.seed)),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        print(f"mbrl-lib run failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--obs-dim", type=int, default=17)
    parser.add_argument("--act-dim", type=int, default=6)
    parser.add_argument("--ensemble-size", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=200)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--horizon", type=int, default=15)
    parser.add_argument("--population", type=int, default=350)
    parser.add_argument("--elite-ratio", type=float, default=0.1)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--particles", type=int, default=20)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mbrl-repeats", type=int, default=3)
    parser.add_argument(
        "--mbrl-python",
        default=str(PEERS_DIR / "mbrl-venv" / "bin" / "python"),
        help="python of mbrl-lib's venv (default: $MBWRAP_PEERS_DIR/mbrl-venv, else "
        ".peers/mbrl-venv); 'none' skips mbrl-lib",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--preset",
        choices=["pendulum"],
        help="pendulum: PETS's Pendulum-v1 preset (mbwrap.algos.presets.PENDULUM_PETS: "
        "5 x 3 x 64, population 200, 20 elites, 4 iterations, horizon 25, 2 particles), "
        "obs 3, act 1",
    )
    parser.add_argument(
        "--stepwise",
        action="store_true",
        help="also time the model stepped H times per rollout (the path before "
        "WorldModel.rollout was prepared once)",
    )
    args = parser.parse_args()
    if args.preset == "pendulum":
        planner = PENDULUM_PETS["planner_kwargs"]
        model = PENDULUM_PETS["model_kwargs"]
        args.obs_dim, args.act_dim = 3, 1
        args.ensemble_size, args.hidden = model["ensemble_size"], model["hidden_sizes"][0]
        args.layers = len(model["hidden_sizes"])
        args.horizon, args.population = planner["horizon"], planner["population"]
        args.elite_ratio = planner["num_elites"] / planner["population"]
        args.iterations, args.particles = planner["iterations"], planner["particles"]
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(args.threads)
    print(
        f"CEM: horizon {args.horizon}, population {args.population}, "
        f"{round(args.population * args.elite_ratio)} elites, {args.iterations} iterations, "
        f"{args.particles} particles; ensemble {args.ensemble_size} x "
        f"{args.layers}x{args.hidden}, obs {args.obs_dim}, act {args.act_dim}; "
        f"torch {torch.__version__}, {args.threads} threads, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    rows = []
    for n in args.num_envs:
        timed = mbwrap_seconds(args, n)
        ours = statistics.median(timed[0])
        stepwise = statistics.median(timed[1]) if args.stepwise else None
        plain = plain_forward_seconds(args, n)
        theirs = mbrl_seconds(args, n)
        rows.append((n, ours, stepwise, plain, None if theirs is None else theirs["median"]))
        print(f"  {n} envs: mbwrap {ours:.3f} s, mbrl-lib {rows[-1][-1]}", flush=True)
    print(
        "\n| num_envs | mbwrap s/decision | stepwise s/decision | plain forwards s | "
        "mbwrap / plain forwards | stepwise / mbwrap | mbrl-lib s/decision | "
        "mbwrap / mbrl-lib |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, ours, stepwise, plain, theirs in rows:
        ratio = "n/a" if theirs is None else f"{ours / theirs:.3f}"
        mbrl = "n/a" if theirs is None else f"{theirs:.3f}"
        step = "n/a" if stepwise is None else f"{stepwise:.3f}"
        speedup = "n/a" if stepwise is None else f"{stepwise / ours:.2f}"
        print(
            f"| {n} | {ours:.3f} | {step} | {plain:.3f} | {ours / plain:.2f} | {speedup} | "
            f"{mbrl} | {ratio} |"
        )
    if len(rows) > 1:
        print(f"\nmbwrap, {rows[-1][0]} envs / 1 env: {rows[-1][1] / rows[0][1]:.2f}")


if __name__ == "__main__":
    main()
