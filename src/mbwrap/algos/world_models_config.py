"""World Models' settings (Ha & Schmidhuber 2018): its config, each setting with the
paper's default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from mbwrap.algos.config import AlgoConfig, setting

_PAPER = "Ha & Schmidhuber 2018"


@dataclass(kw_only=True)
class WorldModelsConfig(AlgoConfig):
    """Settings of :class:`WorldModels`: the paper's (CarRacing and Doom, Sections 3-5)."""

    algo_name: ClassVar[str] = "world-models"

    model: Any = setting(
        "vae-mdn-rnn",
        "V and M: a registered latent model name (built with model_kwargs) or a model",
        source=f"{_PAPER}, Section 2",
    )
    model_kwargs: dict[str, Any] = setting(
        {},
        "constructor keywords of a named model: latent_dim, vae_channels, reconstruction, "
        "hidden_size, num_components, temperature (the dream's tau), learning rates, "
        "batch_size, sequence_length (see VAEMDNRNN)",
    )
    fit_kwargs: dict[str, Any] = setting(
        {}, "keywords of model.fit at each refit (vae_epochs, rnn_epochs)"
    )
    population: int = setting(
        64,
        "CMA-ES candidate controllers per generation",
        source=f"{_PAPER}, Section 3.3",
        low=2,
    )
    rollouts: int = setting(
        16,
        "dreamed episodes per candidate; its fitness is their mean return",
        source=f"{_PAPER}, Section 3.3",
        low=1,
    )
    generations: int = setting(
        100,
        "CMA-ES generations per iteration (the paper evolves until the score settles)",
        low=1,
    )
    sigma0: float = setting(
        0.1,
        "CMA-ES initial step size",
        source="estool's sigma_init, used by World Models",
    )
    imagination_horizon: int | None = setting(
        None,
        "longest dreamed episode; None: the env's time limit, else 1000",
        source=f"{_PAPER}, Section 3 (CarRacing's 1000-step episodes)",
        low=1,
    )
    learning_starts: int = setting(
        10_000,
        "real steps with uniformly random actions before V and M are first fitted",
        source=f"{_PAPER}, Section 3.3 (10,000 random rollouts, counted here in steps)",
        low=0,
    )
    train_freq: int = setting(
        1_000,
        "real steps with the controller per iteration, after which V and M are refitted on "
        "all frames and C evolved again",
        source=f"{_PAPER}, Section 5 (iterative training procedure)",
        low=1,
    )
    buffer_size: int = setting(
        100_000,
        "real transitions kept (two 64x64 frames each, about 24 KiB in RGB); memory is "
        "taken as steps are collected",
        low=1,
    )

    def validate(self) -> None:
        super().validate()
        if not self.sigma0 > 0:
            raise ValueError(f"sigma0: expected a value > 0, got {self.sigma0!r}")
