"""The learner's side of parallel collection: N Ray actors, each a
:class:`~.worker.CollectionWorker`, stepped in rounds, restarted when they die."""

from __future__ import annotations

import time
import warnings
from typing import Any

import torch

from mbwrap.distributed.env_maker import EnvMaker
from mbwrap.distributed.ray_support import ensure_ray
from mbwrap.distributed.rollout import Rollout
from mbwrap.distributed.worker import CollectionWorker


class WorkerLostWarning(RuntimeWarning):
    """A collection worker died; Ray restarted it and the run went on."""


class WorkerPool:
    """``num_workers`` collection workers as Ray actors.

    Each round every worker steps its envs the same number of times, so the learner
    stores one row per vector step for all ``num_workers * envs_per_worker`` streams.
    A worker that dies is restarted by Ray (``max_restarts``); the pool then seeds its
    new life, gives it the current weights and asks for the round again, so the round
    still has every worker's steps. What the dead worker had not sent is lost and
    counted (:attr:`lost_steps`).

    :param algo_class: ``"module:QualName"`` of the algorithm.
    :param spaces: the algorithm's ``(observation_space, action_space)`` as JSON.
    :param config: the algorithm's :meth:`get_config`.
    :param make_env: makes one copy of the real env.
    :param num_workers: actors.
    :param envs_per_worker: envs each actor steps.
    :param restarts: times each actor may be restarted before the run fails.
    :param cpus: CPUs Ray reserves per actor (and its torch threads).
    :param gpus: GPUs Ray reserves per actor.
    :param address: Ray cluster to join (``None``: the running Ray, or a new local one).
    """

    def __init__(
        self,
        algo_class: str,
        spaces: tuple[dict[str, Any], dict[str, Any]],
        config: dict[str, Any],
        make_env: EnvMaker,
        *,
        num_workers: int,
        envs_per_worker: int,
        restarts: int = 3,
        cpus: float = 1.0,
        gpus: float = 0.0,
        address: str | None = None,
    ) -> None:
        self._ray = ensure_ray(address)
        actor = self._ray.remote(CollectionWorker).options(
            num_cpus=cpus, num_gpus=gpus, max_restarts=restarts, max_task_retries=0
        )
        self.num_workers, self.envs_per_worker, self.max_restarts = (
            num_workers,
            envs_per_worker,
            restarts,
        )
        self.workers = [
            actor.remote(
                algo_class,
                *spaces,
                config,
                make_env,
                envs_per_worker,
                index,
                threads=max(1, int(cpus)),
            )
            for index in range(num_workers)
        ]
        #: Lives each worker has had (restarts + 1 once it died).
        self.lives = [0] * num_workers
        #: Version of the weights the workers hold (-1: none pushed yet).
        self.version = -1
        self._weights: Any = None
        #: Worker restarts so far, and the env steps they cost.
        self.restarts = 0
        self.lost_steps = 0

    @property
    def num_envs(self) -> int:
        """Envs stepped by all workers together (the learner's streams)."""
        return self.num_workers * self.envs_per_worker

    def push(self, tensors: dict[str, torch.Tensor]) -> int:
        """Send the learner's state to every worker (one object in Ray's store, read by
        all); return the new version."""
        self.version += 1
        # As NumPy arrays: Ray stores them without copies, and torch's own pickling of
        # tensors does not survive Ray's serializer with every torch release.
        self._weights = self._ray.put(
            {key: value.detach().cpu().numpy() for key, value in tensors.items()}
        )
        refs = [w.set_weights.remote(self._weights, self.version) for w in self.workers]
        for index, ref in enumerate(refs):
            self._get(index, ref, lambda w: w.set_weights.remote(self._weights, self.version))
        return self.version

    def collect(self, vector_steps: int, role: str, deterministic: bool = False) -> list[Rollout]:
        """One round: ``vector_steps`` steps of every worker's envs, all workers at once.

        :param role: what acts on the workers (see :data:`~.worker.POLICY_ROLES`).
        :return: the workers' rollouts, in worker order.
        """

        def call(worker: Any) -> Any:
            return worker.collect.remote(vector_steps, role, deterministic)

        refs = [call(w) for w in self.workers]
        lost = vector_steps * self.envs_per_worker
        return [self._get(i, ref, call, lost=lost) for i, ref in enumerate(refs)]

    def _get(self, index: int, ref: Any, again: Any, lost: int = 0) -> Any:
        """``ray.get(ref)``; when worker ``index`` died, restart it and ``again(worker)``."""
        errors = self._ray.exceptions
        restarted = False
        while True:
            try:
                result = self._ray.get(ref)
            except (errors.RayActorError, errors.ActorUnavailableError) as err:
                self._revive(index, err, lost)
                restarted = True
                ref = again(self.workers[index])
                continue
            if isinstance(result, Rollout):
                result.restarted = restarted
            return result

    def _revive(self, index: int, err: Exception, lost: int) -> None:
        self.lives[index] += 1
        self.restarts += 1
        self.lost_steps += lost
        if self.lives[index] > self.max_restarts:
            raise RuntimeError(
                f"collection worker {index} died {self.lives[index]} times, more than "
                f"worker_restarts={self.max_restarts}: {err}"
            ) from err
        warnings.warn(
            f"collection worker {index} died ({type(err).__name__}); Ray restarted it and "
            f"the run goes on without the {lost} env steps it had not sent",
            WorkerLostWarning,
            stacklevel=4,
        )
        worker = self.workers[index]
        # Ray re-runs the constructor; this life draws new episodes and takes the weights.
        self._when_up(lambda: worker.start.remote(self.lives[index]))
        if self._weights is not None:
            self._when_up(lambda: worker.set_weights.remote(self._weights, self.version))

    def _when_up(self, call: Any, patience_s: float = 120.0) -> Any:
        """``ray.get(call())``, retried while the actor is still restarting."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                return self._ray.get(call())
            except self._ray.exceptions.ActorUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def pids(self) -> list[int]:
        """The workers' process ids."""
        return self._ray.get([w.pid.remote() for w in self.workers])

    def close(self) -> None:
        """Stop the workers (Ray itself keeps running)."""
        for worker in self.workers:
            self._ray.kill(worker, no_restart=True)
        self.workers = []
