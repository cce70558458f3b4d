"""Settings of the value-expansion algorithms, MVE (Feinberg et al. 2018) and STEVE
(Buckman et al. 2018)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from mbwrap.algos.agents import check_agent
from mbwrap.algos.config import AlgoConfig, setting
from mbwrap.algos.expansion_agent import check_actor_critic

_MVE = "Feinberg et al. 2018, Section 4"
_STEVE = "Buckman et al. 2018, Section 4"


@dataclass(kw_only=True)
class ValueExpansionConfig(AlgoConfig):
    """What MVE and STEVE share: an SB3 actor-critic acting in the real env, a model
    refitted on all real data, and the agent's own updates on expanded targets."""

    agent: Any = setting(
        "DDPG",
        "an SB3 off-policy actor-critic (DDPG, TD3, SAC): a name, a class (built with "
        "agent_kwargs) or an instance; its own replay buffer is never used",
        source="both papers build on DDPG",
    )
    agent_kwargs: dict[str, Any] | None = setting(
        {}, "constructor keywords of a named agent", optional=True
    )
    model: Any = setting("mlp", "a registered model name (built with model_kwargs) or a WorldModel")
    model_kwargs: dict[str, Any] = setting({}, "constructor keywords of a named model")
    fit_kwargs: dict[str, Any] = setting({}, "keywords of model.fit at each refit")
    horizon: int = setting(3, "model steps imagined after each real transition (H)", low=0)
    model_train_freq: int = setting(
        250,
        "real steps between model refits (MBPO's interval; the papers train the "
        "model alongside the agent)",
        low=1,
    )
    train_freq: int = setting(1, "real steps per iteration", low=1)
    gradient_steps: int = setting(1, "agent updates per train_freq real steps", low=0)
    learning_starts: int = setting(
        1000, "real steps with uniformly random actions before the first model fit", low=0
    )
    buffer_size: int = setting(1_000_000, "real transitions kept", low=1)
    action_noise: float = setting(
        0.1,
        "std of the Gaussian exploration noise a TD3 or DDPG agent without its own "
        "action_noise adds to its actions, in [-1, 1] units",
        source="Fujimoto et al. 2018, Section 6 (TD3: N(0, 0.1))",
        low=0.0,
    )

    #: The algorithm computes the critics' bootstrap values itself (STEVE).
    own_bootstrap: ClassVar[bool] = False

    def validate(self) -> None:
        super().validate()
        check_actor_critic(
            check_agent(self.agent), what=self.algo_name.upper(), bootstrap=self.own_bootstrap
        )


@dataclass(kw_only=True)
class MVEConfig(ValueExpansionConfig):
    """Settings of :class:`~mbwrap.algos.mve.MVE`: Feinberg et al.'s (Section 4)."""

    algo_name: ClassVar[str] = "mve"

    # "a neural network with 8 layers of 128 neurons each with a fixed 1e-3 learning rate
    # trained to predict the difference in real-vector-valued states".
    model_kwargs: dict[str, Any] = setting(
        {"hidden_sizes": [128] * 8, "learning_rate": 1e-3},
        "constructor keywords of a named model",
        source=_MVE,
    )
    horizon: int = setting(
        10,
        "model steps imagined after each real transition (H; 3 where the model is poor, "
        "as for their Walker)",
        source=_MVE + ", Figure 2",
        low=0,
    )
    gradient_steps: int = setting(
        4, "agent updates per train_freq real steps", source=_MVE + " (4 gradient steps)", low=0
    )
    td_k: bool = setting(
        True,
        "train the critic at every imagined state too (the TD-k trick); False: at the "
        "real states alone, with the H-step targets",
        source=_MVE + ", Section 3.1",
    )


@dataclass(kw_only=True)
class STEVEConfig(ValueExpansionConfig):
    """Settings of :class:`~mbwrap.algos.steve.STEVE`: Buckman et al.'s ensembles of 4
    dynamics models, 4 reward functions and 4 Q functions, and H = 3."""

    algo_name: ClassVar[str] = "steve"
    own_bootstrap: ClassVar[bool] = True

    model: Any = setting(
        "gaussian-ensemble",
        "a registered model name (built with model_kwargs) or a WorldModel with at least "
        "dynamics_members members",
        source=_STEVE,
    )
    model_kwargs: dict[str, Any] = setting(
        {"ensemble_size": 4, "num_elites": 4},
        "constructor keywords of a named model",
        source=_STEVE + " (4 dynamics models)",
    )
    dynamics_members: int = setting(
        4, "ensemble members that each imagine every rollout (M)", source=_STEVE, low=1
    )
    critics: int = setting(
        4,
        "Q functions of a named agent (its n_critics, K); an instance keeps its own",
        source=_STEVE,
        low=1,
    )
    horizon: int = setting(
        3, "model steps imagined after each real transition (H)", source=_STEVE, low=0
    )
