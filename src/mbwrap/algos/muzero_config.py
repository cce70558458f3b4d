"""Settings of :class:`~mbwrap.algos.MuZero`, each with its default and where it comes
from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from mbwrap.algos.config import AlgoConfig, setting
from mbwrap.buffers.prioritized import PRIORITY_ALPHA, PRIORITY_BETA
from mbwrap.planners.mcts.policies import (
    C_SCALE,
    C_VISIT,
    DIRICHLET_ALPHA,
    DIRICHLET_FRACTION,
    MAX_NUM_CONSIDERED_ACTIONS,
)

_PAPER = "Schrittwieser et al. 2020"
_GUMBEL = "Danihelka et al. 2022"


@dataclass(kw_only=True)
class MuZeroConfig(AlgoConfig):
    """Settings of :class:`MuZero`: the paper's Atari values unless said otherwise."""

    algo_name: ClassVar[str] = "muzero"

    search: str = setting(
        "gumbel", "'muzero' (pUCT with root Dirichlet noise) or 'gumbel' (improves the "
        "policy even with few simulations)", source=_GUMBEL, choices=("muzero", "gumbel"),
    )
    num_simulations: int = setting(50, "searches per self-play move",
                                   source=f"{_PAPER}, Appendix C (Atari)", low=1)
    eval_num_simulations: int | None = setting(
        None, "simulations per move in predict(); None: as self-play, 0: the policy head's "
        "most likely action, no search", low=0, optional=True,
    )
    gamma: float = setting(0.997, "discount of returns, searches and n-step targets",
                           source=f"{_PAPER}, Appendix C (Atari)", low=0.0, high=1.0)
    n_step: int = setting(10, "bootstrap horizon of the value targets",
                          source=f"{_PAPER}, Appendix G (Atari)", low=1)
    num_unroll_steps: int = setting(5, "K, steps the dynamics is unrolled in training",
                                    source=f"{_PAPER}, Appendix G", low=0)
    network_kwargs: dict[str, Any] = setting(
        {}, "keywords of MuZeroNetworks (kind, hidden_size, layers, support_size)"
    )
    batch_size: int = setting(1024, "positions per update",
                              source=f"{_PAPER}, Appendix G (Atari)", low=1)
    learning_rate: float = setting(
        1e-3, "Adam's step size (MuZero uses SGD with momentum 0.9 from 0.05; Adam needs no "
        "schedule at small scale)", low=0.0,
    )
    weight_decay: float = setting(1e-4, "L2 regularisation (Adam's weight_decay)",
                                  source=f"{_PAPER}, Appendix G", low=0.0)
    value_loss_coef: float = setting(0.25, "weight of the value loss",
                                     source=f"{_PAPER}, Appendix H (Reanalyze)", low=0.0)
    max_grad_norm: float | None = setting(
        5.0, "gradient clipping; None: none", source="EfficientZero, Ye et al. 2021",
        low=0.0, optional=True,
    )
    train_freq: int = setting(
        4, "real steps (all envs counted) per gradient_steps updates",
        source="one update per 4 real steps at small scale", low=1,
    )
    gradient_steps: int = setting(1, "updates every train_freq real steps", low=0)
    learning_starts: int = setting(1_000, "real steps of self-play before the first update",
                                   low=0)
    buffer_size: int = setting(100_000, "rows of replay (positions plus one per segment)",
                               low=2)
    segment_length: int = setting(200, "moves per stored segment (long episodes are cut)",
                                  low=1)
    priority_alpha: float = setting(PRIORITY_ALPHA, "prioritised replay exponent of P(i)",
                                    source=f"{_PAPER}, Appendix G", low=0.0)
    priority_beta: float = setting(PRIORITY_BETA, "importance-weight exponent",
                                   source=f"{_PAPER}, Appendix G", low=0.0)
    reanalyse_fraction: float = setting(
        0.0, "rows reanalysed per update as a fraction of batch_size; 0: off",
        source=f"{_PAPER}, Appendix H (Reanalyze)", low=0.0,
    )
    bootstrap_with_network: bool = setting(
        False, "n-step targets bootstrap from the current network's value of the "
        "observation n steps ahead instead of the stored search value",
        source=f"{_PAPER}, Appendix H (Reanalyze bootstraps from a recent network)",
    )
    replay_actor: bool = setting(
        False, "with num_workers: the replay lives on its own Ray actor, which stores what "
        "the self-play actors played, draws prioritised batches and takes new priorities",
        source="muzero-general's ReplayBuffer actor",
    )
    target_update_interval: int | None = setting(
        None, "with bootstrap_with_network: bootstrap from a copy of the networks refreshed "
        "every this many updates; None: from the networks being trained",
        source="EfficientZero, Ye et al. 2021, refreshes it every 200", low=1, optional=True,
    )
    dirichlet_alpha: float = setting(DIRICHLET_ALPHA, "pUCT root-noise concentration",
                                     source=f"{_PAPER}, Appendix C", low=0.0)
    dirichlet_fraction: float = setting(DIRICHLET_FRACTION, "pUCT root-noise weight",
                                        source=f"{_PAPER}, Appendix C", low=0.0, high=1.0)
    max_num_considered_actions: int = setting(
        MAX_NUM_CONSIDERED_ACTIONS, "Gumbel: actions sampled at the root",
        source=f"{_GUMBEL}, Appendix D", low=1,
    )
    c_visit: float = setting(C_VISIT, "Gumbel: sigma's visit offset",
                             source=f"{_GUMBEL}, Appendix D", low=0.0)
    c_scale: float = setting(C_SCALE, "Gumbel: sigma's scale", source=f"{_GUMBEL}, Appendix D",
                             low=0.0)

    def validate(self) -> None:
        super().validate()
        if self.replay_actor and not self.num_workers:
            raise ValueError("replay_actor: needs num_workers > 0 (self-play on Ray actors)")
        if self.segment_length >= self.buffer_size:
            raise ValueError(
                f"segment_length: expected at most buffer_size - 1 = {self.buffer_size - 1}, "
                f"got {self.segment_length}"
            )
