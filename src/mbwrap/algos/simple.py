"""SimPLe (Kaiser et al. 2019, "Model-Based Reinforcement Learning for Atari", ICLR 2020,
Algorithm 1): a stochastic video-prediction model of the game learned from real play, and
SB3's PPO trained only inside it."""

from __future__ import annotations

from typing import Any

from mbwrap.algos.dyna import Dyna
from mbwrap.algos.simple_config import SimPLeConfig
from mbwrap.space_support import SpaceSupport


class SimPLe(Dyna):
    """SimPLe: Dyna over the ``"video"`` model with the paper's loop.

    Each iteration (after ``learning_starts`` real steps of random play):

    1. play ``train_freq`` real steps with the agent's policy and store them;
    2. train the video model on all real frames (``first_fit_steps`` gradient steps the
       first time, ``fit_steps`` after);
    3. train the agent (PPO) for ``imagined_steps`` steps in ``num_imagined_envs``
       simulated episodes of ``imagination_horizon`` steps, each starting from a real
       frame stack; their rewards are the model's (the sign of the game's reward).

    The real env is an Atari game with frame stacks as observations
    (:func:`~mbwrap.envs.make_atari_vec_env`). The agent never trains on real frames.
    Logs as :class:`~mbwrap.algos.dyna.Dyna` (``model/pixel_accuracy``,
    ``model/reward_accuracy``, ``imagination/ep_rew_mean``...).

    Settings: :class:`~mbwrap.algos.simple_config.SimPLeConfig`.
    """

    registry_name = "simple"
    space_support = SpaceSupport(
        observations=("image",),
        actions=("Discrete",),
        observation_note="uint8 frame stacks [S, H, W] (mbwrap.envs.make_atari_env)",
    )
    Config = SimPLeConfig
    config: SimPLeConfig

    def _fit_kwargs(self) -> dict[str, Any]:
        first = self._steps_since_refit is None
        steps = self.config.first_fit_steps if first else self.config.fit_steps
        return {**super()._fit_kwargs(), "gradient_steps": steps}
