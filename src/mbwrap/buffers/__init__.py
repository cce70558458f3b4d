"""Real-experience storage and collection."""

from mbwrap.buffers.action_repeat import ActionRepeatWriter
from mbwrap.buffers.collect import Collector, check_finite_step, collect, step_vec_env
from mbwrap.buffers.hindsight import HindsightBatch, HindsightSampler
from mbwrap.buffers.mixed import MixedReplayBuffer, split_batch
from mbwrap.buffers.prioritized import PrioritizedTrajectoryBuffer
from mbwrap.buffers.replay import ReplayBuffer
from mbwrap.buffers.self_play import SelfPlayBuffer

__all__ = [
    "ActionRepeatWriter",
    "Collector",
    "HindsightBatch",
    "HindsightSampler",
    "MixedReplayBuffer",
    "PrioritizedTrajectoryBuffer",
    "ReplayBuffer",
    "SelfPlayBuffer",
    "check_finite_step",
    "collect",
    "split_batch",
    "step_vec_env",
]
