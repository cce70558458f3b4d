"""MBPO's settings (Janner et al. 2019, Appendix C, and the official code): its config and
the schedules they drive (rollout length, model-buffer capacity)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from mbwrap.algos.agents import check_agent
from mbwrap.algos.config import AlgoConfig, setting

_PAPER = "Janner et al. 2019, Appendix C; official examples/config/hopper/0.py"


def rollout_length(epoch: int, schedule: Sequence[float]) -> int:
    """MBPO's model rollout length ``k`` at ``epoch``.

    ``schedule = [min_epoch, max_epoch, min_length, max_length]``: ``min_length`` up to
    ``min_epoch``, then linear in the epoch up to ``max_length`` at ``max_epoch``, constant
    after; truncated to an int (``MBPO._set_rollout_length`` in the official code).
    """
    min_epoch, max_epoch, min_length, max_length = schedule
    if epoch <= min_epoch:
        return int(min_length)
    progress = min((epoch - min_epoch) / (max_epoch - min_epoch), 1.0)
    return int(progress * (max_length - min_length) + min_length)


def model_buffer_capacity(
    rollout_batch_size: int,
    epoch_length: int,
    model_train_freq: int,
    rollout_length: int,
    model_retain_epochs: int,
) -> int:
    """Imagined transitions kept: those generated in the last ``model_retain_epochs``
    epochs, ``rollout_batch_size`` rollouts of ``rollout_length`` steps every
    ``model_train_freq`` real steps (``MBPO._reallocate_model_pool``)."""
    rollouts_per_epoch = rollout_batch_size * epoch_length / model_train_freq
    return model_retain_epochs * int(rollout_length * rollouts_per_epoch)


@dataclass(kw_only=True)
class MBPOConfig(AlgoConfig):
    """Settings of :class:`MBPO`: the paper's (Appendix C, Hopper) as its released code
    sets them; ``presets.PENDULUM_MBPO`` scales them down for classic control."""

    algo_name: ClassVar[str] = "mbpo"

    agent: Any = setting(
        "SAC",
        "an SB3 off-policy algorithm (SAC, TD3, TQC... for Box actions, DQN or QRDQN for "
        "Discrete ones): a name, a class (built with agent_kwargs) or an instance; its own "
        "replay buffer is never used",
        source="Janner et al. 2019, Section 5 (SAC)",
    )
    agent_kwargs: dict[str, Any] | None = setting(
        {}, "constructor keywords of a named agent", optional=True
    )
    model: Any = setting(
        "gaussian-ensemble",
        "a registered model name (built with model_kwargs) or a WorldModel",
        source="Janner et al. 2019, Section 5 (probabilistic ensemble)",
    )
    model_kwargs: dict[str, Any] = setting({}, "constructor keywords of a named model")
    fit_kwargs: dict[str, Any] = setting({}, "keywords of model.fit at each refit")
    epoch_length: int = setting(1000, "real steps per epoch (E)", source=_PAPER, low=1)
    model_train_freq: int = setting(
        250, "real steps between model refits, each followed by a batch of rollouts",
        source=_PAPER, low=1,
    )
    rollout_batch_size: int = setting(
        100_000, "rollouts branched from real states after each refit (M = 400 per real "
        "step at 250 steps between refits)", source=_PAPER, low=1,
    )
    # Appendix C, Hopper: k from 1 to 15 over epochs 20 to 100; the released hopper/0.py
    # reaches 15 at epoch 150, HalfCheetah and Walker2d keep k = 1.
    rollout_schedule: Sequence[float] = setting(
        (20, 100, 1, 15), "[min_epoch, max_epoch, min_length, max_length] of the rollout "
        "length k (see rollout_length)", source="Janner et al. 2019, Appendix C (Hopper)",
        low=4, high=4,
    )
    model_retain_epochs: int = setting(
        1, "epochs of rollouts the model buffer keeps", source=_PAPER, low=1
    )
    real_ratio: float = setting(
        0.05, "share of real transitions in each agent minibatch", source=_PAPER,
        low=0.0, high=1.0,
    )
    train_freq: int = setting(1, "real steps per iteration", source=_PAPER, low=1)
    gradient_steps: int = setting(
        20, "agent updates per train_freq real steps (G; halfcheetah/0.py uses 40)",
        source=_PAPER, low=0,
    )
    learning_starts: int = setting(
        5000, "real steps with uniformly random actions first",
        source="official examples/development/variants.py", low=0,
    )
    buffer_size: int = setting(
        1_000_000, "real transitions kept", source="official examples/development/variants.py",
        low=1,
    )

    def validate(self) -> None:
        super().validate()
        agent = check_agent(self.agent)
        cls = agent if isinstance(agent, type) else type(agent)
        if not issubclass(cls, OffPolicyAlgorithm):
            raise TypeError(
                "agent: MBPO trains its agent from a replay buffer; expected an SB3 "
                f"off-policy algorithm (SAC, TD3, TQC, DQN, QRDQN...), got {cls.__name__}"
            )
        values = list(self.rollout_schedule)
        numeric = all(isinstance(v, numbers.Real) for v in values)
        if not numeric or values[1] <= values[0] or min(values[2:]) < 1:
            raise ValueError(
                "rollout_schedule: expected [min_epoch, max_epoch, min_length, max_length] "
                f"with max_epoch > min_epoch and lengths >= 1, got {self.rollout_schedule!r}"
            )
