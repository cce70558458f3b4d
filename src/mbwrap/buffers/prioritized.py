"""Prioritised replay of trajectory positions for MuZero (Schrittwieser et al. 2020,
Appendix G), with n-step value targets, ``K``-step unrolled targets and reanalyse.

Trajectories are stored as segments in one ring of rows on a device. A segment of ``T``
moves has ``T + 1`` rows: ``T`` positions (observation, action taken, reward received,
search value, search policy) and a final row holding the observation after the last move
and its bootstrap value (0 when the episode terminated there). Rows are addressed by an
absolute insertion index; every row knows the absolute index of its segment's final row,
so targets ``k`` steps ahead are gathers, without a loop over the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch

from mbwrap.buffers.replay import MAX_CAPACITY
from mbwrap.checkpoint import check_count
from mbwrap.errors import CheckpointError, SpaceMismatchError

#: MuZero Appendix G: ``P(i) = p_i^alpha / sum_k p_k^alpha`` and importance weights
#: ``(1 / (N P(i)))^beta`` with ``alpha = beta = 1``.
PRIORITY_ALPHA = 1.0
PRIORITY_BETA = 1.0
#: ``obs [M, *obs_shape] -> values [M]``: a network's value of stored observations.
BootstrapFn = Callable[[torch.Tensor], torch.Tensor]
#: Keeps every stored position sampleable when its error is 0 (Schaul et al. 2016).
PRIORITY_EPS = 1e-6


# ---------------------------------------------------------------------- pure math
def sampling_probabilities(priorities: torch.Tensor, alpha: float) -> torch.Tensor:
    """``P(i) = p_i^alpha / sum_k p_k^alpha`` (zero priorities are never sampled).

    :param priorities: ``[N]`` non-negative. :return: ``[N]`` summing to 1.
    """
    scaled = torch.where(priorities > 0, priorities.clamp(min=0) ** alpha, 0.0)
    return scaled / scaled.sum()


def importance_weights(probs: torch.Tensor, count: int, beta: float) -> torch.Tensor:
    """``w_i = (1 / (N P(i)))^beta``, divided by the largest of the batch so that weights
    only scale the loss down (Schaul et al. 2016, Algorithm 1).

    :param probs: ``[B]`` sampling probabilities of the sampled positions.
    :param count: ``N``, positions that could have been sampled.
    :return: ``[B]`` in ``(0, 1]``.
    """
    weights = (count * probs) ** (-beta)
    return weights / weights.max()


def n_step_targets(
    rewards: torch.Tensor, steps: torch.Tensor, bootstrap: torch.Tensor, gamma: float
) -> torch.Tensor:
    """``z = sum_{i < m} gamma^i r_i + gamma^m v`` with ``m = steps`` per row.

    :param rewards: ``[..., n]`` rewards from the position on (entries at ``i >= steps``
        are ignored).
    :param steps: ``[...]`` long, rewards counted (``<= n``; fewer at a segment's end).
    :param bootstrap: ``[...]`` value ``m`` steps ahead (0 past a terminal state).
    :return: ``[...]``.
    """
    n = rewards.shape[-1]
    i = torch.arange(n, device=rewards.device)
    powers = gamma ** i.to(rewards.dtype)
    counted = i < steps.unsqueeze(-1)
    summed = (rewards * powers * counted).sum(-1)
    return summed + gamma ** steps.to(rewards.dtype) * bootstrap


def trajectory_n_step_targets(
    rewards: torch.Tensor, values: torch.Tensor, *, n: int, gamma: float
) -> torch.Tensor:
    """n-step value targets of every position of one trajectory.

    :param rewards: ``[T]`` ``r_{t+1}`` of each move.
    :param values: ``[T + 1]`` search values; ``values[T]`` bootstraps beyond the last
        move (0 when it ended in a terminal state).
    :return: ``[T + 1]``, ``z_t = sum_{i < m} gamma^i r_{t+i} + gamma^m values[t+m]``
        with ``m = min(n, T - t)``.
    """
    length = rewards.shape[0]
    t = torch.arange(length + 1, device=rewards.device)
    index = t.unsqueeze(-1) + torch.arange(n, device=rewards.device)
    padded = torch.cat([rewards, rewards.new_zeros(n)])
    steps = (length - t).clamp(max=n)
    return n_step_targets(padded[index], steps, values[t + steps], gamma)


# ---------------------------------------------------------------------- sampled batches
class PrioritizedBatch(NamedTuple):
    """``B`` positions with targets for ``K`` unrolled steps.

    :param indices: ``[B]`` long, ring rows (for :meth:`PrioritizedTrajectoryBuffer.
        update_priorities`).
    :param weights: ``[B]`` importance weights.
    :param obs: ``[B, *obs_shape]`` observations at the positions.
    :param actions: ``[B, K]`` long, the moves made (uniform random past a segment's end).
    :param target_values: ``[B, K + 1]`` n-step returns.
    :param target_rewards: ``[B, K + 1]`` rewards of the move into step ``k`` (entry 0 is 0).
    :param target_policies: ``[B, K + 1, A]`` search policies.
    :param value_mask, reward_mask, policy_mask: ``[B, K + 1]`` bool, targets that exist
        (past a terminal state value and reward targets are 0 and kept; past a cut
        segment they are unknown and masked; no policy target past the last move).
    """

    indices: torch.Tensor
    weights: torch.Tensor
    obs: torch.Tensor
    actions: torch.Tensor
    target_values: torch.Tensor
    target_rewards: torch.Tensor
    target_policies: torch.Tensor
    value_mask: torch.Tensor
    reward_mask: torch.Tensor
    policy_mask: torch.Tensor


def _check_int(value: Any, name: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(
            f"{name}: expected at most {maximum} (refused before allocating), got {value!r}"
        )
    return value


class PrioritizedTrajectoryBuffer:
    """Trajectory segments in a ring of rows, sampled in proportion to priority.

    :param capacity: rows kept (positions plus one final row per segment), at most
        :data:`~mbwrap.buffers.replay.MAX_CAPACITY` (refused before allocating).
    :param obs_shape: shape of one observation; :param obs_dtype: its stored dtype
        (``torch.uint8`` keeps Atari frames small).
    :param num_actions: ``A``.
    :param gamma: of the n-step value targets.
    :param n_step: ``n`` (MuZero Appendix G: 10 for Atari).
    :param num_unroll_steps: ``K`` (MuZero Appendix G: 5).
    :param alpha, beta: prioritisation exponents (MuZero Appendix G: both 1).
    :param device: where rows live and batches are made.
    :param generator: randomness of sampling (a ``torch.Generator`` on ``device``).
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        num_actions: int,
        *,
        gamma: float,
        n_step: int = 10,
        num_unroll_steps: int = 5,
        alpha: float = PRIORITY_ALPHA,
        beta: float = PRIORITY_BETA,
        obs_dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> None:
        self.capacity = _check_int(capacity, "capacity", 2, MAX_CAPACITY)
        self.num_actions = _check_int(num_actions, "num_actions", 1)
        self.n_step = _check_int(n_step, "n_step", 1)
        self.num_unroll_steps = _check_int(num_unroll_steps, "num_unroll_steps", 0)
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma: expected a float in [0, 1], got {gamma!r}")
        if alpha < 0 or beta < 0:
            raise ValueError(f"alpha, beta: expected floats >= 0, got {alpha!r}, {beta!r}")
        self.gamma = float(gamma)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.device = torch.device(device)
        self.generator = generator
        cap = self.capacity
        #: ``[capacity, *obs_shape]``.
        self.obs = torch.zeros((cap, *self.obs_shape), dtype=obs_dtype, device=self.device)
        #: ``[capacity]`` long, the move made at the row (0 on final rows).
        self.action = torch.zeros(cap, dtype=torch.long, device=self.device)
        #: ``[capacity]`` reward of that move.
        self.reward = torch.zeros(cap, device=self.device)
        #: ``[capacity]`` search value (bootstrap value on final rows, 0 if terminal).
        self.root_value = torch.zeros(cap, device=self.device)
        #: ``[capacity, A]`` search policy.
        self.policy = torch.zeros(cap, self.num_actions, device=self.device)
        #: ``[capacity]`` long, absolute index of the row and of its segment's final row.
        self.index = torch.full((cap,), -1, dtype=torch.long, device=self.device)
        self.end = torch.full((cap,), -1, dtype=torch.long, device=self.device)
        #: ``[capacity]`` bool, final row of an episode that terminated.
        self.terminal = torch.zeros(cap, dtype=torch.bool, device=self.device)
        #: ``[capacity]`` sampling priority (0: final rows and empty slots).
        self.priority = torch.zeros(cap, device=self.device)
        #: Rows ever added.
        self.added = 0

    def __len__(self) -> int:
        """Rows held (positions and final rows)."""
        return min(self.added, self.capacity)

    @property
    def num_positions(self) -> int:
        """Positions that can be sampled."""
        return int((self.priority > 0).sum())

    # ------------------------------------------------------------------ writing
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
        """Store one segment of ``T >= 1`` moves.

        :param obs: ``[T + 1, *obs_shape]``: the positions and the observation after the last
            move.
        :param actions: ``[T]``; :param rewards: ``[T]``.
        :param root_values: ``[T + 1]`` search values; the last bootstraps (ignored and
            stored as 0 when ``terminated``).
        :param policies: ``[T, A]``.
        :param terminated: the episode ended in a terminal state after the last move.
        """
        moves = actions.shape[0]
        expected = {
            "obs": (obs, (moves + 1, *self.obs_shape)),
            "rewards": (rewards, (moves,)),
            "root_values": (root_values, (moves + 1,)),
            "policies": (policies, (moves, self.num_actions)),
        }
        for name, (tensor, shape) in expected.items():
            if tuple(tensor.shape) != shape:
                raise SpaceMismatchError(
                    f"{name}: expected shape {shape} for a segment of {moves} moves, got "
                    f"{tuple(tensor.shape)}"
                )
        if moves < 1 or moves + 1 > self.capacity:
            raise ValueError(
                f"actions: expected 1 to {self.capacity - 1} moves (capacity {self.capacity}), "
                f"got {moves}"
            )
        dev = self.device
        values = root_values.to(dev, torch.float32).clone()
        if terminated:
            values[-1] = 0.0
        absolute = self.added + torch.arange(moves + 1, device=dev)
        slots = absolute % self.capacity
        rewards = rewards.to(dev, torch.float32)
        self.obs[slots] = obs.to(dev, self.obs.dtype)
        self.action[slots] = torch.cat([actions.to(dev).long(), actions.new_zeros(1).to(dev)])
        self.reward[slots] = torch.cat([rewards, rewards.new_zeros(1)])
        self.root_value[slots] = values
        self.policy[slots] = torch.cat(
            [policies.to(dev, torch.float32), policies.new_zeros(1, self.num_actions).to(dev)]
        )
        self.index[slots] = absolute
        self.end[slots] = absolute[-1]
        self.terminal[slots] = False
        self.terminal[slots[-1]] = bool(terminated)
        # MuZero Appendix G: priority |search value - n-step return| from the start.
        targets = trajectory_n_step_targets(
            rewards, values, n=self.n_step, gamma=self.gamma
        )
        priority = (values - targets).abs()[:-1] + PRIORITY_EPS
        self.priority[slots] = torch.cat([priority, priority.new_zeros(1)])
        self.added += moves + 1

    # ------------------------------------------------------------------ sampling
    def sample(
        self, batch_size: int, *, bootstrap_fn: BootstrapFn | None = None
    ) -> PrioritizedBatch:
        """``batch_size`` positions drawn with probability ``P(i)``, with ``K`` unrolled
        targets each (see :class:`PrioritizedBatch`).

        :param bootstrap_fn: values the observations the n-step targets bootstrap from
            afresh (MuZero Reanalyze, Appendix H, bootstraps from a recent network instead
            of the stored search values); ``None`` uses the stored search values.
        """
        count = self.num_positions
        if count == 0:
            raise ValueError("buffer: holds no positions yet; add a segment first")
        probs = sampling_probabilities(self.priority, self.alpha)
        rows = torch.multinomial(probs, batch_size, replacement=True, generator=self.generator)
        weights = importance_weights(probs[rows], count, self.beta)
        k = torch.arange(self.num_unroll_steps + 1, device=self.device)
        start, end = self.index[rows].unsqueeze(-1), self.end[rows].unsqueeze(-1)
        position = start + k  # [B, K + 1]
        terminal = self.terminal[end % self.capacity]
        before_end = position < end
        ring = position % self.capacity
        target_values, value_mask = self.value_targets(position, end, terminal, bootstrap_fn)
        previous = position - 1
        moved = (previous >= start) & (previous < end)
        target_rewards = torch.where(moved, self.reward[previous % self.capacity], 0.0)
        reward_mask = (moved | terminal) & (k > 0)
        policy = torch.where(
            before_end.unsqueeze(-1), self.policy[ring], 1.0 / self.num_actions
        )
        random_actions = torch.randint(
            self.num_actions, (batch_size, self.num_unroll_steps), device=self.device,
            generator=self.generator,
        )
        actions = torch.where(
            before_end[:, :-1], self.action[ring[:, :-1]], random_actions
        )
        return PrioritizedBatch(
            indices=rows, weights=weights, obs=self.obs[rows], actions=actions,
            target_values=target_values, target_rewards=target_rewards,
            target_policies=policy, value_mask=value_mask, reward_mask=reward_mask,
            policy_mask=before_end,
        )

    def value_targets(
        self,
        position: torch.Tensor,
        end: torch.Tensor,
        terminal: torch.Tensor,
        bootstrap_fn: BootstrapFn | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """n-step returns at absolute indices ``position [...]`` of segments whose final rows
        are at absolute ``end [...]`` (``terminal [...]``: they ended an episode), bootstrapped
        from stored search values or, when given, ``bootstrap_fn``.

        :return: ``(z [...], mask [...] bool)``; past a segment's end ``z`` is 0, kept when
            the episode terminated, masked when the segment was cut.
        """
        i = torch.arange(self.n_step, device=self.device)
        reward_rows = (position.unsqueeze(-1) + i) % self.capacity
        steps = (end - position).clamp(0, self.n_step)
        bootstrap_rows = (position + steps) % self.capacity
        if bootstrap_fn is None:
            bootstrap = self.root_value[bootstrap_rows]
        else:
            fresh = bootstrap_fn(self.obs[bootstrap_rows.reshape(-1)]).reshape(steps.shape)
            bootstrap = torch.where(self.terminal[bootstrap_rows], 0.0, fresh.float())
        z = n_step_targets(self.reward[reward_rows], steps, bootstrap, self.gamma)
        inside = position <= end
        return torch.where(inside, z, 0.0), inside | terminal

    def bootstrap_terms(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Where the n-step value targets of sampled ``rows [B]`` bootstrap, and with what
        weight: ``(bootstrap rows [B, K + 1], scale [B, K + 1])``, ``scale = gamma^m``
        (0 past a segment's end or at a terminal state). A target bootstrapped from a
        value ``v`` is the stored-value target plus ``scale * (v - root_value[row])``: how
        a sampler without the networks (a replay actor) lets the learner bootstrap."""
        k = torch.arange(self.num_unroll_steps + 1, device=self.device)
        start, end = self.index[rows].unsqueeze(-1), self.end[rows].unsqueeze(-1)
        position = start + k
        steps = (end - position).clamp(0, self.n_step)
        bootstrap_rows = (position + steps) % self.capacity
        counted = (position <= end) & ~self.terminal[bootstrap_rows]
        return bootstrap_rows, self.gamma ** steps.float() * counted

    def update_priorities(self, rows: torch.Tensor, priorities: torch.Tensor) -> None:
        """Set the priorities of sampled ``rows [B]`` to ``priorities [B]`` (e.g.
        ``|predicted value - n-step return|``, MuZero Appendix G)."""
        self.priority[rows] = priorities.detach().to(self.device, torch.float32).abs() + \
            PRIORITY_EPS

    # ------------------------------------------------------------------ reanalyse
    def uniform_rows(self, count: int) -> torch.Tensor:
        """``[count]`` rows drawn uniformly among stored positions."""
        weights = (self.priority > 0).float()
        if weights.sum() == 0:
            raise ValueError("buffer: holds no positions yet; add a segment first")
        return torch.multinomial(weights, count, replacement=True, generator=self.generator)

    def positions_to_reanalyse(
        self, count: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``count`` rows drawn uniformly, duplicates dropped: ``(rows [M], their move
        indices [M], their observations [M, *obs_shape])``; search the observations
        again and give the results to :meth:`apply_search` with ``index``."""
        rows = torch.unique(self.uniform_rows(count))
        return rows, self.index[rows].clone(), self.obs[rows]

    def reanalyse(self, search_fn: Any, rows: torch.Tensor, *, batch_size: int = 256) -> None:
        """Recompute the search values and policies of ``rows`` with the latest network
        (MuZero Reanalyze, Appendix H), in batches, and refresh their priorities.

        :param search_fn: ``obs [b, *obs_shape] -> (values [b], policies [b, A])``.
        :param rows: ``[M]`` long ring rows holding positions.
        """
        rows = torch.unique(rows.to(self.device))
        for chunk in rows.split(batch_size):
            values, policies = search_fn(self.obs[chunk])
            self.root_value[chunk] = values.to(self.device, torch.float32)
            self.policy[chunk] = policies.to(self.device, torch.float32)
        self._refresh_priorities(rows)

    def apply_search(
        self,
        rows: torch.Tensor,
        values: torch.Tensor,
        policies: torch.Tensor,
        *,
        index: torch.Tensor,
    ) -> int:
        """Store search results computed elsewhere (a reanalyse worker) for ``rows``,
        where they still hold the positions searched, and refresh their priorities.

        :param rows: ``[M]`` distinct ring rows; :param values: ``[M]`` root values;
            :param policies: ``[M, A]`` search policies.
        :param index: ``[M]`` absolute indices the rows held when their observations were
            read (:attr:`index`); a row written over since then is left alone.
        :return: rows updated.
        """
        rows, index = rows.to(self.device), index.to(self.device)
        same = self.index[rows] == index
        rows = rows[same]
        self.root_value[rows] = values.to(self.device, torch.float32)[same]
        self.policy[rows] = policies.to(self.device, torch.float32)[same]
        if rows.numel():
            self._refresh_priorities(rows)
        return int(rows.numel())

    def _refresh_priorities(self, rows: torch.Tensor) -> None:
        end = self.end[rows]
        z, _ = self.value_targets(self.index[rows], end, self.terminal[end % self.capacity])
        self.update_priorities(rows, self.root_value[rows] - z)

    # ------------------------------------------------------------------ persistence
    _FIELDS = ("obs", "action", "reward", "root_value", "policy", "index", "end", "terminal",
               "priority")

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The stored rows and the insertion counter, for checkpoints."""
        held = len(self)
        tensors = {name: getattr(self, name)[:held] for name in self._FIELDS}
        tensors["added"] = torch.tensor(self.added)
        return tensors

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state_dict`'s output into a buffer of the same capacity and shapes.

        Everything is checked before anything is written: each field's shape, the insertion
        counter against the rows held, and every stored index (a row's absolute index and
        its segment's end, the moves) against the ring and the actions.

        :raises CheckpointError: naming the field that disagrees.
        """
        missing = sorted({*self._FIELDS, "added"} - set(tensors))
        if missing:
            raise CheckpointError(f"tensors: missing {missing}")
        added = check_count(tensors["added"], name="tensors['added']")
        held = min(added, self.capacity)
        for name in self._FIELDS:
            value, current = tensors[name], getattr(self, name)
            expected = (held, *current.shape[1:])
            if not isinstance(value, torch.Tensor) or (tuple(value.shape), value.dtype) != (
                expected, current.dtype
            ):
                raise CheckpointError(
                    f"tensors[{name!r}]: expected shape {expected} and dtype {current.dtype} "
                    f"({held} rows for added={added} in a ring of {self.capacity}), got "
                    f"{getattr(value, 'shape', value)!r} {getattr(value, 'dtype', '')}"
                )
        index, end, action = tensors["index"], tensors["end"], tensors["action"]
        ring = torch.arange(held, device=index.device)
        wrong = {
            "index": (
                (index < added - held) | (index >= added) | (index % self.capacity != ring),
                f"the absolute index of its ring row: one of the last {held} of the {added} "
                f"rows added, equal to the row modulo {self.capacity}",
            ),
            "end": (
                (end < index) | (end >= added),
                f"its segment's final row: at or after the row's own index, before {added}",
            ),
            "action": ((action < 0) | (action >= self.num_actions),
                       f"a move in [0, {self.num_actions})"),
        }
        for name, (bad, expected_value) in wrong.items():
            if bool(bad.any()):
                row = int(bad.nonzero()[0, 0])
                raise CheckpointError(
                    f"tensors[{name!r}]: row {row} holds {int(tensors[name][row])}; expected "
                    f"{expected_value}"
                )
        priority = tensors["priority"]
        if not bool(torch.isfinite(priority).all()) or bool((priority < 0).any()):
            raise CheckpointError("tensors['priority']: expected finite priorities >= 0")
        for name in self._FIELDS:
            getattr(self, name)[:held] = tensors[name].to(self.device)
        self.added = added


class SegmentWriter:
    """Builds the segments of ``n_envs`` parallel episodes move by move, batched, and hands
    each to a :class:`PrioritizedTrajectoryBuffer` when its episode ends or it reaches
    ``segment_length`` moves (the position that starts the next segment then closes it,
    its search value bootstrapping the cut one).

    :param buffer: where segments go; :param n_envs: episodes written side by side.
    :param segment_length: moves per segment at most.
    """

    def __init__(
        self, buffer: PrioritizedTrajectoryBuffer, n_envs: int, segment_length: int
    ) -> None:
        self.buffer = buffer
        self.n_envs = _check_int(n_envs, "n_envs", 1)
        self.segment_length = _check_int(segment_length, "segment_length", 1)
        if segment_length + 1 > buffer.capacity:
            raise ValueError(
                f"segment_length: expected at most {buffer.capacity - 1} (the buffer's capacity "
                f"- 1), got {segment_length}"
            )
        n, length, dev = self.n_envs, self.segment_length, buffer.device
        self.obs = torch.zeros((n, length, *buffer.obs_shape), dtype=buffer.obs.dtype, device=dev)
        self.action = torch.zeros(n, length, dtype=torch.long, device=dev)
        self.reward = torch.zeros(n, length, device=dev)
        self.root_value = torch.zeros(n, length, device=dev)
        self.policy = torch.zeros(n, length, buffer.num_actions, device=dev)
        #: Moves written into each env's open segment.
        self.length = np.zeros(n, dtype=np.int64)

    def _flush(
        self, env: int, final_obs: torch.Tensor, final_value: torch.Tensor, terminated: bool
    ) -> None:
        moves = int(self.length[env])
        self.buffer.add_segment(
            torch.cat([self.obs[env, :moves], final_obs.unsqueeze(0).to(self.obs.dtype)]),
            self.action[env, :moves],
            self.reward[env, :moves],
            torch.cat([self.root_value[env, :moves], final_value.reshape(1).float()]),
            self.policy[env, :moves],
            terminated=terminated,
        )
        self.length[env] = 0

    def append(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        root_value: torch.Tensor,
        policy: torch.Tensor,
    ) -> None:
        """One move of every env: ``obs [n, *obs_shape]`` (before the move), ``action [n]``,
        ``reward [n]``, ``root_value [n]``, ``policy [n, A]``."""
        dev = self.buffer.device
        for env in np.flatnonzero(self.length >= self.segment_length):
            self._flush(int(env), obs[env].to(dev), root_value[env].to(dev), terminated=False)
        rows = torch.arange(self.n_envs, device=dev)
        at = torch.as_tensor(self.length, device=dev)
        self.obs[rows, at] = obs.to(dev, self.obs.dtype)
        self.action[rows, at] = action.to(dev).long()
        self.reward[rows, at] = reward.to(dev, torch.float32)
        self.root_value[rows, at] = root_value.to(dev, torch.float32)
        self.policy[rows, at] = policy.to(dev, torch.float32)
        self.length += 1

    def finish(
        self, env: int, final_obs: torch.Tensor, final_value: torch.Tensor, *, terminated: bool
    ) -> None:
        """End ``env``'s episode: ``final_obs [*obs_shape]`` after its last move, and its
        bootstrap value (ignored when ``terminated``)."""
        self._flush(env, final_obs.to(self.buffer.device), final_value.to(self.buffer.device),
                    terminated)
