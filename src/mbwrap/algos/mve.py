"""Model-based value expansion (MVE; Feinberg, Wan, Stoica, Jordan, Gonzalez & Levine
2018, "Model-Based Value Estimation for Efficient Model-Free Reinforcement Learning")."""

from __future__ import annotations

from mbwrap.algos.expansion_sampler import ExpansionSampler
from mbwrap.algos.mve_sampler import MVESampler
from mbwrap.algos.value_expansion import ValueExpansion
from mbwrap.algos.value_expansion_config import MVEConfig


class MVE(ValueExpansion):
    """MVE: an SB3 actor-critic (DDPG, TD3, SAC) whose critic learns from ``H``-step model
    rollouts, with the TD-k trick.

    Each replayed real transition ``(s, a, r, s')`` is expanded by ``H`` model steps from
    ``s'`` with the target policy; the critic learns at ``s`` and at every imagined state
    before the last, each with the rewards to the last state and the target critic there
    (:class:`~mbwrap.algos.mve_sampler.MVESampler`). ``H = 0`` is the agent alone.
    Reward and termination come from the functions registered for the env where there are
    some, else from the model's heads.

    Settings: :class:`~mbwrap.algos.value_expansion_config.MVEConfig` (``agent``,
    ``model`` also by position).
    """

    registry_name = "mve"
    Config = MVEConfig
    config: MVEConfig

    def _sampler(self) -> ExpansionSampler:
        config = self.config
        return MVESampler(
            self.buffer,
            self.model,
            self.agent,
            config.horizon,
            td_k=config.td_k,
            seed=config.seed,
        )
