"""What every mbwrap algorithm shares, whatever it acts in: a typed config, SB3's logger
and callbacks, ``predict``, and checkpoints declared once.

Two bases build on it: :class:`~mbwrap.algos.Algorithm` (a real Gymnasium env, one
training loop) and :class:`~mbwrap.algos.SelfPlayAlgorithm` (a batch of games).
"""

from __future__ import annotations

import abc
import time
from collections import deque
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common import utils as sb3_utils
from stable_baselines3.common.base_class import BaseAlgorithm as SB3Algorithm
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    ConvertCallback,
    ProgressBarCallback,
)
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.type_aliases import MaybeCallback

from mbwrap.algos.agents import agent_name
from mbwrap.algos.checkpointing import Checkpointed
from mbwrap.algos.config import AlgoConfig
from mbwrap.device import resolve_device
from mbwrap.models import WorldModel
from mbwrap.models.build import model_config
from mbwrap.space_support import SpaceSupport, check_support
from mbwrap.spaces import check_space


class AlgorithmCore(Checkpointed, abc.ABC):
    """The surface every algorithm has: its :attr:`Config`, spaces, device, SB3 logger,
    callbacks, ``predict`` and declared checkpoints.

    Construction: ``Cls(env, *positional_settings, config=None, **settings)``: settings
    build (or override) a :attr:`Config`; an unknown one is an error that lists the valid
    ones and suggests the nearest.

    Checkpoints hold the :attr:`config` (JSON), the declared :attr:`saved_state` and
    :attr:`saved_buffers` (see :mod:`mbwrap.algos.state`), the counters and the random
    states of Python, NumPy and torch; :meth:`load` restores all of them.
    """

    #: Registry name, stored in checkpoints.
    registry_name: ClassVar[str | None] = None
    #: The algorithm's settings.
    Config: ClassVar[type[AlgoConfig]] = AlgoConfig
    #: Settings that may also be passed positionally after ``env`` (SB3 passes its
    #: policy so), e.g. ``("agent", "model")``.
    positional_settings: ClassVar[tuple[str, ...]] = ()
    #: The env spaces the algorithm takes (``None``: any space mbwrap represents, as
    #: :func:`mbwrap.spaces.check_space` says); checked by :meth:`check_spaces`.
    space_support: ClassVar[SpaceSupport | None] = None

    def __init__(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        config: AlgoConfig | None,
        observation_space: gym.Space,
        action_space: gym.Space,
    ) -> None:
        self.config = self._build_config(args, kwargs, config)
        self.check_spaces(observation_space, action_space)
        self.observation_space = observation_space
        self.action_space = action_space
        self.seed = self.config.seed
        self.device = resolve_device(self.config.device)
        self.verbose = self.config.verbose
        self.tensorboard_log = self.config.tensorboard_log
        #: Steps of the current count (reset by ``learn(reset_num_timesteps=True)``).
        self.num_timesteps = 0
        self._total_timesteps = 0
        self._episode_num = 0
        self._num_timesteps_at_start = 0
        self._start_time = 0.0
        self._logger: Logger | None = None
        self._custom_logger = False
        self.ep_info_buffer: deque[dict[str, float]] = deque(
            maxlen=self.config.stats_window_size
        )
        #: Whether each recent episode succeeded, where the env reports ``is_success``.
        self.ep_success_buffer: deque[bool] = deque(maxlen=self.config.stats_window_size)
        if self.seed is not None:
            sb3_utils.set_random_seed(self.seed)
            self.action_space.seed(self.seed)

    @classmethod
    def check_spaces(cls, observation_space: gym.Space, action_space: gym.Space) -> None:
        """Raise unless the algorithm takes the env's spaces (its :attr:`space_support`).

        Called with the real env's own spaces before anything wraps the env, so that an
        unsupported space is named here rather than failing inside SB3's wrappers.

        :raises UnsupportedSpaceError: naming ``env.observation_space`` or
            ``env.action_space``, the algorithm, what it takes and what came.
        """
        if cls.space_support is None:
            check_space(observation_space, name="env.observation_space")
            check_space(action_space, name="env.action_space")
        else:
            check_support(
                cls.space_support, observation_space, action_space, owner=cls.__name__,
                prefix="env.",
            )

    @classmethod
    def _build_config(
        cls, args: tuple[Any, ...], kwargs: dict[str, Any], config: AlgoConfig | None
    ) -> AlgoConfig:
        if len(args) > len(cls.positional_settings):
            raise TypeError(
                f"{cls.__name__}: takes env and at most {len(cls.positional_settings)} "
                f"positional settings {list(cls.positional_settings)}, got {len(args)}; pass "
                "the others by name"
            )
        kwargs = dict(kwargs)
        for name, value in zip(cls.positional_settings, args, strict=False):
            if name in kwargs:
                raise TypeError(f"{name}: given both by position and by name")
            kwargs[name] = value
        if config is None:
            return cls.Config.from_kwargs(**kwargs)
        if not isinstance(config, cls.Config):
            raise TypeError(
                f"config: expected a {cls.Config.__qualname__}, got {type(config).__name__}"
            )
        return config.replace(**kwargs) if kwargs else config

    # ------------------------------------------------------------------ logger and callbacks
    @property
    def logger(self) -> Logger:
        """SB3's logger (configured by ``learn`` unless :meth:`set_logger` was called)."""
        if self._logger is None:
            self._logger = sb3_utils.configure_logger(self.verbose, None, "")
        return self._logger

    def set_logger(self, logger: Logger) -> None:
        self._logger = logger
        self._custom_logger = True

    def _start_learning(
        self,
        total_timesteps: int,
        callback: MaybeCallback,
        reset_num_timesteps: bool,
        tb_log_name: str,
        progress_bar: bool,
    ) -> tuple[int, BaseCallback]:
        """Counters, logger and callbacks for a ``learn`` call, then
        :meth:`_prepare_learning`: ``(total steps to reach, callback)``."""
        self._start_time = time.time_ns() / 1e9
        if reset_num_timesteps:
            self.num_timesteps = 0
            self._episode_num = 0
            self.ep_info_buffer.clear()
            self.ep_success_buffer.clear()
        else:
            total_timesteps += self.num_timesteps
        self._total_timesteps = total_timesteps
        self._num_timesteps_at_start = self.num_timesteps
        if not self._custom_logger:
            self._logger = sb3_utils.configure_logger(
                self.verbose, self.tensorboard_log, tb_log_name, reset_num_timesteps
            )
        if isinstance(callback, list):
            callback = CallbackList(callback)
        if not isinstance(callback, BaseCallback):
            callback = ConvertCallback(callback)
        if progress_bar:
            callback = CallbackList([callback, ProgressBarCallback()])
        callback.init_callback(self)  # type: ignore[arg-type]
        self._prepare_learning(reset_num_timesteps)
        return total_timesteps, callback

    def _prepare_learning(self, reset_num_timesteps: bool) -> None:
        """Called at the end of :meth:`_start_learning` (e.g. to reset the env)."""

    def _update_info_buffer(self, infos: list[dict[str, Any]]) -> None:
        for info in infos:
            episode = info.get("episode")
            if episode is not None:
                self.ep_info_buffer.append(episode)
                self._episode_num += 1
                if info.get("is_success") is not None:
                    self.ep_success_buffer.append(bool(info["is_success"]))

    def _record_metrics(self, prefix: str, metrics: dict[str, Any]) -> None:
        """Log the numeric entries of ``metrics`` as ``prefix/key`` (sequences by their mean)."""
        for key, value in metrics.items():
            if isinstance(value, torch.Tensor):
                value = value.detach().float().mean().item() if value.numel() else None
            elif isinstance(value, (list, tuple, np.ndarray)):
                array = np.asarray(value)
                value = float(array.mean()) if array.size and array.dtype.kind in "biuf" else None
            if isinstance(value, (bool, np.bool_)):
                value = int(value)
            if isinstance(value, (int, float, np.integer, np.floating)):
                self.logger.record(f"{prefix}/{key}", value)

    def _dump_logs(self) -> None:
        elapsed = max(time.time_ns() / 1e9 - self._start_time, 1e-9)
        fps = int((self.num_timesteps - self._num_timesteps_at_start) / elapsed)
        if self.ep_info_buffer:
            self.logger.record(
                "rollout/ep_rew_mean", float(np.mean([e["r"] for e in self.ep_info_buffer]))
            )
            self.logger.record(
                "rollout/ep_len_mean", float(np.mean([e["l"] for e in self.ep_info_buffer]))
            )
        if self.ep_success_buffer:
            self.logger.record("rollout/success_rate", float(np.mean(self.ep_success_buffer)))
        self.logger.record("time/episodes", self._episode_num, exclude="tensorboard")
        self.logger.record("time/fps", fps)
        self.logger.record("time/time_elapsed", int(elapsed), exclude="tensorboard")
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        self.logger.dump(step=self.num_timesteps)

    # ------------------------------------------------------------------ public surface
    @abc.abstractmethod
    def learn(self, total_timesteps: int, **kwargs: Any) -> AlgorithmCore:
        """Train for ``total_timesteps`` steps; return ``self``."""

    @abc.abstractmethod
    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """SB3's ``predict``: actions for a (batch of) observation(s), and the next state."""

    def get_config(self) -> dict[str, Any]:
        """JSON-able settings that rebuild this algorithm (its :attr:`config`).

        :raises ValueError: for an SB3 agent class or a world model whose class is not
            registered (a checkpoint could not name it).
        """
        for value in vars(self.config).values():
            if isinstance(value, type) and issubclass(value, SB3Algorithm):
                agent_name(value)
            elif isinstance(value, WorldModel):
                model_config(value)
        return self.config.to_json()
