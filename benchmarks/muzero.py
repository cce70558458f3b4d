"""MuZero on CartPole-v1: the first real step at which the mean return of 10 evaluation
episodes reaches 475, within a budget of 30,000 real steps.

Settings: ``mbwrap.algos.presets.MUZERO_CARTPOLE`` (Gumbel search, 16 simulations, 8 envs
searched together). Evaluation every ``--eval-every`` real steps plays ``--eval-episodes``
noise-free episodes side by side (one batched search per step over all of them); its time
is reported apart from the training time.

Usage::

    python benchmarks/muzero.py --seeds 0 1 2 --threads 1
    python benchmarks/muzero.py --seeds 0 --steps 30000 --eval-every 2000
    python benchmarks/muzero.py --seeds 0 --workers 2   # self-play on 2 Ray actors
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from mbwrap.algos.muzero import MuZero
from mbwrap.algos.presets import MUZERO_CARTPOLE

ENV_ID = "CartPole-v1"


class PeriodicEval(BaseCallback):
    """Evaluates every ``every`` real steps; remembers the first step at ``target``."""

    def __init__(self, seed: int, every: int, episodes: int, target: float, stop: bool) -> None:
        super().__init__()
        self.seed, self.every, self.episodes, self.target, self.stop = (
            seed, every, episodes, target, stop
        )
        self.next_eval = every
        self.history: list[tuple[int, float]] = []
        self.first_at_target: int | None = None
        self.eval_seconds = 0.0

    def _on_step(self) -> bool:
        if self.num_timesteps < self.next_eval:
            return True
        self.next_eval += self.every
        start = time.perf_counter()
        env = make_vec_env(ENV_ID, n_envs=self.episodes, seed=self.seed + 10_000)
        mean, std = evaluate_policy(
            self.model, env, n_eval_episodes=self.episodes, deterministic=True, warn=False
        )
        self.eval_seconds += time.perf_counter() - start
        self.history.append((self.num_timesteps, float(mean)))
        print(f"  seed {self.seed} step {self.num_timesteps}: eval {mean:.1f} +- {std:.1f}",
              flush=True)
        if mean >= self.target and self.first_at_target is None:
            self.first_at_target = self.num_timesteps
            return not self.stop
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--eval-every", type=int, default=2_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--target", type=float, default=475.0)
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=0,
                        help="self-play actors on Ray (each plays --n-envs games); 0: here")
    parser.add_argument("--replay-actor", action="store_true",
                        help="with --workers: the prioritised replay on its own Ray actor")
    parser.add_argument("--keep-going", action="store_true",
                        help="train the whole budget after reaching the target")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    where = f"{args.workers} self-play actors x " if args.workers else ""
    if args.replay_actor:
        where = f"a replay actor, {where}"
    print(f"MuZero on {ENV_ID}, settings {MUZERO_CARTPOLE}, {where}{args.n_envs} envs",
          flush=True)
    firsts: list[int | None] = []
    for seed in args.seeds:
        env = make_vec_env(ENV_ID, n_envs=args.n_envs, seed=seed)
        algo = MuZero(env, seed=seed, device=args.device, num_workers=args.workers,
                      replay_actor=args.replay_actor, **MUZERO_CARTPOLE)
        log = PeriodicEval(seed, args.eval_every, args.eval_episodes, args.target,
                           stop=not args.keep_going)
        start = time.perf_counter()
        algo.learn(args.steps, callback=log)
        wall = time.perf_counter() - start
        algo.close()  # the self-play actors, if any
        firsts.append(log.first_at_target)
        best = max((m for _, m in log.history), default=float("nan"))
        print(
            f"seed {seed}: first step with mean >= {args.target:g}: {log.first_at_target} | "
            f"best eval {best:.1f} | {algo.num_timesteps} real steps, {algo.n_updates} "
            f"updates | wall {wall:.0f} s (of which eval {log.eval_seconds:.0f} s)",
            flush=True,
        )
    reached = [f for f in firsts if f is not None]
    summary = f"{len(reached)}/{len(firsts)} seeds reached {args.target:g}"
    if reached:
        summary += f"; first step: median {statistics.median(reached):.0f}, max {max(reached)}"
    print(summary)


if __name__ == "__main__":
    main()
