"""Real-experience storage and collection."""

from mbwrap.buffers.collect import Collector, collect
from mbwrap.buffers.replay import ReplayBuffer

__all__ = ["Collector", "ReplayBuffer", "collect"]
