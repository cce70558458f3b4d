"""MuZero's replay on its own Ray actor, as muzero-general's ReplayBuffer actor: the
learner sends what the self-play actors played, samples prioritised batches (the next
one drawn while it trains on the last) and sends the new priorities back."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from mbwrap.buffers.prioritized import PrioritizedBatch
from mbwrap.distributed.actor_group import ActorGroup, WorkerLostWarning
from mbwrap.distributed.cpu_copy import CopySpec, CpuCopy, numpy_to_tensors
from mbwrap.distributed.self_play import store_played


def _arrays(tensors: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {key: value.detach().cpu().numpy() for key, value in tensors.items()}


class ReplayWorker:
    """Holds the replay of a CPU copy of the algorithm (the same buffer class and settings
    as the learner's, seeded from its seed); run as a Ray actor by :class:`RemoteReplay`,
    or in-process in tests.

    :param spec: the algorithm to rebuild (its copy runs on the CPU).
    :param index: always 0 (one replay).
    :param threads: torch threads (its CPUs).
    """

    def __init__(
        self,
        spec: CopySpec,
        index: int = 0,
        threads: int = 1,
    ) -> None:
        self._recipe = CpuCopy(spec, threads)
        self.index = index
        self.start(life=0)

    def start(self, life: int) -> None:
        """Start this life's replay, empty."""
        self.buffer = self._recipe.build(None, self.index, life).buffer

    def set_weights(self, arrays: dict[str, np.ndarray], version: int) -> int:
        """A replay holds no weights (what :class:`ActorGroup` calls after a restart)."""
        return version

    def store(self, stored: list[dict[str, Any]]) -> tuple[int, int]:
        """Add what self-play actors played (:attr:`SelfPlayRound.stored`), in order;
        return ``(positions held, positions ever added)``."""
        store_played(self.buffer, stored)
        return self.buffer.num_positions, self.buffer.added

    def sample(self, batch_size: int, bootstrap: bool = False) -> dict[str, np.ndarray] | None:
        """A prioritised batch (:class:`PrioritizedBatch`'s fields as arrays), or ``None``
        while the replay holds no position.

        :param bootstrap: also return what the learner needs to bootstrap the value
            targets from its networks (``bootstrap_obs [B, K + 1, *obs_shape]``,
            ``bootstrap_scale`` and ``bootstrap_stored [B, K + 1]``; see
            :meth:`~mbwrap.buffers.PrioritizedTrajectoryBuffer.bootstrap_terms`).
        """
        buffer = self.buffer
        if buffer.num_positions == 0:
            return None
        batch = buffer.sample(batch_size)
        arrays = {name: value.numpy() for name, value in batch._asdict().items()}
        if bootstrap:
            rows, scale = buffer.bootstrap_terms(batch.indices)
            arrays["bootstrap_obs"] = buffer.obs[rows].numpy()
            arrays["bootstrap_scale"] = scale.numpy()
            arrays["bootstrap_stored"] = buffer.root_value[rows].numpy()
        return arrays

    def update_priorities(self, rows: np.ndarray, priorities: np.ndarray) -> None:
        """Set the priorities of ``rows`` (what a batch's ``indices`` were)."""
        self.buffer.update_priorities(
            torch.from_numpy(np.array(rows)), torch.from_numpy(priorities)
        )

    def positions_to_reanalyse(self, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The buffer's :meth:`positions_to_reanalyse`, as arrays."""
        rows, index, obs = self.buffer.positions_to_reanalyse(count)
        return rows.numpy(), index.numpy(), obs.numpy()

    def apply_search(
        self, rows: np.ndarray, values: np.ndarray, policies: np.ndarray, index: np.ndarray
    ) -> None:
        """Store new search results where ``rows`` still hold the positions ``index``."""
        self.buffer.apply_search(
            torch.from_numpy(rows),
            torch.from_numpy(np.array(values)),
            torch.from_numpy(np.array(policies)),
            index=torch.from_numpy(index),
        )

    def state_dict(self) -> dict[str, np.ndarray]:
        """The replay's state (as the learner's buffer's ``state_dict``), as arrays."""
        return _arrays(self.buffer.state_dict())

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self.buffer.load_state_dict(numpy_to_tensors(arrays))

    def pid(self) -> int:
        """The actor's process id (tests kill it)."""
        return os.getpid()


class ReplayLostWarning(WorkerLostWarning):
    """The replay actor died; Ray restarted it empty and the run went on."""


class RemoteReplay(ActorGroup):
    """The learner's handle on a :class:`ReplayWorker` actor, with the methods of the
    buffer it stands for that MuZero's learner calls (``sample``, ``update_priorities``,
    ``added``, ``num_positions``, ``state_dict``).

    Batches are prefetched: :meth:`sample` returns the batch asked for at the previous
    call and asks for the next, so the actor draws it while the learner trains (its
    priorities are one update older, as with muzero-general's batch queue). Calls reach
    the actor in the order made (the learner is its only caller). An actor that dies is
    restarted empty; the positions it held are counted in :attr:`lost_positions` and
    the learner trains again once new games are stored.

    :param spec: the algorithm to rebuild.
    :param device: where sampled batches go (the learner's device).
    :param group: ``restarts`` and ``address`` (see :class:`ActorGroup`); the actor
        reserves no CPU or GPU.
    """

    what = "replay actor"
    unit = "positions"
    warning = ReplayLostWarning
    #: The generator a checkpoint keeps as the replay's (the actor draws with its own).
    generator: torch.Generator | None = None

    def __init__(
        self,
        spec: CopySpec,
        *,
        device: torch.device | str = "cpu",
        **group: Any,
    ) -> None:
        # No CPU reserved: the replay only stores and draws batches, and the self-play
        # actors should hold the CPUs.
        group = {**group, "cpus": 0.0, "gpus": 0.0}
        super().__init__(ReplayWorker, (spec,), num_workers=1, **group)
        self.device = torch.device(device)
        #: Positions the replay holds, and positions ever added (as of the last store).
        self.num_positions = 0
        self.added = 0
        #: Positions lost with an actor that died.
        self.lost_positions = 0
        self._next: tuple[Any, int, tuple[int, bool]] | None = None

    def __len__(self) -> int:
        return self.num_positions

    # ------------------------------------------------------------------ calls
    def _call(self, method: str, *args: Any) -> Any:
        """``actor.method(*args)``, waited for; a dead actor is restarted (empty)."""

        def call(worker: Any) -> Any:
            return getattr(worker, method).remote(*args)

        life = self.lives[0]
        return self._get(0, call(self.workers[0]), call, life=life, lost=self.num_positions)

    def _death_loss(self, index: int, lost: int) -> int:
        self.lost_positions += lost
        self.num_positions = 0
        self._next = None
        return lost

    def store(self, stored: list[dict[str, Any]]) -> None:
        """Send what a round stored (:attr:`SelfPlayRound.stored`) to the replay."""
        if stored:
            self.num_positions, self.added = self._call("store", self._ray.put(stored))

    def sample(self, batch_size: int, *, bootstrap_fn: Any = None) -> PrioritizedBatch | None:
        """A prioritised batch on :attr:`device` (the one drawn since the last call), or
        ``None`` while the replay is empty.

        :param bootstrap_fn: values observations ``[N, *obs_shape] -> [N]``; the value
            targets then bootstrap from it instead of the stored search values (MuZero
            Reanalyze), here on the learner.
        """
        request = (batch_size, bootstrap_fn is not None)
        pending, self._next = self._next, None
        arrays = None
        if pending is not None and pending[1] == self.lives[0] and pending[2] == request:
            try:
                arrays = self._ray.get(pending[0])
            except (
                self._ray.exceptions.RayActorError,
                self._ray.exceptions.ActorUnavailableError,
            ):
                arrays = None  # the next call finds the actor dead and restarts it
        if arrays is None:
            arrays = self._call("sample", *request)
        if arrays is None:
            return None
        self._next = (self.workers[0].sample.remote(*request), self.lives[0], request)
        tensors = {key: value.to(self.device) for key, value in numpy_to_tensors(arrays).items()}
        if bootstrap_fn is not None:
            obs = tensors.pop("bootstrap_obs")
            scale, stored = tensors.pop("bootstrap_scale"), tensors.pop("bootstrap_stored")
            fresh = bootstrap_fn(obs.flatten(0, 1)).reshape(scale.shape).float()
            tensors["target_values"] = tensors["target_values"] + scale * (fresh - stored)
        return PrioritizedBatch(**tensors)

    def update_priorities(self, rows: torch.Tensor, priorities: torch.Tensor) -> None:
        """Send new priorities for ``rows`` (not waited for: the actor applies calls in
        order, so the next batch drawn after them sees them)."""
        self.workers[0].update_priorities.remote(
            rows.detach().cpu().numpy(), priorities.detach().float().cpu().numpy()
        )

    def positions_to_reanalyse(self, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The buffer's :meth:`positions_to_reanalyse`, drawn on the actor (CPU tensors)."""
        rows, index, obs = self._call("positions_to_reanalyse", count)
        return torch.from_numpy(rows), torch.from_numpy(index), torch.from_numpy(obs)

    def apply_search(
        self,
        rows: torch.Tensor,
        values: torch.Tensor,
        policies: torch.Tensor,
        *,
        index: torch.Tensor,
    ) -> None:
        """The buffer's :meth:`apply_search`, on the actor (not waited for)."""
        args = (rows, values, policies, index)
        self.workers[0].apply_search.remote(*(a.detach().cpu().numpy() for a in args))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The replay's state, fetched from the actor (what a checkpoint stores)."""
        return numpy_to_tensors(self._call("state_dict"))

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        """Send a checkpoint's replay to the actor."""
        self._call("load_state_dict", _arrays(tensors))
        self.num_positions, self.added = self._call("store", [])
        self._next = None
