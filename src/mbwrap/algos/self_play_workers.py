"""Self-play on Ray workers for :class:`~mbwrap.algos.SelfPlayAlgorithm`
(``num_workers``), as muzero-general plays: actors play, the learner stores what they
played, trains at its ratio of updates to moves and sends the new weights."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from mbwrap.algos import state as saved
from mbwrap.algos.workers import WeightSync
from mbwrap.distributed.reanalyse import ReanalysePool
from mbwrap.distributed.replay import RemoteReplay
from mbwrap.distributed.self_play import SelfPlayPool, store_played


def join_steps(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """One vector move of several workers as one of all their games: arrays ``[n_i]``
    concatenated in worker order, ``infos`` lists joined."""
    joined: dict[str, Any] = {"infos": [info for step in steps for info in step["infos"]]}
    for key in steps[0].keys() - {"infos"}:
        joined[key] = np.concatenate([step[key] for step in steps])
    return joined


class SelfPlayWorkers(WeightSync):
    """The ``num_workers > 0`` path of :meth:`SelfPlayAlgorithm.learn`: rounds of
    self-play on :class:`~mbwrap.distributed.self_play.SelfPlayPool` actors.

    Each round every worker plays ``ceil(train_freq / n_envs)`` vector moves of its own
    games (at least one; during the warm-up, up to its end) with a CPU copy of the
    algorithm. The learner stores what they played in its replay, counts their moves (all
    games, as in-process), calls callbacks once per vector move, trains
    :meth:`_updates_due` updates and, when its weights changed, pushes them (at most
    every ``sync_interval`` rounds). As muzero-general's actors, the workers play the
    next round meanwhile: with the weights of one training phase ago. Games continue
    across ``learn`` calls. A worker that dies is restarted and the run goes on.

    A subclass says how a worker makes its games (:meth:`_worker_games`).
    """

    _self_play_pool: Any = None
    _reanalyse_pool: Any = None
    _reanalysis: Any = None
    _home_buffer: Any = None

    def _worker_games(self, n_games: int) -> tuple[Callable[[], Any], dict[str, Any]]:
        """How a worker's copy plays ``n_games`` games: a picklable maker of the copy's
        ``env``, and the copy's settings that differ from :meth:`get_config`'s."""
        raise NotImplementedError(
            f"num_workers: {type(self).__name__} cannot self-play on workers; use num_workers=0"
        )

    @property
    def games_per_worker(self) -> int:
        """``envs_per_worker``, by default as many games as this process's own."""
        algo: Any = self
        return int(algo.config.envs_per_worker or algo.env.num_envs)

    @property
    def self_play_pool(self) -> Any:
        """The :class:`~mbwrap.distributed.self_play.SelfPlayPool`, started on first use."""
        if self._self_play_pool is None:
            algo: Any = self
            make_games, changes = self._worker_games(self.games_per_worker)
            spec, group = self._pool_args(changes)
            self._self_play_pool = SelfPlayPool(
                spec,
                make_games,
                num_workers=algo.config.num_workers,
                games_per_worker=self.games_per_worker,
                **group,
            )
        return self._self_play_pool

    @property
    def reanalyses_remotely(self) -> bool:
        """Whether stored positions are searched again on a reanalyse actor (MuZero with
        ``reanalyse_fraction > 0`` and ``num_workers > 0``) instead of before each update."""
        config: Any = getattr(self, "config", None)
        return bool(config and config.num_workers and getattr(config, "reanalyse_fraction", 0))

    @property
    def reanalyse_pool(self) -> Any:
        """The :class:`~mbwrap.distributed.reanalyse.ReanalysePool`, started on first use."""
        if self._reanalyse_pool is None:
            spec, group = self._pool_args()
            self._reanalyse_pool = ReanalysePool(spec, **group)
            self._reanalysis = None
        return self._reanalyse_pool

    def _use_replay_actor(self) -> None:
        """With ``replay_actor``: move the replay onto its own actor (what this process
        held goes with it) until :meth:`close`."""
        algo: Any = self
        if not getattr(algo.config, "replay_actor", False) or self._home_buffer is not None:
            return
        spec, group = self._pool_args()
        remote = RemoteReplay(spec, device=algo.device, **group)
        remote.generator = algo.buffer.generator
        if algo.buffer.added:
            remote.load_state_dict(algo.buffer.state_dict())
        self._home_buffer, algo.buffer = algo.buffer, remote

    def close(self) -> None:
        """Stop the self-play (and reanalyse) workers, if any (a later ``learn`` starts
        new ones); a replay actor's contents come back to this process first."""
        algo: Any = self
        if self._home_buffer is not None:
            self._home_buffer.load_state_dict(algo.buffer.state_dict())
            algo.buffer.close()
            algo.buffer, self._home_buffer = self._home_buffer, None
        if self._self_play_pool is not None:
            self._self_play_pool.close()
            self._self_play_pool = None
        if self._reanalyse_pool is not None:
            self._reanalyse_pool.close()
            self._reanalyse_pool, self._reanalysis = None, None

    def _reanalyse_round(self, updates: int) -> None:
        """Store the search results of the last round's request, then send the next one:
        as many positions as ``updates`` updates would have searched again in this process
        (``reanalyse_fraction * batch_size`` each). The actor searches them while the
        workers play and the learner trains, so the targets arrive one round later (as
        muzero-general's reanalyse worker does), where their rows still hold them."""
        if not self.reanalyses_remotely or not updates:
            return
        algo: Any = self
        pool, buffer, config = self.reanalyse_pool, algo.buffer, algo.config
        if self._reanalysis is not None:
            rows, index, pending = self._reanalysis
            result = pool.result(pending)
            if result is not None:
                values, policies = (torch.from_numpy(np.array(r)) for r in result)
                buffer.apply_search(rows, values, policies, index=index)
        count = max(1, int(config.reanalyse_fraction * config.batch_size)) * updates
        rows, index, obs = buffer.positions_to_reanalyse(count)
        self._reanalysis = (rows, index, pool.submit(obs.cpu().numpy()))

    def _take_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        """A worker's copy takes the declared state of :meth:`get_tensors`'s output (the
        networks, and the counters the learner adds up from every worker) and keeps its
        own games, run counters and random streams."""
        algo: Any = self
        tree = json.loads(bytes(tensors["__tree__"].tolist()).decode())
        state = saved.join_tree(tree, tensors)
        for name, part in state["parts"].items():
            saved.restore(self, name, part)
        algo._after_restore()

    def _push_weights(self) -> None:
        """Send the learner's state to the self-play (and reanalyse) workers when it
        changed since the last push (always the first time: every copy must start from
        the learner's networks)."""
        pools = [self.self_play_pool]
        if self.reanalyses_remotely:
            pools.append(self.reanalyse_pool)
        self._sync_weights(pools)

    def _round_moves(self, total_timesteps: int, ahead: int = 0) -> int:
        """Vector moves of the next round, which starts ``ahead`` moves from now: those of
        one training phase (``train_freq`` moves, at least one vector move) or, during the
        warm-up, up to its end, as nothing is trained meanwhile; never past
        ``total_timesteps``."""
        algo: Any = self
        config, per_move = algo.config, algo.n_envs
        moves = -(-config.train_freq // per_move)
        if algo._warming_up():
            warm_up_left = config.learning_starts - algo.real_steps - ahead
            moves = max(moves, -(-warm_up_left // per_move))
        left = total_timesteps - algo.num_timesteps - ahead
        return max(1, min(moves, -(-left // per_move)))

    def _learn_on_workers(
        self, total_timesteps: int, callback: BaseCallback, log_interval: int | None
    ) -> None:
        """Rounds until ``total_timesteps`` moves (see the class docstring). A callback
        that stops the run stops it after its move; the moves played after it (the rest
        of the round, and the next round already under way) are stored, not counted."""
        algo: Any = self
        pool = self.self_play_pool
        self._use_replay_actor()
        per_move = algo.n_envs
        iteration = 0
        keep_going = True
        pending = None
        while keep_going and algo.num_timesteps < total_timesteps:
            self._push_weights()
            if pending is None:
                moves = self._round_moves(total_timesteps)
                pending = pool.start_play(moves, algo.num_timesteps, algo._total_timesteps)
            rounds = pool.finish(pending)
            moves = rounds[0].moves
            self._rounds_since_push += 1
            # The next round plays while this one is stored and trained on (muzero-general's
            # actors play on meanwhile): with the weights of one training phase ago.
            ahead = moves * per_move
            pending = None
            if algo.num_timesteps + ahead < total_timesteps:
                pending = pool.start_play(
                    self._round_moves(total_timesteps, ahead),
                    algo.num_timesteps + ahead,
                    algo._total_timesteps,
                )
            self._store_rounds(rounds)
            callback.on_rollout_start()
            updates, dump = 0, False
            for t in range(moves):
                algo.num_timesteps += per_move
                algo.real_steps += per_move
                callback.update_locals(join_steps([played.steps[t] for played in rounds]))
                keep_going = callback.on_step()
                if not keep_going:
                    break
                updates += algo._updates_due()
                iteration += 1
                dump = dump or bool(log_interval and iteration % log_interval == 0)
            callback.on_rollout_end()
            if updates:
                algo._train_metrics = algo.train(updates)
                self._reanalyse_round(updates)
            algo._record_metrics("workers", self._worker_metrics())
            if dump:
                algo._log()
        if pending is not None:
            self._store_rounds(pool.finish(pending))

    def _worker_metrics(self) -> dict[str, float]:
        """The ``workers/*`` logs: weights version, restarts, what dead actors lost."""
        algo: Any = self
        pool = self.self_play_pool
        metrics = {
            "weights_version": pool.version,
            "restarts": pool.restarts,
            "lost_moves": pool.lost_moves,
        }
        if self._reanalyse_pool is not None:
            metrics["reanalysed"] = self._reanalyse_pool.reanalysed
            metrics["lost_positions"] = self._reanalyse_pool.lost_positions
        if isinstance(algo.buffer, RemoteReplay):
            metrics["replay_restarts"] = algo.buffer.restarts
            metrics["replay_lost_positions"] = algo.buffer.lost_positions
        return metrics

    def _store_rounds(self, rounds: list[Any]) -> None:
        """Store what the workers played, with their episodes and counters."""
        algo: Any = self
        if isinstance(algo.buffer, RemoteReplay):
            algo.buffer.store([item for played in rounds for item in played.stored])
        for played in rounds:
            if not isinstance(algo.buffer, RemoteReplay):
                store_played(algo.buffer, played.stored)
            algo.ep_info_buffer.extend(played.episodes)
            algo._episode_num += len(played.episodes)
            for name, delta in played.counters.items():
                setattr(self, name, getattr(self, name) + delta)
