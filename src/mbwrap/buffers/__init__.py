"""Real-experience storage and collection."""

from mbwrap.buffers.collect import Collector, collect, step_vec_env
from mbwrap.buffers.prioritized import PrioritizedTrajectoryBuffer
from mbwrap.buffers.replay import ReplayBuffer
from mbwrap.buffers.self_play import SelfPlayBuffer

__all__ = [
    "Collector",
    "PrioritizedTrajectoryBuffer",
    "ReplayBuffer",
    "SelfPlayBuffer",
    "collect",
    "step_vec_env",
]
