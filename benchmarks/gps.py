"""Guided policy search on Reacher-v5 at fixed initial conditions, beside SAC in the same
run.

GPS trains on ``--conditions`` initial states (reset seeds 100, 101, ...): each iteration
takes 5 episodes of 50 steps per condition from the local controllers. After each
iteration the neural policy, acting alone and deterministically, is evaluated on the
training conditions and on 4 held-out ones (seeds 200-203), and the local controllers
(their mean actions) on theirs. Reported per seed: the real steps until the policy's mean
return on the training conditions reaches ``--threshold`` (doing nothing scores about
-9.6 there), and at the end the policy's return and fingertip distance (mean over the
last 10 steps) beside the local controllers'.

SAC (SB3's defaults) trains on the same vector env of conditions and is evaluated the same
way every 1,000 real steps up to ``--sac-steps``.

Usage::

    python benchmarks/gps.py --seeds 0 1 2 --iterations 25 --threads 1
    python benchmarks/gps.py --seeds 0 --skip-gps --sac-steps 30000
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch
from stable_baselines3 import SAC

from mbwrap.algos.gps import GPS
from mbwrap.envs import condition_vec_env, rollout_conditions

ENV_ID = "Reacher-v5"
HELD_OUT = [200, 201, 202, 203]


def evaluate(actor: Any, seeds: list[int]) -> tuple[float, float]:
    """``(mean return, mean fingertip distance over the last 10 steps)`` of one
    deterministic episode from each condition."""
    observations, returns = rollout_conditions(actor, ENV_ID, seeds)
    distances = np.linalg.norm(observations[:, -10:, 8:10], axis=-1)
    return float(returns.mean()), float(distances.mean())


def run_gps(
    seeds: list[int], seed: int, iterations: int, threshold: float, anchor: str
) -> dict[str, Any]:
    algo = GPS(condition_vec_env(ENV_ID, seeds), seed=seed, device="cpu", kl_anchor=anchor)
    per_iteration = algo.config.samples * algo.horizon * len(seeds)
    reached, curve, start = None, [], time.perf_counter()
    for _ in range(iterations):
        algo.learn(per_iteration, reset_num_timesteps=False)
        score, _ = evaluate(algo, seeds)
        curve.append(round(score, 2))
        if reached is None and score >= threshold:
            reached = algo.real_steps
    train, train_distance = evaluate(algo, seeds)
    held, held_distance = evaluate(algo, HELD_OUT)
    local, local_distance = evaluate(algo.local_controllers(), seeds)
    return {
        "reached": reached,
        "curve": curve,
        "policy": (train, train_distance),
        "held_out": (held, held_distance),
        "local": (local, local_distance),
        "seconds": time.perf_counter() - start,
    }


def run_sac(seeds: list[int], seed: int, steps: int, threshold: float) -> dict[str, Any]:
    agent = SAC("MlpPolicy", condition_vec_env(ENV_ID, seeds), seed=seed, device="cpu")
    reached, best, start = None, -np.inf, time.perf_counter()
    for done in range(1000, steps + 1, 1000):
        agent.learn(1000, reset_num_timesteps=False)
        score, _ = evaluate(agent, seeds)
        best = max(best, score)
        if score >= threshold:
            reached = done
            break
    return {"reached": reached, "best": best, "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--conditions", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=25)
    parser.add_argument("--threshold", type=float, default=-5.0)
    parser.add_argument("--kl-anchor", default="policy", choices=("policy", "previous"))
    parser.add_argument("--sac-steps", type=int, default=30_000)
    parser.add_argument("--skip-sac", action="store_true")
    parser.add_argument("--skip-gps", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    conditions = [100 + i for i in range(args.conditions)]
    print(f"{ENV_ID}, conditions {conditions}, held out {HELD_OUT}, threshold {args.threshold}")
    for seed in args.seeds:
        if not args.skip_gps:
            gps = run_gps(conditions, seed, args.iterations, args.threshold, args.kl_anchor)
            print(
                f"seed {seed} GPS ({args.kl_anchor}): threshold at "
                f"{gps['reached'] or 'not reached'} real steps; "
                f"after {args.iterations} iterations policy return/distance "
                f"{gps['policy'][0]:.2f}/{gps['policy'][1]:.3f}, held out "
                f"{gps['held_out'][0]:.2f}/{gps['held_out'][1]:.3f}, local controllers "
                f"{gps['local'][0]:.2f}/{gps['local'][1]:.3f} ({gps['seconds']:.0f} s)"
            )
            print(f"  policy return per iteration: {gps['curve']}")
        if not args.skip_sac:
            sac = run_sac(conditions, seed, args.sac_steps, args.threshold)
            print(
                f"seed {seed} SAC: threshold at {sac['reached'] or 'not reached'} real steps "
                f"(best {sac['best']:.2f}, {sac['seconds']:.0f} s)"
            )


if __name__ == "__main__":
    main()
