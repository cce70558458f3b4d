"""What the tests of Ray actors share: one Ray session per module that asks for it, an
actor killer and tiny MuZero settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from stable_baselines3.common.callbacks import BaseCallback


@pytest.fixture(scope="module")
def ray_session():
    """``ray.init(num_cpus=2)`` once for the module that uses it."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


class KillWorker(BaseCallback):
    """Kills worker 0 of ``pool()`` (Ray restarts it) once the run passes ``at`` steps."""

    def __init__(self, pool: Callable[[], Any], at: int) -> None:
        super().__init__()
        self.pool, self.at, self.done = pool, at, False

    def _on_step(self) -> bool:
        if not self.done and self.num_timesteps >= self.at:
            import ray

            ray.kill(self.pool().workers[0], no_restart=False)
            self.done = True
        return True


@pytest.fixture
def kill_worker() -> type[KillWorker]:
    """``kill_worker(lambda: algo.worker_pool, at=50)``: a callback that kills worker 0."""
    return KillWorker


@pytest.fixture
def tiny_muzero() -> dict[str, Any]:
    """MuZero settings small enough for a test to play and train in seconds."""
    return {
        "num_simulations": 4,
        "network_kwargs": {"hidden_size": 16, "layers": 1, "support_size": 5},
        "batch_size": 16,
        "learning_starts": 20,
        "train_freq": 4,
        "gradient_steps": 1,
        "buffer_size": 2_000,
        "device": "cpu",
    }
