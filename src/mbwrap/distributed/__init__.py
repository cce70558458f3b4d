"""Scaling out on Ray (the ``ray`` extra): parallel collection of real steps.

With ``num_workers=N`` an algorithm that steps a real env starts ``N``
:class:`CollectionWorker` actors. Each steps its own copies of the env (rebuilt from the
env's Gymnasium spec) with a CPU copy of the algorithm, whose weights the learner pushes
every ``sync_interval`` rounds; their transitions go to the learner's replay, one stream
per worker env; the algorithm's own rule of how much training per real step decides
how many steps each round collects. A worker that dies is restarted and the run goes
on. Ray is imported only when a worker is started.
"""

from mbwrap.distributed.env_maker import env_maker
from mbwrap.distributed.pool import WorkerLostWarning, WorkerPool
from mbwrap.distributed.ray_support import ensure_ray, require_ray
from mbwrap.distributed.rollout import Rollout, concat_obs
from mbwrap.distributed.worker import POLICY_ROLES, CollectionWorker, worker_seed

__all__ = [
    "POLICY_ROLES",
    "CollectionWorker",
    "Rollout",
    "WorkerLostWarning",
    "WorkerPool",
    "concat_obs",
    "ensure_ray",
    "env_maker",
    "require_ray",
    "worker_seed",
]
