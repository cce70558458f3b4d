"""Known reward and termination functions, registered in the ``mbwrap.fns`` group."""

from mbwrap.envs.fns.base import BatchedFn, EnvFns
from mbwrap.envs.fns.resolve import Fns, resolve_fns

__all__ = ["BatchedFn", "EnvFns", "Fns", "resolve_fns"]
