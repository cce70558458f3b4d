"""Planners as SB3 policies."""

from mbwrap.planners.base import Planner

__all__ = ["Planner"]
