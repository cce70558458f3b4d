"""Settings of temporal difference models (TDM; Pong, Gu, Dalal & Levine 2018)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from mbwrap.algos.agents import check_agent
from mbwrap.algos.config import AlgoConfig, setting
from mbwrap.algos.expansion_agent import check_actor_critic
from mbwrap.buffers.hindsight import HER_FUTURE_RATIO

_TDM = "Pong et al. 2018"


@dataclass(kw_only=True)
class TDMConfig(AlgoConfig):
    """Settings of :class:`~mbwrap.algos.tdm.TDM`."""

    algo_name: ClassVar[str] = "tdm"

    agent: Any = setting(
        "DDPG",
        "an SB3 off-policy actor-critic (DDPG, TD3, SAC): a name, a class (built with "
        "agent_kwargs) or an instance made for the TDM's observations; its own replay "
        "buffer is never used",
        source=f"{_TDM}, Section 5 (TDMs are trained with DDPG)",
    )
    agent_kwargs: dict[str, Any] | None = setting(
        {}, "constructor keywords of a named agent", optional=True
    )
    max_tau: int = setting(
        10,
        "the largest horizon tau the TDM is trained for and acts with (acting counts it "
        "down to 0 and starts again)",
        source="the authors' implementation (rlkit, TemporalDifferenceModel: max_tau=10)",
        low=0,
    )
    vectorized: bool = setting(
        True,
        "one Q component per goal dimension, Q = -|f(s, a, g, tau) - g| (else a scalar Q "
        "on the Euclidean distance)",
        source=f"{_TDM}, Section 4.2 (the vector-valued TDM)",
    )
    future_ratio: float = setting(
        HER_FUTURE_RATIO,
        "share of replayed goals relabelled with a later achieved goal of their episode",
        source="Andrychowicz et al. 2017, Section 4.5 (HER 'future', k = 4)",
        low=0.0,
        high=1.0,
    )
    train_freq: int = setting(1, "real steps per iteration", low=1)
    gradient_steps: int = setting(1, "agent updates per train_freq real steps", low=0)
    learning_starts: int = setting(
        1000, "real steps with uniformly random actions before the first update", low=0
    )
    buffer_size: int = setting(1_000_000, "real transitions kept", low=1)
    action_noise: float = setting(
        0.2,
        "std of the Gaussian exploration noise a TD3 or DDPG agent without its own "
        "action_noise adds to its actions, in [-1, 1] units",
        source="Andrychowicz et al. 2017, Appendix A (noise of 20% of the action range)",
        low=0.0,
    )

    def validate(self) -> None:
        super().validate()
        check_actor_critic(check_agent(self.agent), what="TDM")
