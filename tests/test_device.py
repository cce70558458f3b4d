"""Tests of mbwrap.device: device resolution and seeded generators."""

from __future__ import annotations

import pytest
import torch

from mbwrap.device import make_generator, resolve_device


def test_auto_is_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")


def test_auto_is_cuda_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cpu", torch.device("cpu")),
        ("cuda", torch.device("cuda")),
        ("cuda:1", torch.device("cuda", 1)),
        ("meta", torch.device("meta")),
    ],
)
def test_strings_become_devices(name, expected):
    device = resolve_device(name)
    assert isinstance(device, torch.device)
    assert device == expected


def test_device_object_is_returned_unchanged():
    device = torch.device("cuda", 3)
    assert resolve_device(device) is device


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "", "cpu:cuda"])
def test_unknown_device_string_is_value_error_naming_argument(name):
    with pytest.raises(
        ValueError, match=r"^device: expected 'auto'.*got " + repr(name).replace("\\", "")
    ):
        resolve_device(name)


def test_seeded_generators_are_reproducible():
    a = make_generator(torch.device("cpu"), 123)
    b = make_generator(torch.device("cpu"), 123)
    assert a.initial_seed() == 123
    assert a.device == torch.device("cpu")
    assert torch.equal(torch.rand(5, generator=a), torch.rand(5, generator=b))


def test_different_seeds_give_different_streams():
    a = make_generator(torch.device("cpu"), 1)
    b = make_generator(torch.device("cpu"), 2)
    assert not torch.equal(torch.rand(5, generator=a), torch.rand(5, generator=b))


def test_unseeded_generators_draw_fresh_entropy():
    seeds = {make_generator(torch.device("cpu"), None).initial_seed() for _ in range(3)}
    assert len(seeds) == 3


def test_host_scalars_copies_every_value_in_order():
    from mbwrap.device import host_scalars

    values = {
        "a": torch.tensor(1.5),
        "b": torch.tensor([2], dtype=torch.int64),
        "c": torch.tensor(-3.0, dtype=torch.float64),
    }
    out = host_scalars(values)
    assert out == {"a": 1.5, "b": 2.0, "c": -3.0}
    assert all(type(v) is float for v in out.values())
    assert host_scalars({}) == {}
    with pytest.raises(RuntimeError):
        host_scalars({"many": torch.zeros(3)})  # not a scalar
