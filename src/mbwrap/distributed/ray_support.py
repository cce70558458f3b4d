"""Ray, imported on demand: mbwrap without the ``ray`` extra works unchanged."""

from __future__ import annotations

from types import ModuleType
from typing import Any


def require_ray(what: str = "num_workers > 0") -> ModuleType:
    """The ``ray`` module.

    :param what: the setting that needs Ray, for the error message.
    :raises ImportError: naming the extra to install when Ray is missing.
    """
    try:
        import ray
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"{what} runs on Ray, which is not installed: pip install 'mbwrap[ray]'"
        ) from err
    return ray


def ensure_ray(address: str | None = None, **init_kwargs: Any) -> ModuleType:
    """Ray, started (or joined, at ``address``) unless this process already runs it.

    ``address="auto"`` joins the cluster of ``ray start --head`` on this machine;
    ``"host:port"`` another head. ``None`` starts a local Ray with every CPU.
    """
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, **init_kwargs)
    return ray
