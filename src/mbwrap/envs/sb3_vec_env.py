"""An SB3 ``VecEnv`` view of a Gymnasium ``VectorEnv`` (SB3 rejects Gymnasium vector envs)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

#: Methods of a batched env whose result has one row per env, ``[num_envs, ...]``.
PER_ENV_METHODS = frozenset({"action_masks"})


def _unbatch_info(info: dict[str, Any], index: int) -> dict[str, Any]:
    """The entries of a Gymnasium vector info dict that belong to env ``index``."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        if key.startswith("_") or key in ("final_obs", "final_info"):
            continue
        mask = info.get(f"_{key}")
        if mask is not None and not mask[index]:
            continue
        out[key] = _unbatch_info(value, index) if isinstance(value, dict) else value[index]
    return out


class SB3VecEnv(VecEnv):
    """Presents a ``SAME_STEP`` Gymnasium ``VectorEnv`` through SB3's ``VecEnv`` API.

    ``dones = terminated | truncated``; each info dict carries ``"TimeLimit.truncated"``
    and, on the step that ends an episode, ``"terminal_observation"``, exactly as SB3's
    ``DummyVecEnv`` does.

    :param venv: a Gymnasium vector env whose ``metadata["autoreset_mode"]`` is
        ``SAME_STEP`` (e.g. :class:`~mbwrap.DreamVecEnv`).
    """

    def __init__(self, venv: VectorEnv) -> None:
        if not isinstance(venv, VectorEnv):
            raise TypeError(
                f"venv: expected a gymnasium.vector.VectorEnv, got {type(venv).__name__}"
            )
        mode = AutoresetMode(venv.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP))
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                f"venv: SB3 needs the autoreset mode SAME_STEP, got {mode}; build the vector "
                "env with autoreset_mode=AutoresetMode.SAME_STEP"
            )
        self.venv = venv  # before VecEnv.__init__, which reads render_mode through get_attr
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> Any:
        seeds = [s for s in self._seeds if s is not None]
        options = next((o for o in self._options if o), None)
        obs, info = self.venv.reset(seed=seeds[0] if seeds else None, options=options)
        self.reset_infos = [_unbatch_info(info, i) for i in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        dones = np.asarray(terminated) | np.asarray(truncated)
        infos = [_unbatch_info(info, i) for i in range(self.num_envs)]
        final_mask = info.get("_final_obs", np.zeros(self.num_envs, dtype=bool))
        for i, env_info in enumerate(infos):
            env_info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            if dones[i]:
                if not final_mask[i]:
                    raise RuntimeError(f"venv: env {i} ended an episode without a final_obs")
                env_info["terminal_observation"] = info["final_obs"][i]
        return obs, np.asarray(rewards, dtype=np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        # The sub-envs of a batched env share one object; each index sees its attribute.
        value = getattr(self.venv, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
    ) -> list[Any]:
        """Call ``method_name`` once on the batched env. A method of
        :data:`PER_ENV_METHODS` returns a batch over the envs: each index gets its own row
        (sb3-contrib's ``get_action_masks`` stacks them back); any other result is shared."""
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        if method_name in PER_ENV_METHODS:
            return [result[i] for i in self._get_indices(indices)]
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs

    def _get_indices(self, indices: Any) -> Iterable[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return indices


def as_vec_env(venv: VectorEnv) -> SB3VecEnv:
    """Wrap a ``SAME_STEP`` Gymnasium vector env (e.g. a :class:`~mbwrap.DreamVecEnv`) so
    that any SB3 algorithm trains on it: ``PPO("MlpPolicy", mbwrap.sb3.as_vec_env(venv))``."""
    return SB3VecEnv(venv)


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


def _has_monitor(env: gym.Env) -> bool:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, Monitor):
            return True
        env = env.env
    return False
