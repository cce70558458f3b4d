"""MB-MF's settings (Nagabandi et al. 2018 and the authors' released code): its config,
each setting with its default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from mbwrap.algos.config import AlgoConfig, setting
from mbwrap.algos.mb_mf_distill import BC_LOSSES

_YAML = "Nagabandi et al. 2018, released code, cheetah_forward.yaml"
_MBMF = "Nagabandi et al. 2018, released code, mbmf.py (cheetah)"


@dataclass(kw_only=True)
class MBMFConfig(AlgoConfig):
    """Settings of :class:`MBMF`: the released code's for HalfCheetah."""

    algo_name: ClassVar[str] = "mb-mf"

    agent: Any = setting(
        "PPO",
        "the SB3 algorithm distilled into and fine-tuned: an on-policy actor-critic (PPO, the "
        "stand-in for the paper's TRPO; A2C; sb3-contrib's TRPO) or an off-policy algorithm "
        "with an actor (SAC, TD3...), as a name, class or instance (with the env's n_envs)",
        source="Nagabandi et al. 2018, Section V (TRPO)",
    )
    agent_kwargs: dict[str, Any] = setting({}, "constructor keywords of a named agent")
    model: Any = setting(
        "mlp", "a registered model name (built with model_kwargs) or a WorldModel",
        source="Section IV-A: a feed-forward network predicting the state change",
    )
    model_kwargs: dict[str, Any] = setting({}, "constructor keywords of a named model")
    fit_kwargs: dict[str, Any] = setting({}, "keywords of model.fit at each refit")
    planner: str = setting(
        "random-shooting", "a registered planner name, built on the model with planner_kwargs "
        "and seed", source="Section IV-C: random-shooting MPC",
    )
    planner_kwargs: dict[str, Any] = setting(
        {"population": 1000, "horizon": 20},
        "constructor keywords of the planner (give them all when choosing another planner)",
        source=f"{_YAML}: 1000 candidates over 20 steps",
    )
    learning_starts: int = setting(
        10_000, "uniformly random real steps before the first fit",
        source=f"{_YAML}: 10 random rollouts of 1000 steps", low=1,
    )
    model_based_steps: int = setting(
        80_000, "real steps of the model-based phase, the random ones included",
        source=f"{_YAML}: then 7 aggregation iterations of 10 MPC rollouts", low=1,
    )
    model_train_freq: int = setting(
        10_000, "MPC real steps between refits of the model on every real transition",
        source=f"{_YAML}: a refit after each iteration of 10 rollouts", low=1,
    )
    dagger_iterations: int = setting(3, "DAgger iterations (0: behaviour cloning only)",
                                     source=_MBMF, low=0)
    dagger_steps: int = setting(
        2_000, "real steps the policy takes per DAgger iteration",
        source=f"{_MBMF}: 2 rollouts of 1000 steps", low=1,
    )
    bc_loss: str = setting(
        "mse", "'mse', the paper's, fits the policy's mean only; the likelihood ('nll') also "
        "shrinks its standard deviation to the random-shooting expert's action noise, and with "
        "it the fine-tuning agent's exploration. 'nll' needs a stochastic policy; Discrete "
        "actions need 'nll'",
        source="Section V", choices=BC_LOSSES,
    )
    bc_epochs: int = setting(300, "passes over the aggregated pairs per behaviour-cloning fit",
                             source=_MBMF, low=1)
    bc_batch_size: int = setting(512, "pairs per Adam step of behaviour cloning", source=_MBMF,
                                 low=1)
    bc_learning_rate: float = setting(1e-3, "Adam's step size for behaviour cloning",
                                      source=_MBMF)
    label_batch_size: int = setting(
        256, "states the expert labels per planner call (bounds the memory of "
        "label_batch_size * population model rollouts)", low=1,
    )
    critic_warmup_steps: int = setting(
        0, "critic-only gradient steps before off-policy fine-tuning (0 for on-policy agents)",
        low=0,
    )
    buffer_size: int = setting(
        1_000_000, "real transitions kept; at least model_based_steps",
        source="SB3's default replay size", low=1,
    )

    def validate(self) -> None:
        super().validate()
        if self.model_based_steps < self.learning_starts:
            raise ValueError(f"model_based_steps: expected a value >= learning_starts "
                             f"({self.learning_starts}), got {self.model_based_steps}")
        if self.buffer_size < self.model_based_steps:
            raise ValueError(f"buffer_size: {self.buffer_size} cannot hold the "
                             f"{self.model_based_steps} model-based steps every refit uses")
        if not self.bc_learning_rate > 0:
            raise ValueError(f"bc_learning_rate: expected a positive float, got "
                             f"{self.bc_learning_rate!r}")
        if not isinstance(self.planner, str):
            raise TypeError(f"planner: expected a registered planner name, got {self.planner!r}")
