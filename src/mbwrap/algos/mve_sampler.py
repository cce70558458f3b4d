"""MVE's replay sampler: the real row and every imagined row with its expanded target,
in the one-step form SB3's update reads (Feinberg et al. 2018, Algorithm 1)."""

from __future__ import annotations

from typing import Any

import torch
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from mbwrap.algos.expansion_agent import RealRowsDriveTheActor
from mbwrap.algos.expansion_sampler import ExpansionSampler, RealBatch
from mbwrap.buffers import ReplayBuffer
from mbwrap.models import WorldModel
from mbwrap.returns import expansion_as_one_step


class MVESampler(ExpansionSampler):
    """Model-based value expansion with the TD-k trick (Feinberg et al. 2018, Algorithm 1).

    From each real transition ``(s, a, r, s')`` it imagines ``ŝ_0 = s', ..., ŝ_H`` and
    returns ``(H + 1) B`` rows: the real ``(s, a)`` and every imagined ``(ŝ_t, â_t)``,
    ``t < H``, each with ``next_observations = ŝ_H`` and the ``rewards`` and ``dones`` of
    :func:`~mbwrap.returns.expansion_as_one_step`, so that the agent's
    ``rewards + (1 - dones) * gamma * Q'(ŝ_H)`` is the expanded target of that row: the real
    and imagined rewards to ``ŝ_H``, then the critic. The paper's critic loss averages over
    these ``H + 1`` states too. Where the real transition terminated, its imagined rows are
    copies of the real one (no state after a terminal one is trained on).

    The actor's update reads the same batch; :class:`RealRowsDriveTheActor` keeps the
    imagined rows out of it, as Feinberg et al. update the actor on the real states alone.

    :param td_k: train the critic at the imagined states too; ``False`` returns the ``B``
        real rows alone with their ``H``-step targets (the paper's ablation "MVE without
        the TD-k trick").
    """

    def __init__(
        self,
        real: ReplayBuffer,
        model: WorldModel,
        agent: Any,
        horizon: int,
        *,
        td_k: bool = True,
        seed: int | None,
    ) -> None:
        super().__init__(real, model, agent, horizon, seed=seed)
        self.td_k = bool(td_k)
        self.actor_rows = RealRowsDriveTheActor(agent) if hasattr(agent, "policy") else None

    def _batch(self, real: RealBatch) -> ReplayBufferSamples:
        imagined = self.imagine(real.next_obs)
        horizon = self.horizon
        batch = real.obs.shape[0]
        if self.actor_rows is not None:
            self.actor_rows.expect(batch, (horizon + 1 if self.td_k else 1) * batch)
        rewards = torch.cat([real.reward[None], imagined.rewards])
        continues = torch.cat([1.0 - real.terminated[None], imagined.continues])
        rewards, dones = expansion_as_one_step(rewards, continues, discount=self.agent.gamma)
        obs = torch.cat([real.obs[None], imagined.obs[:-1]])
        actions = torch.cat([real.action[None], imagined.actions])
        next_obs = imagined.obs[-1].expand(horizon + 1, *imagined.obs.shape[1:])
        # Rows imagined after a real terminal state become copies of the real row.
        ended = (real.terminated > 0) & (torch.arange(horizon + 1, device=self.device) > 0)[:, None]
        rewards = torch.where(ended, rewards[:1], rewards)
        dones = torch.where(ended, dones[:1], dones)

        def rows(x: torch.Tensor) -> torch.Tensor:
            mask = ended.reshape(*ended.shape, *([1] * (x.ndim - 2)))
            return torch.where(mask, x[:1], x).reshape(-1, *x.shape[2:])

        self._accumulate(
            target_reward_mean=rewards[0].mean(),
            model_reward_mean=imagined.rewards.mean() if horizon else rewards.new_zeros(()),
            nonfinite_rollouts=imagined.nonfinite.float().sum(),
        )
        if not self.td_k:
            return ReplayBufferSamples(
                observations=obs[0],
                actions=actions[0],
                next_observations=next_obs[0],
                dones=dones[0].reshape(-1, 1),
                rewards=rewards[0].reshape(-1, 1),
            )
        return ReplayBufferSamples(
            observations=rows(obs),
            actions=rows(actions),
            next_observations=rows(next_obs),
            dones=dones.reshape(-1, 1),
            rewards=rewards.reshape(-1, 1),
        )
