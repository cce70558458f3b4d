"""Table-lookup model of a finite MDP (Sutton & Barto 2018, sections 8.1-8.2)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from gymnasium import spaces

from mbwrap.device import accelerator_paths
from mbwrap.errors import SpaceMismatchError, UnsupportedSpaceError
from mbwrap.grad import no_grad
from mbwrap.models.base import WorldModel
from mbwrap.space_support import SpaceSupport
from mbwrap.spaces import as_batch, check_same_space
from mbwrap.types import ModelStep


def _radix(space: spaces.Space, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Mixed-radix digits ``(sizes, starts)`` that number the elements of a finite space."""
    if isinstance(space, spaces.Discrete):
        return np.array([space.n], dtype=np.int64), np.array([space.start], dtype=np.int64)
    if isinstance(space, spaces.MultiDiscrete):
        return space.nvec.reshape(-1).astype(np.int64), space.start.reshape(-1).astype(np.int64)
    raise UnsupportedSpaceError(
        f"{name}: TabularModel needs a Discrete or MultiDiscrete space, got {space!r}"
    )


def _sample_from_cdf(cdf: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One draw per row of the cumulative sums ``cdf: [B, K]`` of unnormalised weights ->
    ``[B]`` int64.

    Inverse-CDF sampling: one uniform per row and a binary search, several times faster
    than ``torch.multinomial`` on wide batches.
    """
    u = torch.rand(cdf.shape[0], 1, device=cdf.device, generator=generator) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp_max(cdf.shape[-1] - 1)


@dataclass
class _StepTables:
    """What :meth:`TabularModel.step_indices` reads, derived from the counts once rather
    than from the rows of ``B`` pairs at every imagined step: at the small batches of an
    imagined step each tensor op costs more than its arithmetic.

    :ivar sources: ``(counts, reward_sum, terminal_count)``, the tensors derived from.
    :ivar versions: their ``_version`` then (torch counts every in-place write).
    :ivar successor: per row ``s * |A| + a``, sample mode: ``[|S||A|, |S|]`` cumulative
        counts of ``s'`` (an unseen pair's one count on ``s``); most-likely mode:
        ``[|S||A|]`` the most likely ``s'`` (``s`` for an unseen pair).
    :ivar mean_reward: ``[|S||A|, |S|]`` mean reward of ``(s, a, s')``, 0 where unseen.
    :ivar termination: ``[|S||A|, |S|]`` termination frequency of ``(s, a, s')``.
    """

    sources: tuple[torch.Tensor, ...]
    versions: tuple[int, ...]
    successor: torch.Tensor
    mean_reward: torch.Tensor
    termination: torch.Tensor


class TabularModel(WorldModel):
    """Counts-based model of a finite MDP: ``P(s' | s, a)``, ``E[r | s, a, s']`` and
    ``P(terminated | s, a, s')`` estimated from every observed transition.

    States are the observations themselves (``encode``/``decode`` are the identity). An
    ``(s, a)`` pair never observed is predicted to stay in ``s`` with reward 0, which keeps
    imagined episodes in known territory.

    :meth:`step` reads tables derived from the counts (mean reward and termination
    frequency per transition, and in sample mode cumulative counts per pair): two or three
    more tables of the counts' size, made at the first step after the counts change and
    kept up to date by :meth:`update`.

    :param mode: ``"sample"`` draws ``s'`` from the estimated distribution;
        ``"most-likely"`` returns its mode (ties to the lowest index).
    :param max_table_size: refuse spaces whose ``|S| * |A| * |S|`` table exceeds this.
    """

    registry_name = "tabular"
    space_support = SpaceSupport(
        observations=("Discrete", "MultiDiscrete"),
        actions=("Discrete", "MultiDiscrete"),
        observation_note="finite spaces: a count per (state, action, next state)",
        action_note="finite spaces: a count per (state, action, next state)",
    )

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        mode: Literal["sample", "most-likely"] = "sample",
        max_table_size: int = 50_000_000,
        env_id: str | None = None,
        device: str | torch.device = "auto",
    ) -> None:
        super().__init__(observation_space, action_space, env_id=env_id, device=device)
        if mode not in ("sample", "most-likely"):
            raise ValueError(f"mode: expected 'sample' or 'most-likely', got {mode!r}")
        self.mode = mode
        self.max_table_size = int(max_table_size)
        self._obs_sizes, self._obs_starts = _radix(observation_space, "observation_space")
        self._act_sizes, self._act_starts = _radix(action_space, "action_space")
        #: ``(n, start)`` of a Discrete space, by prefix: its values number themselves.
        self._discrete = {
            prefix: (int(space.n), int(space.start)) if isinstance(space, spaces.Discrete) else None
            for prefix, space in (("_obs", observation_space), ("_act", action_space))
        }
        self.n_states = int(np.prod(self._obs_sizes))
        self.n_actions = int(np.prod(self._act_sizes))
        table = self.n_states * self.n_actions * self.n_states
        if table > self.max_table_size:
            raise UnsupportedSpaceError(
                f"observation_space: a table of |S|={self.n_states} x |A|={self.n_actions} x "
                f"|S| = {table} entries exceeds max_table_size={self.max_table_size}"
            )
        for prefix, sizes, starts in (
            ("_obs", self._obs_sizes, self._obs_starts),
            ("_act", self._act_sizes, self._act_starts),
        ):
            strides = np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)
            self.register_buffer(
                f"{prefix}_strides", torch.as_tensor(strides, device=self.device), persistent=False
            )
            self.register_buffer(
                f"{prefix}_offset", torch.as_tensor(starts, device=self.device), persistent=False
            )
            self.register_buffer(
                f"{prefix}_radix", torch.as_tensor(sizes, device=self.device), persistent=False
            )
        shape = (self.n_states, self.n_actions, self.n_states)
        dev = self.device
        self.register_buffer("counts", torch.zeros(shape, device=dev))
        self.register_buffer("reward_sum", torch.zeros(shape, device=dev))
        self.register_buffer("terminal_count", torch.zeros(shape, device=dev))
        self._step_tables: _StepTables | None = None

    def get_config(self) -> dict[str, Any]:
        return {"mode": self.mode, "max_table_size": self.max_table_size}

    # ------------------------------------------------------------------ indexing
    def _digits(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        """Digits of a batch ``x: [B, *shape]`` of space elements: ``[B, D]`` int64 from 0."""
        # self._buffers, not getattr: nn.Module's attribute lookup is slow on this hot path.
        return x.reshape(x.shape[0], -1).long() - self._buffers[prefix + "_offset"]

    def _outside(self, digits: torch.Tensor, prefix: str) -> torch.Tensor:
        """``[B]`` bool: rows of ``digits: [B, D]`` outside the space (on their device)."""
        return ((digits < 0) | (digits >= self._buffers[prefix + "_radix"])).any(-1)

    def _number(self, digits: torch.Tensor, prefix: str) -> torch.Tensor:
        """Flat index of in-range ``digits: [B, D]``: ``[B]`` int64."""
        if digits.shape[1] == 1:
            return digits[:, 0]
        return (digits * self._buffers[prefix + "_strides"]).sum(-1)

    def _to_index(self, x: torch.Tensor, prefix: str, name: str) -> torch.Tensor:
        """Number a batch ``x: [B, *shape]`` of elements of a space (``prefix`` ``"_obs"`` or
        ``"_act"``): ``[B]`` int64.

        On the CPU the range check reads the numbers in place with NumPy: read as unsigned,
        a negative number is huge, so one comparison checks both ends (a few microseconds,
        this being imagination's hot path). On an accelerator it costs one host sync.

        :raises SpaceMismatchError: naming ``name`` when an element lies outside the space
            (it would index another row of the table, or none).
        """
        index = self._index_if_inside(x, prefix)
        if index is not None:
            return index
        row = int(self._outside(self._digits(x, prefix), prefix).nonzero()[0, 0])
        space = self.observation_space if prefix == "_obs" else self.action_space
        raise SpaceMismatchError(
            f"{name}: row {row} holds {x[row].tolist()}, which is outside {space!r}"
        )

    def _index_if_inside(self, x: torch.Tensor, prefix: str) -> torch.Tensor | None:
        """:meth:`_to_index`, or ``None`` when an element lies outside the space."""
        discrete = self._discrete[prefix]
        if discrete is not None:
            # Discrete: the value less the space's start is the number.
            size, start = discrete
            index = x if x.ndim == 1 else x.reshape(x.shape[0])
            if index.dtype != torch.int64:
                index = index.long()
            if start:
                index = index - start
            if index.is_cpu:
                host = index.numpy().view(np.uint64)
                inside = not index.shape[0] or np.maximum.reduce(host, axis=None) < size
            else:
                inside = not bool(((index < 0) | (index >= size)).any())
            if inside:
                return index
        else:
            digits = self._digits(x, prefix)
            if digits.is_cpu:
                sizes = self._obs_sizes if prefix == "_obs" else self._act_sizes
                host = digits.numpy().view(np.uint64)
                inside = bool((host < sizes.view(np.uint64)).all())
            else:
                inside = not bool(self._outside(digits, prefix).any())
            if inside:
                return self._number(digits, prefix)
        return None

    def state_index(self, obs: torch.Tensor, *, name: str = "obs") -> torch.Tensor:
        """Number the observations: ``obs: [B, *obs_shape] -> [B]`` int64 in ``[0, |S|)``.

        :raises SpaceMismatchError: naming ``name`` for an observation outside the space.
        """
        return self._to_index(obs, "_obs", name)

    def action_index(self, action: torch.Tensor, *, name: str = "action") -> torch.Tensor:
        """Number the actions: ``action: [B, *act_shape] -> [B]`` int64 in ``[0, |A|)``.

        :raises SpaceMismatchError: naming ``name`` for an action outside the space.
        """
        return self._to_index(action, "_act", name)

    def index_to_obs(self, index: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`state_index`: ``[B] -> [B, *obs_shape]``."""
        if isinstance(self.observation_space, spaces.Discrete):
            return index.long() + int(self.observation_space.start)
        digits = []
        rest = index.long()
        for size in self._obs_sizes[::-1]:
            digits.append(rest % int(size))
            rest = rest // int(size)
        stacked = torch.stack(digits[::-1], -1) + self._obs_offset
        return stacked.reshape(index.shape[0], *self.observation_space.shape)

    # ------------------------------------------------------------------ learning
    @torch.no_grad()
    def update(
        self,
        obs: Any,
        action: Any,
        reward: Any,
        next_obs: Any,
        terminated: Any,
    ) -> None:
        """Add a batch of observed transitions to the counts.

        :param obs: ``[B, *obs_shape]`` (or one observation); ``next_obs`` alike.
        :param action: ``[B, *act_shape]``.
        :param reward: ``[B]``; ``terminated``: ``[B]`` bool.
        """
        obs_t, _ = as_batch(obs, self.observation_space, name="obs", device=self.device)
        next_t, _ = as_batch(next_obs, self.observation_space, name="next_obs", device=self.device)
        act_t, _ = as_batch(action, self.action_space, name="action", device=self.device)
        rew = torch.as_tensor(reward, dtype=torch.float32, device=self.device).reshape(-1)
        term = torch.as_tensor(terminated, dtype=torch.float32, device=self.device).reshape(-1)
        batch = obs_t.shape[0]
        if not (next_t.shape[0] == act_t.shape[0] == rew.shape[0] == term.shape[0] == batch):
            raise SpaceMismatchError(
                f"update(): batch sizes differ: obs {batch}, action {act_t.shape[0]}, "
                f"reward {rew.shape[0]}, next_obs {next_t.shape[0]}, terminated {term.shape[0]}"
            )
        self.update_indices(
            self.state_index(obs_t),
            self.action_index(act_t),
            self.state_index(next_t, name="next_obs"),
            rew,
            term,
        )

    @torch.no_grad()
    def update_indices(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        next_state: torch.Tensor,
        reward: torch.Tensor,
        terminated: torch.Tensor,
    ) -> None:
        """:meth:`update` on numbered transitions (see :meth:`state_index`).

        :param state: ``[B]`` int64; ``action``, ``next_state`` alike.
        :param reward: ``[B]`` float; ``terminated``: ``[B]`` 0/1.
        """
        tables = self._current_step_tables()
        index = (state, action, next_state)
        self.counts.index_put_(
            index, torch.ones_like(reward, dtype=self.counts.dtype), accumulate=True
        )
        self.reward_sum.index_put_(index, reward.to(self.reward_sum.dtype), accumulate=True)
        self.terminal_count.index_put_(
            index, terminated.to(self.terminal_count.dtype), accumulate=True
        )
        if tables is not None:
            # Refresh the rows of these pairs (few, in Dyna-Q's updates) rather than
            # rebuilding all of them at the next step.
            pairs = torch.add(action, state, alpha=self.n_actions)
            successor, mean_reward, termination = self._derive(pairs)
            tables.successor[pairs] = successor
            tables.mean_reward[pairs] = mean_reward
            tables.termination[pairs] = termination
            tables.versions = tuple(t._version for t in tables.sources)

    def fit(self, buffer: Any, **kwargs: Any) -> dict[str, Any]:
        """Rebuild the tables from every transition stored in ``buffer``.

        :return: ``{"transitions", "visited_pairs", "fit_time"}``.
        """
        if kwargs:
            raise TypeError(f"TabularModel.fit() takes no options, got {sorted(kwargs)}")
        check_same_space(
            self.observation_space, buffer.observation_space, name="buffer.observation_space"
        )
        check_same_space(self.action_space, buffer.action_space, name="buffer.action_space")
        start = time.perf_counter()
        for table in (self.counts, self.reward_sum, self.terminal_count):
            table.zero_()
        data = buffer.transitions()
        if len(data):
            self.update(data.obs, data.action, data.reward, data.next_obs, data.terminated)
        return {
            "transitions": len(data),
            "visited_pairs": int((self.counts.sum(-1) > 0).sum()),
            "fit_time": time.perf_counter() - start,
        }

    # ------------------------------------------------------------------ prediction
    def encode(self, obs: Any) -> torch.Tensor:
        """The observations themselves, ``[B, *obs_shape]`` (values of the space, ``start``
        included).

        :raises SpaceMismatchError: naming ``obs`` for a wrong shape or a value outside
            the observation space.
        """
        tensor = super().encode(obs)
        self.state_index(tensor, name="obs")
        return tensor

    @staticmethod
    def _as_batch(value: Any, space: spaces.Space, name: str, device: torch.device) -> torch.Tensor:
        """:func:`~mbwrap.spaces.as_batch`, with a shortcut for what imagination passes: an
        int64 batch ``[B, *shape]`` already on ``device``."""
        if (
            isinstance(value, torch.Tensor)
            and value.dtype == torch.int64
            and value.device == device
            and value.ndim == len(space.shape) + 1
            and value.shape[1:] == space.shape
        ):
            return value
        return as_batch(value, space, name=name, device=device)[0]

    def _state_action(
        self, state: Any, action: Any, *, check: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``state``, ``action`` as batches on the device, numbered: ``([B], [B])`` int64,
        and ``[B]`` bool rows outside the spaces, or ``None`` when they were checked.

        ``check=False`` on an accelerator skips the range check's host sync: rows outside
        the spaces are numbered 0 and flagged instead (only :meth:`step` does this).

        :raises SpaceMismatchError: naming ``state`` or ``action`` for a shape, a dtype or a
            value that does not fit its space, or batches of different sizes.
        """
        device = self.device
        state = self._as_batch(state, self.observation_space, "state", device)
        action = self._as_batch(action, self.action_space, "action", device)
        if state.shape[0] != action.shape[0]:
            raise SpaceMismatchError(
                f"state, action: batches of {state.shape[0]} states and {action.shape[0]} "
                "actions; expected one action per state"
            )
        if not check and device.type == "cpu":
            # Rows inside the spaces are numbered alike on both paths, so the switch below
            # (an environment variable, whose lookup costs as much as this step's arithmetic
            # at small batches) is read only when one is not.
            s = self._index_if_inside(state, "_obs")
            a = self._index_if_inside(action, "_act")
            if s is not None and a is not None:
                return s, a, None
        if check or not accelerator_paths(device):
            return self.state_index(state, name="state"), self.action_index(action), None
        s_digits, a_digits = self._digits(state, "_obs"), self._digits(action, "_act")
        outside = self._outside(s_digits, "_obs") | self._outside(a_digits, "_act")
        s = torch.where(outside, 0, self._number(s_digits, "_obs"))
        a = torch.where(outside, 0, self._number(a_digits, "_act"))
        return s, a, outside

    def transition_probs(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Estimated ``P(s' | s, a)``: ``[B, |S|]``; an unseen pair stays put with prob 1.

        :param state: ``[B, *obs_shape]``; :param action: ``[B, *act_shape]``.
        """
        s, a, _ = self._state_action(state, action)
        counts = self.counts[s, a]
        total = counts.sum(-1, keepdim=True)
        stay = torch.nn.functional.one_hot(s, self.n_states).to(counts.dtype)
        return torch.where(total > 0, counts / total.clamp_min(1.0), stay)

    @no_grad
    def step(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        member: torch.Tensor | None = None,
    ) -> ModelStep:
        """``state: [B, *obs_shape]``, ``action: [B, *act_shape]`` -> next state ``[B, ...]``,
        mean reward ``[B]`` and termination probability ``[B]`` of the chosen transition.

        On the CPU a state or action outside its space is an error. On an accelerator
        (:func:`mbwrap.device.accelerator_paths`), where checking the values would cost a
        host sync every imagined step, such a row gets a NaN reward instead, which
        imagination truncates as ``model_nonfinite``.

        :raises SpaceMismatchError: naming ``state`` or ``action`` when it does not fit its
            space (shape or dtype; and value, on the CPU).
        """
        s, a, outside = self._state_action(state, action, check=False)
        nxt, reward, terminated = self.step_indices(s, a, generator=generator)
        if outside is not None:
            reward = torch.where(outside, torch.nan, reward)
        # A Discrete space from 0 numbers its states by their values: nxt is the state.
        next_state = nxt if self._discrete["_obs"] == (self.n_states, 0) else self.index_to_obs(nxt)
        return ModelStep(next_state=next_state, reward=reward, terminated=terminated)

    @no_grad
    def step_indices(
        self, state: torch.Tensor, action: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`step` on numbered states and actions.

        :param state: ``[B]`` int64; ``action`` alike.
        :return: ``(next_state [B] int64, reward [B], termination probability [B])``.
        """
        tables = self._current_step_tables() or self._build_step_tables()
        pair = torch.add(action, state, alpha=self.n_actions)  # [B], the row of (s, a)
        if self.mode == "sample":
            # index_select, not indexing: several times faster for wide batches.
            nxt = _sample_from_cdf(tables.successor.index_select(0, pair), generator)
        else:
            nxt = tables.successor.index_select(0, pair)
        entry = torch.add(nxt, pair, alpha=self.n_states)  # [B], the flat index of (s, a, s')
        return nxt, torch.take(tables.mean_reward, entry), torch.take(tables.termination, entry)

    def _current_step_tables(self) -> _StepTables | None:
        """The derived tables, or ``None`` when the counts changed since they were made."""
        tables = self._step_tables
        if tables is None:
            return None
        buffers = self._buffers
        counts, reward_sum, terminal_count = tables.sources
        if (
            counts is not buffers["counts"]
            or reward_sum is not buffers["reward_sum"]
            or terminal_count is not buffers["terminal_count"]
            or tables.versions != (counts._version, reward_sum._version, terminal_count._version)
        ):
            return None
        return tables

    def _build_step_tables(self) -> _StepTables:
        # Plain tensors even inside inference mode, so that update() can refresh them.
        with torch.inference_mode(False):
            pairs = torch.arange(self.n_states * self.n_actions, device=self.device)
            successor, mean_reward, termination = self._derive(pairs)
        sources = tuple(self._buffers[name] for name in ("counts", "reward_sum", "terminal_count"))
        self._step_tables = _StepTables(
            sources=sources,
            versions=tuple(t._version for t in sources),
            successor=successor,
            mean_reward=mean_reward,
            termination=termination,
        )
        return self._step_tables

    def _derive(self, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The rows ``pairs: [R]`` (``s * |A| + a``) of the :class:`_StepTables` tables:
        ``(successor [R, |S|] or [R], mean_reward [R, |S|], termination [R, |S|])``."""
        n_states, buffers = self.n_states, self._buffers
        counts = buffers["counts"].reshape(-1, n_states).index_select(0, pairs)  # [R, |S|]
        total = counts.sum(-1, keepdim=True)
        state = pairs // self.n_actions
        if self.mode == "sample":
            # An unseen pair stays put: give the current state weight where nothing was seen.
            weights = counts.scatter_add(1, state[:, None], (total == 0).to(counts.dtype))
            successor = weights.cumsum(-1)
        else:
            successor = torch.where(total[:, 0] > 0, counts.argmax(-1), state)
        n = counts.clamp_min(1.0)
        mean_reward = buffers["reward_sum"].reshape(-1, n_states).index_select(0, pairs) / n
        termination = buffers["terminal_count"].reshape(-1, n_states).index_select(0, pairs) / n
        return successor, mean_reward, termination
