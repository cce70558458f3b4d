"""Tree search over any :class:`WorldModel` with discrete actions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from gymnasium import spaces

from mbwrap.envs.fns import BatchedFn, resolve_fns
from mbwrap.errors import UnsupportedSpaceError
from mbwrap.models import WorldModel
from mbwrap.planners.mcts.types import Embedding, RecurrentFnOutput, RootFnOutput
from mbwrap.spaces import as_batch

#: ``states [B, *state_shape] -> values [B]``.
ValueFn = Callable[[torch.Tensor], torch.Tensor]


class WorldModelSearch:
    """A :class:`SearchModel` that steps a world model: the embedding is the model state.

    Rewards come from ``reward_fn``, else the function registered for the model's env id,
    else the model's reward head; terminations likewise (else the termination head, at
    probability 0.5). After a termination the discount is 0 and later rewards are 0. The
    prior is uniform. A new node's value comes from ``value_fn`` when given, else from
    the discounted return of a uniformly random rollout of ``rollout_horizon`` steps in
    the model, all leaves together (classic MCTS; Coulom 2006), else 0. Without either,
    a return that piles up with depth favours whichever action was explored first.

    The search's actions are indices ``0..n-1``; the model and the reward and termination
    functions get the action space's own values, ``index + start`` for
    ``Discrete(n, start)``.

    :param model: a world model with a ``Discrete`` action space.
    :param gamma: per-step discount of the searched return.
    :param rollout_horizon: steps of the random rollout that values a new node (0: none).
    :param generator: randomness of the rollouts.
    """

    def __init__(
        self,
        model: WorldModel,
        *,
        gamma: float = 0.997,
        value_fn: ValueFn | None = None,
        reward_fn: BatchedFn | None = None,
        termination_fn: BatchedFn | None = None,
        rollout_horizon: int = 0,
        generator: torch.Generator | None = None,
    ) -> None:
        if isinstance(rollout_horizon, bool) or int(rollout_horizon) < 0:
            raise ValueError(f"rollout_horizon: expected an int >= 0, got {rollout_horizon!r}")
        if not isinstance(model.action_space, spaces.Discrete):
            raise UnsupportedSpaceError(
                f"model.action_space: tree search needs Discrete actions, got "
                f"{model.action_space!r}; plan over Box actions with 'cem' or 'mppi'"
            )
        self.model = model
        self.num_actions = int(model.action_space.n)
        self.action_start = int(model.action_space.start)
        self.gamma = float(gamma)
        self.value_fn = value_fn
        self.rollout_horizon = int(rollout_horizon)
        self.generator = generator
        fns = resolve_fns(model, reward_fn, termination_fn)
        self.reward_fn, self.termination_fn = fns.reward_fn, fns.termination_fn
        self.observation_space = model.observation_space
        self.action_space = model.action_space
        self.device = model.device

    def _value(self, state: torch.Tensor) -> torch.Tensor:
        if self.value_fn is not None:
            return self.value_fn(state).reshape(state.shape[0]).float()
        batch, horizon = state.shape[0], self.rollout_horizon
        if horizon == 0:
            return torch.zeros(batch, device=state.device)
        # The whole random rollout in one model call (WorldModel.rollout, prepared once by
        # the neural models) and one call of the reward and termination functions on all
        # its H x B transitions: a new node is valued at every simulation, where H
        # separate steps of a batch of one cost H times the per-call overhead.
        index = torch.randint(self.num_actions, (batch, horizon), device=state.device,
                              generator=self.generator)
        rollout = self.model.rollout(state, index + self.action_start, generator=self.generator)
        reward, terminated = self._outcomes(
            rollout.states[:-1].flatten(0, 1), index.T.flatten(), rollout.states[1:].flatten(0, 1),
            None if rollout.reward is None else rollout.reward.flatten(),
            None if rollout.terminated is None else rollout.terminated.flatten(),
        )
        reward, terminated = reward.reshape(horizon, batch), terminated.reshape(horizon, batch)
        # Reward t counts while no earlier step terminated: alive before step t.
        ended_before = torch.cat([terminated.new_zeros(1, batch), terminated[:-1]]).cummax(0)
        alive = ~ended_before.values
        discount = self.gamma ** torch.arange(horizon, device=state.device, dtype=reward.dtype)
        return (discount[:, None] * reward * alive).sum(0)

    def _step(
        self, state: torch.Tensor, index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(reward [B], terminated [B] bool, next state)`` of one model step by the
        actions of indices ``index: [B]``."""
        step = self.model.step(state, index + self.action_start)
        reward, terminated = self._outcomes(
            state, index, step.next_state, step.reward, step.terminated
        )
        return reward, terminated, step.next_state

    def _outcomes(
        self,
        state: torch.Tensor,
        index: torch.Tensor,
        next_state: torch.Tensor,
        model_reward: torch.Tensor | None,
        model_terminated: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(reward [N], terminated [N] bool)`` of ``N`` transitions ``state -> next_state``
        by the actions of indices ``index: [N]``: the reward and termination functions
        where there are some, else the model's own predictions."""
        action = index + self.action_start
        if self.reward_fn is not None or self.termination_fn is not None:
            obs, next_obs = self.model.decode(state), self.model.decode(next_state)
        if self.reward_fn is not None:
            reward = self.reward_fn(obs, action, next_obs).reshape(-1).float()
        elif model_reward is not None:
            reward = model_reward.reshape(-1).float()
        else:
            raise ValueError(
                f"reward_fn: {type(self.model).__name__} has no reward head and no reward "
                f"function is registered for env id {self.model.env_id!r}; pass reward_fn"
            )
        if self.termination_fn is not None:
            terminated = self.termination_fn(obs, action, next_obs).reshape(-1).bool()
        elif model_terminated is not None:
            terminated = model_terminated.reshape(-1) > 0.5
        else:
            terminated = torch.zeros(reward.shape[0], dtype=torch.bool, device=reward.device)
        return reward, terminated

    def root(self, obs: Any) -> RootFnOutput:
        """``obs: [B, *obs_shape]`` -> roots with a uniform prior."""
        obs, _ = as_batch(obs, self.observation_space, name="obs", device=self.device)
        with torch.no_grad():
            state = self.model.encode(obs)
            batch = state.shape[0]
            done = torch.zeros(batch, dtype=torch.bool, device=state.device)
            return RootFnOutput(
                prior_logits=torch.zeros(batch, self.num_actions, device=state.device),
                value=self._value(state),
                embedding=(state, done),
            )

    def recurrent_fn(
        self, embedding: Embedding, action: torch.Tensor
    ) -> tuple[RecurrentFnOutput, Embedding]:
        state, done = embedding
        with torch.no_grad():
            reward, terminated, next_state = self._step(state, action)
            value = self._value(next_state)
        ended = done | terminated
        out = RecurrentFnOutput(
            reward=reward.masked_fill(done, 0.0),
            discount=torch.where(ended, 0.0, self.gamma),
            prior_logits=torch.zeros(action.shape[0], self.num_actions, device=state.device),
            value=value.masked_fill(ended, 0.0),
        )
        return out, (next_state, ended)
