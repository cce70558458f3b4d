"""Stable-Baselines3 bridges: ``mbwrap.sb3.as_vec_env(venv)``."""

from mbwrap.envs.sb3_vec_env import SB3VecEnv, as_vec_env

__all__ = ["SB3VecEnv", "as_vec_env"]
