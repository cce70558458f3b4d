"""A collection worker: its own copies of the real env and a CPU copy of the algorithm,
stepping them when the learner asks (run as a Ray actor by :class:`~.pool.WorkerPool`,
or in-process in tests)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import DummyVecEnv

from mbwrap.buffers import step_vec_env
from mbwrap.distributed.cpu_copy import CopySpec, CpuCopy, numpy_to_tensors, worker_seed
from mbwrap.distributed.env_maker import EnvMaker
from mbwrap.distributed.rollout import Rollout, trim_infos

#: How a worker finds, on its copy of the algorithm, what acts: uniformly random
#: actions, the algorithm's ``predict``, its ``agent`` or ``planner``, or what
#: ``_behaviour_policy()`` returns. Any other role goes to the copy's
#: ``_worker_policy(role)``, where the algorithm has one.
POLICY_ROLES = ("random", "predict", "agent", "planner", "behaviour")


class _Monitored:
    """``Monitor(make())``, picklable: SB3's episode statistics on each worker env."""

    def __init__(self, make_env: EnvMaker) -> None:
        self.make_env = make_env

    def __call__(self) -> Monitor:
        return Monitor(self.make_env())


class CollectionWorker:
    """Steps ``n_envs`` copies of the real env with a CPU copy of an algorithm.

    :param spec: the algorithm to rebuild (its copy runs on the CPU).
    :param make_env: makes one copy of the real env (see :func:`~.env_maker.env_maker`).
    :param n_envs: envs stepped side by side.
    :param index: the worker's place among the learner's workers; its envs are the
        learner's streams ``index * n_envs ...``.
    :param threads: torch threads (its CPUs).
    """

    def __init__(
        self,
        spec: CopySpec,
        make_env: EnvMaker,
        n_envs: int,
        index: int,
        threads: int = 1,
    ) -> None:
        recipe = CpuCopy(spec, threads)
        self.seed = recipe.seed
        # One copy for every life: a restart reseeds its streams, the weights come anew.
        self.algo = recipe.build(None, index=0, life=0)
        self.env = DummyVecEnv([_Monitored(make_env) for _ in range(n_envs)])
        self.n_envs, self.index = n_envs, index
        self.version = -1
        self.start(life=0)

    def start(self, life: int) -> None:
        """Seed this life's streams (worker 0's first life as the in-process run) and
        start new episodes."""
        if self.seed is not None:
            # First lives: env j of worker i takes seed + i * n_envs + j, as the envs of one
            # VecEnv of all the workers' envs would; a restarted worker draws new episodes.
            first = self.seed + self.index * self.n_envs
            self.env.seed(first if life == 0 else worker_seed(self.seed, self.index, life))
            if life or self.index:
                own = worker_seed(self.seed, self.index, life)
                set_random_seed(own)
                self.algo.action_space.seed(own)
        self._obs = self.env.reset()
        self._policy_state: tuple[np.ndarray, ...] | None = None
        self._episode_starts = np.ones(self.n_envs, dtype=bool)

    def set_weights(self, arrays: dict[str, np.ndarray], version: int) -> int:
        """Take the learner's state (:meth:`get_tensors` as NumPy arrays, without its
        random streams); return ``version``."""
        self.algo.set_tensors(numpy_to_tensors(arrays), keep_random_state=True)
        self.version = version
        return version

    def _policy(self, role: str) -> Any:
        if role == "random":
            return None
        if role == "predict":
            return self.algo
        if role == "behaviour":
            return self.algo._behaviour_policy()
        if role in ("agent", "planner"):
            return getattr(self.algo, role)
        if hasattr(self.algo, "_worker_policy"):  # an algorithm's own roles (PlaNet's)
            return self.algo._worker_policy(role)
        raise ValueError(f"role: expected one of {POLICY_ROLES}, got {role!r}")

    def collect(self, vector_steps: int, role: str, deterministic: bool = False) -> Rollout:
        """Step every env ``vector_steps`` times with the policy ``role`` names."""
        policy = self._policy(role)
        space = self.algo.action_space
        out = Rollout(version=-1 if policy is None else self.version, worker=self.index)
        for _ in range(vector_steps):
            if policy is None:
                actions = np.stack([space.sample() for _ in range(self.n_envs)])
            else:
                actions, self._policy_state = policy.predict(
                    self._obs,
                    state=self._policy_state,
                    episode_start=self._episode_starts,
                    deterministic=deterministic,
                )
            new_obs, rewards, terminated, truncated, next_obs, infos = step_vec_env(
                self.env, actions
            )
            out.obs.append(self._obs)
            out.actions.append(np.asarray(actions))
            out.rewards.append(np.asarray(rewards, dtype=np.float32))
            out.terminated.append(terminated)
            out.truncated.append(truncated)
            out.next_obs.append(next_obs)
            out.new_obs.append(new_obs)
            out.infos.append(trim_infos(infos))
            self._obs = new_obs
            self._episode_starts = terminated | truncated
        return out

    def pid(self) -> int:
        """The worker's process id (tests kill it)."""
        return os.getpid()
