"""Collection on Ray workers for :class:`~mbwrap.algos.base.Algorithm` (``num_workers``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from mbwrap.buffers import ReplayBuffer
from mbwrap.distributed import WorkerPool, concat_obs, env_maker
from mbwrap.distributed.cpu_copy import CopySpec


class WeightSync:
    """What the learner of every actor pool does alike: start a pool with a copy of
    itself, and send its weights when they changed (at most every ``sync_interval``
    rounds)."""

    _rounds_since_push = 0
    _pushed_fingerprint: tuple[int, ...] | None = None

    def _weights_fingerprint(self) -> tuple[int, ...]:
        """Changes whenever a weight of the declared state changes: torch counts every
        in-place write of a tensor (an optimizer step, a ``load_state_dict``) in its
        ``_version``. Workers are sent weights only when it moved, not every round."""
        algo: Any = self
        versions = []
        for name in algo.saved_state:
            value = getattr(self, name, None)
            value = getattr(value, "policy", value)  # an SB3 agent acts with its policy
            if isinstance(value, torch.Tensor):  # a table (Dyna-Q's action values)
                versions.append(value._version)
            elif isinstance(value, torch.nn.Module):
                versions.append(sum(t._version for t in value.state_dict().values()))
        return tuple(versions)

    def _sync_weights(self, pools: list[Any]) -> None:
        """Push the learner's state to ``pools`` when one has none yet (a new pool) or,
        once ``sync_interval`` rounds have passed, when it changed since the last push."""
        algo: Any = self
        new = any(pool.version < 0 for pool in pools)
        if not new and self._rounds_since_push < algo.config.sync_interval:
            return
        fingerprint = self._weights_fingerprint()
        if new or fingerprint != self._pushed_fingerprint:
            tensors = algo.get_tensors(include_buffer=False, include_generators=False)
            for pool in pools:
                pool.push(tensors)
            self._pushed_fingerprint = fingerprint
        self._rounds_since_push = 0

    def _pool_args(self, changes: dict[str, Any] | None = None) -> tuple[CopySpec, dict[str, Any]]:
        """A pool's copy of this algorithm (its settings with ``changes``) and its actors'
        resources from the config."""
        config = self.config  # type: ignore[attr-defined]
        group = {
            "restarts": config.worker_restarts,
            "cpus": config.worker_cpus,
            "gpus": config.worker_gpus,
            "address": config.ray_address,
        }
        return CopySpec.of(self, changes), group


class WorkerCollection(WeightSync):
    """The ``num_workers > 0`` path of ``_collect_real_steps``: rounds of steps on
    :class:`~mbwrap.distributed.WorkerPool` workers, stored and reported as if the
    learner had stepped one ``VecEnv`` of all their envs."""

    _pool: Any = None

    def _policy_role(self, policy: Any) -> str:
        """How a worker finds ``policy`` on its copy (see
        :data:`~mbwrap.distributed.POLICY_ROLES`).

        :raises NotImplementedError: for a policy a worker cannot rebuild.
        """
        algo: Any = self
        if policy is None:
            return "random"
        if policy is self:
            return "predict"
        for role in ("agent", "planner"):
            if getattr(self, role, None) is policy:
                return role
        behaviour = algo._behaviour_policy()
        if policy is behaviour or type(policy) is type(behaviour):
            return "behaviour"
        raise NotImplementedError(
            f"num_workers: {type(self).__name__} acts in the real env with a "
            f"{type(policy).__name__}, which a worker cannot rebuild; use num_workers=0"
        )

    @property
    def worker_pool(self) -> Any:
        """The :class:`~mbwrap.distributed.WorkerPool`, started on first use."""
        if self._pool is None:
            algo: Any = self
            spec, group = self._pool_args()
            self._pool = WorkerPool(
                spec,
                env_maker(algo.env),
                num_workers=algo.config.num_workers,
                envs_per_worker=algo.n_envs // algo.config.num_workers,
                **group,
            )
        return self._pool

    def close(self) -> None:
        """Stop the collection workers, if any (a later ``learn`` starts new ones)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _collect_on_workers(
        self,
        buffer: ReplayBuffer,
        steps: int,
        callback: BaseCallback,
        policy: Any,
        deterministic: bool,
    ) -> bool:
        """One round on the workers: at least ``steps`` real steps in all, in whole
        vector steps of every worker; then each vector step is stored and reported in
        turn (:meth:`_record_real_step`)."""
        algo: Any = self
        pool = self.worker_pool
        role = self._policy_role(policy)
        if role != "random":
            self._sync_weights([pool])
        rollouts = pool.collect(-(-steps // pool.num_envs), role, deterministic)
        self._rounds_since_push += 1
        m = pool.envs_per_worker
        for rollout in rollouts:
            if rollout.restarted:
                index = rollout.worker
                buffer.end_episodes(slice(index * m, (index + 1) * m))
        callback.on_rollout_start()
        go_on = True
        for t in range(len(rollouts[0])):
            step = (
                concat_obs([r.obs[t] for r in rollouts]),
                np.concatenate([r.actions[t] for r in rollouts]),
                np.concatenate([r.rewards[t] for r in rollouts]),
                concat_obs([r.next_obs[t] for r in rollouts]),
                np.concatenate([r.terminated[t] for r in rollouts]),
                np.concatenate([r.truncated[t] for r in rollouts]),
            )
            new_obs = concat_obs([r.new_obs[t] for r in rollouts])
            infos = [info for r in rollouts for info in r.infos[t]]
            if not algo._record_real_step(buffer, step, new_obs, infos, callback):
                go_on = False
                break
        callback.on_rollout_end()
        algo._record_metrics(
            "workers",
            {
                "weights_version": pool.version,
                "restarts": pool.restarts,
                "lost_steps": pool.lost_steps,
            },
        )
        return go_on
