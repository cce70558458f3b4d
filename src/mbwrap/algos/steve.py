"""Stochastic ensemble value expansion (STEVE; Buckman, Hafner, Tucker, Brevdo & Lee
2018, "Sample-Efficient Reinforcement Learning with Stochastic Ensemble Value
Expansion")."""

from __future__ import annotations

from typing import Any

from mbwrap.algos.expansion_agent import critic_count
from mbwrap.algos.expansion_sampler import ExpansionSampler
from mbwrap.algos.steve_sampler import STEVESampler
from mbwrap.algos.value_expansion import ValueExpansion
from mbwrap.algos.value_expansion_config import STEVEConfig


class STEVE(ValueExpansion):
    """STEVE: an SB3 actor-critic (DDPG, TD3, SAC) whose critics learn from a mix of the
    targets of every horizon ``0 .. H``, each weighted by the inverse of its variance
    across an ensemble of dynamics models and the agent's Q functions
    (:class:`~mbwrap.algos.steve_sampler.STEVESampler`), so that the model is used only
    as far as its members and the critics agree.

    A named agent gets ``critics`` Q functions (SB3's ``n_critics``; its own target, e.g.
    TD3's minimum over them, is replaced by STEVE's). The model needs at least
    ``dynamics_members`` members it predicts with (elites); its first elites imagine. Too
    few members and critics together (one of each) raise: there would be no variance to
    weigh by.

    Settings: :class:`~mbwrap.algos.value_expansion_config.STEVEConfig` (``agent``,
    ``model`` also by position).
    """

    registry_name = "steve"
    Config = STEVEConfig
    config: STEVEConfig

    def _agent_overrides(self) -> dict[str, Any]:
        kwargs = dict(self.config.agent_kwargs or {})
        policy_kwargs = {**kwargs.get("policy_kwargs", {}), "n_critics": self.config.critics}
        return {"policy_kwargs": policy_kwargs}

    def _sampler(self) -> ExpansionSampler:
        config = self.config
        members = config.dynamics_members
        available = int(getattr(self.model, "num_elites", getattr(self.model, "ensemble_size", 1)))
        if available < members:
            raise ValueError(
                f"dynamics_members: STEVE imagines with {members} members but the model "
                f"({type(self.model).__name__}) predicts with {available}; use an ensemble "
                "model (model_kwargs ensemble_size and num_elites) or fewer members"
            )
        if members * critic_count(self.agent) < 2:
            raise ValueError(
                "dynamics_members, critics: STEVE weighs targets by their variance across "
                f"members x critics, got {members} x {critic_count(self.agent)}; use at "
                "least 2 in all"
            )
        return STEVESampler(
            self.buffer,
            self.model,
            self.agent,
            config.horizon,
            members=members,
            seed=config.seed,
        )
