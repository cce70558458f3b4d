"""PlaNet (Hafner, Lillicrap, Fischer, Villegas, Ha, Lee & Davidson 2019, "Learning Latent
Dynamics for Planning from Pixels", Algorithm 1).

A recurrent state-space model (:class:`~mbwrap.models.RSSM`) is trained on sequence chunks
of all real experience, and the agent acts by CEM planning in its latent space: at every
decision the belief over the latent state is filtered with the new observation, the
planner optimises action sequences from it through the model's prior and reward head,
and the first action, plus exploration noise, is executed. There is no policy network.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common import utils as sb3_utils
from stable_baselines3.common.callbacks import BaseCallback

from mbwrap.algos.base import Algorithm
from mbwrap.algos.planet_acting import Acting
from mbwrap.algos.planet_config import PLANET_CEM_KWARGS, PLANET_MODEL_KWARGS, PlaNetConfig
from mbwrap.buffers import ReplayBuffer
from mbwrap.buffers.action_repeat import ActionRepeatWriter
from mbwrap.device import make_generator
from mbwrap.models.latent_filter import LatentFilter, missing_filter_methods
from mbwrap.planners import Planner
from mbwrap.registry import make_planner
from mbwrap.space_support import SpaceSupport
from mbwrap.spaces import action_bounds


class PlaNet(Algorithm):
    """PlaNet: a recurrent state-space model and CEM planning from its filtered belief.

    ``learn(total_timesteps)`` (Algorithm 1 of the paper) runs
    :class:`~mbwrap.algos.Algorithm`'s loop, one decision per iteration:
    ``learning_starts`` real steps of uniformly random actions, then before each decision
    that follows an episode end (or ``train_freq`` real steps) a round of
    ``gradient_steps`` updates of the model on ``batch_size`` chunks of
    ``sequence_length`` steps drawn from every real step so far (chunks may span
    episodes; the model restarts its state where one ends).

    At every decision the belief of each env is filtered with its new observation, batched
    over the VecEnv's envs (a :class:`~mbwrap.models.latent_filter.LatentFilter`); the
    planner optimises from the beliefs (:meth:`~mbwrap.planners.Planner.plan_states`) with
    the model's reward and continuation heads; the first action, with exploration noise
    while learning, is repeated for ``action_repeat`` env steps, whose rewards the model
    sees as one (:class:`~mbwrap.buffers.action_repeat.ActionRepeatWriter`).

    :meth:`predict` keeps each env's belief between calls, as SB3's recurrent policies
    keep their state, and restarts it where ``episode_start`` is true (``evaluate_policy``
    passes it): the ``state`` argument is not used. With ``action_repeat > 1`` it decides
    every ``action_repeat`` calls and repeats the decision in between.

    Settings: :class:`PlaNetConfig`; ``model`` and ``planner`` may also be passed by
    position.
    """

    registry_name = "planet"
    space_support = SpaceSupport(
        observations=("Box", "image", "Discrete", "Dict"), actions=("Box", "Discrete"),
        bounded_actions=True,
    )
    Config = PlaNetConfig
    positional_settings = ("model", "planner")
    saved_state = (
        "model",
        "collect_filter",
        "eval_filter",
        "collect_planner_rng",
        "eval_planner_rng",
        "data_rng",
        "model_rng",
        "real_episodes",
        "train_rounds",
        "_steps_at_round",
        "_episodes_since_round",
    )
    saved_buffers = ("buffer",)
    acting_state = ("collect_filter", "eval_filter")
    config: PlaNetConfig

    def __init__(self, env: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(env, *args, **kwargs)
        config = self.config
        self.discrete = isinstance(self.action_space, spaces.Discrete)
        if self.discrete and config.exploration_noise > 1:
            raise ValueError(
                "exploration_noise: expected a probability in [0, 1] for Discrete actions, "
                f"got {config.exploration_noise!r}"
            )
        if config.model == "rssm":
            chunks = {"batch_size": config.batch_size, "sequence_length": config.sequence_length}
            for key, value in chunks.items():
                if config.model_kwargs.get(key, value) != value:
                    raise ValueError(f"model_kwargs: set {key} as PlaNet's own setting")
            config.model_kwargs = {**PLANET_MODEL_KWARGS, **config.model_kwargs, **chunks}
        self.model = self._make_model()
        missing = missing_filter_methods(self.model)
        missing += [] if callable(getattr(self.model, "train_step", None)) else ["train_step"]
        if missing:
            raise TypeError(
                f"model: PlaNet filters and trains a recurrent latent model, but "
                f"{type(self.model).__name__} lacks {', '.join(missing)}; use 'rssm'"
            )
        if config.planner == "cem":
            config.planner_kwargs = {**PLANET_CEM_KWARGS, **config.planner_kwargs}
        #: The planner :meth:`predict` acts with.
        self.planner: Planner = self._make_planner()
        self._collecting = Acting(self, self._make_planner())
        self._evaluating = Acting(self, self.planner)
        self.buffer = ReplayBuffer(
            self.observation_space,
            self.action_space,
            config.buffer_size,
            device=self.model.device,
            n_envs=self.n_envs,
        )
        self._writer = ActionRepeatWriter(self.buffer, config.action_repeat)
        if not self.discrete:
            self._low, self._high = action_bounds(self.action_space, self.model.device)
        #: Real episodes finished over every ``learn`` call.
        self.real_episodes = 0
        #: Rounds of ``gradient_steps`` model updates done.
        self.train_rounds = 0
        self._steps_at_round = self._episodes_since_round = 0
        self._seed_generators(config.seed)

    def _make_planner(self) -> Planner:
        planner = make_planner(self.config.planner, self.model, **self.config.planner_kwargs)
        if not callable(getattr(planner, "plan_states", None)):
            raise TypeError(
                f"planner: PlaNet plans from filtered latent states, which needs a "
                f"mbwrap.planners.Planner (plan_states); {self.config.planner!r} built a "
                f"{type(planner).__name__}"
            )
        return planner

    def _seed_generators(self, seed: int | None) -> None:
        device = self.model.device
        seeds = [None if seed is None else int(seed) + k for k in range(6)]
        self.planner.generator = make_generator(device, seeds[0])
        self._collecting.planner.generator = make_generator(device, seeds[1])
        self._evaluating.filter.generator = make_generator(device, seeds[2])
        self._collecting.filter.generator = make_generator(device, seeds[3])
        self.data_rng = make_generator(self.buffer.device, seeds[4])
        self.model_rng = make_generator(device, seeds[5])

    def set_random_seed(self, seed: int | None = None) -> None:
        """Seed Python, NumPy, torch, the action space, the env (at its next reset) and
        PlaNet's own generators (filtering, exploration, planning, replay), as SB3's
        ``set_random_seed`` does; ``None`` leaves the global generators and env alone and
        reseeds PlaNet's from fresh entropy."""
        if seed is not None:
            sb3_utils.set_random_seed(seed)
            self.action_space.seed(seed)
            if self.env is not None:
                self.env.seed(seed)
        self._seed_generators(seed)

    # ------------------------------------------------------------------ checkpoint parts
    @property
    def collect_filter(self) -> LatentFilter:
        return self._collecting.filter

    @property
    def eval_filter(self) -> LatentFilter:
        return self._evaluating.filter

    @property
    def collect_planner_rng(self) -> torch.Generator:
        return self._collecting.planner.generator

    @property
    def eval_planner_rng(self) -> torch.Generator:
        return self.planner.generator

    # ------------------------------------------------------------------ acting
    @property
    def latent_state(self) -> torch.Tensor | None:
        """The beliefs :meth:`predict` keeps: ``[B, F]`` posterior states after the last
        decision's observations (``None`` before the first)."""
        return self._evaluating.filter.state

    def _explore(self, action: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``[B, *act_shape]`` planned actions -> the ones executed while learning."""
        noise_scale, device = self.config.exploration_noise, action.device
        if self.discrete:
            # Actions of Discrete(n, start) are the values start .. start + n - 1.
            start = int(self.action_space.start)  # type: ignore[attr-defined]
            n = int(self.action_space.n)  # type: ignore[attr-defined]
            uniform = torch.randint(
                start, start + n, action.shape, device=device, generator=generator,
                dtype=action.dtype,
            )
            swap = torch.rand(action.shape, device=device, generator=generator)
            return torch.where(swap < noise_scale, uniform, action)
        noise = torch.randn(action.shape, device=action.device, generator=generator)
        scale = noise_scale * (self._high - self._low) / 2
        return torch.clamp(action + scale * noise, self._low, self._high)

    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Actions for a batch of observations ``[B, *obs_shape]`` (or one), planned from
        each env's belief; ``deterministic=False`` adds the exploration noise.

        :param state: not used (the beliefs are kept here); returned unchanged.
        :param episode_start: ``[B]`` bool, envs whose episode starts with ``observation``;
            ``None``: none does. A new batch size restarts every env.
        """
        return self._evaluating.predict(observation, state, episode_start, deterministic)

    # ------------------------------------------------------------------ the loop's hooks
    def _refit_due(self) -> bool:
        return False  # rounds of updates come before decisions (_collect): Algorithm 1

    def _round_due(self) -> bool:
        if self._warming_up() or self.buffer.stored_rows < self.config.sequence_length:
            return False
        if self.train_rounds == 0:
            return True
        if self.config.train_freq is None:
            return self._episodes_since_round > 0
        return self.real_steps - self._steps_at_round >= self.config.train_freq

    def _policy_role(self, policy: Any) -> str:
        """On collection workers the collecting policy is named with what the learner
        knows: warm-up (random decisions) and whether its writer starts a decision at
        this vector step, which PlaNet's ``_collect`` takes one at a time."""
        if policy is self._collecting:
            flags = ["random"] * policy.random + ["decide"] * (self._writer.pending == 0)
            return "+".join(["collecting", *flags])
        return super()._policy_role(policy)

    def _worker_policy(self, role: str) -> Acting:
        """A worker copy's collecting policy for ``role`` (see :meth:`_policy_role`)."""
        name, *flags = role.split("+")
        if name != "collecting":
            raise ValueError(f"role: expected 'collecting[+random][+decide]', got {role!r}")
        acting = self._collecting
        acting.learner_decides, acting.random = True, "random" in flags
        if "decide" in flags:
            acting.phase = 0
        return acting

    def _collect(self, callback: BaseCallback, remaining: int) -> bool:
        """Train a round when one is due, then make one decision for every env and act on
        it for ``action_repeat`` env steps (fewer where every episode ends)."""
        if self._round_due():
            self._train_round()
        self._collecting.random = self._warming_up()
        taken = 0
        while True:
            go_on = self._collect_real_steps(self._writer, self.n_envs, callback, self._collecting)
            taken += self.n_envs
            assert self._episode_starts is not None
            ended = int(self._episode_starts.sum())
            self.real_episodes += ended
            self._episodes_since_round += ended
            if not go_on or self._writer.pending == 0 or taken >= remaining:
                return go_on

    def _train_round(self) -> None:
        config = self.config
        self.model.train()
        metrics: dict[str, Any] = {}
        for _ in range(config.gradient_steps):
            sequence = self.buffer.sample_sequences(
                config.batch_size,
                config.sequence_length,
                generator=self.data_rng,
                cross_episodes=True,
            )
            metrics, _ = self.model.train_step(sequence, self.model_rng)
        self.train_rounds += 1
        self._steps_at_round, self._episodes_since_round = self.real_steps, 0
        self._record_metrics("train", metrics)
        self.logger.record("train/rounds", self.train_rounds)
        self.logger.record("train/n_updates", self.train_rounds * config.gradient_steps)


__all__ = ["PLANET_CEM_KWARGS", "PLANET_MODEL_KWARGS", "PlaNet", "PlaNetConfig"]
