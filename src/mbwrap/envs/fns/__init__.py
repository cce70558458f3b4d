"""Known reward, termination and action-mask functions, registered in the ``mbwrap.fns``
group."""

from mbwrap.envs.fns.base import ActionMaskFn, BatchedFn, EnvFns
from mbwrap.envs.fns.resolve import Fns, registered_fns, resolve_fns

__all__ = ["ActionMaskFn", "BatchedFn", "EnvFns", "Fns", "registered_fns", "resolve_fns"]
