"""World models: the :class:`WorldModel` contract and its implementations."""

from mbwrap.models.base import WorldModel
from mbwrap.models.tabular import TabularModel

__all__ = ["TabularModel", "WorldModel"]
