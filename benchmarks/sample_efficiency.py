"""Real env steps to reach a return, for a model-based method and its model-free peer.

Side by side in one run, same seeds, same evaluation (``--eval-episodes`` deterministic
episodes on the real env every ``--eval-freq`` real steps):

- ``pendulum``: MBPO (SAC in a learned ensemble) against SB3's SAC, to a mean return of
  -200 on ``Pendulum-v1``;
- ``cartpole``: Dyna with PPO (PPO trained only in the learned model) against SB3's PPO,
  to a mean return of 475 on ``CartPole-v1``;
- ``pendulum-td3``: MVE (its preset, without the TD-k trick, and with it) and STEVE, each
  training TD3, against SB3's TD3 with the same settings, to -200 on ``Pendulum-v1``;
- ``inverted-pendulum-td3``: the same four with the same settings, to 950 (of 1,000) on
  MuJoCo's ``InvertedPendulum-v5``;
- ``pendulum-td3-poor-model``: MVE (the preset) and STEVE with a deliberately poor model
  (one hidden layer of 16 units, refitted every 1,000 real steps), to -200 on
  ``Pendulum-v1``: where STEVE's paper expects it to keep its gain and MVE to lose it;
  ``pendulum-td3-stale-model``: the same model fitted once, on the random steps;
- ``point-goal``: TDM (its preset, vector and scalar) against SB3's DDPG with SB3's
  ``HerReplayBuffer`` (same networks, Polyak rate and exploration noise), to a success rate
  of 0.9 on ``mbwrap/PointGoal-v0``;
- ``point-maze``: the same on Gymnasium-Robotics' ``PointMaze_UMaze-v3`` (the
  ``robotics`` extra; episodes end at the goal), 2 x 256 networks. (Its ``FetchReach-v4``
  fails to reset under MuJoCo 4.0.)

Prints, per method and seed, the first evaluated real step count at which the mean return
reached the threshold, and the ratio of each model-based median to the model-free one
(the task's last method).

Usage::

    python benchmarks/sample_efficiency.py pendulum --seeds 0 1 2
    python benchmarks/sample_efficiency.py cartpole --seeds 0 1 2
    python benchmarks/sample_efficiency.py pendulum-td3 --seeds 0 1 2
    python benchmarks/sample_efficiency.py point-goal --seeds 0 1 2 --eval-episodes 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import DDPG, PPO, SAC, TD3, HerReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import NormalActionNoise

import mbwrap
from mbwrap.algos.presets import (
    CARTPOLE_DYNA,
    PENDULUM_MBPO,
    PENDULUM_MVE,
    PENDULUM_STEVE,
    PENDULUM_TD3_KWARGS,
    POINT_GOAL_TDM,
)


@dataclass
class Task:
    env_id: str
    threshold: float
    budget: dict[str, int]  # method -> real step budget
    make: dict[str, Callable[[gym.Env, int], Any]] = field(default_factory=dict)
    #: ``"return"``: the mean return; ``"success"``: the share of episodes whose last step
    #: reports ``is_success``.
    metric: str = "return"
    env_kwargs: dict[str, Any] = field(default_factory=dict)


class ReachThreshold(BaseCallback):
    """Evaluate every ``eval_freq`` real steps; stop once the mean return reaches a
    threshold and remember the step count."""

    def __init__(
        self,
        env_id: str,
        threshold: float,
        eval_freq: int,
        episodes: int,
        seed: int,
        metric: str = "return",
        env_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.metric = metric
        self.eval_env = Monitor(gym.make(env_id, **(env_kwargs or {})))
        self.eval_env.reset(seed=seed + 10_000)
        self.threshold, self.eval_freq, self.episodes = threshold, eval_freq, episodes
        self.reached_at: int | None = None
        self.history: list[tuple[int, float]] = []
        self._next = eval_freq

    def _on_step(self) -> bool:
        if self.num_timesteps < self._next:
            return True
        self._next += self.eval_freq
        successes: list[bool] = []

        def record(local: dict[str, Any], _: Any) -> None:
            if local["done"]:
                successes.append(bool(local["info"].get("is_success")))

        mean, _ = evaluate_policy(
            self.model,
            self.eval_env,
            n_eval_episodes=self.episodes,
            deterministic=True,
            warn=False,
            callback=record,
        )
        if self.metric == "success":
            mean = float(np.mean(successes))
        self.history.append((self.num_timesteps, float(mean)))
        if mean >= self.threshold:
            self.reached_at = self.num_timesteps
            return False
        return True


def _pendulum_task() -> Task:
    return Task(
        "Pendulum-v1",
        -200.0,
        budget={"mbpo": 3_000, "sac": 10_000},
        make={
            "mbpo": lambda env, seed: mbwrap.make_algo("mbpo", env, seed=seed, **PENDULUM_MBPO),
            "sac": lambda env, seed: SAC("MlpPolicy", env, seed=seed, verbose=0),
        },
    )


def _cartpole_task() -> Task:
    return Task(
        "CartPole-v1",
        475.0,
        budget={"dyna-ppo": 10_000, "ppo": 60_000},
        make={
            "dyna-ppo": lambda env, seed: mbwrap.make_algo("dyna", env, seed=seed, **CARTPOLE_DYNA),
            "ppo": lambda env, seed: PPO("MlpPolicy", env, seed=seed, verbose=0),
        },
    )


def _td3(env: gym.Env, seed: int) -> TD3:
    """SB3's TD3 as MVE's and STEVE's presets configure it."""
    dim = env.action_space.shape[0]
    noise = NormalActionNoise(np.zeros(dim), 0.1 * np.ones(dim))
    return TD3(
        "MlpPolicy",
        env,
        seed=seed,
        learning_starts=1000,
        action_noise=noise,
        **PENDULUM_TD3_KWARGS,
    )


def _value_expansion_task(env_id: str, threshold: float, budget: int, td3_budget: int) -> Task:
    """MVE (its preset, and with the TD-k trick) and STEVE training TD3, against TD3."""
    return Task(
        env_id,
        threshold,
        budget={"mve-td3": budget, "mve-td3-td-k": budget, "steve-td3": budget, "td3": td3_budget},
        make={
            "mve-td3": lambda env, seed: mbwrap.make_algo("mve", env, seed=seed, **PENDULUM_MVE),
            "mve-td3-td-k": lambda env, seed: mbwrap.make_algo(
                "mve", env, seed=seed, **{**PENDULUM_MVE, "td_k": True}
            ),
            "steve-td3": lambda env, seed: mbwrap.make_algo(
                "steve", env, seed=seed, **PENDULUM_STEVE
            ),
            "td3": _td3,
        },
    )


def _poor_model_task(refit_every: int = 1000) -> Task:
    """MVE and STEVE, their presets with a small, rarely refitted model, against TD3."""
    poor = {"model_kwargs": {"hidden_sizes": [16]}, "model_train_freq": refit_every}
    steve_model = {**PENDULUM_STEVE["model_kwargs"], **poor["model_kwargs"]}
    return Task(
        "Pendulum-v1",
        -200.0,
        budget={"mve-td3": 8_000, "steve-td3": 8_000, "td3": 10_000},
        make={
            "mve-td3": lambda env, seed: mbwrap.make_algo(
                "mve", env, seed=seed, **{**PENDULUM_MVE, **poor}
            ),
            "steve-td3": lambda env, seed: mbwrap.make_algo(
                "steve", env, seed=seed, **{**PENDULUM_STEVE, **poor, "model_kwargs": steve_model}
            ),
            "td3": _td3,
        },
    )


def _ddpg_her(env: gym.Env, seed: int, tdm_settings: dict[str, Any]) -> DDPG:
    """SB3's DDPG with its HerReplayBuffer ("future", k = 4) and HER's discount 0.98
    (Andrychowicz et al. 2017, Appendix A), with the TDM preset's networks, Polyak rate,
    exploration noise and random steps."""
    dim = env.action_space.shape[0]
    noise = NormalActionNoise(np.zeros(dim), 0.2 * np.ones(dim))
    return DDPG(
        "MultiInputPolicy",
        env,
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs={"n_sampled_goal": 4, "goal_selection_strategy": "future"},
        gamma=0.98,
        action_noise=noise,
        learning_starts=tdm_settings["learning_starts"],
        seed=seed,
        **tdm_settings["agent_kwargs"],
    )


def _goal_task(env_id: str, tdm_settings: dict[str, Any], budget: int) -> Task:
    """TDM (vector and scalar) against DDPG + HER, to a success rate of 0.9."""
    return Task(
        env_id,
        0.9,
        budget={"tdm": budget, "tdm-scalar": budget, "ddpg-her": budget},
        make={
            "tdm": lambda env, seed: mbwrap.make_algo("tdm", env, seed=seed, **tdm_settings),
            "tdm-scalar": lambda env, seed: mbwrap.make_algo(
                "tdm", env, seed=seed, **{**tdm_settings, "vectorized": False}
            ),
            "ddpg-her": lambda env, seed: _ddpg_her(env, seed, tdm_settings),
        },
        metric="success",
    )


def _point_maze_task() -> Task:
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    settings = {
        **POINT_GOAL_TDM,
        "agent_kwargs": {
            **POINT_GOAL_TDM["agent_kwargs"],
            "policy_kwargs": {"net_arch": [256, 256]},
        },
        "learning_starts": 1000,
    }
    task = _goal_task("PointMaze_UMaze-v3", settings, 30_000)
    task.env_kwargs = {"continuing_task": False}
    return task


TASKS = {
    "pendulum": _pendulum_task,
    "cartpole": _cartpole_task,
    "pendulum-td3": lambda: _value_expansion_task("Pendulum-v1", -200.0, 8_000, 10_000),
    "inverted-pendulum-td3": lambda: _value_expansion_task(
        "InvertedPendulum-v5", 950.0, 10_000, 15_000
    ),
    "pendulum-td3-poor-model": _poor_model_task,
    # The same model fitted once, on the 1,000 random steps, and never again.
    "pendulum-td3-stale-model": lambda: _poor_model_task(refit_every=10**9),
    "point-goal": lambda: _goal_task("mbwrap/PointGoal-v0", POINT_GOAL_TDM, 10_000),
    "point-maze": _point_maze_task,
}


def run(task: Task, method: str, seed: int, eval_freq: int, episodes: int) -> dict[str, Any]:
    env = gym.make(task.env_id, **task.env_kwargs)
    learner = task.make[method](env, seed)
    probe = ReachThreshold(
        task.env_id, task.threshold, eval_freq, episodes, seed, task.metric, task.env_kwargs
    )
    start = time.perf_counter()
    learner.learn(task.budget[method], callback=probe)
    return {
        "method": method,
        "seed": seed,
        "reached_at": probe.reached_at,
        "history": probe.history,
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-freq", type=int, default=250)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--methods", nargs="+", help="subset of the task's methods")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = TASKS[args.task]()
    methods = args.methods or list(task.make)
    print(
        f"{task.env_id}: real steps to a mean {task.metric} >= {task.threshold} "
        f"({args.eval_episodes} deterministic episodes every {args.eval_freq} steps)"
    )
    results = []
    for method in methods:
        for seed in args.seeds:
            result = run(task, method, seed, args.eval_freq, args.eval_episodes)
            results.append(result)
            last = result["history"][-1][1] if result["history"] else float("nan")
            print(
                f"  {method:>9} seed {seed}: reached at {result['reached_at']} "
                f"(last eval {last:.1f}, {result['seconds']:.0f} s)",
                flush=True,
            )
    print()
    print("| method | seeds | steps to threshold (per seed) | median |")
    print("|---|---|---|---:|")
    medians = {}
    for method in methods:
        reached = [r["reached_at"] for r in results if r["method"] == method]
        done = [s for s in reached if s is not None]
        medians[method] = statistics.median(done) if len(done) == len(reached) else None
        cells = ", ".join("not reached" if s is None else f"{s:,}" for s in reached)
        median = "n/a" if medians[method] is None else f"{medians[method]:,.0f}"
        print(f"| {method} | {len(reached)} | {cells} | {median} |")
    peer = methods[-1]
    for method in methods[:-1]:
        if medians[method] and medians[peer]:
            ratio = medians[method] / medians[peer]
            print(f"{method} / {peer} median real steps: {ratio:.2f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                results, handle, default=lambda x: x.item() if isinstance(x, np.generic) else x
            )


if __name__ == "__main__":
    main()
