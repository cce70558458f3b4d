"""The SB3-style surface every mbwrap algorithm shares."""

from __future__ import annotations

import abc
import os
import time
from collections import deque
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common import utils as sb3_utils
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    ConvertCallback,
    ProgressBarCallback,
)
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from mbwrap.checkpoint import load_checkpoint, save_checkpoint
from mbwrap.device import resolve_device
from mbwrap.errors import CheckpointError
from mbwrap.spaces import check_same_space, check_space, space_from_json, space_to_json

_CHECKPOINT_KIND = "mbwrap.algo"


def wrap_env(env: gym.Env | VecEnv) -> VecEnv:
    """Present ``env`` as an SB3 ``VecEnv`` with episode statistics, as SB3 does.

    A ``gymnasium.Env`` gets SB3's ``Monitor`` (which records, never alters, episodes) and a
    one-env ``DummyVecEnv``; no time limit or other wrapper is added.
    """
    if isinstance(env, VecEnv):
        return env
    if not isinstance(env, gym.Env):
        raise TypeError(f"env: expected a gymnasium.Env or SB3 VecEnv, got {type(env).__name__}")
    monitored = env if _has_monitor(env) else Monitor(env)
    return DummyVecEnv([lambda: monitored])


def _has_monitor(env: gym.Env) -> bool:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, Monitor):
            return True
        env = env.env
    return False


class Algorithm(abc.ABC):
    """Base of mbwrap's algorithms: SB3's ``learn``/``predict``/``save``/``load`` surface.

    ``learn(total_timesteps)`` counts real env steps; SB3 callbacks (``EvalCallback``,
    ``StopTrainingOnMaxEpisodes``, ``CheckpointCallback``...) and ``progress_bar=True``
    work as in SB3; logs go through SB3's logger (stdout, CSV, TensorBoard).

    Subclasses implement :meth:`learn`, :meth:`predict`, :meth:`get_config` and
    :meth:`get_tensors` / :meth:`set_tensors` for checkpoints.

    :param env: the real env (a ``gymnasium.Env`` or SB3 ``VecEnv``); ``None`` only when
        loading for prediction, with ``observation_space`` and ``action_space`` given.
    :param seed: seeds Python, NumPy, torch and the env.
    :param device: ``"auto"`` picks CUDA when present.
    :param verbose: 0 silent, 1 training logs on stdout.
    :param tensorboard_log: directory for TensorBoard logs, or ``None``.
    :param stats_window_size: episodes averaged in ``rollout/ep_rew_mean`` and friends.
    """

    #: Registry name, stored in checkpoints.
    registry_name: ClassVar[str | None] = None

    def __init__(
        self,
        env: gym.Env | VecEnv | None,
        *,
        seed: int | None = None,
        device: str | torch.device = "auto",
        verbose: int = 0,
        tensorboard_log: str | None = None,
        stats_window_size: int = 100,
        observation_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
    ) -> None:
        self.env: VecEnv | None = None
        if env is not None:
            self.env = wrap_env(env)
            observation_space = self.env.observation_space
            action_space = self.env.action_space
        elif observation_space is None or action_space is None:
            raise ValueError("env: pass a real env, or observation_space and action_space")
        self.observation_space = check_space(observation_space, name="env.observation_space")
        self.action_space = check_space(action_space, name="env.action_space")
        self.n_envs = self.env.num_envs if self.env is not None else 1
        self.seed = seed
        self.device = resolve_device(device)
        self.verbose = verbose
        self.tensorboard_log = tensorboard_log
        self.num_timesteps = 0
        self._total_timesteps = 0
        self._episode_num = 0
        self._num_timesteps_at_start = 0
        self._start_time = 0.0
        self._last_obs: Any = None
        self._logger: Logger | None = None
        self.ep_info_buffer: deque[dict[str, float]] = deque(maxlen=stats_window_size)
        if seed is not None:
            sb3_utils.set_random_seed(seed)
            self.action_space.seed(seed)
            if self.env is not None:
                self.env.seed(seed)

    # ------------------------------------------------------------------ env and logger
    def get_env(self) -> VecEnv | None:
        """The real env as an SB3 ``VecEnv`` (what callbacks see as ``training_env``)."""
        return self.env

    def get_vec_normalize_env(self) -> None:
        """SB3 callbacks ask for it (``EvalCallback``); mbwrap never normalises the real env."""
        return None

    def set_env(self, env: gym.Env | VecEnv) -> None:
        """Use another real env with the same spaces."""
        wrapped = wrap_env(env)
        check_same_space(
            self.observation_space, wrapped.observation_space, name="env.observation_space"
        )
        check_same_space(self.action_space, wrapped.action_space, name="env.action_space")
        self.env, self.n_envs, self._last_obs = wrapped, wrapped.num_envs, None

    @property
    def logger(self) -> Logger:
        """SB3's logger (configured by :meth:`learn` unless :meth:`set_logger` was called)."""
        if self._logger is None:
            self._logger = sb3_utils.configure_logger(self.verbose, None, "")
        return self._logger

    def set_logger(self, logger: Logger) -> None:
        self._logger = logger
        self._custom_logger = True

    # ------------------------------------------------------------------ learning loop parts
    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback,
        reset_num_timesteps: bool,
        tb_log_name: str,
        progress_bar: bool,
    ) -> tuple[int, BaseCallback]:
        if self.env is None:
            raise ValueError("env: this algorithm has no env; pass one to load() or call set_env()")
        self._start_time = time.time_ns() / 1e9
        if reset_num_timesteps:
            self.num_timesteps = 0
            self._episode_num = 0
            self.ep_info_buffer.clear()
        else:
            total_timesteps += self.num_timesteps
        self._total_timesteps = total_timesteps
        self._num_timesteps_at_start = self.num_timesteps
        if reset_num_timesteps or self._last_obs is None:
            self._last_obs = self.env.reset()
        if not getattr(self, "_custom_logger", False):
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
        return total_timesteps, callback

    def _update_info_buffer(self, infos: list[dict[str, Any]]) -> None:
        for info in infos:
            episode = info.get("episode")
            if episode is not None:
                self.ep_info_buffer.append(episode)
                self._episode_num += 1

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
        self.logger.record("time/episodes", self._episode_num, exclude="tensorboard")
        self.logger.record("time/fps", fps)
        self.logger.record("time/time_elapsed", int(elapsed), exclude="tensorboard")
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        self.logger.dump(step=self.num_timesteps)

    # ------------------------------------------------------------------ public surface
    @abc.abstractmethod
    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "run",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> Algorithm:
        """Train for ``total_timesteps`` real env steps; return ``self``."""

    @abc.abstractmethod
    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """SB3's ``predict``: actions for a (batch of) observation(s), and the next state."""

    @abc.abstractmethod
    def get_config(self) -> dict[str, Any]:
        """JSON-able constructor keywords, stored in checkpoints."""

    @abc.abstractmethod
    def get_tensors(self) -> dict[str, torch.Tensor]:
        """Learned state to store in checkpoints."""

    @abc.abstractmethod
    def set_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore learned state from :meth:`get_tensors`'s output."""

    def save(self, path: str | os.PathLike) -> None:
        """Write settings (JSON) and learned tensors atomically; never pickle."""
        cls = type(self)
        metadata = {
            "class": f"{cls.__module__}:{cls.__qualname__}",
            "registry_name": cls.registry_name,
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
            "num_timesteps": self.num_timesteps,
            "config": self.get_config(),
        }
        save_checkpoint(path, kind=_CHECKPOINT_KIND, metadata=metadata, tensors=self.get_tensors())

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        env: gym.Env | VecEnv | None = None,
        device: str | torch.device = "auto",
    ) -> Algorithm:
        """Rebuild an algorithm saved by :meth:`save`.

        :param env: the real env to keep learning in (optional for prediction only).
        :raises CheckpointError: for a corrupt file or one of another algorithm.
        """
        metadata, tensors = load_checkpoint(path, kind=_CHECKPOINT_KIND)
        expected = f"{cls.__module__}:{cls.__qualname__}"
        if metadata.get("class") != expected:
            raise CheckpointError(
                f"{str(path)!r} holds a {metadata.get('class')!r} algorithm, not {expected}"
            )
        try:
            obs_space = space_from_json(metadata["observation_space"])
            act_space = space_from_json(metadata["action_space"])
            if env is not None:
                wrapped = wrap_env(env)
                check_same_space(obs_space, wrapped.observation_space, name="env.observation_space")
                check_same_space(act_space, wrapped.action_space, name="env.action_space")
            algo = cls(  # type: ignore[call-arg]
                env,
                observation_space=obs_space,
                action_space=act_space,
                device=device,
                **metadata["config"],
            )
            algo.set_tensors(tensors)
            algo.num_timesteps = int(metadata.get("num_timesteps", 0))
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(
                f"{str(path)!r}: algorithm checkpoint does not fit: {err}"
            ) from err
        return algo
