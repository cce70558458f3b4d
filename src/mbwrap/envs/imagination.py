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

from mbwrap.buffers import ReplayBuffer
from mbwrap.device import make_generator
from mbwrap.envs.action_check import ActionCheck
from mbwrap.envs.fns.base import BatchedFn
from mbwrap.envs.fns.resolve import resolve_fns
from mbwrap.errors import ModelOutputError, NonFiniteModelWarning, SpaceMismatchError
from mbwrap.grad import no_grad
from mbwrap.models import WorldModel
from mbwrap.spaces import as_batch, element_shape, rows_in_space, torch_dtype
from mbwrap.tree import (
    Tree,
    rows_nonfinite,
    tree_assign,
    tree_batch_size,
    tree_float_leaves,
    tree_index,
    tree_rows_finite,
    tree_where,
)

#: ``(n, generator) -> obs: [n, *obs_shape]``
StartSampler = Callable[[int, torch.Generator], Any]
StartStates = ReplayBuffer | np.ndarray | torch.Tensor | StartSampler

NonFinitePolicy = Literal["truncate", "raise"]


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
        count = tree_batch_size(states)
        if count == 0:
            raise ValueError("start_states: got an empty array of observations")
        nonfinite = torch.nonzero(~tree_rows_finite(states)).reshape(-1)
        if nonfinite.numel():
            raise ValueError(
                f"start_states: {nonfinite.numel()} of {count} observations hold NaN or "
                f"infinite values, the first at row {int(nonfinite[0])}"
            )
        outside = torch.nonzero(~rows_in_space(states, space)).reshape(-1)
        if outside.numel():
            # An index model would fail far from here on a cell that does not exist.
            first = tree_index(states, int(outside[0]))
            shown = (
                {k: v.tolist() for k, v in first.items()}
                if isinstance(first, dict)
                else (first.tolist())
            )
            raise SpaceMismatchError(
                f"start_states: {outside.numel()} of {count} observations lie outside "
                f"{space!r}, the first at row {int(outside[0])}: {shown}"
            )

        def from_array(n: int, generator: torch.Generator) -> Tree:
            index = torch.randint(count, (n,), device=model.device, generator=generator)
            return tree_index(states, index)

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
        self.obs: Tree | None = None
        self.check_action = ActionCheck(model.action_space)
        self._action_shape = element_shape(model.action_space)
        self._action_dtype = torch_dtype(model.action_space)
        self._action_np_dtype = torch.empty(0, dtype=self._action_dtype).numpy().dtype
        #: ``[B]`` ensemble member per episode (TS-inf models), else ``None``.
        self.member: torch.Tensor | None = None
        #: ``[M]`` members of equal blocks of episodes (:meth:`start_at`), else ``None``.
        self.blocks: torch.Tensor | None = None

    def seed(self, seed: int | None) -> None:
        """Seed the start-state and model generators (``None``: fresh entropy)."""
        base = np.random.SeedSequence(seed)
        model_seed, start_seed = base.generate_state(2, dtype=np.uint64)
        self._gen = make_generator(self.model.device, int(model_seed) >> 1)
        self._start_gen = make_generator(self._start_device, int(start_seed) >> 1)

    #: Redraws of start states that came out NaN or infinite before giving up.
    START_REDRAWS = 8

    def sample_starts(self, n: int) -> tuple[torch.Tensor, Tree]:
        """Draw ``n`` start states; return ``(state [n, ...], obs [n, ...])``.

        A start state (or its observation) that holds NaN or infinity, from a buffer that
        stored one or a callable that returned one, never reaches the agent: with
        ``on_nonfinite="raise"`` it raises :class:`ModelOutputError`; otherwise those rows
        are drawn again (up to :attr:`START_REDRAWS` times) and a warning says so. This
        costs one device-to-host copy per reset of float observations.
        """
        state, obs = self._draw_starts(n)
        bad = self._rows_nonfinite(state, obs)
        if bad is None or not bool(bad.any()):
            return state, obs
        message = (
            f"start_states: {int(bad.sum())} of {n} start states drawn for "
            f"{type(self.model).__name__} hold NaN or infinite values"
        )
        if self.on_nonfinite == "raise":
            raise ModelOutputError(message)
        warnings.warn(message + "; they were drawn again", NonFiniteModelWarning, stacklevel=3)
        for _ in range(self.START_REDRAWS):
            rows = torch.nonzero(bad).reshape(-1)
            new_state, new_obs = self._draw_starts(int(rows.numel()))
            tree_assign(state, rows, new_state)
            if obs is not state or new_obs is not new_state:
                tree_assign(obs, rows, new_obs)
            bad = self._rows_nonfinite(state, obs)
            if bad is None or not bool(bad.any()):
                return state, obs
        raise ValueError(
            f"start_states: {int(bad.sum())} of {n} start states were still NaN or infinite "
            f"after {self.START_REDRAWS} redraws; remove non-finite observations from the "
            "start states"
        )

    @staticmethod
    def _rows_nonfinite(state: Tree, obs: Tree) -> torch.Tensor | None:
        """``[n]`` bool: rows of start states or their observations holding NaN or
        infinity; ``None`` when neither has a floating leaf (integers are finite)."""
        floats = tree_float_leaves(state)
        if obs is not state:
            floats += tree_float_leaves(obs)
        return rows_nonfinite(floats)

    def _draw_starts(self, n: int) -> tuple[torch.Tensor, Tree]:
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
                if tree_batch_size(obs) != n:
                    raise SpaceMismatchError(
                        f"start_states: asked for {n} start observations, got "
                        f"{tree_batch_size(obs)}"
                    )
                state = self.model.encode(obs)
            return state, self.model.dream_observation(state)

    def reset(self, index: torch.Tensor | None = None) -> Tree:
        """Start new episodes for ``index`` (all when ``None``); return all observations."""
        self.blocks = None  # drawn members no longer follow blocks
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
            tree_assign(self.state, index, state)
            if self.obs is not self.state or obs is not state:
                tree_assign(self.obs, index, obs)
            if self.member is not None and self.fixed_member is None:
                member = self.model.sample_members(int(index.numel()), self._gen)
                if member is not None:
                    self.member[index] = member
        return self.obs

    @torch.no_grad()
    def start_at(
        self,
        obs: Tree,
        member: torch.Tensor | None = None,
        *,
        blocks: torch.Tensor | None = None,
    ) -> Tree:
        """Start every episode at given observations instead of drawn ones: value
        expansion branches its rollouts from replayed states, all of which are known.

        :param obs: ``[B, *obs_shape]`` on the model's device, ``B`` = :attr:`batch_size`.
        :param member: ``[B]`` ensemble member of each episode; ``None``: the model's own
            choice (:meth:`WorldModel.sample_members`).
        :param blocks: ``[M]`` distinct members, the episodes in ``M`` equal blocks, block
            ``m`` following ``blocks[m]`` (STEVE follows each member). A model with a
            ``step_blocks`` method then runs each member on its block only.
        :return: the episodes' observations.
        """
        if tree_batch_size(obs) != self.batch_size:
            raise SpaceMismatchError(
                f"obs: expected {self.batch_size} start observations, got {tree_batch_size(obs)}"
            )
        self.state = self.model.encode(obs)
        self.obs = self.model.dream_observation(self.state)
        self.blocks = blocks
        if blocks is not None:
            member = blocks.repeat_interleave(self.batch_size // max(blocks.numel(), 1))
        self.member = (
            self.model.sample_members(self.batch_size, self._gen) if member is None else member
        )
        return self.obs

    @no_grad
    def step(
        self, action: Any, ignore: torch.Tensor | None = None, *, check: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Advance every episode one step.

        :param action: ``[B, *act_shape]``; see :class:`~mbwrap.envs.action_check.ActionCheck`.
        :param check: ``False`` skips that check (and its device-to-host read of a tensor)
            for a caller whose actions are in the space by construction.
        :param ignore: ``[B]`` bool, episodes whose step the caller discards (they are
            about to be reset); their non-finite outputs are neither flagged nor warned of.
        :return: ``(next_obs [B, ...], reward [B] float32, terminated [B] bool,
            nonfinite [B] bool)``. Where ``nonfinite``, the model's output (state,
            observation, reward or termination probability) was NaN or infinite: the episode
            keeps its previous observation and gets reward 0.
        """
        assert self.state is not None and self.obs is not None, "reset() before step()"
        model, batch = self.model, self.batch_size
        device = model.device
        if check:
            action = self.check_action(action)
        action = self._action_batch(action, device)
        if action.shape[0] != batch:
            raise SpaceMismatchError(
                f"action: expected a batch of {batch} actions, got {action.shape[0]}"
            )
        if self.blocks is not None and hasattr(model, "step_blocks"):
            pred = model.step_blocks(self.state, action, self.blocks, generator=self._gen)
        else:
            pred = model.step(self.state, action, generator=self._gen, member=self.member)
        next_state = pred.next_state
        next_obs = model.dream_observation(next_state)
        if self.reward_fn is not None:
            reward = self.reward_fn(self.obs, action, next_obs)
            if not isinstance(reward, torch.Tensor) or reward.device != device:
                reward = torch.as_tensor(reward, device=device)
        elif pred.reward is not None:
            reward = pred.reward
        else:
            raise ValueError(
                f"reward: {type(model).__name__} has no reward head and no reward function "
                f"is registered for env id {model.env_id!r}; pass reward_fn="
            )
        # Reshapes and conversions only where needed: at small batches each op, even one
        # that returns its input, costs more than the work.
        if reward.shape != (batch,):
            reward = reward.reshape(batch)
        if reward.dtype != torch.float32:
            reward = reward.float()
        checked = [reward]  # the floating outputs, checked for NaN and infinity together
        if self.termination_fn is not None:
            done = self.termination_fn(self.obs, action, next_obs)
            if not isinstance(done, torch.Tensor) or done.device != device:
                done = torch.as_tensor(done, device=device)
            if done.shape != (batch,):
                done = done.reshape(batch)
            if done.is_floating_point():
                checked.append(done)
            terminated = done if done.dtype == torch.bool else done.bool()
        elif pred.terminated is not None:
            prob = pred.terminated.reshape(batch)
            # A NaN probability would silently read as "never terminates".
            checked.append(prob)
            terminated = torch.rand(prob.shape, device=prob.device, generator=self._gen) < prob
        else:
            terminated = torch.zeros(batch, dtype=torch.bool, device=device)
        checked += tree_float_leaves(next_state)  # none for a tabular model's integers
        if next_obs is not next_state:
            checked += tree_float_leaves(next_obs)
        nonfinite = rows_nonfinite(checked)
        assert nonfinite is not None  # the reward is checked
        if ignore is not None:
            nonfinite &= ~ignore.to(nonfinite.device)
        # On an accelerator the rows are masked unconditionally: testing for any NaN would
        # cost a device-to-host sync every step (the caller reports them after its one copy
        # to the host). On the CPU that test is free (NumPy reads the flags in place, unseen
        # by DeviceWatch) and skips the masking, which gives the same outputs either way.
        if device.type != "cpu" or np.count_nonzero(nonfinite.numpy()):
            if next_obs is next_state and self.obs is self.state:
                next_state = next_obs = tree_where(nonfinite, self.state, next_state)
            else:
                next_obs = tree_where(nonfinite, self.obs, next_obs)
                next_state = tree_where(nonfinite, self.state, next_state)
            reward = torch.where(nonfinite, 0.0, reward)
            terminated = terminated & ~nonfinite
        self.state, self.obs = next_state, next_obs
        return next_obs, reward, terminated, nonfinite

    def _action_batch(self, action: Any, device: torch.device) -> torch.Tensor:
        """:func:`~mbwrap.spaces.as_batch` of ``action``, without its checks for what
        agents pass every step: a batch ``[B, *act_shape]`` of the space's dtype, a host
        array or a tensor already on ``device``."""
        shape, dtype = self._action_shape, self._action_dtype
        if getattr(action, "ndim", None) == len(shape) + 1 and action.shape[1:] == shape:
            if type(action) is np.ndarray and action.dtype == self._action_np_dtype:
                tensor = torch.from_numpy(action)
                return tensor if device.type == "cpu" else tensor.to(device)
            if (
                isinstance(action, torch.Tensor)
                and action.dtype == dtype
                and action.device == device
            ):
                return action
        return as_batch(action, self.model.action_space, name="action", device=device)[0]

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
