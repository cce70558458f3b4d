"""How a worker on another process builds its own copies of the real env."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import gymnasium as gym
from stable_baselines3.common.vec_env import VecEnv

EnvMaker = Callable[[], gym.Env]


def _spec_of(env: gym.Env | VecEnv) -> Any:
    if isinstance(env, VecEnv):
        try:
            return env.get_attr("spec", indices=[0])[0]
        except (AttributeError, IndexError):
            return None
    return env.spec


def env_maker(env: gym.Env | VecEnv) -> EnvMaker:
    """A picklable function that makes one more copy of ``env`` (of its first copy, for
    a ``VecEnv``), from its Gymnasium spec: the id, its keywords and the wrappers
    ``gymnasium.make`` applied.

    :raises ValueError: naming ``env`` when it has no spec (it was not made by
        ``gymnasium.make``), so a worker could not rebuild it.
    """
    spec = _spec_of(env)
    if spec is None or getattr(spec, "id", None) is None:
        raise ValueError(
            f"env: num_workers > 0 rebuilds the env on each worker from its Gymnasium "
            f"spec, and this {type(env).__name__} has none; register the env "
            "(gymnasium.register) and make it with gymnasium.make(id)"
        )
    # SB3's Monitor (added by mbwrap or the user) is put back by the worker itself.
    wrappers = tuple(w for w in spec.additional_wrappers if w.name != "Monitor")
    maker = _MakeFromSpec(dataclasses.replace(spec, additional_wrappers=wrappers))
    try:
        maker().close()  # fail here, naming the env, rather than on every worker
    except Exception as err:
        raise ValueError(
            f"env: num_workers > 0 rebuilds the env on each worker with gymnasium.make from "
            f"its spec ({spec.id!r}), which failed: {err}"
        ) from err
    return maker


class _MakeFromSpec:
    """``gymnasium.make(spec)`` as a picklable callable (a lambda would not pickle
    by reference)."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec

    def __call__(self) -> gym.Env:
        return gym.make(self.spec)

    def __repr__(self) -> str:
        return f"make({self.spec.id!r})"
