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

A ``Dict`` or ``Tuple`` space (nested, of the spaces above) is carried as a flat ``dict``
from leaf path to a batch of that leaf (see :func:`leaf_spaces` and :mod:`mbwrap.tree`);
:func:`as_batch` and :func:`to_numpy` convert between that form and the nested
``dict``/``tuple`` values Gymnasium envs return.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from mbwrap.errors import SpaceMismatchError, UnsupportedSpaceError
from mbwrap.tree import Tree

SUPPORTED_SPACES: tuple[type[spaces.Space], ...] = (
    spaces.Box,
    spaces.Discrete,
    spaces.MultiDiscrete,
    spaces.MultiBinary,
)


STRUCTURED_SPACES: tuple[type[spaces.Space], ...] = (spaces.Dict, spaces.Tuple)


def check_space(space: Any, *, name: str, structured: bool = False) -> spaces.Space:
    """Return ``space`` if mbwrap supports it, else raise naming the argument and the space.

    :param structured: also accept ``Dict`` and ``Tuple`` spaces (nested) whose leaves are
        supported spaces, for the parts that carry them (buffers, imagination, the models
        whose encoders take them).
    :raises UnsupportedSpaceError: for anything but Box, Discrete, MultiDiscrete,
        MultiBinary (and, with ``structured``, Dict and Tuple of them).
    """
    if structured and isinstance(space, STRUCTURED_SPACES):
        leaf_spaces(space, name=name)
        return space
    if not isinstance(space, SUPPORTED_SPACES):
        supported = ", ".join(
            cls.__name__ for cls in SUPPORTED_SPACES + (STRUCTURED_SPACES if structured else ())
        )
        hint = (
            ""
            if structured or not isinstance(space, STRUCTURED_SPACES)
            else (" (this component takes no Dict or Tuple spaces)")
        )
        raise UnsupportedSpaceError(
            f"{name}: mbwrap supports {supported}{hint}; got {space!r} "
            f"({type(space).__module__}.{type(space).__name__})"
        )
    return space


def is_structured(space: spaces.Space) -> bool:
    """True for ``Dict`` and ``Tuple`` spaces, whose batches are dicts of leaf tensors."""
    # Dict and Tuple are abstract base classes (Mapping, Sequence), slow to test against on
    # imagination's hot path; the leaf spaces are quick to rule them out.
    return not isinstance(space, SUPPORTED_SPACES) and isinstance(space, STRUCTURED_SPACES)


def leaf_spaces(space: spaces.Space, *, name: str = "space") -> dict[str, spaces.Space]:
    """The leaves of a ``Dict``/``Tuple`` space by path, in the space's own order.

    A path joins keys (a ``Tuple`` position is its index) with ``"/"``: ``Dict(pos=...,
    goal=Dict(xy=...))`` has leaves ``"pos"`` and ``"goal/xy"``; a plain space is the one
    leaf ``""``.

    :raises UnsupportedSpaceError: for an empty Dict/Tuple or an unsupported leaf, naming
        its path (``name['goal/xy']``).
    """
    if not is_structured(space):
        return {"": check_space(space, name=name)}
    items = space.spaces.items() if isinstance(space, spaces.Dict) else enumerate(space.spaces)
    leaves: dict[str, spaces.Space] = {}
    for key, entry in items:
        if "/" in str(key):
            raise UnsupportedSpaceError(f"{name}: Dict keys may not contain '/', got {key!r}")
        if is_structured(entry):
            inner = leaf_spaces(entry, name=f"{name}[{str(key)!r}]")
            leaves.update({f"{key}/{path}": leaf for path, leaf in inner.items()})
        else:
            leaves[str(key)] = check_space(entry, name=f"{name}[{str(key)!r}]")
    if not leaves:
        raise UnsupportedSpaceError(f"{name}: got an empty {type(space).__name__} space")
    return leaves


def _leaf_values(value: Any, space: spaces.Space, name: str) -> dict[str, Any]:
    """The values of a nested ``dict``/``tuple`` (or already flat dict) by leaf path."""
    if isinstance(value, Mapping) and set(value) == set(leaf_spaces(space)):
        return dict(value)
    out: dict[str, Any] = {}
    if isinstance(space, spaces.Dict):
        if not isinstance(value, Mapping) or set(value) != set(space.spaces):
            got = sorted(value) if isinstance(value, Mapping) else type(value).__name__
            raise SpaceMismatchError(
                f"{name}: expected a dict with keys {sorted(space.spaces)} for {space}, got {got}"
            )
        items = [(key, value[key], entry) for key, entry in space.spaces.items()]
    else:
        if not isinstance(value, (tuple, list)) or len(value) != len(space.spaces):
            got = (
                f"length {len(value)}" if isinstance(value, (tuple, list)) else type(value).__name__
            )
            raise SpaceMismatchError(
                f"{name}: expected a tuple of {len(space.spaces)} entries for {space}, got {got}"
            )
        items = [
            (str(i), v, entry) for i, (v, entry) in enumerate(zip(value, space.spaces, strict=True))
        ]
    for key, entry_value, entry in items:
        if is_structured(entry):
            inner = _leaf_values(entry_value, entry, f"{name}[{key!r}]")
            out.update({f"{key}/{path}": v for path, v in inner.items()})
        else:
            out[str(key)] = entry_value
    return out


def is_image(space: spaces.Space) -> bool:
    """True for image spaces: a 3-D ``uint8`` Box (``[H, W, C]`` or ``[C, H, W]``). A
    ``uint8`` vector such as Atari's RAM is not an image but a vector of features."""
    return isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


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

    For a ``Dict``/``Tuple`` space, ``value`` is the nested ``dict``/``tuple`` an env
    returns (or the flat dict of leaves) and the result is the flat dict of leaf batches.

    :return: ``(tensor, was_batched)``.
    :raises SpaceMismatchError: when the shape is neither an element nor a batch of elements,
        or the dtype cannot hold elements of ``space`` (floats for a discrete space); for a
        structured space, naming the leaf (``name['goal']``).
    """
    if is_structured(space):
        return _as_structured_batch(value, space, name=name, device=device)
    shape = element_shape(space)
    if isinstance(value, torch.Tensor):
        tensor = value.to(device)
    elif isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        tensor = torch.as_tensor(value, device=device)
    else:
        if isinstance(value, (Mapping, str, bytes)):
            raise SpaceMismatchError(
                f"{name}: expected numbers for {space}, got {type(value).__name__}"
            )
        array = np.asarray(value)
        if array.dtype == object or array.dtype.kind in "USV":
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


def _as_structured_batch(
    value: Any, space: spaces.Space, *, name: str, device: torch.device | str
) -> tuple[dict[str, torch.Tensor], bool]:
    leaves = leaf_spaces(space, name=name)
    values = _leaf_values(value, space, name)
    out: dict[str, torch.Tensor] = {}
    batched_flags: set[bool] = set()
    for path, leaf in leaves.items():
        out[path], batched = as_batch(values[path], leaf, name=f"{name}[{path!r}]", device=device)
        batched_flags.add(batched)
    sizes = {int(t.shape[0]) for t in out.values()}
    if len(batched_flags) > 1 or len(sizes) > 1:
        shapes = {path: tuple(t.shape) for path, t in out.items()}
        raise SpaceMismatchError(
            f"{name}: the entries of a {type(space).__name__} observation must all be single "
            f"elements or all batches of one size, got shapes {shapes}"
        )
    return out, batched_flags.pop()


def to_numpy(tensor: Tree, space: spaces.Space) -> Any:
    """Copy a (batched or single) tensor, or a host array, to a host array of the space's
    own dtype.

    A single ``Discrete`` element comes back as an ``np.int64`` scalar. For a
    ``Dict``/``Tuple`` space, ``tensor`` is the flat dict of leaves and the result the
    nested ``dict``/``tuple`` of arrays Gymnasium uses for that space.
    """
    if is_structured(space):
        return _nest(tensor, space, "")
    dtype = np.int64 if isinstance(space, spaces.Discrete) else space.dtype
    if isinstance(tensor, np.ndarray):
        host = tensor
    elif tensor.device.type == "cpu" and not tensor.requires_grad:
        host = tensor.numpy()  # what detach().cpu() would return, without two calls
    else:
        host = tensor.detach().cpu().numpy()
    # Always a copy: the tensor may be updated in place after this returns.
    array = np.array(host, dtype=dtype, copy=True)
    return array[()] if array.ndim == 0 else array


def _nest(leaves: dict[str, torch.Tensor], space: spaces.Space, prefix: str) -> Any:
    if isinstance(space, spaces.Dict):
        return {
            key: _nest(leaves, entry, f"{prefix}{key}/")
            if is_structured(entry)
            else to_numpy(leaves[f"{prefix}{key}"], entry)
            for key, entry in space.spaces.items()
        }
    return tuple(
        _nest(leaves, entry, f"{prefix}{i}/")
        if is_structured(entry)
        else to_numpy(leaves[f"{prefix}{i}"], entry)
        for i, entry in enumerate(space.spaces)
    )


def rows_in_space(x: Any, space: spaces.Space) -> Any:
    """Which rows of a batch ``x: [K, *element_shape]`` (a dict of leaves for a
    Dict/Tuple space) lie in ``space``: ``[K]`` bool.

    Works on tensors (on their device) and on host arrays (with NumPy, a few microseconds
    for the small batches of a single step).
    """
    if is_structured(space):
        inside = None
        for path, leaf in leaf_spaces(space).items():
            leaf_inside = rows_in_space(x[path], leaf)
            inside = leaf_inside if inside is None else inside & leaf_inside
        return inside
    xp: Any = np if isinstance(x, np.ndarray) else torch

    def const(value: Any) -> Any:
        return value if xp is np else torch.as_tensor(value, dtype=x.dtype, device=x.device)

    if isinstance(space, spaces.Discrete):
        return (x >= int(space.start)) & (x < int(space.start) + int(space.n))
    if isinstance(space, spaces.Box):
        inside = (x >= const(space.low)) & (x <= const(space.high))
    elif isinstance(space, spaces.MultiDiscrete):
        start = const(space.start)
        inside = (x >= start) & (x < start + const(space.nvec))
    else:
        inside = (x == 0) | (x == 1)
    return inside.reshape(x.shape[0], -1).all(-1)


def flat_dim(space: spaces.Space) -> int:
    """Width of :func:`flatten`'s output: one-hot widths for discrete parts, else the size
    (summed over the leaves of a Dict/Tuple space)."""
    if is_structured(space):
        return sum(flat_dim(leaf) for leaf in leaf_spaces(space).values())
    check_space(space, name="space")
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.MultiDiscrete):
        return int(np.sum(space.nvec))
    return int(np.prod(space.shape))


def flatten(x: torch.Tensor, space: spaces.Space) -> torch.Tensor:
    """Flatten a batch of elements into float features for a neural network.

    :param x: ``[B, *element_shape]`` (a dict of leaves for a Dict/Tuple space).
    :return: ``[B, flat_dim(space)]`` float32; Discrete and MultiDiscrete are one-hot, the
        leaves of a Dict/Tuple space are concatenated in path order.
    """
    if isinstance(space, spaces.Box) and x.ndim == 2:
        # Already flat (and maybe float): on imagination's hot path each op, even one that
        # returns its input, costs more than the work at small batches.
        return x if x.dtype == torch.float32 else x.float()
    if is_structured(space):
        return torch.cat([flatten(x[path], leaf) for path, leaf in leaf_spaces(space).items()], -1)
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
    # flat_dim only for an empty batch, where -1 is ambiguous: it costs a few µs a step.
    return (x.reshape(batch, -1) if batch else x.reshape(0, flat_dim(space))).float()


def unflatten(features: torch.Tensor, space: spaces.Space) -> Tree:
    """Map flat features back to the nearest elements of ``space`` (inverse of
    :func:`flatten` on its image).

    Box entries are reshaped and clipped to their bounds (an integer Box also rounded),
    Discrete and MultiDiscrete take the argmax of each one-hot block (plus ``start``),
    MultiBinary thresholds at 0.5. A row holding NaN or infinity keeps it in the float
    leaves, so the caller can still detect it.

    :param features: ``[B, flat_dim(space)]`` float.
    :return: ``[B, *element_shape]`` in :func:`torch_dtype` (a dict of leaves for a
        Dict/Tuple space).
    """
    if is_structured(space):
        out: dict[str, torch.Tensor] = {}
        offset = 0
        for path, leaf in leaf_spaces(space).items():
            width = flat_dim(leaf)
            out[path] = unflatten(features[:, offset : offset + width], leaf)
            offset += width
        return out
    batch = features.shape[0]
    if isinstance(space, spaces.Discrete):
        return features.argmax(-1) + int(space.start)
    if isinstance(space, spaces.MultiDiscrete):
        nvec = [int(n) for n in space.nvec.reshape(-1)]
        # A loop over the (few) dimensions of the space, not over the batch.
        blocks = torch.split(features, nvec, dim=-1)
        index = torch.stack([block.argmax(-1) for block in blocks], -1)
        start = torch.as_tensor(space.start.reshape(-1), device=features.device)
        return (index + start).reshape(batch, *space.shape)
    if isinstance(space, spaces.MultiBinary):
        return (features > 0.5).to(torch.int8).reshape(batch, *space.shape)
    values = features.reshape(batch, *space.shape)
    dtype = torch_dtype(space)
    low = torch.as_tensor(space.low, dtype=torch.float32, device=features.device)
    high = torch.as_tensor(space.high, dtype=torch.float32, device=features.device)
    if dtype.is_floating_point:
        # torch.minimum/maximum propagate NaN, so a broken row stays visible.
        return torch.minimum(torch.maximum(values, low), high)
    finite = torch.nan_to_num(values, nan=0.0)
    return torch.minimum(torch.maximum(finite.round(), low), high).to(dtype)


def check_same_space(expected: spaces.Space, got: spaces.Space, *, name: str) -> None:
    """Raise when ``got`` differs from ``expected`` in type, shape, dtype or bounds."""
    if expected != got:
        raise SpaceMismatchError(
            f"{name}: expected {expected!r}, got {got!r}. The env, the buffer and the model "
            "must agree on their spaces."
        )


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """A JSON-serialisable description of a supported space or a Dict/Tuple of them."""
    if isinstance(space, spaces.Dict):
        return {
            "type": "Dict",
            "spaces": [[key, space_to_json(entry)] for key, entry in space.spaces.items()],
        }
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(entry) for entry in space.spaces]}
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
        if kind == "Tuple":
            return spaces.Tuple([space_from_json(entry) for entry in data["spaces"]])
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
