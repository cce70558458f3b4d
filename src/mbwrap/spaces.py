"""Space checks, tensor conversion and flattening for the spaces mbwrap supports.

mbwrap represents one element of a space as a tensor of :func:`element_shape`
and :func:`torch_dtype`; a batch adds a leading dimension ``B``:

============== ================ =====================
space          element shape    dtype
============== ================ =====================
Box            ``space.shape``  float32 (integer Box keeps its integer dtype, e.g. uint8 images)
Discrete       ``()``           int64 (the raw value, ``start`` included)
MultiDiscrete  ``space.shape``  int64
MultiBinary    ``space.shape``  int8
============== ================ =====================
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from mbwrap.errors import SpaceMismatchError, UnsupportedSpaceError

SUPPORTED_SPACES: tuple[type[spaces.Space], ...] = (
    spaces.Box,
    spaces.Discrete,
    spaces.MultiDiscrete,
    spaces.MultiBinary,
)


def check_space(space: Any, *, name: str, allow_dict: bool = False) -> spaces.Space:
    """Return ``space`` if mbwrap supports it, else raise naming the argument and the space.

    :param allow_dict: also accept a ``Dict`` whose entries are supported spaces (for
        the models whose encoders route entries, e.g. the RSSM).
    :raises UnsupportedSpaceError: for anything but Box, Discrete, MultiDiscrete, MultiBinary.
    """
    if allow_dict and isinstance(space, spaces.Dict):
        for key, entry in space.spaces.items():
            check_space(entry, name=f"{name}[{key!r}]")
        return space
    if not isinstance(space, SUPPORTED_SPACES):
        supported = ", ".join(cls.__name__ for cls in SUPPORTED_SPACES)
        raise UnsupportedSpaceError(
            f"{name}: mbwrap supports {supported}; got {space!r} "
            f"({type(space).__module__}.{type(space).__name__})"
        )
    return space


def is_discrete(space: spaces.Space) -> bool:
    """True for spaces whose elements are integers indexing a finite set."""
    return isinstance(space, (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary))


def element_shape(space: spaces.Space) -> tuple[int, ...]:
    """Shape of one element as a tensor (``()`` for ``Discrete``)."""
    if isinstance(space, spaces.Discrete):
        return ()
    return tuple(int(d) for d in space.shape)


def torch_dtype(space: spaces.Space) -> torch.dtype:
    """The tensor dtype mbwrap stores elements of ``space`` in (see the module table)."""
    if isinstance(space, spaces.Box):
        if np.issubdtype(space.dtype, np.floating):
            return torch.float32
        return torch.from_numpy(np.zeros((), dtype=space.dtype)).dtype
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        return torch.int64
    if isinstance(space, spaces.MultiBinary):
        return torch.int8
    check_space(space, name="space")
    raise AssertionError("unreachable")


def as_batch(
    value: Any, space: spaces.Space, *, name: str, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, bool]:
    """Convert ``value`` to a batched tensor ``[B, *element_shape]`` on ``device``.

    A single element (shape ``element_shape``) becomes a batch of one.

    :return: ``(tensor, was_batched)``.
    :raises SpaceMismatchError: when the shape is neither an element nor a batch of elements,
        or the dtype cannot hold elements of ``space`` (floats for a discrete space).
    """
    shape = element_shape(space)
    if isinstance(value, torch.Tensor):
        tensor = value.to(device)
    else:
        array = np.asarray(value)
        if array.dtype == object:
            raise SpaceMismatchError(f"{name}: expected numbers for {space}, got {value!r}")
        tensor = torch.as_tensor(array, device=device)
    if tuple(tensor.shape) == shape:
        batched = False
        tensor = tensor.unsqueeze(0)
    elif tensor.ndim == len(shape) + 1 and tuple(tensor.shape[1:]) == shape:
        batched = True
    else:
        raise SpaceMismatchError(
            f"{name}: expected shape {shape} or (batch, *{shape}) for {space}, "
            f"got shape {tuple(tensor.shape)}"
        )
    target = torch_dtype(space)
    if tensor.is_floating_point() and not target.is_floating_point:
        if not torch.equal(tensor, tensor.round()):
            raise SpaceMismatchError(
                f"{name}: expected integer values for {space}, got floating values "
                f"of dtype {tensor.dtype}"
            )
    if tensor.dtype == torch.bool and target != torch.int8:
        raise SpaceMismatchError(f"{name}: expected numbers for {space}, got booleans")
    return tensor.to(target), batched


def to_numpy(tensor: torch.Tensor, space: spaces.Space) -> np.ndarray:
    """Copy a (batched or single) tensor to a host array of the space's own dtype.

    A single ``Discrete`` element comes back as an ``np.int64`` scalar.
    """
    dtype = np.int64 if isinstance(space, spaces.Discrete) else space.dtype
    # Always a copy: the tensor may be updated in place after this returns.
    array = np.array(tensor.detach().cpu().numpy(), dtype=dtype, copy=True)
    return array[()] if array.ndim == 0 else array


def flat_dim(space: spaces.Space) -> int:
    """Width of :func:`flatten`'s output: one-hot widths for discrete parts, else the size."""
    check_space(space, name="space")
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.MultiDiscrete):
        return int(np.sum(space.nvec))
    return int(np.prod(space.shape))


def flatten(x: torch.Tensor, space: spaces.Space) -> torch.Tensor:
    """Flatten a batch of elements into float features for a neural network.

    :param x: ``[B, *element_shape]``.
    :return: ``[B, flat_dim(space)]`` float32; Discrete and MultiDiscrete are one-hot.
    """
    batch = x.shape[0]
    if isinstance(space, spaces.Discrete):
        return torch.nn.functional.one_hot(x.long() - int(space.start), int(space.n)).float()
    if isinstance(space, spaces.MultiDiscrete):
        nvec = torch.as_tensor(space.nvec.reshape(-1), device=x.device)
        start = torch.as_tensor(space.start.reshape(-1), device=x.device)
        offsets = torch.cumsum(nvec, 0) - nvec
        index = (x.reshape(batch, -1).long() - start) + offsets
        out = torch.zeros(batch, int(nvec.sum()), device=x.device)
        return out.scatter_(1, index, 1.0)
    return x.reshape(batch, flat_dim(space)).float()


def check_same_space(expected: spaces.Space, got: spaces.Space, *, name: str) -> None:
    """Raise when ``got`` differs from ``expected`` in type, shape, dtype or bounds."""
    if expected != got:
        raise SpaceMismatchError(
            f"{name}: expected {expected!r}, got {got!r}. The env, the buffer and the model "
            "must agree on their spaces."
        )


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """A JSON-serialisable description of a supported space or a Dict of them."""
    if isinstance(space, spaces.Dict):
        return {
            "type": "Dict",
            "spaces": [[key, space_to_json(entry)] for key, entry in space.spaces.items()],
        }
    check_space(space, name="space")
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "low": space.low.tolist(),
            "high": space.high.tolist(),
            "shape": list(space.shape),
            "dtype": np.dtype(space.dtype).name,
        }
    if isinstance(space, spaces.Discrete):
        return {
            "type": "Discrete",
            "n": int(space.n),
            "start": int(space.start),
            "dtype": np.dtype(space.dtype).name,
        }
    if isinstance(space, spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": space.nvec.tolist(),
            "start": space.start.tolist(),
            "dtype": np.dtype(space.dtype).name,
        }
    # MultiBinary(4) and MultiBinary([4]) differ (their `n` is 4 vs (4,)) and compare unequal.
    n = space.n if isinstance(space.n, int) else [int(d) for d in space.n]
    return {"type": "MultiBinary", "n": n}


def space_from_json(data: dict[str, Any]) -> spaces.Space:
    """Inverse of :func:`space_to_json`.

    :raises SpaceMismatchError: when ``data`` does not describe a supported space.
    """
    kind = data.get("type") if isinstance(data, dict) else None
    try:
        if kind == "Box":
            dtype = np.dtype(data["dtype"])
            low = np.asarray(data["low"], dtype=dtype).reshape(data["shape"])
            high = np.asarray(data["high"], dtype=dtype).reshape(data["shape"])
            return spaces.Box(low=low, high=high, dtype=dtype)
        if kind == "Discrete":
            dtype = np.dtype(data.get("dtype", "int64"))
            return spaces.Discrete(int(data["n"]), start=int(data["start"]), dtype=dtype)
        if kind == "MultiDiscrete":
            dtype = np.dtype(data.get("dtype", "int64"))
            return spaces.MultiDiscrete(
                np.asarray(data["nvec"], dtype=dtype),
                start=np.asarray(data["start"], dtype=dtype),
                dtype=dtype,
            )
        if kind == "MultiBinary":
            return spaces.MultiBinary(data["n"])
        if kind == "Dict":
            return spaces.Dict({str(key): space_from_json(entry) for key, entry in data["spaces"]})
    except (KeyError, TypeError, ValueError) as err:
        raise SpaceMismatchError(f"space description {data!r} is malformed: {err}") from err
    raise SpaceMismatchError(f"space description {data!r} names no supported space type")


def scale_action(action: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Map Box actions from ``[low, high]`` to ``[-1, 1]``, the units SB3's policies and
    replay buffers use (``BasePolicy.scale_action``).

    :param action: ``[B, *act_shape]``.
    :param low: ``act_shape`` (broadcast over the batch).
    :param high: ``act_shape``.
    :return: ``[B, *act_shape]``.
    """
    return 2.0 * (action - low) / (high - low) - 1.0


def unscale_action(scaled: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`scale_action`: ``[-1, 1] -> [low, high]``, shapes alike."""
    return low + 0.5 * (scaled + 1.0) * (high - low)


def action_bounds(
    space: spaces.Box, device: torch.device | str, *, flat: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(low, high)`` of a Box action space as float32 tensors on ``device``: the
    arguments of :func:`scale_action` and :func:`unscale_action`.

    :param flat: flatten them (planners work on flat actions).
    :return: two tensors of shape ``act_shape``, or ``[prod(act_shape)]`` with ``flat``.
    """
    low = torch.as_tensor(space.low, dtype=torch.float32, device=device)
    high = torch.as_tensor(space.high, dtype=torch.float32, device=device)
    if flat:
        low, high = low.reshape(-1), high.reshape(-1)
    return low, high
