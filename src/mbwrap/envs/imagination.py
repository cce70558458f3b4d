"""The batched imagination loop shared by :class:`DreamEnv` and :class:`DreamVecEnv`.

It owns the model states of a batch of imagined episodes, draws start states, steps the
model once for the whole batch, and decides reward and termination, in this order of
preference: a function the user passed, the function registered for the model's env id
(group ``mbwrap.fns``), the model's own head.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
from gymnasium import spaces

from mbwrap.buffers import ReplayBuffer
from mbwrap.device import make_generator
from mbwrap.envs.fns.base import BatchedFn
from mbwrap.envs.fns.resolve import resolve_fns
from mbwrap.errors import ModelOutputError, NonFiniteModelWarning, SpaceMismatchError
from mbwrap.models import WorldModel
from mbwrap.spaces import as_batch

#: ``(n, generator) -> obs: [n, *obs_shape]``
StartSampler = Callable[[int, torch.Generator], Any]
StartStates = ReplayBuffer | np.ndarray | torch.Tensor | StartSampler

NonFinitePolicy = Literal["truncate", "raise"]


def _contained(x: torch.Tensor, space: spaces.Space) -> torch.Tensor:
    """Which rows of ``x: [K, *element_shape]`` lie in ``space``: ``[K]`` bool."""
    if isinstance(space, spaces.Discrete):
        return (x >= int(space.start)) & (x < int(space.start) + int(space.n))
    if isinstance(space, spaces.Box):
        low = torch.as_tensor(space.low, dtype=x.dtype, device=x.device)
        high = torch.as_tensor(space.high, dtype=x.dtype, device=x.device)
        inside = (x >= low) & (x <= high)
    elif isinstance(space, spaces.MultiDiscrete):
        start = torch.as_tensor(space.start, device=x.device)
        inside = (x >= start) & (x < start + torch.as_tensor(space.nvec, device=x.device))
    else:
        inside = (x == 0) | (x == 1)
    return inside.reshape(x.shape[0], -1).all(-1)


def _start_sampler(
    start_states: StartStates, model: WorldModel
) -> tuple[StartSampler | ReplayBuffer, torch.device]:
    """Turn an array of observations or a callable into ``(sampler, device)``; a buffer
    stays itself (the model draws its start states from it)."""
    space = model.observation_space
    if isinstance(start_states, ReplayBuffer):
        buffer = start_states
        if buffer.observation_space != space:
            raise SpaceMismatchError(
                f"start_states: buffer holds observations of {buffer.observation_space!r}, "
                f"the model expects {space!r}"
            )

        return buffer, buffer.device
    if isinstance(start_states, (np.ndarray, torch.Tensor, list, tuple)):
        states, _ = as_batch(start_states, space, name="start_states", device=model.device)
        if states.shape[0] == 0:
            raise ValueError("start_states: got an empty array of observations")
        outside = torch.nonzero(~_contained(states, space)).reshape(-1)
        if outside.numel():
            # An index model would fail far from here on a cell that does not exist.
            raise SpaceMismatchError(
                f"start_states: {outside.numel()} of {states.shape[0]} observations lie outside "
                f"{space!r}, the first at row {int(outside[0])}: {states[outside[0]].tolist()}"
            )

        def from_array(n: int, generator: torch.Generator) -> torch.Tensor:
            index = torch.randint(states.shape[0], (n,), device=states.device, generator=generator)
            return states[index]

        return from_array, model.device
    if callable(start_states):
        return start_states, model.device
    raise TypeError(
        "start_states: expected a ReplayBuffer, an array of observations [K, *obs_shape] or a "
        f"callable (n, generator) -> observations, got {type(start_states).__name__}"
    )


class ImaginationCore:
    """Batched imagined episodes over a :class:`WorldModel`; no autoreset, no numpy.

    :param model: the world model that imagines.
    :param batch_size: number of episodes stepped together.
    :param start_states: where episodes start (see :data:`StartStates`).
    :param reward_fn: batched ``(obs, action, next_obs) -> [B]`` overriding all else.
    :param termination_fn: batched ``(obs, action, next_obs) -> [B]`` bool likewise.
    :param on_nonfinite: ``"truncate"`` cuts episodes whose model output is NaN or
        infinite and warns; ``"raise"`` raises :class:`ModelOutputError`.
    :param member: follow this one ensemble member in every episode (e.g. to evaluate a
        policy under each member, as ME-TRPO does); ``None`` lets the model choose.
    """

    def __init__(
        self,
        model: WorldModel,
        batch_size: int,
        start_states: StartStates,
        reward_fn: BatchedFn | None = None,
        termination_fn: BatchedFn | None = None,
        on_nonfinite: NonFinitePolicy = "truncate",
        member: int | None = None,
    ) -> None:
        if member is not None and (not isinstance(member, (int, np.integer)) or member < 0):
            raise ValueError(f"member: expected None or an ensemble index >= 0, got {member!r}")
        self.fixed_member = None if member is None else int(member)
        if not isinstance(model, WorldModel):
            raise TypeError(
                f"model: expected an mbwrap.models.WorldModel, got {type(model).__name__}"
            )
        if on_nonfinite not in ("truncate", "raise"):
            raise ValueError(f"on_nonfinite: expected 'truncate' or 'raise', got {on_nonfinite!r}")
        self.model = model
        self.batch_size = batch_size
        self.on_nonfinite = on_nonfinite
        self._sample_starts, self._start_device = _start_sampler(start_states, model)
        fns = resolve_fns(model, reward_fn, termination_fn)
        self.reward_fn, self.termination_fn = fns.reward_fn, fns.termination_fn
        #: Where reward and termination come from: ``"given"``, ``"registered"``,
        #: ``"model"`` (the model's head; a model without a termination head never terminates).
        self.reward_source, self.termination_source = fns.reward_source, fns.termination_source
        self.seed(None)
        self.state: torch.Tensor | None = None
        self.obs: torch.Tensor | None = None
        #: ``[B]`` ensemble member per episode (TS-inf models), else ``None``.
        self.member: torch.Tensor | None = None

    def seed(self, seed: int | None) -> None:
        """Seed the start-state and model generators (``None``: fresh entropy)."""
        base = np.random.SeedSequence(seed)
        model_seed, start_seed = base.generate_state(2, dtype=np.uint64)
        self._gen = make_generator(self.model.device, int(model_seed) >> 1)
        self._start_gen = make_generator(self._start_device, int(start_seed) >> 1)

    def sample_starts(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` start states; return ``(state [n, ...], obs [n, ...])``."""
        with torch.no_grad():
            if isinstance(self._sample_starts, ReplayBuffer):
                if len(self._sample_starts) == 0:
                    raise ValueError(
                        "start_states: the replay buffer is empty; collect real data first"
                    )
                state = self.model.dream_start_states(self._sample_starts, n, self._start_gen)
            else:
                obs = self._sample_starts(n, self._start_gen)
                obs, _ = as_batch(
                    obs,
                    self.model.observation_space,
                    name="start_states",
                    device=self.model.device,
                )
                if obs.shape[0] != n:
                    raise SpaceMismatchError(
                        f"start_states: asked for {n} start observations, got {obs.shape[0]}"
                    )
                state = self.model.encode(obs)
            return state, self.model.dream_observation(state)

    def reset(self, index: torch.Tensor | None = None) -> torch.Tensor:
        """Start new episodes for ``index`` (all when ``None``); return all observations."""
        if index is None or self.state is None:
            self.state, self.obs = self.sample_starts(self.batch_size)
            if self.fixed_member is None:
                self.member = self.model.sample_members(self.batch_size, self._gen)
            else:
                self.member = torch.full(
                    (self.batch_size,),
                    self.fixed_member,
                    dtype=torch.long,
                    device=self.model.device,
                )
        elif index.numel():
            state, obs = self.sample_starts(int(index.numel()))
            self.state[index] = state
            self.obs[index] = obs
            if self.member is not None and self.fixed_member is None:
                member = self.model.sample_members(int(index.numel()), self._gen)
                if member is not None:
                    self.member[index] = member
        return self.obs

    @torch.no_grad()
    def step(
        self, action: Any, ignore: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Advance every episode one step.

        :param action: ``[B, *act_shape]``.
        :param ignore: ``[B]`` bool, episodes whose step the caller discards (they are
            about to be reset); their non-finite outputs are neither flagged nor warned of.
        :return: ``(next_obs [B, ...], reward [B] float32, terminated [B] bool,
            nonfinite [B] bool)``. Where ``nonfinite``, the model's output was NaN or
            infinite: the episode keeps its previous observation and gets reward 0.
        """
        assert self.state is not None and self.obs is not None, "reset() before step()"
        action, _ = as_batch(
            action, self.model.action_space, name="action", device=self.model.device
        )
        if action.shape[0] != self.batch_size:
            raise SpaceMismatchError(
                f"action: expected a batch of {self.batch_size} actions, got {action.shape[0]}"
            )
        pred = self.model.step(self.state, action, generator=self._gen, member=self.member)
        next_state, next_obs = pred.next_state, self.model.dream_observation(pred.next_state)
        if self.reward_fn is not None:
            reward = torch.as_tensor(
                self.reward_fn(self.obs, action, next_obs), device=self.model.device
            )
        elif pred.reward is not None:
            reward = pred.reward
        else:
            raise ValueError(
                f"reward: {type(self.model).__name__} has no reward head and no reward function "
                f"is registered for env id {self.model.env_id!r}; pass reward_fn="
            )
        reward = reward.reshape(self.batch_size).float()
        if self.termination_fn is not None:
            terminated = (
                torch.as_tensor(
                    self.termination_fn(self.obs, action, next_obs), device=self.model.device
                )
                .reshape(self.batch_size)
                .bool()
            )
        elif pred.terminated is not None:
            prob = pred.terminated.reshape(self.batch_size)
            terminated = torch.rand(prob.shape, device=prob.device, generator=self._gen) < prob
        else:
            terminated = torch.zeros(self.batch_size, dtype=torch.bool, device=self.model.device)
        nonfinite = ~torch.isfinite(reward)
        for tensor in (next_state, next_obs) if next_obs is not next_state else (next_state,):
            if tensor.is_floating_point():
                nonfinite |= ~torch.isfinite(tensor.reshape(self.batch_size, -1)).all(-1)
        if ignore is not None:
            nonfinite &= ~ignore.to(nonfinite.device)
        # Masked unconditionally: testing for any NaN here would cost a device-to-host sync
        # every step; the caller reports them after its one copy to the host.
        keep = nonfinite.reshape(-1, *([1] * (next_obs.ndim - 1)))
        next_obs = torch.where(keep, self.obs, next_obs)
        keep_state = nonfinite.reshape(-1, *([1] * (next_state.ndim - 1)))
        next_state = torch.where(keep_state, self.state, next_state)
        reward = torch.where(nonfinite, 0.0, reward)
        terminated = terminated & ~nonfinite
        self.state, self.obs = next_state, next_obs
        return next_obs, reward, terminated, nonfinite

    def report_nonfinite(self, count: int) -> None:
        """Warn of (or raise for) ``count`` episodes cut by non-finite model output.

        Called by the environments once the step's flags are on the host.
        """
        if count == 0:
            return
        message = (
            f"{type(self.model).__name__} produced NaN or infinite outputs for {count} of "
            f"{self.batch_size} imagined episodes"
        )
        if self.on_nonfinite == "raise":
            raise ModelOutputError(message)
        warnings.warn(
            message + "; they were truncated (info['model_nonfinite'])",
            NonFiniteModelWarning,
            stacklevel=3,
        )
