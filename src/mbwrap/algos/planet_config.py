"""PlaNet's settings (Hafner et al. 2019, "Learning Latent Dynamics for Planning from
Pixels", Appendix A): its config and the paper's model and planner keywords."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from mbwrap.algos.config import AlgoConfig, setting

_PAPER = "Hafner et al. 2019, Appendix A"

#: Model keywords of the RSSM that PlaNet builds by default (Hafner et al. 2019, Appendix
#: A): a Gaussian latent of 30 variables, a GRU of 200 units, hidden layers of 200; Adam
#: with learning rate 1e-3 and gradients clipped at norm 1000. Its chunks are PlaNet's
#: ``batch_size`` and ``sequence_length``.
PLANET_MODEL_KWARGS: dict[str, Any] = {
    "latent": "gaussian",
    "stoch": 30,
    "deter": 200,
    "hidden": 200,
    "learning_rate": 1e-3,
    "max_grad_norm": 1000.0,
}

#: CEM keywords PlaNet plans with (Hafner et al. 2019, Section 3 and Appendix A): horizon
#: 12, 10 iterations of 1000 candidates refitted to the best 100, one rollout per
#: candidate, and a fresh belief over action sequences at every decision (no warm start
#: and no smoothing of the refit).
PLANET_CEM_KWARGS: dict[str, Any] = {
    "horizon": 12,
    "iterations": 10,
    "population": 1000,
    "num_elites": 100,
    "particles": 1,
    "alpha": 0.0,
    "warm_start": False,
}


@dataclass(kw_only=True)
class PlaNetConfig(AlgoConfig):
    """Settings of :class:`PlaNet`: the paper's (Appendix A)."""

    algo_name: ClassVar[str] = "planet"

    model: Any = setting(
        "rssm",
        "a registered model name (built with model_kwargs) or a WorldModel that filters "
        "(embed, first_posterior, obs_step, action_vector, train_step)",
    )
    model_kwargs: dict[str, Any] = setting(
        {}, "keywords of the model; for 'rssm' they update PLANET_MODEL_KWARGS", source=_PAPER
    )
    planner: str = setting("cem", "a registered planner name, built over the model")
    planner_kwargs: dict[str, Any] = setting(
        {},
        "keywords of the planner (horizon, population, num_elites, iterations...); for "
        "'cem' they update PLANET_CEM_KWARGS",
        source="Hafner et al. 2019, Section 3 and Appendix A",
    )
    learning_starts: int = setting(
        5_000,
        "real steps of uniformly random actions before the first update",
        source=f"{_PAPER}: S = 5 seed episodes of 1000 env steps",
        low=0,
    )
    train_freq: int | None = setting(
        None,
        "real steps between rounds of gradient_steps model updates; None: before the "
        "first decision after every episode end (one episode per round)",
        source="Hafner et al. 2019, Algorithm 1",
        optional=True,
    )
    gradient_steps: int = setting(
        100, "model updates per round", source=f"{_PAPER}: collect interval C = 100", low=1
    )
    batch_size: int = setting(50, "chunks per model update", source=f"{_PAPER}: B = 50", low=1)
    sequence_length: int = setting(
        50, "steps per chunk", source=f"{_PAPER}: chunk length L = 50", low=1
    )
    action_repeat: int = setting(
        1,
        "env steps per decision, whose rewards the model sees as one; 1 leaves the env as is",
        source=f"{_PAPER}: R = 2 to 8 per task",
        low=1,
    )
    exploration_noise: float = setting(
        0.3,
        "Box actions: standard deviation of the Gaussian noise on the planned action "
        "while learning, in units of half the action range; Discrete: the probability of "
        "a uniformly random action instead",
        source=f"{_PAPER}: Normal(0, 0.3)",
    )
    buffer_size: int = setting(
        100_000,
        "real transitions kept (one per decision); preallocated with observations stored "
        "twice, so 100,000 steps of 64 x 64 RGB images take about 2.5 GB",
        source="the paper keeps every episode (Algorithm 1)",
        low=1,
    )

    def validate(self) -> None:
        super().validate()
        noise = self.exploration_noise
        if isinstance(noise, bool) or not (math.isfinite(noise) and noise >= 0):
            raise ValueError(f"exploration_noise: expected a finite float >= 0, got {noise!r}")
        every = self.train_freq
        valid = isinstance(every, int) and not isinstance(every, bool) and every >= 1
        if every is not None and not valid:
            raise ValueError(f"train_freq: expected an int >= 1 or None, got {every!r}")
        for key in ("reward_fn", "termination_fn"):
            if key in self.planner_kwargs:
                raise ValueError(
                    f"planner_kwargs: PlaNet plans with the model's reward and continuation "
                    f"heads in latent space; {key} (a function of observations) does not apply"
                )
        if not isinstance(self.planner, str):
            raise TypeError(
                f"planner: expected a registered planner name such as 'cem', got {self.planner!r}"
            )
