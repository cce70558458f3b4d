"""Scaling out on Ray (the ``ray`` extra): parallel collection and self-play.

With ``num_workers=N`` an algorithm that steps a real env starts ``N``
:class:`CollectionWorker` actors (:class:`WorkerPool`). Each steps its own copies of the
env (rebuilt from the env's Gymnasium spec) with a CPU copy of the algorithm, whose
weights the learner pushes when they change; their transitions go to the learner's
replay, one stream per worker env; the algorithm's own rule of how much training per real
step decides how many steps each round collects. AlphaZero and MuZero play on
:class:`SelfPlayWorker` actors (:class:`SelfPlayPool`) and send what they played to the
learner's replay; with ``reanalyse_fraction`` one :class:`ReanalyseWorker` searches
stored positions again with the latest weights, and with ``replay_actor`` the replay
lives on a :class:`RemoteReplay` actor. A worker that dies is restarted and the run goes on
(:class:`ActorGroup`). Ray is imported only when a worker is started; sweeps on Ray Tune
are :mod:`mbwrap.cli.sweep` (``mbwrap tune``).
"""

from mbwrap.distributed.actor_group import ActorGroup, WorkerLostWarning
from mbwrap.distributed.cpu_copy import CopySpec, CpuCopy, worker_seed
from mbwrap.distributed.env_maker import env_maker
from mbwrap.distributed.pool import WorkerPool
from mbwrap.distributed.ray_support import ensure_ray, require_ray
from mbwrap.distributed.reanalyse import ReanalysePool, ReanalyseWorker
from mbwrap.distributed.replay import RemoteReplay, ReplayLostWarning, ReplayWorker
from mbwrap.distributed.rollout import Rollout, concat_obs
from mbwrap.distributed.self_play import (
    SelfPlayPool,
    SelfPlayRound,
    SelfPlayWorker,
    SelfPlayWorkerLostWarning,
    store_played,
)
from mbwrap.distributed.worker import POLICY_ROLES, CollectionWorker

__all__ = [
    "POLICY_ROLES",
    "ActorGroup",
    "CollectionWorker",
    "CopySpec",
    "CpuCopy",
    "ReanalysePool",
    "ReanalyseWorker",
    "RemoteReplay",
    "ReplayLostWarning",
    "ReplayWorker",
    "Rollout",
    "SelfPlayPool",
    "SelfPlayRound",
    "SelfPlayWorker",
    "SelfPlayWorkerLostWarning",
    "WorkerLostWarning",
    "WorkerPool",
    "concat_obs",
    "ensure_ray",
    "env_maker",
    "require_ray",
    "store_played",
    "worker_seed",
]
