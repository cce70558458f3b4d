"""Real-experience storage and collection."""

from mbwrap.buffers.collect import Collector, collect
from mbwrap.buffers.replay import ReplayBuffer
from mbwrap.buffers.self_play import SelfPlayBuffer

__all__ = ["Collector", "ReplayBuffer", "SelfPlayBuffer", "collect"]
