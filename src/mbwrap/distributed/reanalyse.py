"""MuZero Reanalyze on a Ray actor (Schrittwieser et al. 2021; muzero-general's
reanalyse worker): search stored positions again with the latest weights, off the
learner's critical path."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from mbwrap.distributed.actor_group import ActorGroup
from mbwrap.distributed.cpu_copy import CopySpec, CpuCopy, numpy_to_tensors


class ReanalyseWorker:
    """A CPU copy of a self-play algorithm that searches positions it is sent with the
    weights it was last given (run as a Ray actor by :class:`ReanalysePool`, or
    in-process in tests).

    :param spec: the algorithm to rebuild (its copy runs on the CPU).
    :param index: the worker's place (its seed).
    :param threads: torch threads (its CPUs).
    """

    def __init__(
        self,
        spec: CopySpec,
        index: int,
        threads: int = 1,
    ) -> None:
        self._recipe = CpuCopy(spec, threads)
        self.index = index
        self.start(life=0)

    def start(self, life: int) -> None:
        """Build this life's copy (its own seed); its weights are its own until
        :meth:`set_weights`."""
        self.algo = self._recipe.build(None, self.index, life)
        self.version = -1

    def set_weights(self, arrays: dict[str, np.ndarray], version: int) -> int:
        """Take the learner's networks (:meth:`get_tensors` as NumPy arrays)."""
        tensors = numpy_to_tensors(arrays)
        self.algo._take_weights(tensors)
        self.version = version
        return version

    def reanalyse(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """Search ``obs: [M, *obs_shape]`` again: ``(root values [M], search policies
        [M, A], the weights version searched with)``."""
        with torch.no_grad():
            values, policies = self.algo._reanalyse_fn(torch.from_numpy(np.array(obs)))
        return values.cpu().numpy(), policies.cpu().numpy(), self.version

    def pid(self) -> int:
        """The worker's process id (tests kill it)."""
        return os.getpid()


class ReanalysePool(ActorGroup):
    """One :class:`ReanalyseWorker` actor (restarted when it dies: a request in flight is
    dropped, and the positions keep their targets).

    :param spec: the algorithm to rebuild.
    :param group: ``restarts``, ``cpus``, ``gpus``, ``address`` (see
        :class:`~.actor_group.ActorGroup`).
    """

    what = "reanalyse worker"
    unit = "positions"

    def __init__(
        self,
        spec: CopySpec,
        **group: Any,
    ) -> None:
        super().__init__(ReanalyseWorker, (spec,), num_workers=1, **group)
        #: Positions searched again, and those dropped with a worker that died.
        self.reanalysed = 0
        self.lost_positions = 0

    def submit(self, obs: np.ndarray) -> tuple[Any, int, int]:
        """Ask for ``obs`` to be searched; :meth:`result` waits for the answer."""
        worker = self.workers[0]
        return worker.reanalyse.remote(obs), self.lives[0], len(obs)

    def result(self, pending: tuple[Any, int, int]) -> tuple[np.ndarray, np.ndarray] | None:
        """The search results of :meth:`submit`, or ``None`` when the worker died first."""
        ref, life, count = pending
        try:
            values, policies, _ = self._ray.get(ref)
        except (
            self._ray.exceptions.RayActorError,
            self._ray.exceptions.ActorUnavailableError,
        ) as err:
            if self.lives[0] == life:
                self._revive(0, err, self._death_loss(0, count))
            return None
        self.reanalysed += count
        return values, policies

    def _death_loss(self, index: int, lost: int) -> int:
        self.lost_positions += lost
        return lost
