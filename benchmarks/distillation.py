"""Distillation, measured: an ensemble distilled into one network, and a planner distilled
into a policy, each beside what it was distilled from, in the same run.

- ``ensemble``: a Gaussian ensemble (MBPO's 7 members of 4 x 200, 5 elites) fitted on
  Pendulum transitions, and :func:`mbwrap.models.distill_ensemble`'s one network: imagined
  transitions per second of ``model.step`` at ``--rows`` rows under each propagation, and
  the one-step NLL of held-out real transitions.
- ``planner``: CEM over Pendulum's exact dynamics (so the expert is good without a model
  fit) distilled by :func:`mbwrap.algos.distill_planner` (DAgger) into TD3's actor; then
  the planner, the policy alone and POPLIN-A (CEM started from the policy's plan, with the
  same population and with a quarter of it) on the same start states: mean return and
  milliseconds per decision.

Usage::

    python benchmarks/distillation.py ensemble --threads 1
    python benchmarks/distillation.py planner --threads 1 --dagger-steps 1000 \
        --dagger-iterations 4 --episodes 10
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from mbwrap.algos import distill_planner
from mbwrap.buffers import ReplayBuffer
from mbwrap.models import GaussianEnsemble, WorldModel, distill_ensemble
from mbwrap.planners import CEM, POPLINA
from mbwrap.types import ModelStep


class ExactPendulum(WorldModel):
    """Gymnasium's Pendulum-v1 dynamics in torch (g = 10, m = l = 1, dt = 0.05, speed
    clipped at 8, torque at 2); the reward comes from the function registered for it."""

    def __init__(self) -> None:
        env = gym.make("Pendulum-v1")
        super().__init__(
            env.observation_space, env.action_space, env_id="Pendulum-v1", device="cpu"
        )

    def get_config(self) -> dict[str, Any]:
        return {}

    def fit(self, buffer: Any, **kwargs: Any) -> dict[str, Any]:
        return {}

    def step(self, state, action, *, generator=None, member=None) -> ModelStep:
        theta = torch.atan2(state[..., 1], state[..., 0])
        torque = action.reshape(theta.shape).clamp(-2.0, 2.0)
        speed = state[..., 2] + (15.0 * torch.sin(theta) + 3.0 * torque) * 0.05
        speed = speed.clamp(-8.0, 8.0)
        theta = theta + speed * 0.05
        next_state = torch.stack([torch.cos(theta), torch.sin(theta), speed], dim=-1)
        return ModelStep(next_state=next_state, reward=None, terminated=None)


def pendulum_buffer(steps: int, seed: int) -> ReplayBuffer:
    env = gym.make("Pendulum-v1")
    env.action_space.seed(seed)
    buffer = ReplayBuffer(env.observation_space, env.action_space, steps, device="cpu")
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs, action, reward, next_obs, terminated, truncated)
        obs = next_obs if not (terminated or truncated) else env.reset()[0]
    return buffer


def steps_per_second(model: WorldModel, rows: int, repeats: int) -> float:
    gen = torch.Generator().manual_seed(0)
    space = model.observation_space
    state = torch.as_tensor(np.stack([space.sample() for _ in range(rows)]))
    action = torch.rand(rows, 1, generator=gen) * 4 - 2
    member = model.sample_members(rows, gen)
    model.step(state, action, generator=gen, member=member)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        model.step(state, action, generator=gen, member=member)
    return rows * repeats / (time.perf_counter() - start)


def run_ensemble(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    env = gym.make("Pendulum-v1")
    buffer = pendulum_buffer(args.transitions, args.seed)
    teacher = GaussianEnsemble(
        env.observation_space, env.action_space, env_id="Pendulum-v1", device="cpu"
    )
    fit_start = time.perf_counter()
    teacher.fit(buffer)
    fit_s = time.perf_counter() - fit_start
    start = time.perf_counter()
    student, report = distill_ensemble(teacher, buffer, seed=args.seed)
    distil_s = time.perf_counter() - start
    print(
        f"Pendulum-v1, {args.transitions} random transitions; ensemble fitted in {fit_s:.0f} s,"
        f" distilled in {distil_s:.0f} s ({report['steps']:.0f} steps)"
    )
    print(
        f"held-out one-step NLL (nats): ensemble {report['teacher_nll']:.2f}, "
        f"distilled {report['student_nll']:.2f} (gap {100 * report['nll_gap']:.1f}%)"
    )
    print()
    print(f"| propagation | ensemble steps/s | distilled steps/s | ratio |  ({args.rows} rows)")
    print("|---|---:|---:|---:|")
    distilled = steps_per_second(student, args.rows, args.repeats)
    for propagation in ("ts1", "ts-inf", "mean"):
        teacher.propagation = propagation
        ensemble = steps_per_second(teacher, args.rows, args.repeats)
        print(
            f"| {propagation} | {ensemble:,.0f} | {distilled:,.0f} | {distilled / ensemble:.2f}x |"
        )


def evaluate(policy: Any, episodes: int, seed: int) -> tuple[float, float]:
    """Mean return and milliseconds per decision on the same start states."""
    env = Monitor(gym.make("Pendulum-v1"))
    env.reset(seed=10_000 + seed)
    start = time.perf_counter()
    mean, _ = evaluate_policy(policy, env, n_eval_episodes=episodes, warn=False)
    return float(mean), 1000 * (time.perf_counter() - start) / (200 * episodes)


def run_planner(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    cem = dict(horizon=20, iterations=args.cem_iterations, particles=1, seed=args.seed)
    planner = CEM(
        ExactPendulum(), population=args.population, num_elites=args.population // 10, **cem
    )
    start = time.perf_counter()
    agent, report = distill_planner(
        planner,
        gym.make("Pendulum-v1"),
        "TD3",
        agent_kwargs={"policy_kwargs": {"net_arch": args.net}},
        iterations=args.dagger_iterations,
        steps_per_iteration=args.dagger_steps,
        seed=args.seed,
        device="cpu",
    )
    print(
        f"DAgger: {len(report) - 1} iterations of {args.dagger_steps} steps in "
        f"{time.perf_counter() - start:.0f} s"
    )
    for row in report:
        print(
            f"  round {row['iteration']:.0f}: {row['pairs']:.0f} pairs, episode return "
            f"{row['return']:.1f}, expert gap {row['expert_gap']:.4f}"
        )
    quarter = max(args.population // 4, 8)
    rows: list[tuple[str, Any]] = [
        (f"CEM ({args.population} x {args.cem_iterations} iterations, H 20)", planner),
        ("TD3 policy distilled by DAgger", agent),
    ]
    for population in (args.population, quarter):
        poplin = POPLINA(
            ExactPendulum(),
            policy=agent,
            population=population,
            num_elites=max(population // 10, 2),
            **cem,
        )
        rows.append((f"POPLIN-A ({population} x {args.cem_iterations}, from the policy)", poplin))
    print()
    print(f"| acting | mean return ({args.episodes} eps) | ms per decision |")
    print("|---|---:|---:|")
    for name, policy in rows:
        mean, ms = evaluate(policy, args.episodes, args.seed)
        print(f"| {name} | {mean:.1f} | {ms:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["ensemble", "planner"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--transitions", type=int, default=5000)
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--population", type=int, default=200)
    parser.add_argument("--cem-iterations", type=int, default=4)
    parser.add_argument("--dagger-iterations", type=int, default=3)
    parser.add_argument("--dagger-steps", type=int, default=400)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument(
        "--net",
        type=int,
        nargs="+",
        default=[256, 256],
        help="hidden sizes of the distilled TD3 actor",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    (run_ensemble if args.part == "ensemble" else run_planner)(args)


if __name__ == "__main__":
    main()
