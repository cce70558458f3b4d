"""The learner's side of parallel collection: N Ray actors, each a
:class:`~.worker.CollectionWorker`, stepped in rounds, restarted when they die."""

from __future__ import annotations

from typing import Any

from mbwrap.distributed.actor_group import ActorGroup, WorkerLostWarning
from mbwrap.distributed.cpu_copy import CopySpec
from mbwrap.distributed.env_maker import EnvMaker
from mbwrap.distributed.rollout import Rollout
from mbwrap.distributed.worker import CollectionWorker

__all__ = ["WorkerLostWarning", "WorkerPool"]


class WorkerPool(ActorGroup):
    """``num_workers`` collection workers as Ray actors.

    Each round every worker steps its envs the same number of times, so the learner
    stores one row per vector step for all ``num_workers * envs_per_worker`` streams.
    A worker that dies is restarted by Ray (``max_restarts``); the pool then seeds its
    new life, gives it the current weights and asks for the round again, so the round
    still has every worker's steps. What the dead worker had not sent is lost and
    counted (:attr:`lost_steps`).

    :param spec: the algorithm the workers rebuild.
    :param make_env: makes one copy of the real env.
    :param envs_per_worker: envs each actor steps.
    :param group: ``num_workers``, ``restarts``, ``cpus``, ``gpus``, ``address`` (see
        :class:`~.actor_group.ActorGroup`).
    """

    what = "collection worker"
    unit = "env steps"

    def __init__(
        self,
        spec: CopySpec,
        make_env: EnvMaker,
        *,
        envs_per_worker: int,
        **group: Any,
    ) -> None:
        args = (spec, make_env, envs_per_worker)
        super().__init__(CollectionWorker, args, **group)
        self.envs_per_worker = envs_per_worker
        #: Env steps the dead workers had not sent.
        self.lost_steps = 0

    @property
    def num_envs(self) -> int:
        """Envs stepped by all workers together (the learner's streams)."""
        return self.num_workers * self.envs_per_worker

    def collect(self, vector_steps: int, role: str, deterministic: bool = False) -> list[Rollout]:
        """One round: ``vector_steps`` steps of every worker's envs, all workers at once.

        :param role: what acts on the workers (see :data:`~.worker.POLICY_ROLES`).
        :return: the workers' rollouts, in worker order.
        """

        def call(worker: Any) -> Any:
            return worker.collect.remote(vector_steps, role, deterministic)

        lives = list(self.lives)
        refs = [call(w) for w in self.workers]
        lost = vector_steps * self.envs_per_worker
        return [self._get(i, ref, call, life=lives[i], lost=lost) for i, ref in enumerate(refs)]

    def _death_loss(self, index: int, lost: int) -> int:
        self.lost_steps += lost
        return lost
