"""The short-dimension softmax: equal to torch's on both routes, with exact gradients."""

from __future__ import annotations

import pytest
import torch

from mbwrap import softmax as short_softmax
from mbwrap.softmax import MIN_ELEMENTS, SHORT, log_softmax, softmax


@pytest.mark.parametrize("shape", [(528, 8, 8), (3, 2), (40, 3, 255), (1024, 2)])
@pytest.mark.parametrize(("ours", "theirs"), [(softmax, torch.softmax),
                                              (log_softmax, torch.log_softmax)])
def test_equals_torch_on_every_route(shape, ours, theirs) -> None:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 4
    torch.testing.assert_close(ours(x), theirs(x, -1))


def test_the_short_route_is_taken_only_for_short_and_large_cpu_tensors() -> None:
    assert short_softmax._short(torch.zeros(MIN_ELEMENTS // 8, 8))
    assert not short_softmax._short(torch.zeros(MIN_ELEMENTS // 8 - 1, 8))
    assert not short_softmax._short(torch.zeros(MIN_ELEMENTS, SHORT))
    assert not short_softmax._short(torch.zeros(MIN_ELEMENTS, 8).to("meta"))


@pytest.mark.parametrize("function", [softmax, log_softmax])
def test_large_logits_do_not_overflow(function) -> None:
    x = torch.tensor([[1000.0, 0.0, -1000.0]]).expand(MIN_ELEMENTS, 3)
    out = function(x)
    assert torch.isfinite(out[:, :2]).all()
    torch.testing.assert_close(out, torch.log_softmax(x, -1) if function is log_softmax
                               else torch.softmax(x, -1))


@pytest.mark.parametrize("function", [softmax, log_softmax])
def test_first_and_second_derivatives_on_the_short_route(function, monkeypatch) -> None:
    monkeypatch.setattr(short_softmax, "MIN_ELEMENTS", 1)
    x = torch.randn(4, 3, 5, dtype=torch.float64, requires_grad=True)
    assert short_softmax._short(x)
    assert torch.autograd.gradcheck(function, (x,))
    assert torch.autograd.gradgradcheck(function, (x,))
