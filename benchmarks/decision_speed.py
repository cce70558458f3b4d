"""Decisions per second of tree search acting in one env, per search backend.

What a user meets first with MuZero or the ``"mcts"`` planner: ``predict`` on one
observation at a time (``evaluate_policy`` on a single env, a game against a person).
Both searches run on the CPU, once with the tensor-operation tree (``backend="torch"``)
and once with the compiled tree (``backend="compiled"``, numba), alternated in the same
process over the same observations, so the ratio is the backend's alone.

- ``muzero``: :class:`~mbwrap.algos.muzero.MuZero` with the CartPole preset
  (``mbwrap.algos.presets.MUZERO_CARTPOLE``: Gumbel search, 16 simulations), its
  evaluation planner (no noise), untrained networks: the time of a decision does not
  depend on the weights.
- ``mcts``: the ``"mcts"`` planner over an ``"mlp"`` model fitted on random CartPole
  play, as ``examples/mcts_cartpole.py`` runs it (pUCT, 25 simulations, each new node
  valued by a 20-step random rollout in the model).

Usage::

    python benchmarks/decision_speed.py --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.env_util import make_vec_env

import mbwrap
from mbwrap.algos.muzero import MuZero
from mbwrap.algos.presets import MUZERO_CARTPOLE

ENV_ID = "CartPole-v1"
BACKENDS = ("torch", "compiled")


def observations(count: int, seed: int) -> np.ndarray:
    """``[count, 4]`` CartPole observations from random play."""
    env = gym.make(ENV_ID)
    obs, _ = env.reset(seed=seed)
    out = []
    for _ in range(count):
        out.append(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    return np.asarray(out, dtype=np.float32)


def muzero_decide(seed: int) -> tuple[Callable[[np.ndarray], object], list[object]]:
    algo = MuZero(make_vec_env(ENV_ID, n_envs=1, seed=seed), seed=seed, device="cpu",
                  **MUZERO_CARTPOLE)
    return (lambda obs: algo.predict(obs[None], deterministic=True)), [algo.planner]


def mcts_decide(seed: int) -> tuple[Callable[[np.ndarray], object], list[object]]:
    env = gym.make(ENV_ID)
    data = mbwrap.ReplayBuffer(env.observation_space, env.action_space, capacity=5_000)
    mbwrap.collect(env, data, steps=3_000, seed=seed)
    model = mbwrap.make_model("mlp", env.observation_space, env.action_space, env_id=ENV_ID)
    model.fit(data)
    planner = mbwrap.make_planner("mcts", model, num_simulations=25, gamma=0.99,
                                  rollout_horizon=20, seed=seed)
    return (lambda obs: planner.predict(obs[None], deterministic=True)), [planner]


def rate(decide: Callable[[np.ndarray], object], obs: np.ndarray) -> float:
    """Decisions per second over ``obs``, one observation per decision."""
    start = time.perf_counter()
    for row in obs:
        decide(row)
    return len(obs) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=200, help="decisions per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="alternated repeats (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), load average at start: "
          f"{os.getloadavg()[0]:.2f}; median of {args.repeats} alternated repeats of "
          f"{args.decisions} decisions, one observation each", flush=True)
    obs = observations(args.decisions, args.seed)
    print("| agent | search | torch decisions/s | compiled decisions/s | compiled / torch |")
    print("|---|---|---:|---:|---:|")
    for name, make, search in (
        ("MuZero (CartPole preset)", muzero_decide, "Gumbel, 16 simulations"),
        ('"mcts" planner over an "mlp" model', mcts_decide,
         "pUCT, 25 simulations, 20-step rollouts"),
    ):
        decide, planners = make(args.seed)
        rates: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
        for backend in BACKENDS:  # warm-up: the compiled kernels load (or compile) here
            for planner in planners:
                planner.backend = backend
            rate(decide, obs[:10])
        for _ in range(args.repeats):
            for backend in BACKENDS:
                for planner in planners:
                    planner.backend = backend
                rates[backend].append(rate(decide, obs))
        torch_rate = statistics.median(rates["torch"])
        compiled_rate = statistics.median(rates["compiled"])
        print(f"| {name} | {search} | {torch_rate:,.1f} | {compiled_rate:,.1f} | "
              f"{compiled_rate / torch_rate:.2f} |", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
