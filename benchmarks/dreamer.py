"""Dreamer on CartPole-v1 (and Pendulum-v1): the first real step at which the mean return
of 10 deterministic evaluation episodes reaches the target, within a real-step budget.

Settings: ``PRESETS[("dreamer", env_id)]`` (``mbwrap.algos.dreamer``). Evaluation every
``--eval-every`` real steps plays ``--eval-episodes`` episodes side by side through
``evaluate_policy`` (the agent filters its latent state per env); its time is reported
apart from the training time.

Usage::

    python benchmarks/dreamer.py --seeds 0 1 2 --threads 1
    python benchmarks/dreamer.py --env Pendulum-v1 --target -200 --steps 20000
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure

from mbwrap.algos.dreamer import Dreamer
from mbwrap.algos.presets import PRESETS


class PeriodicEval(BaseCallback):
    """Evaluates every ``every`` real steps; remembers the first step at ``target``."""

    def __init__(
        self,
        env_id: str,
        seed: int,
        every: int,
        episodes: int,
        target: float,
        stop: bool,
        sampled: bool = False,
    ) -> None:
        super().__init__()
        self.env_id, self.seed, self.every, self.episodes = env_id, seed, every, episodes
        self.target, self.stop, self.sampled = target, stop, sampled
        self.next_eval = every
        self.history: list[tuple[int, float]] = []
        #: ``(real steps, mean return)`` of the actor sampling its actions (``sampled``).
        self.sampled_history: list[tuple[int, float]] = []
        self.first_at_target: int | None = None
        self.eval_seconds = 0.0

    def _on_step(self) -> bool:
        if self.num_timesteps < self.next_eval:
            return True
        self.next_eval += self.every
        start = time.perf_counter()
        env = make_vec_env(self.env_id, n_envs=self.episodes, seed=self.seed + 10_000)
        mean, std = evaluate_policy(
            self.model, env, n_eval_episodes=self.episodes, deterministic=True, warn=False
        )
        sampled = ""
        if self.sampled:
            # The same episodes with the actor's sampled actions: a deterministic return
            # far below the sampled one means the mode of a near-uniform actor flips.
            env = make_vec_env(self.env_id, n_envs=self.episodes, seed=self.seed + 10_000)
            mean_sampled, _ = evaluate_policy(
                self.model, env, n_eval_episodes=self.episodes, deterministic=False, warn=False
            )
            self.sampled_history.append((self.num_timesteps, float(mean_sampled)))
            sampled = f", sampled {mean_sampled:.1f}"
        self.eval_seconds += time.perf_counter() - start
        self.history.append((self.num_timesteps, float(mean)))
        # Into the run's log too (--log-dir), beside what the agent logs.
        self.logger.record("eval/mean_return", float(mean))
        if self.sampled_history:
            self.logger.record("eval/sampled_return", self.sampled_history[-1][1])
        print(
            f"  seed {self.seed} step {self.num_timesteps}: eval {mean:.1f} +- {std:.1f}"
            f"{sampled} ({self.model.n_updates} gradient steps)",
            flush=True,
        )
        if mean >= self.target and self.first_at_target is None:
            self.first_at_target = self.num_timesteps
            return not self.stop
        return True


def run(
    env_id: str,
    seed: int,
    steps: int,
    every: int,
    episodes: int,
    target: float,
    stop: bool,
    overrides: dict | None = None,
    log_dir: str | None = None,
    sampled: bool = False,
) -> dict:
    settings = {**PRESETS[("dreamer", env_id)], **(overrides or {})}
    algo = Dreamer(make_vec_env(env_id, n_envs=1, seed=seed), seed=seed, device="cpu", **settings)
    if log_dir is not None:
        # Every logged metric (world-model and actor-critic losses, entropy, the return
        # scale, imagined returns) to progress.csv, for a look across a run.
        algo.set_logger(configure(f"{log_dir}/seed{seed}", ["csv"]))
    callback = PeriodicEval(env_id, seed, every, episodes, target, stop, sampled)
    start = time.perf_counter()
    algo.learn(steps, callback=callback)
    total = time.perf_counter() - start
    return {
        "seed": seed,
        "first_at_target": callback.first_at_target,
        "history": callback.history,
        "sampled_history": callback.sampled_history,
        "real_steps": algo.num_timesteps,
        "gradient_steps": algo.n_updates,
        "train_seconds": total - callback.eval_seconds,
        "eval_seconds": callback.eval_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--eval-every", type=int, default=2_500)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--target", type=float, default=475.0)
    parser.add_argument("--no-stop", action="store_true", help="keep training after the target")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", default="{}", help="JSON of settings overriding the preset")
    parser.add_argument("--log-dir", help="write each seed's logged metrics to DIR/seedN/")
    parser.add_argument(
        "--sampled-eval",
        action="store_true",
        help="also evaluate the actor sampling its actions (the target stays deterministic)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for seed in args.seeds:
        result = run(
            args.env,
            seed,
            args.steps,
            args.eval_every,
            args.eval_episodes,
            args.target,
            not args.no_stop,
            json.loads(args.set),
            args.log_dir,
            args.sampled_eval,
        )
        results.append(result)
        print(json.dumps(result), flush=True)
    reached = [r["first_at_target"] for r in results if r["first_at_target"] is not None]
    print(f"\n{args.env}: target {args.target} within {args.steps} real steps")
    for r in results:
        best = max((m for _, m in r["history"]), default=float("nan"))
        print(
            f"  seed {r['seed']}: first at target {r['first_at_target']}, best eval "
            f"{best:.1f}, {r['gradient_steps']} gradient steps, train {r['train_seconds']:.0f} s"
        )
    if reached:
        print(
            f"  median real steps to target over the seeds that reached it: "
            f"{statistics.median(reached):.0f} ({len(reached)}/{len(results)} seeds)"
        )


if __name__ == "__main__":
    main()
