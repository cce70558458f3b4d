"""MB-MF on Pendulum-v1: the MPC expert, its distilled SB3 policy, and the fine-tuned policy.

Issue target: the distilled policy's return is within 10% of its MPC expert's (not worse
than ``1.1 x`` the expert's negative return), and model-free fine-tuning then improves it.

Per seed, with ``algos.presets.PENDULUM_MB_MF`` and ``--eval-episodes`` deterministic
episodes whose start states are the same for every evaluation of that seed:

- **expert**: the random-shooting MPC planner at the end of the model-based phase;
- **distilled**: the agent after behaviour cloning and DAgger (no model-free update yet);
- **fine-tuned**: the agent at the end of the budget;
- **from scratch**: the same SB3 agent with the same settings, trained model-free from
  scratch for the same total of real steps.

Prints a markdown table, the ratio distilled / expert (returns are negative: below 1.1
meets the target) and the wall time of each part; then the return of both learners every
``--curve-every`` real steps (MB-MF from the end of its model-based phase on, when its
policy is a network and cheap to evaluate).

Usage::

    nice python benchmarks/mb_mf.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from mbwrap.algos import MBMF
from mbwrap.algos.agents import agent_class
from mbwrap.algos.presets import PENDULUM_MB_MF, PENDULUM_MB_MF_TIMESTEPS

ENV_ID = "Pendulum-v1"


@dataclass
class Row:
    seed: int
    expert: float
    distilled: float
    finetuned: float
    from_scratch: float
    model_based_s: float
    distill_s: float
    finetune_s: float
    from_scratch_s: float
    curve: dict[str, dict[int, float]]

    @property
    def ratio(self) -> float:
        return self.distilled / self.expert


def evaluate(policy, seed: int, episodes: int) -> float:
    """Mean return over ``episodes`` deterministic episodes whose start states follow from
    ``seed`` (the same for every policy evaluated with it)."""
    env = Monitor(gym.make(ENV_ID))
    env.reset(seed=seed)
    mean, _ = evaluate_policy(policy, env, n_eval_episodes=episodes, deterministic=True, warn=False)
    return float(mean)


class Curve(BaseCallback):
    """Evaluates the model every ``every`` real steps, except while MB-MF's policy is the
    MPC expert (slow to evaluate); the time it takes is not the learner's."""

    def __init__(self, every: int, seed: int, episodes: int) -> None:
        super().__init__()
        self.every, self.seed, self.episodes = every, seed, episodes
        self.points: dict[int, float] = {}
        self.seconds = 0.0

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every or getattr(self.model, "phase", "") == "model-based":
            return True
        start = time.perf_counter()
        self.points[self.num_timesteps] = evaluate(self.model, self.seed, self.episodes)
        self.seconds += time.perf_counter() - start
        return True


def run_seed(seed: int, episodes: int, every: int, verbose: int) -> Row:
    eval_seed = 10_000 + seed
    preset = PENDULUM_MB_MF
    algo = MBMF(gym.make(ENV_ID), **preset, seed=seed, device="cpu", verbose=verbose)
    distill_steps = preset["dagger_iterations"] * preset["dagger_steps"]
    finetune_steps = PENDULUM_MB_MF_TIMESTEPS - preset["model_based_steps"] - distill_steps
    curve = Curve(every, eval_seed, episodes)

    start = time.perf_counter()
    algo.learn(preset["model_based_steps"], callback=curve)
    model_based_s = time.perf_counter() - start - curve.seconds
    expert = evaluate(algo.planner, eval_seed, episodes)

    curve.seconds = 0.0
    start = time.perf_counter()
    algo.learn(distill_steps, callback=curve, reset_num_timesteps=False)
    distill_s = time.perf_counter() - start - curve.seconds
    distilled = evaluate(algo, eval_seed, episodes)

    curve.seconds = 0.0
    start = time.perf_counter()
    algo.learn(finetune_steps, callback=curve, reset_num_timesteps=False)
    finetune_s = time.perf_counter() - start - curve.seconds
    assert algo.num_timesteps == PENDULUM_MB_MF_TIMESTEPS, algo.num_timesteps
    finetuned = evaluate(algo, eval_seed, episodes)

    scratch_curve = Curve(every, eval_seed, episodes)
    start = time.perf_counter()
    cls = agent_class(preset["agent"])
    scratch = cls("MlpPolicy", gym.make(ENV_ID), seed=seed, device="cpu", **preset["agent_kwargs"])
    scratch.learn(PENDULUM_MB_MF_TIMESTEPS, callback=scratch_curve)
    from_scratch_s = time.perf_counter() - start - scratch_curve.seconds
    from_scratch = evaluate(scratch, eval_seed, episodes)
    return Row(
        seed,
        expert,
        distilled,
        finetuned,
        from_scratch,
        model_based_s,
        distill_s,
        finetune_s,
        from_scratch_s,
        {"MB-MF": curve.points, "from scratch": scratch_curve.points},
    )


def table(rows: list[Row]) -> str:
    agent = PENDULUM_MB_MF["agent"]
    lines = [
        f"| seed | MPC expert | distilled | distilled / expert | fine-tuned | {agent} from "
        "scratch | wall s (model-based / distill / finetune / scratch) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.seed} | {r.expert:.1f} | {r.distilled:.1f} | {r.ratio:.3f} | "
            f"{r.finetuned:.1f} | {r.from_scratch:.1f} | {r.model_based_s:.0f} / "
            f"{r.distill_s:.0f} / {r.finetune_s:.0f} / {r.from_scratch_s:.0f} |"
        )
    if len(rows) > 1:
        keys = [k for k in asdict(rows[0]) if k != "curve"]
        median = {k: float(np.median([getattr(r, k) for r in rows])) for k in keys}
        ratio = float(np.median([r.ratio for r in rows]))
        lines.append(
            f"| median | {median['expert']:.1f} | {median['distilled']:.1f} | {ratio:.3f} | "
            f"{median['finetuned']:.1f} | {median['from_scratch']:.1f} | |"
        )
    return "\n".join(lines)


def curve_table(rows: list[Row]) -> str:
    steps = sorted({t for r in rows for points in r.curve.values() for t in points})
    lines = [
        "| learner | seed | " + " | ".join(str(t) for t in steps) + " |",
        "|---|---|" + "---|" * len(steps),
    ]
    for r in rows:
        for learner, points in r.curve.items():
            cells = [f"{points[t]:.0f}" if t in points else "" for t in steps]
            lines.append(f"| {learner} | {r.seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--curve-every", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--verbose", type=int, default=0)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    for seed in args.seeds:
        row = run_seed(seed, args.eval_episodes, args.curve_every, args.verbose)
        rows.append(row)
        print(json.dumps({**asdict(row), "ratio": row.ratio}), flush=True)
    print()
    print(
        f"{ENV_ID}, {PENDULUM_MB_MF_TIMESTEPS} real steps, {args.eval_episodes} deterministic "
        "episodes per evaluation"
    )
    print(table(rows))
    print()
    print("Mean return every", args.curve_every, "real steps")
    print(curve_table(rows))
    met = [r.ratio <= 1.1 and r.finetuned > r.distilled for r in rows]
    print(f"target met (ratio <= 1.1 and fine-tuned > distilled): {sum(met)}/{len(rows)} seeds")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{**asdict(r), "ratio": r.ratio} for r in rows], f, indent=2)


if __name__ == "__main__":
    main()
