"""How a Ray actor rebuilds the learner's algorithm on its own CPU."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mbwrap.spaces import space_from_json, space_to_json


def import_path(path: str) -> Any:
    """The object ``"module:QualName"`` names (what an actor is told instead of a class,
    so that it imports the algorithm from its own installed package)."""
    module, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def worker_seed(seed: int | None, index: int, life: int) -> int | None:
    """The seed of the random streams of worker ``index`` in its ``life``-th life (0
    before any restart).

    Worker 0's first life takes ``seed`` itself, so that one worker reproduces the
    in-process run; every other (worker, life) draws its own stream.
    """
    if seed is None:
        return None
    if index == 0 and life == 0:
        return seed
    return int(np.random.SeedSequence([seed, index, life]).generate_state(1)[0])


def numpy_to_tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The learner's :meth:`get_tensors`, sent as NumPy arrays, as tensors again (writable
    copies: Ray hands out read-only views of its object store)."""
    return {key: torch.from_numpy(np.array(value)) for key, value in arrays.items()}


@dataclass(frozen=True)
class CopySpec:
    """What an actor needs to rebuild the learner's algorithm, in a form Ray sends as is.

    :param algo_class: ``"module:QualName"`` of the algorithm (imported by the actor from
        its own installed package).
    :param observation_space: the algorithm's, as :func:`~mbwrap.spaces.space_to_json`.
    :param action_space: likewise.
    :param config: the copy's settings (the learner's :meth:`get_config`, with changes).
    """

    algo_class: str
    observation_space: dict[str, Any]
    action_space: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, algo: Any, changes: dict[str, Any] | None = None) -> CopySpec:
        """The spec of ``algo``, its settings updated with ``changes``."""
        kind = type(algo)
        return cls(
            f"{kind.__module__}:{kind.__qualname__}",
            space_to_json(algo.observation_space),
            space_to_json(algo.action_space),
            {**algo.get_config(), **(changes or {})},
        )


class CpuCopy:
    """The recipe of an actor's copy of the learner's algorithm: its class, spaces and
    settings, moved to the CPU and kept from starting workers or logs of its own.

    :param spec: what to rebuild.
    :param threads: torch threads of this process (the actor's CPUs).
    """

    def __init__(self, spec: CopySpec, threads: int = 1) -> None:
        algo_class, config = spec.algo_class, spec.config
        observation_space, action_space = spec.observation_space, spec.action_space
        torch.set_num_threads(max(1, threads))
        self.cls = import_path(algo_class)
        self.spaces = space_from_json(observation_space), space_from_json(action_space)
        self.config = {
            **config,
            "device": "cpu",
            "num_workers": 0,
            "verbose": 0,
            "tensorboard_log": None,
        }
        if "replay_actor" in config:  # the copy's replay is its own, in its process
            self.config["replay_actor"] = False
        #: The learner's seed (``None``: unseeded).
        self.seed: int | None = config.get("seed")

    def build(self, env: Any, index: int, life: int) -> Any:
        """A copy seeded for worker ``index`` in its ``life``-th life (see
        :func:`worker_seed`), acting in ``env`` (``None``: none)."""
        config = {**self.config, "seed": worker_seed(self.seed, index, life)}
        return self.cls._rebuild(env, *self.spaces, config)
