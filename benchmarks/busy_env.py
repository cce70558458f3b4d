"""An env whose step costs about 1 ms of CPU: CartPole's dynamics plus a spin of
``step_cost_s`` (a stand-in for a simulator that is slow to step)."""

from __future__ import annotations

import time

import gymnasium as gym
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

ENV_ID = "mbwrap-bench/BusyCartPole-v1"


class BusyCartPole(CartPoleEnv):
    """CartPole whose every step also spins the CPU for ``step_cost_s`` seconds."""

    def __init__(self, step_cost_s: float = 1e-3, **kwargs) -> None:
        super().__init__(**kwargs)
        self.step_cost_s = step_cost_s

    def step(self, action):
        end = time.perf_counter() + self.step_cost_s
        while time.perf_counter() < end:  # busy, not sleeping: the cost is CPU time
            pass
        return super().step(action)


def register() -> None:
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point="busy_env:BusyCartPole", max_episode_steps=500)


def make() -> gym.Env:
    """``gym.make`` of the registered env (picklable by reference for subprocesses)."""
    return gym.make(ENV_ID)


register()  # on import, so that subprocesses and Ray workers importing this module find it
