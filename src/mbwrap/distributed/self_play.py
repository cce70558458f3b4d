"""Self-play on Ray actors (muzero-general's design): each actor plays its own batch of
games with a CPU copy of a self-play algorithm (AlphaZero, MuZero) and sends the
learner what its copy would have stored; the learner stores it in its replay, trains
by its own rule of updates per move and pushes new weights back.

A copy's replay is an *outbox*: the same buffer class as the learner's (so the copy's
writers check what they write exactly as the learner's replay will), which also keeps
every addition as NumPy arrays until :meth:`SelfPlayWorker.play` sends them.
"""

from __future__ import annotations

import copy
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

from mbwrap.buffers.prioritized import PrioritizedTrajectoryBuffer
from mbwrap.buffers.self_play import SelfPlayBuffer
from mbwrap.distributed.actor_group import ActorGroup, WorkerLostWarning
from mbwrap.distributed.cpu_copy import CopySpec, CpuCopy, numpy_to_tensors
from mbwrap.distributed.env_maker import EnvMaker
from mbwrap.distributed.rollout import trim_infos
from mbwrap.distributed.worker import _Monitored

#: Makes what a self-play algorithm takes as ``env`` (a ``VecEnv``, a game).
GamesMaker = Callable[[], Any]


# ---------------------------------------------------------------------- makers
class VecEnvMaker:
    """``n_envs`` monitored copies of an env in a ``DummyVecEnv``, picklable (MuZero's
    games on a worker).

    :param make_env: makes one copy (see :func:`~.env_maker.env_maker`).
    :param n_envs: copies.
    """

    def __init__(self, make_env: EnvMaker, n_envs: int) -> None:
        self.make_env, self.n_envs = make_env, n_envs

    def __call__(self) -> DummyVecEnv:
        return DummyVecEnv([_Monitored(self.make_env) for _ in range(self.n_envs)])


class CopyMaker:
    """A deep copy of ``value`` at each call, picklable (AlphaZero's game on a worker: a
    worker in the learner's process must not share the learner's game)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self) -> Any:
        return copy.deepcopy(self.value)


# ---------------------------------------------------------------------- outboxes
def _owned_array(tensor: torch.Tensor) -> np.ndarray:
    """A NumPy copy of ``tensor``: writers hand over views of storage they reuse."""
    return np.array(tensor.detach().cpu().numpy(), copy=True)


class SegmentOutbox(PrioritizedTrajectoryBuffer):
    """MuZero's replay on a worker: stores segments like ``like`` and keeps each one as
    NumPy arrays (the keywords of :meth:`add_segment`) until :meth:`drain`.

    :param like: the copy's own replay, whose shapes and settings it takes.
    """

    def __init__(self, like: PrioritizedTrajectoryBuffer) -> None:
        super().__init__(
            like.capacity,
            like.obs_shape,
            like.num_actions,
            gamma=like.gamma,
            n_step=like.n_step,
            num_unroll_steps=like.num_unroll_steps,
            alpha=like.alpha,
            beta=like.beta,
            obs_dtype=like.obs.dtype,
            device=like.device,
        )
        self._sent: list[dict[str, Any]] = []
        #: Moves (positions) in the segments added so far.
        self.moves_added = 0

    def add_segment(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        root_values: torch.Tensor,
        policies: torch.Tensor,
        *,
        terminated: bool,
    ) -> None:
        super().add_segment(obs, actions, rewards, root_values, policies, terminated=terminated)
        arrays = {
            "obs": obs,
            "actions": actions,
            "rewards": rewards,
            "root_values": root_values,
            "policies": policies,
        }
        self._sent.append(
            {
                **{key: _owned_array(value) for key, value in arrays.items()},
                "terminated": bool(terminated),
            }
        )
        self.moves_added += int(actions.shape[0])

    def drain(self) -> list[dict[str, Any]]:
        """The segments added since the last call, oldest first."""
        sent, self._sent = self._sent, []
        return sent

    @staticmethod
    def store(buffer: PrioritizedTrajectoryBuffer, item: dict[str, Any]) -> None:
        """Add one drained segment to the learner's ``buffer``."""
        # Copies: arrays from Ray's object store are read-only.
        tensors = {k: torch.tensor(v) for k, v in item.items() if k != "terminated"}
        buffer.add_segment(**tensors, terminated=item["terminated"])


class PositionOutbox(SelfPlayBuffer):
    """AlphaZero's window on a worker: keeps the positions of each batch of finished games
    as NumPy arrays (the arguments of :meth:`add`) until :meth:`drain`.

    :param like: the copy's own window, whose shapes it takes.
    """

    def __init__(self, like: SelfPlayBuffer) -> None:
        super().__init__(
            like.capacity, tuple(like.obs.shape[1:]), like.policy.shape[1], device=like.device
        )
        self._sent: list[dict[str, np.ndarray]] = []
        #: Positions added so far.
        self.moves_added = 0

    def add(self, obs: torch.Tensor, policy: torch.Tensor, outcome: torch.Tensor) -> None:
        super().add(obs, policy, outcome)
        self._sent.append(
            {
                "obs": _owned_array(obs),
                "policy": _owned_array(policy),
                "outcome": _owned_array(outcome),
            }
        )
        self.moves_added += int(obs.shape[0])

    def drain(self) -> list[dict[str, np.ndarray]]:
        """The positions added since the last call, oldest first."""
        sent, self._sent = self._sent, []
        return sent

    @staticmethod
    def store(buffer: SelfPlayBuffer, item: dict[str, np.ndarray]) -> None:
        """Add one drained batch of positions to the learner's ``buffer``."""
        buffer.add(*(torch.tensor(item[key]) for key in ("obs", "policy", "outcome")))


_OUTBOXES: tuple[tuple[type, Any], ...] = (
    (PrioritizedTrajectoryBuffer, SegmentOutbox),
    (SelfPlayBuffer, PositionOutbox),
)


def _outbox_class(buffer: Any) -> Any:
    for kind, outbox in _OUTBOXES:
        if isinstance(buffer, kind):
            return outbox
    raise TypeError(
        f"buffer: self-play workers pass on a PrioritizedTrajectoryBuffer or a "
        f"SelfPlayBuffer, got a {type(buffer).__name__}"
    )


def outbox_for(buffer: PrioritizedTrajectoryBuffer | SelfPlayBuffer) -> Any:
    """The outbox that stands in for ``buffer`` on a worker.

    :raises TypeError: naming ``buffer`` when it is neither kind.
    """
    return _outbox_class(buffer)(buffer)


def store_played(
    buffer: PrioritizedTrajectoryBuffer | SelfPlayBuffer, stored: list[dict[str, Any]]
) -> None:
    """Add what an outbox drained (:attr:`SelfPlayRound.stored`) to the learner's
    ``buffer``, in order."""
    store = _outbox_class(buffer).store
    for item in stored:
        store(buffer, item)


# ---------------------------------------------------------------------- the worker
@dataclass
class SelfPlayRound:
    """``moves`` vector moves of one worker's ``n`` games.

    :ivar stored: what the copy added to its replay, oldest first (the keywords of the
        replay's add method as NumPy arrays: MuZero's segments, AlphaZero's positions of
        finished games); give it to :func:`store_played`.
    :ivar steps: per vector move, SB3's callback locals: ``actions`` and ``dones``
        ``[n]`` (``rewards`` ``[n]`` where the games have them) and ``infos`` (``n``
        dicts cut to ``episode`` and ``is_success``).
    :ivar episodes: every finished episode's ``{"r": return, "l": length}`` (SB3's
        ``ep_info_buffer`` entries).
    :ivar counters: how much the copy's counters of its declared state advanced (e.g.
        AlphaZero's ``games_played``), to add to the learner's.
    :ivar unsent: moves the copy has played and not sent yet (in games or segments still
        in progress).
    :ivar version: the weights version the games were played with (-1: the copy's own).
    :ivar worker: the worker's index; :ivar life: its life (0 before any restart).
    :ivar restarted: the worker was restarted before this round (new games).
    """

    stored: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    episodes: list[dict[str, Any]] = field(default_factory=list)
    counters: dict[str, float] = field(default_factory=dict)
    unsent: int = 0
    version: int = -1
    worker: int = 0
    life: int = 0
    restarted: bool = False

    @property
    def moves(self) -> int:
        """Vector moves played."""
        return len(self.steps)


def _counters(algo: Any) -> dict[str, float]:
    """The numbers among ``algo``'s declared state (counters such as ``games_played``)."""
    values = {name: getattr(algo, name) for name in algo.saved_state}
    return {
        name: value
        for name, value in values.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


class SelfPlayWorker:
    """Plays its own batch of games with a CPU copy of a self-play algorithm (run as a Ray
    actor by :class:`SelfPlayPool`, or in-process in tests).

    :param spec: the algorithm to rebuild, with the settings its ``_worker_games`` changes;
        the copy runs on the CPU.
    :param make_games: makes the copy's ``env`` (its games).
    :param index: the worker's place among the learner's workers (its seeds).
    :param threads: torch threads (its CPUs).
    """

    def __init__(
        self,
        spec: CopySpec,
        make_games: GamesMaker,
        index: int,
        threads: int = 1,
    ) -> None:
        self._recipe = CpuCopy(spec, threads)
        self.make_games, self.index = make_games, index
        self.version = -1
        self.start(life=0)

    def start(self, life: int) -> None:
        """Build this life's copy and start its games: seeded as the in-process algorithm
        for worker 0's first life, with a stream of its own for every other (worker, life).
        The copy's weights are its own until :meth:`set_weights`."""
        algo = self._recipe.build(self.make_games(), self.index, life)
        # Every episode goes to the learner, not only the last stats_window_size.
        algo.ep_info_buffer = deque()
        algo.buffer = outbox_for(algo.buffer)
        algo._start_games(True)
        self.algo = algo
        self.life = life
        self.version = -1
        self._moves_played = 0

    @property
    def n_games(self) -> int:
        """Games played side by side."""
        return int(self.algo.n_envs)

    def set_weights(self, arrays: dict[str, np.ndarray], version: int) -> int:
        """Take the learner's state (:meth:`get_tensors` as NumPy arrays, without its
        random streams); keep this copy's games, run counters and random streams; return
        ``version``."""
        tensors = numpy_to_tensors(arrays)
        self.algo._take_weights(tensors)
        self.version = version
        return version

    def play(
        self,
        moves: int,
        num_timesteps: int = 0,
        total_timesteps: int = 0,
        timesteps_per_move: int | None = None,
    ) -> SelfPlayRound:
        """Play ``moves`` vector moves of every game.

        :param num_timesteps: the learner's count of moves (all workers' games) before
            this round, and :param total_timesteps: the count ``learn`` aims at: the
            copy's schedules (MuZero's visit temperature) follow the learner's run.
        :param timesteps_per_move: moves one vector move adds to the learner's count
            (default this worker's games).
        :return: what the copy played (see :class:`SelfPlayRound`).
        """
        if isinstance(moves, bool) or not isinstance(moves, int) or moves < 0:
            raise ValueError(f"moves: expected an int >= 0, got {moves!r}")
        algo = self.algo
        per_move = self.n_games if timesteps_per_move is None else timesteps_per_move
        algo._total_timesteps = total_timesteps
        before = _counters(algo)
        out = SelfPlayRound(version=self.version, worker=self.index, life=self.life)
        for move in range(moves):
            algo.num_timesteps = num_timesteps + move * per_move
            step = algo._self_play_step()
            kept = {k: np.asarray(step[k]) for k in ("actions", "rewards", "dones") if k in step}
            kept["infos"] = trim_infos(step.get("infos", [{} for _ in range(self.n_games)]))
            out.steps.append(kept)
        self._moves_played += moves * self.n_games
        out.stored = algo.buffer.drain()
        out.unsent = self._moves_played - algo.buffer.moves_added
        out.episodes = [dict(e) for e in algo.ep_info_buffer]
        algo.ep_info_buffer.clear()
        out.counters = {name: value - before[name] for name, value in _counters(algo).items()}
        return out

    def pid(self) -> int:
        """The worker's process id (tests kill it)."""
        return os.getpid()


# ---------------------------------------------------------------------- the pool
@dataclass
class PendingRound:
    """A round asked of every worker and not yet collected.

    :ivar refs: one Ray reference per worker; :ivar call: asks a worker for it again.
    :ivar lives: each worker's life when asked.
    """

    refs: list[Any]
    call: Callable[[Any], Any]
    lives: list[int]


class SelfPlayWorkerLostWarning(WorkerLostWarning):
    """A self-play worker died; Ray restarted it and the run went on."""


class SelfPlayPool(ActorGroup):
    """``num_workers`` :class:`SelfPlayWorker` Ray actors, played in rounds.

    A worker that dies is restarted by Ray (``max_restarts``); the pool then starts its
    new life (new games, its own seeds), gives it the current weights and asks for the
    round again (the new life plays it). The moves of its games in progress never reach
    the learner: they are counted (:attr:`lost_moves`), as the last round it delivered
    reported them.

    :param spec: the workers' copies of the algorithm.
    :param make_games: makes a copy's games.
    :param games_per_worker: games each actor plays.
    :param group: ``num_workers``, ``restarts``, ``cpus``, ``gpus``, ``address`` (see
        :class:`~.actor_group.ActorGroup`).
    """

    what = "self-play worker"
    unit = "moves"
    warning = SelfPlayWorkerLostWarning

    def __init__(
        self,
        spec: CopySpec,
        make_games: GamesMaker,
        *,
        games_per_worker: int,
        **group: Any,
    ) -> None:
        super().__init__(SelfPlayWorker, (spec, make_games), **group)
        self.games_per_worker = games_per_worker
        #: Moves the dead workers had not sent.
        self.lost_moves = 0
        # Unsent moves of each worker's current life, and those counted lost for its last
        # dead life (a round of that life delivered after its death corrects them).
        self._unsent = [0] * self.num_workers
        self._lost_at_death = [0] * self.num_workers

    @property
    def unsent_moves(self) -> int:
        """Moves the workers have played and not sent yet, as their last rounds said."""
        return sum(self._unsent)

    @property
    def num_games(self) -> int:
        """Games played by all workers together."""
        return self.num_workers * self.games_per_worker

    def start_play(self, moves: int, num_timesteps: int, total_timesteps: int) -> PendingRound:
        """Ask every worker for a round of ``moves`` vector moves of its games (see
        :meth:`SelfPlayWorker.play`) and return at once; :meth:`finish` waits for it. An
        actor runs its calls in order: weights pushed meanwhile serve the next round."""

        def call(worker: Any) -> Any:
            return worker.play.remote(moves, num_timesteps, total_timesteps, self.num_games)

        return PendingRound([call(w) for w in self.workers], call, list(self.lives))

    def finish(self, pending: PendingRound) -> list[SelfPlayRound]:
        """The rounds of :meth:`start_play`, in worker order (a worker that died meanwhile
        is restarted and plays its round again)."""
        return [
            self._get(i, ref, pending.call, life=pending.lives[i])
            for i, ref in enumerate(pending.refs)
        ]

    def play(self, moves: int, num_timesteps: int, total_timesteps: int) -> list[SelfPlayRound]:
        """One round, waited for: :meth:`finish` of :meth:`start_play`."""
        return self.finish(self.start_play(moves, num_timesteps, total_timesteps))

    def _death_loss(self, index: int, lost: int) -> int:
        lost = self._lost_at_death[index] = self._unsent[index]
        self._unsent[index] = 0
        self.lost_moves += lost
        return lost

    def _received(self, index: int, result: Any, restarted: bool) -> None:
        super()._received(index, result, restarted)
        if not isinstance(result, SelfPlayRound):
            return
        if result.life == self.lives[index]:
            self._unsent[index] = result.unsent
        else:  # played before the worker died: its games in progress are lost
            self.lost_moves += result.unsent - self._lost_at_death[index]
            self._lost_at_death[index] = result.unsent
