"""Algorithms that learn by self-play over a batch of games: the one loop AlphaZero and
MuZero run."""

from __future__ import annotations

import abc
from typing import Any

from stable_baselines3.common.type_aliases import MaybeCallback

from mbwrap.algos.core import AlgorithmCore
from mbwrap.algos.self_play_workers import SelfPlayWorkers
from mbwrap.checkpoint import check_count


class SelfPlayAlgorithm(SelfPlayWorkers, AlgorithmCore):
    """Base of the algorithms whose "env" is a batch of games played side by side, each
    move chosen by a search: AlphaZero (a PettingZoo game as a
    :class:`~mbwrap.envs.game_batch.GameBatch`), MuZero (a ``VecEnv`` of Gymnasium envs).

    The loop (:meth:`learn`): set up the games, then repeat {:meth:`_self_play_step` (one
    move in every game, searched together) -> when due, :meth:`train` -> callbacks, logs}
    until ``total_timesteps`` moves, counted over all games as SB3 counts the steps of
    all envs of a ``VecEnv``. How much to train per move is SB3's rule: after the
    ``learning_starts`` warm-up, ``gradient_steps`` updates every ``train_freq`` moves,
    credited across vector steps so that the ratio holds whatever the number of games.
    With ``num_workers > 0`` Ray actors play the games (:class:`~mbwrap.algos.
    self_play_workers.SelfPlayWorkers`) by the same rule.

    Subclasses set :attr:`env` (what SB3 callbacks see as ``training_env``) and implement
    :meth:`_start_games`, :meth:`_self_play_step`, :meth:`train` and ``predict``; their
    :attr:`~mbwrap.algos.AlgorithmCore.Config` has ``train_freq``, ``gradient_steps`` and
    ``learning_starts``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """As :class:`~mbwrap.algos.AlgorithmCore`; the subclass then sets :attr:`env`."""
        super().__init__(*args, **kwargs)
        #: The games (set by the subclass); ``None`` when loaded for prediction only.
        self.env: Any = None
        #: Moves over the algorithm's whole life, all games counted (never reset).
        self.real_steps = 0
        #: Gradient updates over the algorithm's whole life.
        self.n_updates = 0
        self._steps_since_train = 0
        self._train_metrics: dict[str, Any] = {}

    @property
    def n_envs(self) -> int:
        """Games played side by side (by all workers together when ``num_workers > 0``)."""
        if self.env is None:
            return 1
        workers = self.config.num_workers
        return workers * self.games_per_worker if workers else self.env.num_envs

    def get_env(self) -> Any:
        """The games (what SB3 callbacks read as ``training_env``: ``num_envs``...)."""
        return self.env

    def get_vec_normalize_env(self) -> None:
        """SB3 callbacks ask for it (``EvalCallback``); self-play never normalises."""
        return None

    # ------------------------------------------------------------------ the loop
    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int | None = 100,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfPlayAlgorithm:
        """Self-play and train for ``total_timesteps`` moves (all games' moves count).

        :param callback: SB3 callback(s), called after every move of all games (locals
            ``actions``, ``dones``, ``infos``, and ``rewards`` where the games have them;
            ``new_obs`` too without workers).
        :param log_interval: moves of all games (vector steps) between log dumps
            (``None`` or 0: never).
        :param tb_log_name: TensorBoard run name; default the class name.
        :param reset_num_timesteps: ``False`` continues the count (and the run, after
            :meth:`load`) instead of starting at 0.
        :param progress_bar: show SB3's progress bar over moves.
        :return: ``self``.
        """
        if isinstance(total_timesteps, bool) or int(total_timesteps) != total_timesteps or (
            total_timesteps < 0
        ):
            raise ValueError(f"total_timesteps: expected an int >= 0, got {total_timesteps!r}")
        if self.env is None:
            raise ValueError("env: this algorithm has no games; pass an env to load()")
        total_timesteps, callback = self._start_learning(
            int(total_timesteps),
            callback,
            reset_num_timesteps,
            tb_log_name or type(self).__name__,
            progress_bar,
        )
        if self.config.num_workers:
            callback.on_training_start(locals(), globals())
            self._learn_on_workers(total_timesteps, callback, log_interval)
            callback.on_training_end()
            return self
        self._start_games(reset_num_timesteps)
        callback.on_training_start(locals(), globals())
        iteration = 0
        while self.num_timesteps < total_timesteps:
            callback.on_rollout_start()
            step_locals = self._self_play_step()
            self.num_timesteps += self.n_envs
            self.real_steps += self.n_envs
            callback.update_locals(step_locals)
            keep_going = callback.on_step()
            callback.on_rollout_end()
            if not keep_going:
                break
            updates = self._updates_due()
            if updates:
                self._train_metrics = self.train(updates)
            iteration += 1
            if log_interval and iteration % log_interval == 0:
                self._log()
        callback.on_training_end()
        return self

    def _updates_due(self) -> int:
        """Gradient updates owed after this move: ``gradient_steps`` per ``train_freq``
        moves since the warm-up ended (a remainder carries to the next move)."""
        if self._warming_up():
            return 0
        config: Any = self.config
        self._steps_since_train += self.n_envs
        phases, self._steps_since_train = divmod(self._steps_since_train, config.train_freq)
        return phases * config.gradient_steps

    def _warming_up(self) -> bool:
        """Whether training has yet to start (default: fewer than ``learning_starts``
        moves played)."""
        return self.real_steps < self.config.learning_starts  # type: ignore[attr-defined]

    def _log(self) -> None:
        """Record the last update's metrics and :meth:`_self_play_metrics`, then dump."""
        self._record_metrics("train", {**self._train_metrics, "n_updates": self.n_updates})
        self._record_metrics("selfplay", self._self_play_metrics())
        self._dump_logs()

    # ------------------------------------------------------------------ hooks
    @abc.abstractmethod
    def _start_games(self, reset: bool) -> None:
        """Called by :meth:`learn` before the first move: start the games when none are
        in progress (always when ``reset``)."""

    @abc.abstractmethod
    def _self_play_step(self) -> dict[str, Any]:
        """One move in every game, all searched at once; store what training needs.

        :return: SB3's locals for callbacks (``new_obs``, ``rewards``, ``dones``,
            ``infos``, ``actions`` where the games have them).
        """

    @abc.abstractmethod
    def train(self, gradient_steps: int) -> dict[str, Any]:
        """``gradient_steps`` updates (adding to :attr:`n_updates`); their metrics."""

    def _self_play_metrics(self) -> dict[str, Any]:
        """Logged under ``selfplay/`` with each dump."""
        return {}

    # ------------------------------------------------------------------ checkpoints
    def _run_state(self) -> dict[str, Any]:
        state = super()._run_state()
        state["real_steps"] = self.real_steps
        state["n_updates"] = self.n_updates
        state["steps_since_train"] = self._steps_since_train
        return state

    def _set_run_state(self, state: dict[str, Any]) -> None:
        super()._set_run_state(state)
        self.real_steps = check_count(state["real_steps"], name="run.real_steps")
        self.n_updates = check_count(state["n_updates"], name="run.n_updates")
        self._steps_since_train = check_count(
            state["steps_since_train"], name="run.steps_since_train"
        )
