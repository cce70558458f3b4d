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
from stable_baselines3.common.type_aliases import MaybeCallback, PolicyPredictor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from mbwrap.buffers import ReplayBuffer
from mbwrap.checkpoint import load_checkpoint, save_checkpoint
from mbwrap.device import resolve_device
from mbwrap.errors import CheckpointError, SpaceMismatchError
from mbwrap.models import WorldModel
from mbwrap.registry import make_model
from mbwrap.spaces import check_same_space, check_space, space_from_json, space_to_json
from mbwrap.types import Transition

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


def env_id(env: gym.Env | VecEnv | None) -> str | None:
    """The Gymnasium id of ``env`` (of its first copy for a ``VecEnv``), or ``None``.

    Models carry it so that imagination finds the env's registered reward and termination
    functions (group ``mbwrap.fns``).
    """
    if env is None:
        return None
    if isinstance(env, VecEnv):
        try:
            spec = env.get_attr("spec", indices=[0])[0]
        except (AttributeError, IndexError):
            return None
    else:
        spec = env.spec
    return getattr(spec, "id", None)


def resolve_model(
    model: str | WorldModel,
    model_kwargs: dict[str, Any] | None,
    observation_space: gym.Space,
    action_space: gym.Space,
    *,
    env_id: str | None,
    device: torch.device,
) -> WorldModel:
    """A world model for an algorithm: built from a registry name, or the instance given.

    A built model gets ``env_id`` (unless ``model_kwargs`` names one) so that registered
    reward/termination functions are found; an instance without one gets it too.

    :raises TypeError: naming ``model`` when it is neither a name nor a ``WorldModel``.
    :raises SpaceMismatchError: when the model's spaces are not the env's.
    """
    if isinstance(model, str):
        model = make_model(
            model,
            observation_space,
            action_space,
            **{"env_id": env_id, "device": device, **(model_kwargs or {})},
        )
    elif not isinstance(model, WorldModel):
        raise TypeError(
            f"model: expected a registered model name or an mbwrap WorldModel, got {model!r}"
        )
    elif model_kwargs:
        raise ValueError("model_kwargs: only used when model is a name, not an instance")
    if model.observation_space != observation_space or model.action_space != action_space:
        raise SpaceMismatchError(
            f"model: has spaces {model.observation_space!r} / {model.action_space!r}, the env "
            f"{observation_space!r} / {action_space!r}"
        )
    if model.env_id is None:
        model.env_id = env_id
    return model


def model_config(model: WorldModel) -> tuple[str, dict[str, Any]]:
    """``(registry name, constructor keywords)`` that rebuild ``model`` through
    :func:`mbwrap.make_model`, for checkpoints.

    :raises ValueError: when the model's class has no registry name.
    """
    name = type(model).registry_name
    if not name:
        raise ValueError(
            f"model: {type(model).__qualname__} has no registry_name, so a checkpoint could "
            "not rebuild it; register it in the mbwrap.models entry-point group"
        )
    return name, {**model.get_config(), "env_id": model.env_id}


_TRANSITION_FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated")


def buffer_tensors(buffer: ReplayBuffer, prefix: str) -> dict[str, torch.Tensor]:
    """Every transition of ``buffer``, oldest first, as ``{prefix.field: tensor}``."""
    data = buffer.transitions()
    return {f"{prefix}.{name}": getattr(data, name) for name in _TRANSITION_FIELDS}


def restore_buffer(buffer: ReplayBuffer, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    """Add the transitions :func:`buffer_tensors` stored to ``buffer`` (the oldest few are
    dropped to fill whole rows of ``buffer.n_envs``); missing entries add nothing."""
    if f"{prefix}.obs" not in tensors:
        return
    data = Transition(**{name: tensors[f"{prefix}.{name}"] for name in _TRANSITION_FIELDS})
    keep = len(data) - len(data) % buffer.n_envs
    if keep:
        buffer.extend(*(getattr(data, name)[-keep:] for name in _TRANSITION_FIELDS))


def _has_monitor(env: gym.Env) -> bool:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, Monitor):
            return True
        env = env.env
    return False


def _check_finite(next_obs: np.ndarray, rewards: np.ndarray, step: int) -> None:
    """Raise if the real env returned NaN or infinite observations or rewards."""
    bad = []
    if np.issubdtype(np.asarray(next_obs).dtype, np.floating) and not np.isfinite(next_obs).all():
        bad.append("observations")
    if not np.isfinite(np.asarray(rewards, dtype=np.float64)).all():
        bad.append("rewards")
    if bad:
        raise ValueError(
            f"env: returned NaN or infinite {' and '.join(bad)} at real step {step}; "
            "a model cannot be fitted to them"
        )


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
        # What _collect_real_steps needs between calls: a recurrent policy's state, which
        # envs just started an episode, and the observation it left the env at.
        self._policy_state: tuple[np.ndarray, ...] | None = None
        self._episode_starts: np.ndarray | None = None
        self._collected_obs: Any = None
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

    def _collect_real_steps(
        self,
        buffer: ReplayBuffer,
        steps: int,
        callback: BaseCallback,
        policy: PolicyPredictor | None = None,
        deterministic: bool = False,
    ) -> bool:
        """Act in the real env for at least ``steps`` steps, storing every transition.

        Each vector step adds ``n_envs`` to :attr:`num_timesteps`, stores the transitions
        in ``buffer`` (the observation the step produced, not the reset one, with
        ``terminated`` and ``truncated`` apart), updates :attr:`ep_info_buffer` and calls
        ``callback.on_step()`` with SB3's locals (``new_obs``, ``rewards``, ``dones``,
        ``infos``, ``actions``). Episodes continue across calls; when :meth:`learn` reset
        the env in between, the buffer's streams are ended there.

        :param buffer: a :class:`~mbwrap.ReplayBuffer` with ``n_envs`` equal to the env's.
        :param steps: real steps to take, rounded up to whole vector steps.
        :param policy: anything with SB3's ``predict()``; ``None`` samples uniformly.
        :return: ``False`` when a callback asked to stop training.
        :raises ValueError: when the env returns NaN or infinite observations or rewards.
        """
        assert self.env is not None and self._last_obs is not None, "call _setup_learn() first"
        n_envs = self.env.num_envs
        if self._last_obs is not self._collected_obs:
            # learn() reset the env: the stored pieces end here, a recurrent state restarts.
            buffer.end_episodes()
            self._policy_state = None
            self._episode_starts = np.ones(n_envs, dtype=bool)
        callback.on_rollout_start()
        continue_training = True
        for _ in range(-(-steps // n_envs)):
            if policy is None:
                actions = np.stack([self.action_space.sample() for _ in range(n_envs)])
            else:
                actions, self._policy_state = policy.predict(
                    self._last_obs,
                    state=self._policy_state,
                    episode_start=self._episode_starts,
                    deterministic=deterministic,
                )
            new_obs, rewards, dones, infos = self.env.step(actions)
            self.num_timesteps += n_envs
            next_obs = np.array(new_obs, copy=True)
            truncated = np.array([info.get("TimeLimit.truncated", False) for info in infos])
            for i in np.flatnonzero(dones):
                next_obs[i] = infos[i]["terminal_observation"]
            terminated = np.asarray(dones, dtype=bool) & ~truncated
            _check_finite(next_obs, rewards, self.num_timesteps)
            buffer.add(self._last_obs, actions, rewards, next_obs, terminated, truncated & dones)
            self._last_obs = self._collected_obs = new_obs
            self._episode_starts = np.asarray(dones, dtype=bool)
            self._update_info_buffer(infos)
            callback.update_locals(
                {
                    "new_obs": new_obs,
                    "rewards": rewards,
                    "dones": dones,
                    "infos": infos,
                    "actions": actions,
                }
            )
            if not callback.on_step():
                continue_training = False
                break
        callback.on_rollout_end()
        return continue_training

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
