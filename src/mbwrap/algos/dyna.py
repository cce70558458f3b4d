"""Dyna with any SB3 agent: real experience fits a world model, and the agent learns only
from experience the model imagines.

Sutton (1991), "Dyna, an integrated architecture for learning, planning, and reacting",
and Sutton & Barto (2018), chapter 8: acting, model learning and planning interleave.
Here the planning updates are an unmodified SB3 agent training on a
:class:`~mbwrap.DreamVecEnv` whose episodes start from real states, as in ME-TRPO
(Kurutach et al. 2018) without the ensemble-based stopping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from stable_baselines3.common.vec_env import VecMonitor

from mbwrap.algos.agents import resolve_agent
from mbwrap.algos.base import Algorithm
from mbwrap.algos.callbacks import EpisodeStatsCallback
from mbwrap.algos.config import AlgoConfig, setting
from mbwrap.envs import DreamVecEnv, as_vec_env
from mbwrap.envs.action_masks import ActionMasks, MaskedPredictor, accepts_action_masks
from mbwrap.envs.fns.base import ActionMaskFn
from mbwrap.space_support import SpaceSupport
from mbwrap.spaces import as_batch


@dataclass(kw_only=True)
class DynaConfig(AlgoConfig):
    """Settings of :class:`Dyna`. No paper runs arbitrary SB3 agents in imagination: the
    defaults keep imagined episodes short and started from real states, which keeps
    compounding model error small (the argument of MBPO, Janner et al. 2019)."""

    algo_name: ClassVar[str] = "dyna"

    agent: Any = setting(
        "PPO",
        "the SB3 algorithm trained in imagination: a name (see available_agents()), a "
        "class (built with agent_kwargs) or an instance (its n_envs imagined episodes)",
    )
    agent_kwargs: dict[str, Any] = setting({}, "constructor keywords of a named agent")
    model: Any = setting("mlp", "a registered model name (built with model_kwargs) or a model")
    model_kwargs: dict[str, Any] = setting({}, "constructor keywords of a named model")
    fit_kwargs: dict[str, Any] = setting({}, "keywords of model.fit at each refit")
    num_imagined_envs: int = setting(
        16, "imagined episodes stepped together (when agent is not an instance)", low=1
    )
    imagination_horizon: int = setting(
        100, "imagined episodes are truncated after this many steps (the agent bootstraps)",
        low=1,
    )
    train_freq: int = setting(1_000, "real steps per iteration (a refit after each)", low=1)
    imagined_steps: int = setting(
        20_000,
        "the agent's training budget per iteration in imagined steps; SB3 rounds it up to "
        "whole rollouts",
        source="20 imagined steps per real step",
        low=1,
    )
    learning_starts: int = setting(
        1_000, "real steps with uniformly random actions before the first fit", low=0
    )
    buffer_size: int = setting(
        1_000_000, "real transitions kept", source="SB3's default replay size", low=1
    )

    def validate(self) -> None:
        super().validate()
        if self.buffer_size < self.learning_starts:
            raise ValueError(
                f"buffer_size: {self.buffer_size} cannot hold the {self.learning_starts} "
                "learning_starts random steps"
            )


class Dyna(Algorithm):
    """Dyna with an SB3 agent that trains only in imagination.

    Each iteration (after ``learning_starts`` uniformly random real steps):

    1. act in the real env with the agent's policy for ``train_freq`` steps and store them;
    2. refit the world model on every stored real transition;
    3. train the agent for ``imagined_steps`` steps on ``num_imagined_envs`` imagined
       episodes of at most ``imagination_horizon`` steps, each starting from a stored real
       state (``agent.set_env(dream)`` restarts them from real states after each refit).

    Reward and termination in imagination come from the functions registered for the
    env's id (group ``mbwrap.fns``) when there are any, else from the model's heads.
    An agent that masks invalid actions (sb3-contrib's ``MaskablePPO``) gets the dream's
    :meth:`~mbwrap.DreamVecEnv.action_masks` in imagination and, in the real env, the
    env's own ``action_masks()`` when it has one, else the same masks of the real
    observations.
    The agent's own training metrics (``train/...``) go to this algorithm's logger, with
    the real rollout statistics (``rollout/...``), the model's fit metrics
    (``model/...``) and the imagined episodes' statistics (``imagination/...``).

    Settings: :class:`DynaConfig`; ``agent`` and ``model`` may also be passed by position.

    :param action_mask_fn: batched ``(obs) -> [B, n]`` bool valid actions in imagination
        (see :mod:`mbwrap.envs.action_masks`), preferred to a registered one or the model's
        head; code, so not saved: set :attr:`action_mask_fn` again after :meth:`load`.
    """

    registry_name = "dyna"
    space_support = SpaceSupport(
        observations=("Box", "Discrete", "MultiDiscrete", "MultiBinary", "Dict", "Tuple"),
        actions=("Box", "Discrete", "MultiDiscrete", "MultiBinary"),
    )
    Config = DynaConfig
    positional_settings = ("agent", "model")
    saved_state = ("agent", "model", "dream_rng")
    saved_buffers = ("buffer",)
    config: DynaConfig

    def __init__(
        self, env: Any, *args: Any, action_mask_fn: ActionMaskFn | None = None, **kwargs: Any
    ) -> None:
        super().__init__(env, *args, **kwargs)
        config = self.config
        self.model = self._make_model()
        self.buffer = self._make_buffer()
        num_envs = getattr(config.agent, "n_envs", None) or config.num_imagined_envs
        self.dream = DreamVecEnv(
            self.model,
            num_envs,
            start_states=self.buffer,
            horizon=config.imagination_horizon,
            action_mask_fn=action_mask_fn,
        )
        # VecMonitor puts the imagined episodes' returns in infos, for the agent's stats.
        self.dream_env = VecMonitor(as_vec_env(self.dream))
        if config.seed is not None:
            self.dream_env.seed(config.seed)
        self.agent, config.agent, config.agent_kwargs = resolve_agent(
            config.agent,
            config.agent_kwargs,
            self.dream_env,
            seed=config.seed,
            device=self.device,
            verbose=max(self.verbose - 1, 0),
        )
        config.num_imagined_envs = num_envs

    @property
    def action_mask_fn(self) -> ActionMaskFn | None:
        """The given function masking actions in imagination (``None``: the registered one,
        the model's head, or all valid)."""
        masker = self.dream.action_masker
        return masker.fn if masker.source == "given" else None

    @action_mask_fn.setter
    def action_mask_fn(self, fn: ActionMaskFn | None) -> None:
        self.dream.action_masker = ActionMasks(self.model, fn)

    @property
    def dream_rng(self) -> np.random.Generator:
        """The generator imagined episodes draw their real start states from."""
        return self.dream.np_random

    def _after_restore(self) -> None:
        # The dream continues its saved random stream instead of its seed.
        self.dream_env.unwrapped._reset_seeds()

    # ------------------------------------------------------------------ the loop's hooks
    def _on_training_start(self) -> None:
        self.agent.set_logger(self.logger)

    def _behaviour_policy(self) -> Any:
        if accepts_action_masks(self.agent):
            return MaskedPredictor(self.agent, self._real_action_masks)
        return self.agent

    def _real_action_masks(self, obs: Any) -> np.ndarray | None:
        """``[n_envs, mask_size]`` bool for the real env's observations ``obs``: the env's
        own masks when it has them, else the dream's source applied to ``obs``, else
        ``None`` (all valid)."""
        assert self.env is not None
        if self.env.has_attr("action_masks"):
            return np.stack(self.env.env_method("action_masks"))
        masker = self.dream.action_masker
        if masker.source == "all":
            return None
        batch, _ = as_batch(obs, self.observation_space, name="obs", device=self.model.device)
        return masker.of_observations(batch, self.env.num_envs).cpu().numpy()

    def _train(self) -> None:
        """Train the agent in imagination, starting from real states."""
        self.agent.set_env(self.dream_env)
        episodes = EpisodeStatsCallback()
        before = self.agent.num_timesteps
        self.agent.learn(
            self.config.imagined_steps,
            callback=episodes,
            log_interval=None,
            reset_num_timesteps=False,
        )
        self.logger.record("imagination/steps", self.agent.num_timesteps - before)
        self.logger.record("imagination/total_timesteps", self.agent.num_timesteps)
        if episodes.episode_returns:
            self.logger.record("imagination/ep_rew_mean", float(np.mean(episodes.episode_returns)))
            self.logger.record("imagination/ep_len_mean", float(np.mean(episodes.episode_lengths)))
