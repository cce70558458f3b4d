"""Algorithms composed from mbwrap's components, with SB3's surface."""

from mbwrap.algos.agents import available_agents, register_agent
from mbwrap.algos.alphazero import AlphaZero, alphazero_loss, outcome_targets
from mbwrap.algos.base import Algorithm, wrap_env
from mbwrap.algos.callbacks import EpisodeStatsCallback
from mbwrap.algos.config import AlgoConfig, setting, settings_table
from mbwrap.algos.core import AlgorithmCore
from mbwrap.algos.dreamer import Dreamer
from mbwrap.algos.dyna import Dyna, DynaConfig
from mbwrap.algos.dyna_q import DynaQ
from mbwrap.algos.mb_mf import MBMF, imitation_loss
from mbwrap.algos.mbpo import MBPO, model_buffer_capacity, rollout_length
from mbwrap.algos.me_trpo import METRPO
from mbwrap.algos.mixed_buffer import MixedReplayBuffer, split_batch
from mbwrap.algos.muzero import MuZero
from mbwrap.algos.pets import PETS
from mbwrap.algos.planet import PlaNet
from mbwrap.algos.world_models import WorldModels

__all__ = [
    "MBMF",
    "MBPO",
    "METRPO",
    "PETS",
    "AlgoConfig",
    "Algorithm",
    "AlgorithmCore",
    "AlphaZero",
    "Dreamer",
    "Dyna",
    "DynaConfig",
    "DynaQ",
    "EpisodeStatsCallback",
    "MixedReplayBuffer",
    "MuZero",
    "PlaNet",
    "WorldModels",
    "alphazero_loss",
    "available_agents",
    "imitation_loss",
    "model_buffer_capacity",
    "outcome_targets",
    "register_agent",
    "rollout_length",
    "setting",
    "settings_table",
    "split_batch",
    "wrap_env",
]
