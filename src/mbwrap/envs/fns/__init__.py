"""Known reward and termination functions, registered in the ``mbwrap.fns`` group."""

from mbwrap.envs.fns.base import BatchedFn, EnvFns

__all__ = ["BatchedFn", "EnvFns"]
