"""Watching a hot loop's tensors: which operations touch memory off the device, and how
often a value is read back to the host.

The mission's rule for models, planners and search is that a planning, rollout or search
loop stays on the model's device with no host round trip inside it. :class:`DeviceWatch`
makes that checkable: run the loop inside it and read :attr:`DeviceWatch.foreign` (operations
with a tensor operand or result on another device) and :attr:`DeviceWatch.host_reads` (each
``item()``, ``bool()``, ``int()`` or ``float()`` of a tensor, which waits for every queued
kernel on an accelerator)::

    with DeviceWatch("cuda") as watch:
        planner.plan(obs)
    assert not watch.foreign

Zero-dimensional tensors are exempt from :attr:`~DeviceWatch.foreign`: PyTorch mixes CPU
scalars into device operations without a copy; so are meta tensors, which hold no data.
Reads that bypass PyTorch's dispatcher (``Tensor.numpy()`` and ``tolist()`` of a CPU
tensor) are not seen; on an accelerator those need a copy to the CPU first, which is seen.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

# Outside inference mode bool(), int() and item() reach the dispatcher as
# _local_scalar_dense; inside it, as the composite ops themselves. torch.equal returns a
# Python bool too.
_HOST_READS = {
    torch.ops.aten._local_scalar_dense.default,
    torch.ops.aten.item.default,
    torch.ops.aten.is_nonzero.default,
    torch.ops.aten.equal.default,
}
_COPIES = {torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default}


def _on(tensor_device: torch.device, device: torch.device) -> bool:
    """Whether ``tensor_device`` is ``device`` (``cuda`` matches any ``cuda:N``)."""
    if tensor_device.type != device.type:
        return False
    return device.index is None or tensor_device.index == device.index


class DeviceWatch(TorchDispatchMode):
    """A context manager recording, while active, the operations that touch tensors off
    ``device`` and the reads of tensor values back to the host.

    :param device: the device the watched code should stay on.
    """

    def __init__(self, device: str | torch.device) -> None:
        super().__init__()
        self.device = torch.device(device)
        #: ``"op (device)"`` for each operation with a tensor of one dimension or more on
        #: another device, in call order.
        self.foreign: list[str] = []
        #: The name of each operation that read a value back to the host, in call order.
        self.host_reads: list[str] = []

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        name = str(func.overloadpacket.__name__)
        out = func(*args, **kwargs)
        if func in _HOST_READS or self._copied_off(func, args, out):
            self.host_reads.append(name)
        for leaf in tree_leaves((args, kwargs, out)):
            if self._foreign(leaf):
                self.foreign.append(f"{name} ({leaf.device})")
                break
        return out

    def _foreign(self, leaf: Any) -> bool:
        """A tensor of one dimension or more off the device. Meta tensors hold no data
        (autograd derives zero gradients' shapes on them), so they only count when the
        watched device is the meta device itself."""
        if not isinstance(leaf, torch.Tensor) or leaf.dim() == 0:
            return False
        if leaf.device.type == "meta" and self.device.type != "meta":
            return False
        return not _on(leaf.device, self.device)

    def _copied_off(self, func: Any, args: tuple[Any, ...], out: Any) -> bool:
        """A copy from the device to another one (``.cpu()``, ``.to("cpu")``), which waits
        for the device's queued work like a read."""
        if func not in _COPIES or not args:
            return False
        source, target = args[0], out
        if func is torch.ops.aten.copy_.default and len(args) > 1:
            source, target = args[1], args[0]
        return (
            isinstance(source, torch.Tensor)
            and isinstance(target, torch.Tensor)
            and _on(source.device, self.device)
            and not _on(target.device, self.device)
        )

    def summary(self) -> str:
        """The foreign operations and host reads, counted by name, for an assertion's
        message."""
        foreign = ", ".join(f"{k} x{v}" for k, v in Counter(self.foreign).most_common())
        reads = ", ".join(f"{k} x{v}" for k, v in Counter(self.host_reads).most_common())
        return f"off {self.device}: [{foreign}]; host reads: [{reads}]"
