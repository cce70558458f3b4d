"""Storing experience at the agent's time scale when each decision is repeated for several
env steps (action repeat, as in PlaNet and Dreamer: Hafner et al. 2019, Appendix A)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mbwrap.buffers.replay import ReplayBuffer


def _copy(obs: Any) -> Any:
    if isinstance(obs, dict):
        return {key: np.array(value, copy=True) for key, value in obs.items()}
    return np.array(obs, copy=True)


def _keep_where(live: np.ndarray, new: Any, old: Any) -> Any:
    """Rows of ``new`` where ``live`` (``[n_envs]`` bool), of ``old`` elsewhere."""
    if isinstance(new, dict):
        return {key: _keep_where(live, new[key], old[key]) for key in new}
    new = np.asarray(new)
    return np.where(live.reshape(-1, *([1] * (new.ndim - 1))), new, old)


class ActionRepeatWriter:
    """Writes one transition per decision of ``repeat`` env steps into ``buffer``.

    It takes the env steps one by one, where a :class:`~mbwrap.ReplayBuffer` would
    (:meth:`add`, :meth:`end_episodes`), and stores for each env the decision's first
    observation, its action, the sum of its rewards and the observation it ended at. A
    transition stops where its episode ends; an env whose episode ended spends the rest
    of the repeat in its next episode unstored, so that all envs decide together. A
    decision ends after ``repeat`` steps or once every env's episode has ended.

    :param buffer: where the transitions go.
    :param repeat: env steps per decision.
    """

    def __init__(self, buffer: ReplayBuffer, repeat: int) -> None:
        if isinstance(repeat, bool) or not isinstance(repeat, (int, np.integer)) or repeat < 1:
            raise ValueError(f"repeat: expected an int >= 1, got {repeat!r}")
        self.buffer = buffer
        self.repeat = int(repeat)
        #: Env steps of the current decision so far (0: none pending).
        self.pending = 0
        self._parts: dict[str, Any] = {}

    @property
    def n_envs(self) -> int:
        return self.buffer.n_envs

    def add(
        self,
        obs: Any,
        action: Any,
        reward: Any,
        next_obs: Any,
        terminated: Any,
        truncated: Any,
    ) -> None:
        """One env step of every env: ``obs`` ``[n_envs, *obs_shape]``, ``action``
        ``[n_envs, *act_shape]``, ``reward``, ``terminated``, ``truncated`` ``[n_envs]``."""
        reward = np.asarray(reward, dtype=np.float64).reshape(-1)
        terminated = np.asarray(terminated, dtype=bool).reshape(-1)
        truncated = np.asarray(truncated, dtype=bool).reshape(-1)
        if self.pending == 0:
            none = np.zeros_like(terminated)
            self._parts = {
                "obs": _copy(obs),
                "action": np.array(action, copy=True),
                "reward": np.zeros_like(reward),
                "next_obs": _copy(next_obs),
                "terminated": none,
                "truncated": none.copy(),
            }
        parts = self._parts
        live = ~(parts["terminated"] | parts["truncated"])
        parts["reward"] += np.where(live, reward, 0.0)
        parts["next_obs"] = _keep_where(live, next_obs, parts["next_obs"])
        parts["terminated"] |= live & terminated
        parts["truncated"] |= live & truncated
        self.pending += 1
        if self.pending == self.repeat or (parts["terminated"] | parts["truncated"]).all():
            self.flush()

    def flush(self) -> None:
        """Store the pending decision's transitions (if any), cut where they are."""
        if self.pending:
            parts = self._parts
            self.buffer.add(
                parts["obs"],
                parts["action"],
                parts["reward"],
                parts["next_obs"],
                parts["terminated"],
                parts["truncated"],
            )
            self.pending = 0

    def end_episodes(self) -> None:
        """Store what is pending and end every stream there (collection restarts)."""
        self.flush()
        self.buffer.end_episodes()
