"""STEVE's replay sampler: the targets of every horizon under every dynamics member and
critic, mixed by inverse variance (Buckman et al. 2018, Section 3)."""

from __future__ import annotations

from typing import Any

import torch
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from mbwrap.algos.expansion_agent import bootstrap_values
from mbwrap.algos.expansion_sampler import ExpansionSampler, RealBatch
from mbwrap.buffers import ReplayBuffer
from mbwrap.models import WorldModel
from mbwrap.returns import horizon_targets, inverse_variance_mix


class STEVESampler(ExpansionSampler):
    """Stochastic ensemble value expansion (Buckman et al. 2018, Section 3).

    Each dynamics member ``m`` imagines its own ``H`` steps from every real next state,
    acting with the agent's target policy; every target critic ``k`` bootstraps every
    state reached. For each real ``(s, a)`` that gives ``M K`` candidate targets at each
    horizon ``i = 0 .. H`` (:func:`~mbwrap.returns.horizon_targets`, the real reward
    first), combined by :func:`~mbwrap.returns.inverse_variance_mix`. The batch is the
    real transitions with ``rewards`` = that target and ``dones = 1``, so the agent's
    update regresses each critic on it exactly.

    Rewards come from the registered reward function where the env has one (exact, so the
    candidates' spread is the dynamics' and the critics'); otherwise from member ``m``'s
    reward head on its own rollout, a reward ensemble paired with the dynamics one.

    :param members: ``M``, the dynamics members; the model must have that many.
    """

    def __init__(
        self,
        real: ReplayBuffer,
        model: WorldModel,
        agent: Any,
        horizon: int,
        *,
        members: int,
        seed: int | None,
    ) -> None:
        super().__init__(real, model, agent, horizon, seed=seed)
        self.members = int(members)
        self._weight_sum: torch.Tensor | None = None

    def member_ids(self) -> torch.Tensor:
        """The ``M`` members that imagine: the model's first ``M`` elites where it ranks its
        members (``elite_indices``), else members ``0 .. M - 1``."""
        elites = getattr(self.model, "elite_indices", None)
        if isinstance(elites, torch.Tensor):
            return elites[: self.members].to(self.model.device)
        return torch.arange(self.members, device=self.model.device)

    def targets(self, real: RealBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """STEVE's target of each real transition and the weight of each horizon.

        :return: ``(target [B], weights [H + 1, B])``.
        """
        batch, members, horizon = real.obs.shape[0], self.members, self.horizon
        start = real.next_obs.repeat(members, *([1] * (real.next_obs.ndim - 1)))
        imagined = self.imagine(start, blocks=self.member_ids())
        states = imagined.obs.reshape(-1, *imagined.obs.shape[2:])  # [(H + 1) M B, ...]
        values = bootstrap_values(self.agent, states, self._noise)  # [K, (H + 1) M B]
        critics = values.shape[0]
        values = values.reshape(critics, horizon + 1, members, batch).permute(1, 2, 0, 3)
        shape = (horizon + 1, members, critics, batch)
        rewards = torch.cat(
            [
                real.reward.expand(1, members, batch),
                imagined.rewards.reshape(horizon, members, batch),
            ]
        )[:, :, None].expand(shape)
        continues = torch.cat(
            [
                (1.0 - real.terminated).expand(1, members, batch),
                imagined.continues.reshape(horizon, members, batch),
            ]
        )[:, :, None].expand(shape)
        # State 0 is the real s, whose value is what is being learned: no candidate uses it.
        values = torch.cat([values.new_zeros(1, members, critics, batch), values])
        candidates = horizon_targets(rewards, values, continues, discount=self.agent.gamma)[1:]
        target, weights = inverse_variance_mix(candidates.reshape(horizon + 1, -1, batch))
        self._accumulate(
            horizon_weight=weights.mean(-1),
            model_reward_mean=imagined.rewards.mean() if horizon else target.new_zeros(()),
            nonfinite_rollouts=imagined.nonfinite.float().sum(),
        )
        return target, weights

    def _batch(self, real: RealBatch) -> ReplayBufferSamples:
        target, _ = self.targets(real)
        return ReplayBufferSamples(
            observations=real.obs,
            actions=real.action,
            next_observations=real.next_obs,
            dones=torch.ones_like(target).reshape(-1, 1),
            rewards=target.reshape(-1, 1),
        )
