"""A group of Ray actors that the learner calls in rounds, restarted when they die: what
the collection pool and the self-play pool share."""

from __future__ import annotations

import time
import warnings
from typing import Any

import torch

from mbwrap.distributed.ray_support import ensure_ray


class WorkerLostWarning(RuntimeWarning):
    """A worker died; Ray restarted it and the run went on."""


class ActorGroup:
    """``num_workers`` actors of ``actor_class``, each built with ``(*args, index,
    threads=...)``, with Ray's ``max_restarts``.

    A call whose actor died is answered by :meth:`_get`: the actor is restarted by Ray,
    :meth:`_revive` starts its new life (its own seeds) and gives it the current weights,
    and the call is made again. Subclasses say what a death costs (:meth:`_death_loss`)
    and what a delivered result tells (:meth:`_received`).

    :param actor_class: the worker class (with ``start(life)``, ``set_weights(arrays,
        version)`` and ``pid()``).
    :param args: its constructor's arguments before ``index``.
    :param num_workers: actors; :param restarts: times each may be restarted before the
        run fails; :param cpus: CPUs Ray reserves per actor (and its torch threads);
        :param gpus: GPUs per actor; :param address: Ray cluster to join (``None``: the
        running Ray, or a new local one).
    """

    #: What the actors are called in warnings and errors.
    what = "worker"
    #: The unit of what a dead actor loses, in warnings.
    unit = "steps"
    warning: type[Warning] = WorkerLostWarning
    #: Seconds to wait for the actors to be placed before giving up with an error.
    placement_patience_s = 180.0

    def __init__(
        self,
        actor_class: type,
        args: tuple[Any, ...],
        *,
        num_workers: int,
        restarts: int = 3,
        cpus: float = 1.0,
        gpus: float = 0.0,
        address: str | None = None,
    ) -> None:
        self._ray = ensure_ray(address)
        actor = self._ray.remote(actor_class).options(
            num_cpus=cpus, num_gpus=gpus, max_restarts=restarts, max_task_retries=0
        )
        self.num_workers, self.max_restarts = num_workers, restarts
        self.workers = [
            actor.remote(*args, index, threads=max(1, int(cpus))) for index in range(num_workers)
        ]
        #: Lives each worker has had (restarts + 1 once it died).
        self.lives = [0] * num_workers
        #: Version of the weights the workers hold (-1: none pushed yet).
        self.version = -1
        self._weights: Any = None
        #: Worker restarts so far.
        self.restarts = 0
        self._await_placement(cpus, gpus)

    def _await_placement(self, cpus: float, gpus: float) -> None:
        """Wait until every actor runs: one Ray cannot place (not enough free CPUs or
        GPUs) would otherwise leave the first call waiting for ever."""
        patience_s = self.placement_patience_s
        pending = [worker.pid.remote() for worker in self.workers]
        ready, _ = self._ray.wait(pending, num_returns=len(pending), timeout=patience_s)
        if len(ready) < len(pending):
            free = self._ray.available_resources()
            self.close()
            raise RuntimeError(
                f"worker_cpus: only {len(ready)} of {len(pending)} {self.what}s started "
                f"within {patience_s:.0f} s; each asks for {cpus} CPUs and {gpus} GPUs and "
                f"the Ray cluster has {free.get('CPU', 0)} CPUs and {free.get('GPU', 0)} "
                "GPUs free: lower worker_cpus, worker_gpus or num_workers"
            )

    def push(self, tensors: dict[str, torch.Tensor]) -> int:
        """Send the learner's state to every worker (one object in Ray's store, read by
        all); return the new version."""
        self.version += 1
        # As NumPy arrays: Ray stores them without copies, and torch's own pickling of
        # tensors does not survive Ray's serializer with every torch release.
        self._weights = self._ray.put(
            {key: value.detach().cpu().numpy() for key, value in tensors.items()}
        )

        def call(worker: Any) -> Any:
            return worker.set_weights.remote(self._weights, self.version)

        lives = list(self.lives)
        refs = [call(w) for w in self.workers]
        for index, ref in enumerate(refs):
            self._get(index, ref, call, life=lives[index])
        return self.version

    def _get(self, index: int, ref: Any, again: Any, *, life: int, lost: int = 0) -> Any:
        """``ray.get(ref)`` of a call made to worker ``index`` in its ``life``; when the
        worker died, restart it (unless an earlier call already did) and ``again(worker)``.

        :param lost: what the call would lose if the worker died during it.
        """
        errors = self._ray.exceptions
        restarted = False
        while True:
            try:
                result = self._ray.get(ref)
            except (errors.RayActorError, errors.ActorUnavailableError) as err:
                if self.lives[index] == life:
                    self._revive(index, err, self._death_loss(index, lost))
                restarted, life = True, self.lives[index]
                ref = again(self.workers[index])
                continue
            self._received(index, result, restarted)
            return result

    def _death_loss(self, index: int, lost: int) -> int:
        """What worker ``index`` lost by dying during a call that risked ``lost``."""
        return lost

    def _received(self, index: int, result: Any, restarted: bool) -> None:
        """Note what a delivered ``result`` tells (default: whether it followed a restart)."""
        if hasattr(result, "restarted"):
            result.restarted = restarted

    def _revive(self, index: int, err: Exception, lost: int) -> None:
        self.lives[index] += 1
        self.restarts += 1
        if self.lives[index] > self.max_restarts:
            raise RuntimeError(
                f"{self.what} {index} died {self.lives[index]} times, more than "
                f"worker_restarts={self.max_restarts}: {err}"
            ) from err
        warnings.warn(
            f"{self.what} {index} died ({type(err).__name__}); Ray restarted it and the run "
            f"goes on without the {lost} {self.unit} it had not sent",
            self.warning,
            stacklevel=5,
        )
        worker = self.workers[index]
        # Ray re-runs the constructor; this life draws its own streams and takes the weights.
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
