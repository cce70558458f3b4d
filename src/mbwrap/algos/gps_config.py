"""Settings of guided policy search (mirror-descent GPS; Levine & Abbeel 2014, Montgomery
& Levine 2016)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from mbwrap.algos.agents import check_agent
from mbwrap.algos.config import AlgoConfig, setting

_GPS = "Levine & Abbeel 2014"
_MDGPS = "Montgomery & Levine 2016"


@dataclass(kw_only=True)
class GPSConfig(AlgoConfig):
    """Settings of :class:`~mbwrap.algos.gps.GPS`."""

    algo_name: ClassVar[str] = "gps"

    agent: Any = setting(
        "PPO",
        "the SB3 algorithm whose policy network is the global policy (trained here by "
        "supervised learning only): a name, a class (built with agent_kwargs) or an "
        "instance on the same spaces; a Gaussian actor-critic policy",
        source=f"{_MDGPS}, Section 3 (a neural network policy trained on the local "
        "controllers' samples)",
    )
    agent_kwargs: dict[str, Any] | None = setting(
        {}, "constructor keywords of a named agent", optional=True
    )
    horizon: int | None = setting(
        None,
        "the episodes' fixed length T, over which the controllers are time-varying; "
        "None: the env's time limit",
        kind="int",
        low=1,
    )
    samples: int = setting(
        5,
        "episodes per condition and iteration, from the local controllers",
        source=f"{_GPS}, Section 5 (5 samples per initial state)",
        low=1,
    )
    kl_step: float = setting(
        0.2,
        "the KL bound between each new local controller and the linearised global policy, "
        "per time step (the bound on a whole trajectory is kl_step x horizon)",
        source=f"{_MDGPS}, Section 4 (step size epsilon; the GPS code's kl_step)",
        low=0.0,
    )
    kl_anchor: str = setting(
        "policy",
        "what each new local controller stays within kl_step of: 'policy', the "
        "linearised global policy (mirror descent), or 'previous', the last local "
        "controller (trajectory optimisation alone, the policy only imitating)",
        source=f"{_MDGPS}, Section 4 ('policy'); {_GPS}, Section 3 ('previous')",
        choices=("policy", "previous"),
    )
    min_step_mult: float = setting(
        0.01,
        "the smallest multiple of kl_step the step-size adjustment may reach",
        source=f"{_MDGPS}, Section 4.1 (the GPS code's min_step_mult)",
        low=0.0,
    )
    max_step_mult: float = setting(
        10.0,
        "the largest multiple of kl_step the step-size adjustment may reach",
        source=f"{_MDGPS}, Section 4.1 (the GPS code's max_step_mult)",
        low=0.0,
    )
    init_var: float = setting(
        1.0,
        "variance of the first local controllers' actions (zero gains and offsets: "
        "exploration around no action), in action units",
        source="the GPS code's init_var for the reacher",
        low=0.0,
    )
    prior_clusters: int = setting(
        20,
        "most clusters of the Gaussian-mixture dynamics prior",
        source=f"{_GPS}, Section 3.3 (GMM prior)",
        low=1,
    )
    prior_min_samples: int = setting(
        40,
        "fewest samples per cluster of the dynamics prior",
        source=f"{_GPS}, Section 3.3",
        low=1,
    )
    policy_steps: int = setting(
        1000, "gradient steps of the global policy per iteration (supervised)", low=0
    )
    policy_batch_size: int = setting(128, "minibatch of the supervised policy updates", low=1)
    policy_learning_rate: float = setting(1e-3, "Adam's step size for the global policy", low=0.0)
    buffer_size: int = setting(100_000, "real transitions kept", low=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.agent, str):
            check_agent(self.agent)
