"""A window of self-play positions with their search policies and game outcomes."""

from __future__ import annotations

import torch

from mbwrap.buffers.replay import MAX_CAPACITY
from mbwrap.checkpoint import check_count, check_index
from mbwrap.errors import CheckpointError


class SelfPlayBuffer:
    """The most recent ``capacity`` positions of self-play, as AlphaZero trains on
    (Silver et al. 2018: the latest games of self-play), in a ring on ``device``.

    :param capacity: positions kept (older ones are overwritten), at most
        :data:`~mbwrap.buffers.replay.MAX_CAPACITY` (refused before allocating).
    :param obs_shape: shape of one observation; stored as int8 (board planes).
    :param num_actions: ``A``.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        num_actions: int,
        *,
        device: torch.device | str = "cpu",
    ) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity: expected an int >= 1, got {capacity!r}")
        if capacity > MAX_CAPACITY:
            raise ValueError(
                f"capacity: expected at most {MAX_CAPACITY} positions (refused before "
                f"allocating), got {capacity!r}"
            )
        self.capacity = capacity
        self.device = torch.device(device)
        #: ``[capacity, *obs_shape]`` int8 observations of the player to move.
        self.obs = torch.zeros((capacity, *obs_shape), dtype=torch.int8, device=self.device)
        #: ``[capacity, A]`` search policies (root visit distributions).
        self.policy = torch.zeros(capacity, num_actions, device=self.device)
        #: ``[capacity]`` game outcomes for the player to move (+1, 0, -1).
        self.outcome = torch.zeros(capacity, device=self.device)
        self.size = 0
        self.position = 0
        #: Positions ever added.
        self.added = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: torch.Tensor, policy: torch.Tensor, outcome: torch.Tensor) -> None:
        """Append ``n`` positions: ``obs [n, *obs_shape]``, ``policy [n, A]``, ``outcome [n]``."""
        n = obs.shape[0]
        if policy.shape[0] != n or outcome.shape[0] != n:
            raise ValueError(
                f"policy, outcome: expected {n} rows like obs, got {policy.shape[0]} and "
                f"{outcome.shape[0]}"
            )
        if n > self.capacity:
            obs, policy, outcome = obs[-self.capacity:], policy[-self.capacity:], outcome[
                -self.capacity:]
            n = self.capacity
        slots = (self.position + torch.arange(n, device=self.device)) % self.capacity
        self.obs[slots] = obs.to(self.device, torch.int8)
        self.policy[slots] = policy.to(self.device, torch.float32)
        self.outcome[slots] = outcome.to(self.device, torch.float32)
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        self.added += n

    def sample(
        self, batch_size: int, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``batch_size`` positions drawn uniformly: ``(obs, policy, outcome)``."""
        if self.size == 0:
            raise ValueError("buffer: no positions to sample yet")
        index = torch.randint(self.size, (batch_size,), generator=generator,
                              device=generator.device if generator is not None else self.device)
        index = index.to(self.device)
        return self.obs[index], self.policy[index], self.outcome[index]

    def positions(self) -> dict[str, torch.Tensor]:
        """The stored positions, oldest first: ``obs [n, *obs_shape]``, ``policy [n, A]``,
        ``outcome [n]``."""
        order = (self.position - self.size + torch.arange(self.size, device=self.device)) % (
            self.capacity)
        return {"obs": self.obs[order], "policy": self.policy[order],
                "outcome": self.outcome[order]}

    def state_dict(self) -> dict[str, torch.Tensor | int]:
        """Storage and counters, for checkpoints; :meth:`load_state_dict` restores them so
        that sampling continues exactly."""
        return {"obs": self.obs, "policy": self.policy, "outcome": self.outcome,
                "size": self.size, "position": self.position, "added": self.added}

    def load_state_dict(self, state: dict[str, torch.Tensor | int]) -> None:
        """Restore :meth:`state_dict`'s output into a buffer of the same capacity and shapes.

        Everything is checked before anything is written.

        :raises CheckpointError: naming the entry whose shape does not fit, or the counter
            (``size``, ``position``, ``added``) that disagrees with the capacity or the
            others.
        """
        for name in ("obs", "policy", "outcome"):
            value, current = state[name], getattr(self, name)
            if not isinstance(value, torch.Tensor) or value.shape != current.shape:
                raise CheckpointError(
                    f"state[{name!r}]: expected shape {tuple(current.shape)}, got "
                    f"{getattr(value, 'shape', value)!r}"
                )
        added = check_count(state["added"], name="state['added']")
        # Positions are written in order into a ring: all three counters follow from added.
        size = check_count(state["size"], name="state['size']")
        if size != min(added, self.capacity):
            raise CheckpointError(
                f"state['size']: expected min(added, capacity) = {min(added, self.capacity)} "
                f"for added={added} and capacity {self.capacity}, got {size}"
            )
        position = check_index(state["position"], name="state['position']", size=self.capacity)
        if position != added % self.capacity:
            raise CheckpointError(
                f"state['position']: expected added % capacity = {added % self.capacity}, "
                f"got {position}"
            )
        for name in ("obs", "policy", "outcome"):
            getattr(self, name).copy_(state[name])
        self.size, self.position, self.added = size, position, added
