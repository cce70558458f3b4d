"""mbwrap: model-based reinforcement learning that plugs into Gymnasium and Stable-Baselines3.

A learned world model is a Gymnasium environment (:class:`DreamEnv`,
:class:`DreamVecEnv`, and an SB3 ``VecEnv`` through :func:`mbwrap.sb3.as_vec_env`);
models, planners, algorithms and reward/termination functions are plugins found through
entry points (:mod:`mbwrap.registry`).
"""

from mbwrap import registry, sb3
from mbwrap.algos import (
    MBMF,
    MBPO,
    METRPO,
    PETS,
    AlgoConfig,
    Algorithm,
    AlphaZero,
    Dreamer,
    Dyna,
    DynaQ,
    EpisodeStatsCallback,
    MuZero,
    PlaNet,
    WorldModels,
)
from mbwrap.buffers import Collector, ReplayBuffer, collect
from mbwrap.device import resolve_device
from mbwrap.envs import (
    DreamEnv,
    DreamVecEnv,
    DynaMazeEnv,
    EnvFns,
    LatentFilterPolicy,
    LatentFilterWrapper,
    ModelLearningWrapper,
)
from mbwrap.models import RSSM, GaussianEnsemble, MDNModel, MLPModel, TabularModel, WorldModel
from mbwrap.planners import CEM, ICEM, ILQR, MPPI, Planner, RandomShooting
from mbwrap.registry import make_algo, make_model, make_planner
from mbwrap.types import ModelRollout, ModelStep, Sequence, Transition

__version__ = "0.1.0"

__all__ = [
    "CEM",
    "ICEM",
    "ILQR",
    "MBMF",
    "MBPO",
    "METRPO",
    "MPPI",
    "PETS",
    "RSSM",
    "AlgoConfig",
    "Algorithm",
    "AlphaZero",
    "Collector",
    "DreamEnv",
    "DreamVecEnv",
    "Dreamer",
    "Dyna",
    "DynaMazeEnv",
    "DynaQ",
    "EnvFns",
    "EpisodeStatsCallback",
    "GaussianEnsemble",
    "LatentFilterPolicy",
    "LatentFilterWrapper",
    "MDNModel",
    "MLPModel",
    "ModelLearningWrapper",
    "ModelRollout",
    "ModelStep",
    "MuZero",
    "PlaNet",
    "Planner",
    "RandomShooting",
    "ReplayBuffer",
    "Sequence",
    "TabularModel",
    "Transition",
    "WorldModel",
    "WorldModels",
    "__version__",
    "collect",
    "make_algo",
    "make_model",
    "make_planner",
    "registry",
    "resolve_device",
    "sb3",
]
