"""mbwrap.grad.no_grad: torch.no_grad as a decorator, free where gradients are off."""

from __future__ import annotations

import pytest
import torch

from mbwrap.grad import no_grad


def test_runs_without_gradients_and_restores_the_mode():
    weight = torch.ones(2, requires_grad=True)

    @no_grad
    def scaled(x: torch.Tensor) -> torch.Tensor:
        """Doc."""
        assert not torch.is_grad_enabled()
        return weight * x

    assert scaled.__doc__ == "Doc." and scaled.__name__ == "scaled"
    assert not scaled(torch.ones(2)).requires_grad
    assert torch.is_grad_enabled()
    with torch.no_grad():
        assert not scaled(torch.ones(2)).requires_grad
        assert not torch.is_grad_enabled()


def test_restores_the_mode_after_an_error():
    @no_grad
    def fails() -> None:
        raise ValueError("inside")

    with pytest.raises(ValueError, match="inside"):
        fails()
    assert torch.is_grad_enabled()
