"""Settings of SimPLe (Kaiser et al. 2019, "Model-Based Reinforcement Learning for Atari",
ICLR 2020): Dyna's settings with the paper's values, and its model-training schedule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from mbwrap.algos.config import setting
from mbwrap.algos.dyna import DynaConfig

_SIMPLE = "Kaiser et al. 2019"

# PPO as SimPLe trains it in the simulated game (tensor2tensor's ppo_original_params, the
# rlmb_base loop's base_algo_params): a rollout of 50 steps, the length of a simulated
# episode; 3 epochs over it in 2 minibatches (tensor2tensor: minibatches of 20 time steps
# of all 16 envs, 7 per rollout over the 3 epochs; here 6); learning rate 2.5e-4, clipping
# 0.1, value loss weight 1 and entropy bonus 0.01. SB3's defaults (10 epochs, no entropy
# bonus) sharpen the policy on the model's mistakes within a few iterations.
_PPO: dict[str, Any] = {
    "n_steps": 50,
    "batch_size": 400,
    "n_epochs": 3,
    "learning_rate": 2.5e-4,
    "clip_range": 0.1,
    "ent_coef": 0.01,
    "vf_coef": 1.0,
}


@dataclass(kw_only=True)
class SimPLeConfig(DynaConfig):
    """Settings of :class:`~mbwrap.algos.simple.SimPLe`."""

    algo_name: ClassVar[str] = "simple"

    agent: Any = setting(
        "PPO",
        "the SB3 agent trained only inside the video model (a name, class or instance)",
        source=f"{_SIMPLE}, Section 4 (PPO in the simulated environment)",
    )
    agent_kwargs: dict[str, Any] = setting(
        dict(_PPO),
        "constructor keywords of a named agent; a PPO rollout is one simulated episode per env",
        source="tensor2tensor ppo_original_params (rlmb_base's base_algo_params)",
    )
    model: Any = setting(
        "video",
        "the stochastic video-prediction model (a registered name or a model)",
        source=f"{_SIMPLE}, Section 4 (the stochastic discrete model)",
    )
    num_imagined_envs: int = setting(
        16, "simulated episodes stepped together", source=f"{_SIMPLE}, Section 6", low=1
    )
    imagination_horizon: int = setting(
        50,
        "simulated episodes start from real frame stacks and stop after this many steps",
        source=f"{_SIMPLE}, Section 6 (50-step rollouts from real starts)",
        low=1,
    )
    train_freq: int = setting(
        6_400,
        "real steps per iteration, acting with the agent",
        source=f"{_SIMPLE}, Section 6 (15 iterations within 100K interactions)",
        low=1,
    )
    learning_starts: int = setting(
        6_400,
        "real steps of uniformly random play before the first model fit",
        source=f"{_SIMPLE}, Algorithm 1 (the first data come from a random policy)",
        low=0,
    )
    imagined_steps: int = setting(
        800_000,
        "the agent's simulated steps per iteration (1,000 rollouts of 16 x 50)",
        source=f"{_SIMPLE}, Section 6",
        low=1,
    )
    first_fit_steps: int = setting(
        45_000,
        "the model's gradient steps at the first fit",
        source="tensor2tensor rlmb_base (model_train_steps x 3 in the first iteration)",
        low=1,
    )
    fit_steps: int = setting(
        15_000,
        "the model's gradient steps at each later fit",
        source="tensor2tensor rlmb_base (model_train_steps = 15000)",
        low=1,
    )
    buffer_size: int = setting(
        100_000, "real transitions kept (all of the 100K interactions)", low=1
    )
