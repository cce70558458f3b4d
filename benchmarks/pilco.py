"""PILCO's data efficiency, measured beside SAC in the same run.

- ``swing-up``: PILCO's cart-pole swing-up (``mbwrap/CartPoleSwingUp-v0``, 30 steps of
  0.1 s): real episodes until the tip ends within 0.25 m of upright in at least 90% of
  10 deterministic evaluation episodes (``is_success`` at the last step);
- ``pendulum``: ``Pendulum-v1`` (200 steps): real episodes until the mean return of 10
  deterministic episodes reaches -200.

After each real episode PILCO is evaluated; SAC (SB3's defaults) is evaluated every
``--sac-eval-freq`` real steps up to ``--sac-steps``. Prints per seed the real episodes
(and steps) each needed, or ``not reached``.

Seed ``s`` is evaluated on its own 10 start states (the environment reset with seed
``10_000 + s``), so the return a good controller can reach differs between seeds.
``--reference-steps N`` measures that: SAC trained for ``N`` steps on each seed, without
stopping early, then scored on every seed's evaluation starts. ``--per-start`` (Pendulum)
also prints, for PILCO's last controller and the reference SAC, each evaluation episode
on its own: the start angle and velocity, the return, and the step at which the pole
first comes within 0.3 rad of upright. ``--predicted-vs-real`` (Pendulum) prints, per
Gaussian of PILCO's start distribution, the summed cost over the horizon that its last
controller is predicted to pay (moment matching through the GPs) against the mean of 200
real runs from starts drawn from that Gaussian. ``--score-on 0 1 2`` scores PILCO's last
controller on those seeds' evaluation starts too.

Usage::

    python benchmarks/pilco.py swing-up --seeds 0 1 2 --threads 1
    python benchmarks/pilco.py pendulum --seeds 0 --threads 1
    python benchmarks/pilco.py pendulum --skip-pilco --skip-sac --reference-steps 20000
    python benchmarks/pilco.py pendulum --seeds 1 --skip-sac --episodes 3 --per-start
    python benchmarks/pilco.py pendulum --seeds 1 --skip-sac --episodes 10 --predicted-vs-real
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.evaluation import evaluate_policy

import mbwrap
from mbwrap.algos.presets import PRESETS

TASKS: dict[str, dict[str, Any]] = {
    "swing-up": {"env_id": "mbwrap/CartPoleSwingUp-v0", "metric": "success", "threshold": 0.9},
    "pendulum": {"env_id": "Pendulum-v1", "metric": "return", "threshold": -200.0},
}


def score(policy: Any, env_id: str, metric: str, episodes: int, seed: int) -> float:
    """Mean return, or the share of episodes whose last step reports ``is_success``."""
    env = gym.make(env_id)
    env.reset(seed=10_000 + seed)
    successes: list[bool] = []

    def record(local: dict[str, Any], _: Any) -> None:
        if local["done"]:
            successes.append(bool(local["info"].get("is_success")))

    mean, _ = evaluate_policy(
        policy, env, n_eval_episodes=episodes, deterministic=True, warn=False, callback=record
    )
    return float(np.mean(successes)) if metric == "success" else float(mean)


def per_start(policy: Any, env_id: str, episodes: int, seed: int) -> list[dict[str, float]]:
    """Pendulum's evaluation episodes one by one, from the starts :func:`score` uses (the
    env reset with seed ``10_000 + seed``, then reset once per episode): each episode's
    start angle and velocity, return, and first step within 0.3 rad of upright (-1 if
    never)."""
    env = gym.make(env_id)
    env.reset(seed=10_000 + seed)
    rows = []
    for _ in range(episodes):
        obs, _ = env.reset()
        start_angle, start_velocity = float(np.arctan2(obs[1], obs[0])), float(obs[2])
        total, upright, done, step = 0.0, -1, False, 0
        while not done:
            action, _ = policy.predict(obs[None], deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action[0])
            total += float(reward)
            if upright < 0 and abs(np.arctan2(obs[1], obs[0])) < 0.3:
                upright = step
            done, step = terminated or truncated, step + 1
        rows.append(
            {"angle": start_angle, "velocity": start_velocity, "return": total, "upright": upright}
        )
    return rows


def predicted_against_real(
    agent: Any, env_id: str, samples: int = 200, seed: int = 0
) -> list[dict[str, Any]]:
    """For each Gaussian of a Pendulum PILCO agent's start distribution: the summed cost
    over its horizon that the agent predicts (moment matching through its GPs) against the
    mean summed cost of ``samples`` real runs of its controller from starts drawn from
    that Gaussian, and the standard deviation of each observation dimension at the last
    step, predicted and real. The real runs set Pendulum's state ``(angle, velocity)``
    after a reset, so Pendulum only."""
    mean, cov = agent.start_distribution()
    with torch.no_grad():
        predicted = agent.predicted_costs(per_start=True)  # [H, k]
        _, obs_cov = agent.predicted_observations()  # [H, k, D, D]
    horizon = predicted.shape[0]
    generator = torch.Generator().manual_seed(seed)
    envs = [gym.make(env_id) for _ in range(samples)]
    for env in envs:
        env.reset(seed=seed)
    rows = []
    for k in range(len(mean)):
        noise = torch.randn(samples, mean.shape[1], 1, generator=generator, dtype=mean.dtype)
        states = mean[k] + (torch.linalg.cholesky(cov[k]) @ noise.to(mean.device)).squeeze(-1)
        obs = agent.model.to_observation(states).cpu().numpy()
        for env, start in zip(envs, obs, strict=True):
            env.unwrapped.state = np.array([np.arctan2(start[1], start[0]), start[2]])
        total = np.zeros(samples)
        for _ in range(horizon):
            actions, _ = agent.predict(obs.astype(np.float32), deterministic=True)
            obs = np.stack([env.step(action)[0] for env, action in zip(envs, actions, strict=True)])
            flat = torch.as_tensor(obs, dtype=torch.float64, device=mean.device)
            zero = flat.new_zeros(samples, flat.shape[1], flat.shape[1])
            total += agent.expected_cost(flat, zero).cpu().numpy()
        rows.append(
            {
                "start": mean[k].cpu().numpy(),
                "predicted": float(predicted[:, k].sum()),
                "real": float(total.mean()),
                "predicted_std": obs_cov[-1, k].diagonal().sqrt().cpu().numpy(),
                "real_std": obs.std(0),
            }
        )
    return rows


def print_predicted_against_real(label: str, rows: list[dict[str, Any]]) -> None:
    print(f"    {label}, per start Gaussian (summed cost over the horizon):", flush=True)
    for row in rows:
        print(
            f"      start state {np.round(row['start'], 2)}: predicted {row['predicted']:6.1f}, "
            f"real {row['real']:6.1f}; std at the last step predicted "
            f"{np.round(row['predicted_std'], 2)}, real {np.round(row['real_std'], 2)}",
            flush=True,
        )


def print_per_start(label: str, rows: list[dict[str, float]]) -> None:
    print(f"    {label}, each evaluation episode:", flush=True)
    for row in rows:
        print(
            f"      start angle {row['angle']:+.2f} rad, velocity {row['velocity']:+.2f}: "
            f"return {row['return']:8.1f}, within 0.3 rad of upright from step "
            f"{row['upright']:.0f}",
            flush=True,
        )


def run_pilco(
    task: dict[str, Any], seed: int, episodes: int, evals: int, overrides: dict[str, Any]
) -> dict[str, Any]:
    env_id = task["env_id"]
    env = gym.make(env_id)
    length = env.spec.max_episode_steps
    settings = {**PRESETS[("pilco", env_id)], **overrides}
    algo = mbwrap.make_algo("pilco", env, seed=seed, device="cpu", **settings)
    start, history = time.perf_counter(), []
    for episode in range(1, episodes + 1):
        algo.learn(length, reset_num_timesteps=episode == 1)
        value = score(algo, env_id, task["metric"], evals, seed)
        history.append(value)
        print(
            f"    seed {seed} episode {episode}: {value:.2f} "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
        if value >= task["threshold"]:
            return {
                "episodes": episode,
                "steps": episode * length,
                "history": history,
                "seconds": time.perf_counter() - start,
                "agent": algo,
            }
    return {
        "episodes": None,
        "steps": None,
        "history": history,
        "seconds": time.perf_counter() - start,
        "agent": algo,
    }


def run_sac(task: dict[str, Any], seed: int, steps: int, every: int, evals: int) -> dict[str, Any]:
    env_id = task["env_id"]
    agent = SAC("MlpPolicy", gym.make(env_id), seed=seed, device="cpu")
    start, history, done = time.perf_counter(), [], 0
    while done < steps:
        agent.learn(every, reset_num_timesteps=done == 0)
        done += every
        value = score(agent, env_id, task["metric"], evals, seed)
        history.append(value)
        if value >= task["threshold"]:
            return {"steps": done, "history": history, "seconds": time.perf_counter() - start}
    return {"steps": None, "history": history, "seconds": time.perf_counter() - start}


def run_reference(
    task: dict[str, Any], seeds: list[int], steps: int, evals: int, each_start: bool
) -> None:
    """SAC trained ``steps`` steps per seed, scored on every seed's evaluation starts
    (``each_start``: also episode by episode, :func:`per_start`)."""
    env_id = task["env_id"]
    for train_seed in seeds:
        agent = SAC("MlpPolicy", gym.make(env_id), seed=train_seed, device="cpu")
        start = time.perf_counter()
        agent.learn(steps)
        scores = ", ".join(
            f"seed {s}'s starts {score(agent, env_id, task['metric'], evals, s):.2f}"
            for s in seeds
        )
        print(
            f"  reference: SAC seed {train_seed} after {steps} steps "
            f"({time.perf_counter() - start:.0f} s): {scores}",
            flush=True,
        )
        for s in seeds if each_start else []:
            rows = per_start(agent, env_id, evals, s)
            print_per_start(f"SAC seed {train_seed} on seed {s}'s starts", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=15, help="PILCO's real episodes")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--sac-steps", type=int, default=20_000)
    parser.add_argument("--sac-eval-freq", type=int, default=1_000)
    parser.add_argument("--skip-sac", action="store_true")
    parser.add_argument("--skip-pilco", action="store_true")
    parser.add_argument(
        "--reference-steps",
        type=int,
        default=0,
        help="train SAC this long per seed and score it on every seed's evaluation starts",
    )
    parser.add_argument(
        "--per-start",
        action="store_true",
        help="Pendulum: print each evaluation episode of PILCO's last controller and of the "
        "reference SAC (start, return, first step near upright)",
    )
    parser.add_argument(
        "--predicted-vs-real",
        action="store_true",
        help="Pendulum: per start Gaussian of PILCO's last controller, the summed cost it "
        "predicts against real runs from starts drawn from that Gaussian",
    )
    parser.add_argument(
        "--score-on",
        type=int,
        nargs="*",
        default=[],
        help="also score PILCO's last controller on these seeds' evaluation starts",
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--set",
        default="{}",
        help='JSON of PILCO settings over the preset, e.g. \'{"restarts": 2}\'',
    )
    args = parser.parse_args()
    if args.per_start and args.task != "pendulum":
        parser.error("--per-start: Pendulum only (it reads the pole's angle from cos and sin)")
    if args.predicted_vs_real and args.task != "pendulum":
        parser.error("--predicted-vs-real: Pendulum only (it sets Pendulum's state)")
    torch.set_num_threads(args.threads)
    task = TASKS[args.task]
    print(
        f"{task['env_id']}: mean {task['metric']} >= {task['threshold']} "
        f"({args.eval_episodes} deterministic episodes)"
    )
    for seed in [] if args.skip_pilco else args.seeds:
        result = run_pilco(task, seed, args.episodes, args.eval_episodes, json.loads(args.set))
        curve = ", ".join(f"{v:.2f}" for v in result["history"])
        print(
            f"  PILCO seed {seed}: {result['episodes']} episodes ({result['steps']} steps), "
            f"{result['seconds']:.0f} s; after each episode: {curve}",
            flush=True,
        )
        if args.per_start:
            rows = per_start(result["agent"], task["env_id"], args.eval_episodes, seed)
            print_per_start(f"PILCO seed {seed}'s last controller", rows)
        for other in args.score_on:
            agent = result["agent"]
            value = score(agent, task["env_id"], task["metric"], args.eval_episodes, other)
            print(f"    PILCO seed {seed}'s last controller on seed {other}'s starts: {value:.2f}")
        if args.predicted_vs_real:
            rows = predicted_against_real(result["agent"], task["env_id"])
            print_predicted_against_real(f"PILCO seed {seed}'s last controller", rows)
    if args.reference_steps:
        run_reference(
            task, args.seeds, args.reference_steps, args.eval_episodes, args.per_start
        )
    if args.skip_sac:
        return
    for seed in args.seeds:
        result = run_sac(task, seed, args.sac_steps, args.sac_eval_freq, args.eval_episodes)
        curve = ", ".join(f"{v:.2f}" for v in result["history"])
        print(
            f"  SAC seed {seed}: {result['steps']} steps, {result['seconds']:.0f} s; "
            f"every {args.sac_eval_freq} steps: {curve}",
            flush=True,
        )


if __name__ == "__main__":
    main()
