"""Imagined steps per second of ``mbwrap.DreamVecEnv`` next to the real env's.

Two models, each over the env it was fitted on from uniformly random real data:

- ``tabular`` (built in) on ``mbwrap/DynaMaze-v0``, reward and termination from the
  registered ``mbwrap.fns`` entry;
- ``linear`` (the ``mbwrap-linear`` example plugin) on ``Pendulum-v1``.

Each dream env is stepped through the Gymnasium ``VectorEnv`` API with random batched
actions (drawn before timing, so the sampler is not measured) for every ``num_envs``;
autoresets at the horizon are part of the measured stepping, as they are for the real
envs. The real env is measured in the same run, as a single ``gymnasium.Env`` and as a
``SyncVectorEnv``. Every figure is the median of ``--repeats`` timed runs after a warm-up.

Usage::

    python benchmarks/dream_throughput.py            # full run, under 3 minutes on 2 cores
    python benchmarks/dream_throughput.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector.utils import batch_space

import mbwrap
from mbwrap.errors import UnknownPluginError

NUM_ENVS = (1, 4, 16, 64, 256, 1024, 4096)
QUICK_NUM_ENVS = (1, 16, 256)
#: (model registry name, Gymnasium env id, real transitions to fit on, imagined horizon)
CASES = (
    # No time limit in the maze (Sutton & Barto 2018, Fig. 8.2); 200 keeps random
    # imagined walks from running forever.
    ("tabular", "mbwrap/DynaMaze-v0", 10_000, 200),
    # Pendulum-v1's own TimeLimit.
    ("linear", "Pendulum-v1", 5_000, 200),
)
#: Action batches cycled through while timing; several, so no single batch is special.
ACTION_POOL = 8


@dataclass(frozen=True)
class Timing:
    """Steps per second over the timed repeats."""

    median: float
    spread: float  # (max - min) / median over the repeats

    @classmethod
    def from_rates(cls, rates: list[float]) -> Timing:
        median = statistics.median(rates)
        return cls(median, (max(rates) - min(rates)) / median)


def measure(
    step: Callable[[], None], steps_per_call: int, *, warmup_s: float, repeat_s: float, repeats: int
) -> Timing:
    """Time ``step()`` (which advances ``steps_per_call`` env steps) after a warm-up.

    The warm-up also calibrates how many calls make one repeat of about ``repeat_s``.
    """
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < warmup_s:
        step()
        calls += 1
    per_call = (time.perf_counter() - start) / calls
    calls_per_repeat = max(3, math.ceil(repeat_s / per_call))
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls_per_repeat):
            step()
        rates.append(calls_per_repeat * steps_per_call / (time.perf_counter() - start))
    return Timing.from_rates(rates)


def action_pool(space: gym.Space, num_envs: int | None, seed: int) -> list[np.ndarray]:
    """``ACTION_POOL`` random actions: ``[num_envs, *act_shape]`` each, or single actions
    when ``num_envs`` is ``None``."""
    space = space if num_envs is None else batch_space(space, num_envs)
    space.seed(seed)
    return [space.sample() for _ in range(ACTION_POOL)]


def real_single(env_id: str, timing: dict) -> Timing:
    """Steps per second of one ``gymnasium.Env``, reset by hand when an episode ends."""
    env = gym.make(env_id)
    env.reset(seed=0)
    actions = action_pool(env.action_space, None, seed=1)
    t = 0

    def step() -> None:
        nonlocal t
        _, _, terminated, truncated, _ = env.step(actions[t % ACTION_POOL])
        t += 1
        if terminated or truncated:
            env.reset()

    result = measure(step, 1, **timing)
    env.close()
    return result


def real_sync_vector(env_id: str, num_envs: int, timing: dict) -> Timing:
    """Steps per second (summed over envs) of a ``SyncVectorEnv`` of ``num_envs`` copies."""
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync")
    envs.reset(seed=0)
    actions = action_pool(envs.single_action_space, num_envs, seed=1)
    t = 0

    def step() -> None:
        nonlocal t
        envs.step(actions[t % ACTION_POOL])  # autoresets by itself
        t += 1

    result = measure(step, num_envs, **timing)
    envs.close()
    return result


def fitted_model(
    name: str, env_id: str, steps: int, device: str
) -> tuple[mbwrap.WorldModel, mbwrap.ReplayBuffer]:
    """Collect ``steps`` random real transitions and fit model ``name`` on them."""
    env = gym.make(env_id)
    buffer = mbwrap.ReplayBuffer(env.observation_space, env.action_space, steps, device=device)
    mbwrap.collect(env, buffer, steps, seed=0)
    env.close()
    try:
        model = mbwrap.make_model(
            name, env.observation_space, env.action_space, env_id=env_id, device=device
        )
    except UnknownPluginError as err:
        hint = "install the plugin: pip install -e plugins/mbwrap-linear"
        raise SystemExit(f"{err}\n{hint}") from err
    model.fit(buffer)
    return model, buffer


def dream(
    model: mbwrap.WorldModel,
    buffer: mbwrap.ReplayBuffer,
    num_envs: int,
    horizon: int,
    timing: dict,
) -> Timing:
    """Imagined steps per second (summed over envs) of a ``DreamVecEnv`` over ``model``."""
    envs = mbwrap.DreamVecEnv(model, num_envs, start_states=buffer, horizon=horizon)
    envs.reset(seed=0)
    actions = action_pool(envs.single_action_space, num_envs, seed=1)
    t = 0

    def step() -> None:
        nonlocal t
        envs.step(actions[t % ACTION_POOL])
        t += 1

    return measure(step, num_envs, **timing)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few sizes, short repeats")
    parser.add_argument("--device", default="auto", help="torch device of the models")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (median)")
    parser.add_argument("--vector-envs", type=int, default=16, help="SyncVectorEnv size")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    num_envs = QUICK_NUM_ENVS if args.quick else NUM_ENVS
    repeats = args.repeats or (3 if args.quick else 5)
    timing = {
        "warmup_s": 0.1 if args.quick else 0.5,
        "repeat_s": 0.1 if args.quick else 1.0,
        "repeats": repeats,
    }
    device = mbwrap.resolve_device(args.device)
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    print(f"device: {device}{gpu}")
    print(f"cpu: {cpu_model()}, torch threads: {torch.get_num_threads()}")
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"gymnasium {gym.__version__}, numpy {np.__version__}, mbwrap {mbwrap.__version__}"
    )
    # Other processes on the machine distort every figure; record how busy it was.
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(
        f"median of {repeats} repeats of ~{timing['repeat_s']} s "
        f"after a {timing['warmup_s']} s warm-up\n"
    )

    real_rows, dream_rows = [], []
    for name, env_id, fit_steps, horizon in CASES:
        single = real_single(env_id, timing)
        vector = real_sync_vector(env_id, args.vector_envs, timing)
        real_rows.append((env_id, "gymnasium.Env, 1 env", single))
        real_rows.append((env_id, f"SyncVectorEnv, {args.vector_envs} envs", vector))
        model, buffer = fitted_model(name, env_id, fit_steps, str(device))
        for n in num_envs:
            result = dream(model, buffer, n, horizon, timing)
            dream_rows.append((name, env_id, n, result, single, vector))

    print("| real env | stepping | steps/s | spread |")
    print("|---|---|---:|---:|")
    for env_id, how, result in real_rows:
        print(f"| {env_id} | {how} | {result.median:,.0f} | {result.spread:.0%} |")
    print()
    sync = f"SyncVectorEnv({args.vector_envs})"
    print(f"| model | env | num_envs | imagined steps/s | spread | ÷ real 1 env | ÷ real {sync} |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, env_id, n, result, single, vector in dream_rows:
        print(
            f"| {name} | {env_id} | {n} | {result.median:,.0f} | {result.spread:.0%} | "
            f"{result.median / single.median:.2f} | {result.median / vector.median:.2f} |"
        )
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
