"""Real-env collection throughput of an mbwrap algorithm on 0, 1 and 2 Ray workers, next
to SB3's own vector envs stepping the same env in the same run.

The env is CartPole whose step also costs ``--step-cost-ms`` of CPU (``busy_env.py``),
so collection, not the policy, bounds the rate. The algorithm is Dyna with a random
warm-up longer than the run (``learning_starts``), so every step measured is a
collected, stored and reported real step; each ``learn`` call is one collection round of
``--round`` steps, the unit in which a learner alternates collecting and training.
Peers: SB3's ``DummyVecEnv`` (one process) and ``SubprocVecEnv`` (one process per env)
stepping the env with random actions, with nothing stored.

Usage::

    python benchmarks/collection_workers.py            # about a minute on 2 cores
    python benchmarks/collection_workers.py --quick
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import gymnasium as gym
import numpy as np
import ray
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import busy_env  # noqa: E402

from mbwrap.algos import Dyna  # noqa: E402


def mbwrap_rate(num_workers: int, steps: int, round_steps: int, n_envs: int) -> float:
    """Real steps per second of Dyna's collection on ``num_workers`` workers (0: here)."""
    env = make_vec_env(busy_env.ENV_ID, n_envs=n_envs, seed=0)
    algo = Dyna(
        env,
        "PPO",
        "mlp",
        learning_starts=10**6,
        buffer_size=10**6,
        seed=0,
        device="cpu",
        num_workers=num_workers,
        envs_per_worker=n_envs,
    )
    algo.learn(round_steps)  # warm-up: workers started, envs reset
    start = time.perf_counter()
    done = 0
    while done < steps:
        algo.learn(round_steps, reset_num_timesteps=False)
        done += round_steps
    rate = done / (time.perf_counter() - start)
    algo.close()
    return rate


def sb3_rate(vec_cls: type, steps: int, n_envs: int) -> float:
    """Steps per second of an SB3 vector env of ``n_envs`` copies, random actions."""
    envs = make_vec_env(busy_env.make, n_envs=n_envs, seed=0, vec_env_cls=vec_cls)
    envs.reset()
    actions = [np.array([envs.action_space.sample() for _ in range(n_envs)]) for _ in range(8)]
    for i in range(20):
        envs.step(actions[i % 8])
    start = time.perf_counter()
    for i in range(steps // n_envs):
        envs.step(actions[i % 8])
    rate = (steps // n_envs) * n_envs / (time.perf_counter() - start)
    envs.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--step-cost-ms", type=float, default=1.0)
    parser.add_argument("--round", type=int, default=200, help="real steps per round")
    parser.add_argument("--steps", type=int, default=4000, help="timed real steps per case")
    args = parser.parse_args()
    steps = 1000 if args.quick else args.steps
    torch.set_num_threads(1)
    os.environ["PYTHONPATH"] = HERE + os.pathsep + os.environ.get("PYTHONPATH", "")
    busy_env.register()
    if args.step_cost_ms != 1.0:
        gym.registry[busy_env.ENV_ID].kwargs["step_cost_s"] = args.step_cost_ms / 1000
    # The workers import busy_env from here too.
    ray.init(
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}},
    )
    print(
        f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"torch {torch.__version__}, ray {ray.__version__}; load average at start "
        f"{os.getloadavg()[0]:.2f}"
    )
    print(
        f"env step cost {args.step_cost_ms} ms; {steps} timed real steps per case, "
        f"rounds of {args.round}\n"
    )
    rows = [
        ("SB3 DummyVecEnv, 1 env", sb3_rate(DummyVecEnv, steps, 1)),
        ("SB3 SubprocVecEnv, 2 envs", sb3_rate(SubprocVecEnv, steps, 2)),
        ("mbwrap Dyna, in-process, 1 env", mbwrap_rate(0, steps, args.round, 1)),
        ("mbwrap Dyna, 1 worker x 1 env", mbwrap_rate(1, steps, args.round, 1)),
        ("mbwrap Dyna, 2 workers x 1 env", mbwrap_rate(2, steps, args.round, 1)),
    ]
    base = rows[3][1]
    print("| collection | real steps/s | ÷ in-process | ÷ 1 worker |")
    print("|---|---:|---:|---:|")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} | {rate / rows[2][1]:.2f} | {rate / base:.2f} |")
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")
    ray.shutdown()


if __name__ == "__main__":
    main()
