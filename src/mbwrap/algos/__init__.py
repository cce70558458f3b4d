"""Algorithms composed from mbwrap's components, with SB3's surface."""

from mbwrap.algos.base import Algorithm, wrap_env
from mbwrap.algos.callbacks import EpisodeStatsCallback
from mbwrap.algos.dyna_q import DynaQ

__all__ = ["Algorithm", "DynaQ", "EpisodeStatsCallback", "wrap_env"]
