"""The replay of a TDM: real goal-conditioned transitions with relabelled goals (HER's
``future``) and relabelled horizons, as the batches an SB3 actor-critic's ``train()``
reads."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.type_aliases import DictReplayBufferSamples

from mbwrap.algos.tdm_targets import horizon_observation, horizon_targets
from mbwrap.buffers import ReplayBuffer
from mbwrap.buffers.hindsight import HindsightSampler
from mbwrap.device import make_generator
from mbwrap.spaces import action_bounds, scale_action


class TDMSampler:
    """Stands in for an SB3 agent's ``replay_buffer``: each :meth:`sample` draws real
    transitions, relabels their goals (:class:`~mbwrap.buffers.hindsight.HindsightSampler`)
    and their horizons (uniform on ``0 .. max_tau``, Pong et al. 2018, Algorithm 1), and
    returns SB3's ``DictReplayBufferSamples`` whose ``rewards``, ``dones`` and
    ``discounts`` (all 1: the horizon replaces discounting) make SB3's target the TDM's
    (:func:`~mbwrap.algos.tdm_targets.horizon_targets`).

    Vectorised, each transition becomes ``D`` rows, one per goal dimension, for
    :class:`~mbwrap.algos.tdm_critic.GoalDistanceCritic`.

    :param real: real transitions with the env's goal-conditioned ``Dict`` observations.
    :param agent: the SB3 agent (its device and action scaling).
    :param max_tau: the largest horizon.
    :param vectorized: one row per goal dimension (the paper's vector TDM).
    :param future_ratio: the share of relabelled goals.
    :param seed: seeds the draws.
    """

    def __init__(
        self,
        real: ReplayBuffer,
        agent: Any,
        max_tau: int,
        *,
        vectorized: bool,
        future_ratio: float,
        seed: int | None,
    ) -> None:
        self.real, self.agent = real, agent
        self.max_tau, self.vectorized = int(max_tau), bool(vectorized)
        self.hindsight = HindsightSampler(real, future_ratio=future_ratio)
        self.device = torch.device(agent.device)
        self._bounds = action_bounds(real.action_space, self.device)
        seed_value = int(np.random.SeedSequence(seed).generate_state(1, dtype=np.uint64)[0] >> 1)
        self._draws = make_generator(real.device, seed_value)
        self._sums = torch.zeros(2, device=self.device)
        self._batches = 0

    def size(self) -> int:
        """Real transitions stored (SB3 buffers report ``size()``)."""
        return len(self.real)

    def sample(self, batch_size: int, env: object = None) -> DictReplayBufferSamples:
        """``batch_size`` relabelled transitions (``batch_size * D`` rows when vectorised)
        on the agent's device; ``env`` (SB3's ``VecNormalize``) is not supported and
        ignored."""
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
        drawn = self.hindsight.sample(int(batch_size), generator=self._draws)
        tau = torch.randint(
            self.max_tau + 1, (int(batch_size),), device=self.real.device, generator=self._draws
        ).to(self.device)
        real = drawn.transition.to(self.device)
        goal = drawn.goal.to(self.device).float().flatten(1)
        obs, next_obs = real.obs, real.next_obs  # flat dicts of leaves
        next_achieved = next_obs["achieved_goal"].float().flatten(1)  # type: ignore[index]
        rewards, dones = horizon_targets(
            next_achieved, goal, tau, real.terminated.bool(), vectorized=self.vectorized
        )
        rows = goal.shape[1] if self.vectorized else 1
        before = horizon_observation(obs["observation"], goal, tau)  # type: ignore[index]
        after = horizon_observation(
            next_obs["observation"],  # type: ignore[index]
            goal,
            (tau - 1).clamp(min=0),
        )
        action = scale_action(real.action.float(), *self._bounds)

        def spread(x: torch.Tensor) -> torch.Tensor:
            return x.repeat_interleave(rows, dim=0)

        self._sums += torch.stack(
            [
                drawn.relabelled.float().mean().to(self.device),
                (next_achieved - goal).norm(dim=1).mean(),
            ]
        )
        self._batches += 1
        return DictReplayBufferSamples(
            observations={k: spread(v) for k, v in before.items()},
            actions=spread(action),
            next_observations={k: spread(v) for k, v in after.items()},
            dones=dones.unsqueeze(1),
            rewards=rewards.unsqueeze(1),
            discounts=torch.ones_like(dones).unsqueeze(1),
        )

    def metrics(self) -> dict[str, float]:
        """Means per batch since the last call, then reset: ``relabelled_share`` (goals
        relabelled) and ``goal_distance`` (Euclidean, next state to goal)."""
        if not self._batches:
            return {}
        relabelled, distance = (self._sums / self._batches).tolist()
        self._sums.zero_()
        self._batches = 0
        return {"relabelled_share": relabelled, "goal_distance": distance}

    def state_dict(self) -> dict[str, Any]:
        """The random state of the draws."""
        return {"draws": self._draws.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._draws.set_state(state["draws"].to(torch.uint8).cpu())
