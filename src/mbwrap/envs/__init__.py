"""Imagination environments, the model-learning wrapper, the SB3 adapter, known envs,
PettingZoo game adapters, board-game rules on tensors and env snapshots.

Importing this package registers ``mbwrap/Dream-v0``, ``mbwrap/DynaMaze-v0`` and
``mbwrap/PointGoal-v0`` with Gymnasium.
"""

import gymnasium as gym

from mbwrap.envs.aec import CLASSIC_GAMES, AECGame, make_classic_env
from mbwrap.envs.atari import make_atari_env, make_atari_vec_env
from mbwrap.envs.board_games import (
    BoardGame,
    ConnectFour,
    GameState,
    TicTacToe,
    apply_symmetry,
    board_game,
)
from mbwrap.envs.branched import branched_rollouts
from mbwrap.envs.cartpole_swingup import CartPoleSwingUpEnv
from mbwrap.envs.clonable import ClonableEnv
from mbwrap.envs.dream_env import DreamEnv
from mbwrap.envs.dream_vec_env import DreamVecEnv
from mbwrap.envs.dyna_maze import DYNA_MAZE_LAYOUT, DynaMazeEnv
from mbwrap.envs.fixed_start import FixedStart, condition_vec_env, rollout_conditions
from mbwrap.envs.fns import EnvFns
from mbwrap.envs.game_batch import FinishedGames, GameBatch, outcome_targets
from mbwrap.envs.latent_filter import LatentFilterPolicy, LatentFilterWrapper
from mbwrap.envs.model_learning import ModelLearningWrapper
from mbwrap.envs.observations import action_mask, stack_observations
from mbwrap.envs.opponents import (
    MatchResult,
    MinimaxTicTacToe,
    RolloutMCTSConnectFour,
    play_match,
)
from mbwrap.envs.pixels import PixelObservation
from mbwrap.envs.point_goal import PointGoalEnv
from mbwrap.envs.sb3_vec_env import SB3VecEnv, as_vec_env
from mbwrap.envs.snapshot import Snapshot, restore_env, snapshot_env
from mbwrap.envs.spaces_only import SpacesOnlyEnv, spaces_only_vec_env

if "mbwrap/Dream-v0" not in gym.registry:
    gym.register(id="mbwrap/Dream-v0", entry_point="mbwrap.envs.dream_env:DreamEnv")
if "mbwrap/DynaMaze-v0" not in gym.registry:
    # No max_episode_steps: the book's maze episodes end only at the goal.
    gym.register(id="mbwrap/DynaMaze-v0", entry_point="mbwrap.envs.dyna_maze:DynaMazeEnv")
if "mbwrap/CartPoleSwingUp-v0" not in gym.registry:
    # 3 s at 0.1 s per step (PILCO's task horizon: 2.5 s).
    gym.register(
        id="mbwrap/CartPoleSwingUp-v0",
        entry_point="mbwrap.envs.cartpole_swingup:CartPoleSwingUpEnv",
        max_episode_steps=30,
    )
if "mbwrap/PointGoal-v0" not in gym.registry:
    # 50 steps, as Gymnasium-Robotics' FetchReach.
    gym.register(
        id="mbwrap/PointGoal-v0",
        entry_point="mbwrap.envs.point_goal:PointGoalEnv",
        max_episode_steps=50,
    )

__all__ = [
    "CLASSIC_GAMES",
    "DYNA_MAZE_LAYOUT",
    "AECGame",
    "BoardGame",
    "CartPoleSwingUpEnv",
    "ClonableEnv",
    "ConnectFour",
    "DreamEnv",
    "DreamVecEnv",
    "DynaMazeEnv",
    "EnvFns",
    "FinishedGames",
    "FixedStart",
    "GameBatch",
    "GameState",
    "LatentFilterPolicy",
    "LatentFilterWrapper",
    "MatchResult",
    "MinimaxTicTacToe",
    "ModelLearningWrapper",
    "PixelObservation",
    "PointGoalEnv",
    "RolloutMCTSConnectFour",
    "SB3VecEnv",
    "Snapshot",
    "SpacesOnlyEnv",
    "TicTacToe",
    "action_mask",
    "apply_symmetry",
    "as_vec_env",
    "board_game",
    "branched_rollouts",
    "condition_vec_env",
    "make_atari_env",
    "make_atari_vec_env",
    "make_classic_env",
    "outcome_targets",
    "play_match",
    "restore_env",
    "rollout_conditions",
    "snapshot_env",
    "spaces_only_vec_env",
    "stack_observations",
]
