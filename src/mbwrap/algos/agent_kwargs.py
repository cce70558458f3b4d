"""Agent keywords in checkpoints: JSON, with classes from an allowed list named by their
module (``policy_kwargs={"activation_fn": nn.Tanh}``), so loading imports nothing else."""

from __future__ import annotations

import json
from typing import Any

import torch
from stable_baselines3.common import torch_layers

#: Modules whose classes agent keywords may name, and the base each class must have.
_KWARG_CLASSES: dict[str, tuple[Any, type]] = {
    "torch.nn": (torch.nn, torch.nn.Module),
    "torch.optim": (torch.optim, torch.optim.Optimizer),
    "stable_baselines3.common.torch_layers": (torch_layers, torch.nn.Module),
}


def is_json(value: Any) -> bool:
    """Whether ``value`` has a strict JSON form (no NaN or infinity)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _class_module(cls: type) -> str | None:
    """The allowed module ``cls`` is reachable from by name, or ``None``."""
    for module_name, (module, base) in _KWARG_CLASSES.items():
        if getattr(module, cls.__name__, None) is cls and issubclass(cls, base):
            return module_name
    return None


def encode_kwargs(kwargs: dict[str, Any], *, name: str) -> dict[str, Any]:
    """JSON form of agent keywords; classes from torch.nn, torch.optim and SB3's
    ``torch_layers`` (e.g. ``policy_kwargs={"activation_fn": nn.Tanh}``) become
    ``{"class": "torch.nn.Tanh"}``.

    :raises TypeError: naming the keyword that has no JSON form.
    """
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if isinstance(value, dict):
            out[key] = encode_kwargs(value, name=f"{name}[{key!r}]")
        elif isinstance(value, type) and _class_module(value) is not None:
            out[key] = {"class": f"{_class_module(value)}.{value.__name__}"}
        elif is_json(value):
            out[key] = value
        else:
            raise TypeError(
                f"{name}[{key!r}]: {value!r} cannot be stored in a checkpoint; use JSON values "
                "(numbers, strings, lists, dicts) or classes from torch.nn / torch.optim"
            )
    return out


def decode_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`encode_kwargs`; only the whitelisted modules are looked in."""
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if isinstance(value, dict) and set(value) == {"class"} and isinstance(value["class"], str):
            module_name, _, attr = value["class"].rpartition(".")
            if module_name not in _KWARG_CLASSES:
                raise ValueError(f"{key}: class {value['class']!r} is not from an allowed module")
            module, base = _KWARG_CLASSES[module_name]
            cls = getattr(module, attr, None)
            if not (isinstance(cls, type) and issubclass(cls, base)):
                raise ValueError(f"{key}: {value['class']!r} is not a {base.__name__} class")
            out[key] = cls
        elif isinstance(value, dict):
            out[key] = decode_kwargs(value)
        else:
            out[key] = value
    return out
