"""Imagination environments, the model-learning wrapper, the SB3 adapter and known envs.

Importing this package registers ``mbwrap/Dream-v0`` and ``mbwrap/DynaMaze-v0`` with
Gymnasium.
"""

import gymnasium as gym

from mbwrap.envs.dream_env import DreamEnv
from mbwrap.envs.dream_vec_env import DreamVecEnv
from mbwrap.envs.dyna_maze import DYNA_MAZE_LAYOUT, DynaMazeEnv
from mbwrap.envs.fns import EnvFns
from mbwrap.envs.model_learning import ModelLearningWrapper
from mbwrap.envs.sb3_vec_env import SB3VecEnv, as_vec_env

if "mbwrap/Dream-v0" not in gym.registry:
    gym.register(id="mbwrap/Dream-v0", entry_point="mbwrap.envs.dream_env:DreamEnv")
if "mbwrap/DynaMaze-v0" not in gym.registry:
    # No max_episode_steps: the book's maze episodes end only at the goal.
    gym.register(id="mbwrap/DynaMaze-v0", entry_point="mbwrap.envs.dyna_maze:DynaMazeEnv")

__all__ = [
    "DYNA_MAZE_LAYOUT",
    "DreamEnv",
    "DreamVecEnv",
    "DynaMazeEnv",
    "EnvFns",
    "ModelLearningWrapper",
    "SB3VecEnv",
    "as_vec_env",
]
