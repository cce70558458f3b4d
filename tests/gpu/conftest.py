"""The device the GPU suite runs on, and what its tests share.

Every test here takes the ``device`` fixture: ``cuda`` where a CUDA GPU is present; the
CPU where ``MBWRAP_GPU_TESTS_ON_CPU=1`` (to check the suite itself on a machine without
one); otherwise the test is skipped. On the CPU the accelerator's code paths are forced
(:func:`mbwrap.device.force_accelerator_paths`), so that the host reads counted here are
those a GPU run makes, not the CPU's early exits.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces

from mbwrap.buffers import ReplayBuffer
from mbwrap.device import force_accelerator_paths

#: Set to ``1`` to run the suite on the CPU where there is no CUDA GPU.
ON_CPU_ENV_VAR = "MBWRAP_GPU_TESTS_ON_CPU"


@pytest.fixture
def device() -> torch.device:
    """``cuda`` when available; the CPU when ``MBWRAP_GPU_TESTS_ON_CPU=1``; else a skip."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if os.environ.get(ON_CPU_ENV_VAR, "") == "1":
        return torch.device("cpu")
    pytest.skip("needs a CUDA GPU")


@pytest.fixture(autouse=True)
def _accelerator_paths(device: torch.device) -> Iterator[None]:
    """On the CPU, take the paths a GPU takes (no early exits that read a flag per level or
    per iteration), so that the checks below check what a GPU run does."""
    if device.type == "cpu":
        with force_accelerator_paths():
            yield
    else:
        yield


def on_device(tensor: torch.Tensor, device: torch.device) -> bool:
    """Whether ``tensor`` lives on ``device`` (``cuda`` matches any ``cuda:N``)."""
    return tensor.device.type == device.type and (
        device.index is None or tensor.device.index == device.index
    )


def tensors_in(value: Any) -> list[torch.Tensor]:
    """Every tensor in ``value``: a tensor, a (named) tuple, list or dict of them."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensors_in(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors_in(v)]
    return []


def random_buffer(
    observation_space: spaces.Space,
    action_space: spaces.Space,
    device: torch.device,
    *,
    n_envs: int = 4,
    steps: int = 32,
    episode: int = 8,
    seed: int = 0,
) -> ReplayBuffer:
    """A buffer on ``device`` of ``n_envs`` streams of ``steps`` random transitions, in
    episodes of ``episode`` steps that start at each stream's first row (truncated at
    their ends), each observation the previous step's next one.

    The buffer holds twice as many rows as are written, so that it never wraps: models
    that fit whole episodes (local-linear) know where each one starts.
    """
    observation_space.seed(seed)
    action_space.seed(seed + 1)
    rng = np.random.default_rng(seed)

    def batch(space: spaces.Space) -> np.ndarray:
        return np.stack([space.sample() for _ in range(n_envs)])

    buffer = ReplayBuffer(
        observation_space, action_space, 2 * n_envs * steps, device=device, n_envs=n_envs
    )
    obs = batch(observation_space)
    for t in range(steps):
        next_obs = batch(observation_space)
        last = np.full(n_envs, (t + 1) % episode == 0)
        buffer.add(
            obs,
            batch(action_space),
            rng.normal(size=n_envs),
            next_obs,
            np.zeros(n_envs, bool),
            last,
        )
        obs = np.where(
            last.reshape(-1, *([1] * (obs.ndim - 1))), batch(observation_space), next_obs
        )
    return buffer
