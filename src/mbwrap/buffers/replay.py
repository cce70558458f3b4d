"""Episode-aware storage of real transitions on a chosen device."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from mbwrap.checkpoint import load_checkpoint, save_checkpoint
from mbwrap.device import accelerator_paths, resolve_device
from mbwrap.errors import CheckpointError, SpaceMismatchError
from mbwrap.spaces import (
    as_batch,
    check_space,
    element_shape,
    is_discrete,
    leaf_spaces,
    rows_in_space,
    space_from_json,
    space_to_json,
    torch_dtype,
)
from mbwrap.tree import Tree, tree_assign, tree_batch_size, tree_index, tree_map
from mbwrap.types import Sequence, Transition

_CHECKPOINT_KIND = "mbwrap.replay_buffer"
_FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated", "episode_end")
_OBS_FIELDS = ("obs", "next_obs")
#: Refuse checkpoint metadata asking for more transitions than this before allocating.
MAX_CAPACITY = 2**31


def _flat_fields(fields: dict[str, Tree]) -> dict[str, torch.Tensor]:
    """``{"obs": {"pos": t}}`` -> ``{"obs/pos": t}`` (plain fields unchanged), for files."""
    out: dict[str, torch.Tensor] = {}
    for key, value in fields.items():
        if isinstance(value, dict):
            out.update({f"{key}/{path}": leaf for path, leaf in value.items()})
        else:
            out[key] = value
    return out


def _nest_fields(tensors: dict[str, torch.Tensor]) -> dict[str, Tree]:
    """Inverse of :func:`_flat_fields`."""
    out: dict[str, Any] = {}
    for key, value in tensors.items():
        field, _, path = key.partition("/")
        if path:
            out.setdefault(field, {})[path] = value
        else:
            out[field] = value
    return out


class ReplayBuffer:
    """A ring buffer of transitions from ``n_envs`` parallel episode streams.

    Storage is ``[rows, n_envs, ...]``: each :meth:`add` writes one row, the next step of
    every stream, so consecutive rows of a column are consecutive steps of one stream (the
    layout of SB3's ``ReplayBuffer``). That is what lets :meth:`sample_sequences` return
    sub-trajectories that never cross an episode boundary. When full, the oldest row is
    overwritten.

    Observations of a ``Dict`` or ``Tuple`` space (nested, of Box, Discrete, MultiDiscrete,
    MultiBinary and images) are stored leaf by leaf, each in its own dtype, and sampled as
    flat dicts of leaf tensors (see :func:`mbwrap.spaces.leaf_spaces`).

    :param observation_space: the real env's (single) observation space.
    :param action_space: the real env's (single) action space.
    :param capacity: number of transitions kept (rounded up to a multiple of ``n_envs``).
    :param device: where tensors live and samples are returned; ``"auto"`` picks CUDA.
    :param n_envs: number of parallel streams each :meth:`add` carries (a vector env's
        ``num_envs``).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        capacity: int,
        device: str | torch.device = "auto",
        n_envs: int = 1,
    ) -> None:
        self.observation_space = check_space(
            observation_space, name="observation_space", structured=True
        )
        self.action_space = check_space(action_space, name="action_space")
        if (
            isinstance(capacity, bool)
            or not isinstance(capacity, (int, np.integer))
            or not 1 <= capacity <= MAX_CAPACITY
        ):
            raise ValueError(
                f"capacity: expected a positive int of at most {MAX_CAPACITY}, got {capacity!r}"
            )
        if not isinstance(n_envs, (int, np.integer)) or n_envs < 1:
            raise ValueError(f"n_envs: expected a positive int, got {n_envs!r}")
        self.device = resolve_device(device)
        self.n_envs = int(n_envs)
        self.rows = math.ceil(int(capacity) / self.n_envs)
        self._act_shape = element_shape(action_space)
        grid = (self.rows, self.n_envs)
        self._leaves = leaf_spaces(self.observation_space, name="observation_space")
        # The leaves whose values index a finite set: add() checks them, since a value out of
        # range would later index a table or a one-hot row that does not exist.
        self._checked_leaves = {p: s for p, s in self._leaves.items() if is_discrete(s)}

        def empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
            return torch.zeros(grid + shape, dtype=dtype, device=self.device)

        def empty_obs() -> Tree:
            if "" in self._leaves:
                space = self.observation_space
                return empty(element_shape(space), torch_dtype(space))
            return {
                path: empty(element_shape(leaf), torch_dtype(leaf))
                for path, leaf in self._leaves.items()
            }

        self._data: dict[str, Tree] = {
            "obs": empty_obs(),
            "action": empty(self._act_shape, torch_dtype(action_space)),
            "reward": empty((), torch.float32),
            "next_obs": empty_obs(),
            "terminated": empty((), torch.bool),
            "truncated": empty((), torch.bool),
            # A sequence may not continue past a step marked here: a real episode end, an
            # interrupted collection, or a transition stored on its own by `extend`.
            "episode_end": empty((), torch.bool),
        }
        self._pos = 0
        self._full = False
        self._version = 0
        self._valid_starts: tuple[int, int, torch.Tensor] | None = None

    # ------------------------------------------------------------------ size
    @property
    def capacity(self) -> int:
        """Number of transitions the buffer keeps."""
        return self.rows * self.n_envs

    @property
    def stored_rows(self) -> int:
        return self.rows if self._full else self._pos

    def __len__(self) -> int:
        return self.stored_rows * self.n_envs

    def __repr__(self) -> str:
        return (
            f"ReplayBuffer({len(self)}/{self.capacity} transitions, n_envs={self.n_envs}, "
            f"obs={self.observation_space}, action={self.action_space}, device={self.device})"
        )

    # ------------------------------------------------------------------ writing
    def _vector(self, value: Any, name: str, dtype: torch.dtype, batch: int) -> torch.Tensor:
        tensor = torch.as_tensor(np.asarray(value) if not torch.is_tensor(value) else value)
        tensor = tensor.to(device=self.device).reshape(-1) if tensor.ndim == 0 else tensor
        if tuple(tensor.shape) != (batch,):
            raise SpaceMismatchError(
                f"{name}: expected shape ({batch},) to match obs, got {tuple(tensor.shape)}"
            )
        if dtype == torch.bool and tensor.is_floating_point():
            raise SpaceMismatchError(f"{name}: expected booleans, got dtype {tensor.dtype}")
        return tensor.to(device=self.device, dtype=dtype)

    def _prepare(
        self, obs: Any, action: Any, reward: Any, next_obs: Any, terminated: Any, truncated: Any
    ) -> dict[str, torch.Tensor]:
        obs_t, _ = as_batch(obs, self.observation_space, name="obs", device=self.device)
        next_t, _ = as_batch(next_obs, self.observation_space, name="next_obs", device=self.device)
        act_t, _ = as_batch(action, self.action_space, name="action", device=self.device)
        batch = tree_batch_size(obs_t)
        for name, tensor in (("next_obs", next_t), ("action", act_t)):
            if tree_batch_size(tensor) != batch:
                raise SpaceMismatchError(
                    f"{name}: batch of {tree_batch_size(tensor)} does not match obs batch "
                    f"of {batch}"
                )
        for name, tensor in (("obs", obs_t), ("next_obs", next_t)):
            self._check_in_space(tensor, name)
        if is_discrete(self.action_space):
            self._check_in_space(act_t, "action", self.action_space)
        return {
            "obs": obs_t,
            "action": act_t,
            "reward": self._vector(reward, "reward", torch.float32, batch),
            "next_obs": next_t,
            "terminated": self._vector(terminated, "terminated", torch.bool, batch),
            "truncated": self._vector(truncated, "truncated", torch.bool, batch),
        }

    def _check_in_space(self, tensor: Tree, name: str, space: spaces.Space | None = None) -> None:
        """Raise when a discrete value lies outside its space (a value out of range would
        index a table row or a one-hot column that does not exist)."""
        checks = {"": space}.items() if space is not None else self._checked_leaves.items()
        for path, leaf in checks:
            value = tensor if path == "" else tensor[path]
            # On the CPU the check reads the tensor's memory with NumPy: a torch op per
            # comparison would cost more than the write it guards. An accelerator
            # compares on the device and reads one flag back.
            host = value if accelerator_paths(value.device) else value.numpy()
            outside = ~rows_in_space(host, leaf)
            if bool(outside.any()):
                row = (
                    int(np.flatnonzero(outside)[0])
                    if host is not value
                    else int(torch.nonzero(outside)[0])
                )
                where = name if path == "" else f"{name}[{path!r}]"
                raise SpaceMismatchError(
                    f"{where}: {int(outside.sum())} value(s) lie outside {leaf!r}, the first in "
                    f"row {row}: {value[row].tolist()}"
                )

    def _write(self, rows: dict[str, Tree]) -> None:
        count = tree_batch_size(rows["obs"])
        if count > self.rows:
            rows = {k: tree_index(v, slice(-self.rows, None)) for k, v in rows.items()}
            # The dropped rows would have been overwritten by the ones kept.
            self._pos = (self._pos + count - self.rows) % self.rows
            count = self.rows
        index = (self._pos + torch.arange(count, device=self.device)) % self.rows
        for key, value in rows.items():
            tree_assign(self._data[key], index, value)
        self._full = self._full or self._pos + count >= self.rows
        self._pos = (self._pos + count) % self.rows
        self._version += 1

    def add(
        self,
        obs: Any,
        action: Any,
        reward: Any,
        next_obs: Any,
        terminated: Any,
        truncated: Any,
    ) -> None:
        """Store one step of every stream.

        :param obs: ``[n_envs, *obs_shape]``, or ``obs_shape`` when ``n_envs == 1``.
        :param action: ``[n_envs, *act_shape]``, or ``act_shape`` when ``n_envs == 1``.
        :param reward: ``[n_envs]`` (or a scalar).
        :param next_obs: like ``obs``; the observation the step produced (before any reset).
        :param terminated: ``[n_envs]`` bool.
        :param truncated: ``[n_envs]`` bool.
        """
        row = self._prepare(obs, action, reward, next_obs, terminated, truncated)
        if tree_batch_size(row["obs"]) != self.n_envs:
            raise SpaceMismatchError(
                f"obs: add() takes one step of each of the buffer's {self.n_envs} streams, "
                f"got a batch of {tree_batch_size(row['obs'])}; use extend() for independent "
                "transitions"
            )
        row["episode_end"] = row["terminated"] | row["truncated"]
        self._write({k: tree_map(lambda v: v.unsqueeze(0), v) for k, v in row.items()})

    def extend(
        self,
        obs: Any,
        action: Any,
        reward: Any,
        next_obs: Any,
        terminated: Any,
        truncated: Any,
    ) -> None:
        """Store ``B`` independent transitions (e.g. imagined ones) at once.

        They are never joined into sequences. ``B`` must be a multiple of ``n_envs``.

        :param obs: ``[B, *obs_shape]``; the other arguments batched alike.
        """
        batch = self._prepare(obs, action, reward, next_obs, terminated, truncated)
        count = tree_batch_size(batch["obs"])
        if count % self.n_envs:
            raise SpaceMismatchError(
                f"obs: extend() needs a multiple of n_envs={self.n_envs} transitions, got {count}"
            )
        batch["episode_end"] = torch.ones(count, dtype=torch.bool, device=self.device)
        # The streams' current pieces stop here too, or a sequence would run from the last
        # added step into the first of these transitions.
        self.end_episodes()
        self._write(
            {
                k: tree_map(lambda v: v.reshape(count // self.n_envs, self.n_envs, *v.shape[1:]), v)
                for k, v in batch.items()
            }
        )

    def end_episodes(self, streams: slice | list[int] | None = None) -> None:
        """Mark the newest step of every stream (or of ``streams``) as the end of its
        episode.

        Call this when collection stops or restarts mid-episode (a reset without a
        terminal step), so that no sequence joins the two pieces.

        :param streams: the streams that restart (e.g. those of a collector that was
            restarted); ``None``: all.
        """
        if self.stored_rows:
            row = (self._pos - 1) % self.rows
            if streams is None:
                self._data["episode_end"][row] = True
            else:
                index = streams if isinstance(streams, slice) else list(streams)
                self._data["episode_end"][row, index] = True
            self._version += 1

    # ------------------------------------------------------------------ reading
    def _check_nonempty(self, what: str) -> None:
        if len(self) == 0:
            raise ValueError(f"cannot {what}: the buffer is empty; add transitions first")

    def sample(self, batch_size: int, *, generator: torch.Generator | None = None) -> Transition:
        """Draw ``batch_size`` stored transitions uniformly, with replacement.

        :return: a :class:`Transition` with ``obs: [batch_size, *obs_shape]`` etc., on
            :attr:`device`.
        """
        self._check_nonempty("sample")
        flat = torch.randint(len(self), (batch_size,), device=self.device, generator=generator)
        # flat numbers (row, env) row-major, as the storage lays them out: one index_select
        # per field, several times faster than indexing by the two (imagination samples its
        # start states here at every reset).
        return Transition(
            **{
                k: tree_map(lambda v: v.flatten(0, 1).index_select(0, flat), self._data[k])
                for k in _FIELDS[:-1]
            }
        )

    def _starts(self, length: int) -> torch.Tensor:
        """Logical ``(t, env)`` starts of every stored length-``length`` sub-trajectory."""
        cached = self._valid_starts
        if cached is not None and cached[0] == self._version and cached[1] == length:
            return cached[2]
        n = self.stored_rows
        first = self._pos if self._full else 0
        order = (first + torch.arange(n, device=self.device)) % self.rows
        ends = self._data["episode_end"][order].to(torch.int32)  # [n, n_envs]
        if length > n:
            starts = torch.zeros((0, 2), dtype=torch.long, device=self.device)
        else:
            cum = torch.cat(
                [torch.zeros(1, self.n_envs, dtype=torch.int32, device=self.device), ends.cumsum(0)]
            )
            # Ends among steps t .. t+length-2; the last step of a sequence may end it.
            crossing = cum[length - 1 : n] - cum[: n - length + 1]
            starts = torch.nonzero(crossing == 0)
        self._valid_starts = (self._version, length, starts)
        return starts

    def sample_sequences(
        self,
        batch_size: int,
        length: int,
        *,
        generator: torch.Generator | None = None,
        cross_episodes: bool = False,
    ) -> Sequence:
        """Draw ``batch_size`` contiguous sub-trajectories of ``length`` steps.

        By default uniform over every stored sub-trajectory that lies within one episode.
        With ``cross_episodes=True`` (DreamerV3's replay), uniform over every run of
        ``length`` consecutive steps of one stream, which may span several episodes; its
        ``episode_end`` field then says where each one stops, so that a recurrent model can
        restart its state at the next step. Short episodes are sampled as often as long
        ones' steps are, and every step can be drawn once ``length`` rows are stored.

        :return: a :class:`Sequence` with ``obs: [batch_size, length, *obs_shape]``,
            ``reward: [batch_size, length]``, ``episode_end: [batch_size, length]`` etc.
        :raises ValueError: when no stored sub-trajectory is ``length`` steps long.
        """
        self._check_nonempty("sample sequences")
        if not isinstance(length, (int, np.integer)) or length < 1:
            raise ValueError(f"length: expected a positive int, got {length!r}")
        if cross_episodes:
            n = self.stored_rows - length + 1
            if n < 1:
                raise ValueError(
                    f"length: sequences of {length} steps need {length} stored steps per "
                    f"stream, the buffer holds {self.stored_rows}; collect more or ask for "
                    "shorter sequences"
                )
            flat = torch.randint(
                n * self.n_envs, (batch_size,), device=self.device, generator=generator
            )
            pick = torch.stack([flat // self.n_envs, flat % self.n_envs], -1)
        else:
            starts = self._starts(length)
            if starts.shape[0] == 0:
                raise ValueError(
                    f"length: no stored sub-trajectory of {length} steps lies within one "
                    f"episode ({len(self)} transitions stored); collect more, ask for shorter "
                    "sequences or pass cross_episodes=True"
                )
            pick = starts[
                torch.randint(
                    starts.shape[0], (batch_size,), device=self.device, generator=generator
                )
            ]
        first = self._pos if self._full else 0
        steps = torch.arange(length, device=self.device)
        rows = (first + pick[:, :1] + steps) % self.rows  # [B, L]
        cols = pick[:, 1:].expand(-1, length)
        return Sequence(**{k: tree_index(self._data[k], (rows, cols)) for k in _FIELDS})

    def transitions(self) -> Transition:
        """Every stored transition, oldest first: ``obs: [len(self), *obs_shape]`` etc."""
        n = self.stored_rows
        first = self._pos if self._full else 0
        order = (first + torch.arange(n, device=self.device)) % self.rows
        return Transition(
            **{k: tree_map(lambda v: v[order].flatten(0, 1), self._data[k]) for k in _FIELDS[:-1]}
        )

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """The stored rows in storage order plus the write position: restoring it with
        :meth:`load_state_dict` gives a buffer that samples exactly as this one.

        :return: ``{field: [stored_rows, n_envs, ...]}`` tensors (a dict of leaves for the
            observations of a Dict/Tuple space), ``"pos"`` and ``"full"``.
        """
        held = self.stored_rows
        state: dict[str, Any] = {k: tree_index(v, slice(None, held)) for k, v in self._data.items()}
        state["pos"], state["full"] = self._pos, self._full
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output into a buffer of the same spaces, capacity
        and ``n_envs``. From a buffer of another ``n_envs``, the stored transitions are
        added oldest first as independent ones (see :meth:`extend`; the oldest few are
        dropped to fill whole rows), as when a run continues with another number of envs.

        :raises ValueError: naming the field whose shape or dtype does not fit.
        """
        stored = state["reward"]
        if stored.dim() >= 2 and stored.shape[1] != self.n_envs and stored.shape[0]:
            self._load_other_layout(state)
            return
        given = _flat_fields({k: state[k] for k in _FIELDS})
        expected_fields = _flat_fields(self._data)
        if set(given) != set(expected_fields):
            raise ValueError(
                f"state: holds fields {sorted(given)}, expected {sorted(expected_fields)}"
            )
        held = int(stored.shape[0])
        for key, expected in expected_fields.items():
            value = given[key]
            if (
                value.shape[0] != held
                or value.shape[0] > self.rows
                or value.shape[1:] != expected.shape[1:]
                or value.dtype != expected.dtype
            ):
                raise ValueError(
                    f"state[{key!r}]: has shape {tuple(value.shape)} and dtype {value.dtype}, "
                    f"expected ({held} <= {self.rows}, "
                    f"{', '.join(map(str, expected.shape[1:]))}) {expected.dtype}"
                )
        pos, full = state["pos"], state["full"]
        if (
            isinstance(pos, bool)
            or not isinstance(pos, (int, np.integer))
            or not (0 <= pos < self.rows)
        ):
            raise ValueError(f"state['pos']: expected an int in [0, {self.rows}), got {pos!r}")
        if not bool(full) and held != pos:
            raise ValueError(
                f"state['pos']: a buffer that is not full holds exactly pos={pos} rows, got {held}"
            )
        for key, expected in expected_fields.items():
            expected.zero_()
            expected[:held] = given[key].to(self.device)
        self._pos, self._full = int(pos), bool(full)
        self._version += 1

    def _load_other_layout(self, state: dict[str, Any]) -> None:
        rows = state["reward"].shape[0]
        first = int(state["pos"]) if bool(state["full"]) else 0
        order = (first + torch.arange(rows)) % rows
        flat = {
            k: tree_map(lambda v: v[order].flatten(0, 1).to(self.device), state[k])
            for k in _FIELDS[:-1]
        }
        keep = (len(flat["reward"]) // self.n_envs) * self.n_envs
        if keep:
            self.extend(*(tree_index(flat[k], slice(-keep, None)) for k in _FIELDS[:-1]))

    def save(self, path: str | os.PathLike) -> None:
        """Write the stored transitions to ``path`` atomically (tensors + JSON, no pickle)."""
        n = self.stored_rows
        first = self._pos if self._full else 0
        order = (first + torch.arange(n, device=self.device)) % self.rows
        metadata = {
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
            "capacity": self.capacity,
            "n_envs": self.n_envs,
        }
        save_checkpoint(
            path,
            kind=_CHECKPOINT_KIND,
            metadata=metadata,
            tensors=_flat_fields({k: tree_index(v, order) for k, v in self._data.items()}),
        )

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "auto") -> ReplayBuffer:
        """Read a buffer written by :meth:`save`.

        :raises CheckpointError: for a corrupt, foreign or inconsistent file.
        """
        metadata, tensors = load_checkpoint(path, kind=_CHECKPOINT_KIND)
        try:
            buffer = cls(
                space_from_json(metadata["observation_space"]),
                space_from_json(metadata["action_space"]),
                int(metadata["capacity"]),
                device=device,
                n_envs=int(metadata["n_envs"]),
            )
            expected_fields = _flat_fields(buffer._data)
            if set(tensors) != set(expected_fields):
                raise ValueError(
                    f"it holds tensors {sorted(tensors)}, expected {sorted(expected_fields)}"
                )
            held = int(tensors["reward"].shape[0])
            if held > buffer.rows:
                raise ValueError(
                    f"it holds {held} rows, more than its capacity of {buffer.rows} rows"
                )
            for key, expected in expected_fields.items():
                value = tensors[key]
                if (
                    value.shape[0] != held
                    or value.shape[1:] != expected.shape[1:]
                    or value.dtype != expected.dtype
                ):
                    raise ValueError(
                        f"{key} has shape {tuple(value.shape)} and dtype {value.dtype}, "
                        f"expected ({held}, {', '.join(map(str, expected.shape[1:]))}) "
                        f"{expected.dtype}"
                    )
            rows = {
                k: tree_map(lambda v: v.to(buffer.device), v)
                for k, v in _nest_fields(tensors).items()
            }
        except (KeyError, TypeError, ValueError, SpaceMismatchError) as err:
            raise CheckpointError(
                f"{str(path)!r}: replay buffer checkpoint is corrupt: {err}"
            ) from err
        if rows["reward"].shape[0]:
            buffer._write(rows)
        return buffer
