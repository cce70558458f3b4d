"""Algorithms composed from mbwrap's components, with SB3's surface."""

from mbwrap.algos.agents import available_agents, register_agent
from mbwrap.algos.alphazero import AlphaZero, alphazero_loss
from mbwrap.algos.alphazero_config import AlphaZeroConfig
from mbwrap.algos.base import Algorithm
from mbwrap.algos.callbacks import EpisodeStatsCallback
from mbwrap.algos.config import AlgoConfig, setting, settings_table
from mbwrap.algos.core import AlgorithmCore
from mbwrap.algos.distill_planner import distill_planner
from mbwrap.algos.dreamer import Dreamer, DreamerConfig
from mbwrap.algos.dyna import Dyna, DynaConfig
from mbwrap.algos.dyna_q import DynaQ, DynaQConfig
from mbwrap.algos.mb_mf import MBMF, MBMFConfig, imitation_loss
from mbwrap.algos.mbpo import MBPO, MBPOConfig, model_buffer_capacity, rollout_length
from mbwrap.algos.me_trpo import METRPO, METRPOConfig
from mbwrap.algos.muzero import MuZero
from mbwrap.algos.muzero_config import MuZeroConfig
from mbwrap.algos.mve import MVE
from mbwrap.algos.pets import PETS, PETSConfig
from mbwrap.algos.planet import PlaNet
from mbwrap.algos.planet_config import PlaNetConfig
from mbwrap.algos.self_play import SelfPlayAlgorithm
from mbwrap.algos.steve import STEVE
from mbwrap.algos.tdm import TDM
from mbwrap.algos.tdm_config import TDMConfig
from mbwrap.algos.value_expansion_config import MVEConfig, STEVEConfig
from mbwrap.algos.world_models import WorldModels, WorldModelsConfig
from mbwrap.envs.sb3_vec_env import wrap_env

__all__ = [
    "MBMF",
    "MBPO",
    "METRPO",
    "MVE",
    "PETS",
    "STEVE",
    "TDM",
    "AlgoConfig",
    "Algorithm",
    "AlgorithmCore",
    "AlphaZero",
    "AlphaZeroConfig",
    "Dreamer",
    "DreamerConfig",
    "Dyna",
    "DynaConfig",
    "DynaQ",
    "DynaQConfig",
    "EpisodeStatsCallback",
    "MBMFConfig",
    "MBPOConfig",
    "METRPOConfig",
    "MVEConfig",
    "MuZero",
    "MuZeroConfig",
    "PETSConfig",
    "PlaNet",
    "PlaNetConfig",
    "STEVEConfig",
    "SelfPlayAlgorithm",
    "TDMConfig",
    "WorldModels",
    "WorldModelsConfig",
    "alphazero_loss",
    "available_agents",
    "distill_planner",
    "imitation_loss",
    "model_buffer_capacity",
    "register_agent",
    "rollout_length",
    "setting",
    "settings_table",
    "wrap_env",
]
