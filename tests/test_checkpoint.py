"""Tests of mbwrap.checkpoint: safe, atomic, versioned checkpoints."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from mbwrap.checkpoint import (
    FORMAT_VERSION,
    atomic_write,
    check_count,
    check_index,
    check_indices,
    load_checkpoint,
    save_checkpoint,
)
from mbwrap.errors import CheckpointError

KIND = "mbwrap.test"


class _RunsCode:
    """Unpickling this creates a directory: proof that a loader executed code from a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def _good_checkpoint(path: Path) -> None:
    save_checkpoint(path, kind=KIND, metadata={"a": 1}, tensors={"x": torch.arange(100.0)})


# ---------------------------------------------------------------------- round trip


def test_round_trip_keeps_metadata_and_exact_tensors(tmp_path):
    weights = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    tensors = {
        "weights": weights.t(),  # non-contiguous view
        "grad": torch.ones(3, requires_grad=True),
        "counts": torch.tensor([1, 2, 3], dtype=torch.int64),
        "mask": torch.tensor([True, False]),
        "pixels": torch.tensor([[0, 255]], dtype=torch.uint8),
    }
    metadata = {"name": "m", "nested": {"list": [1, 2.5, None], "flag": True}, "none": None}
    returned = save_checkpoint(
        tmp_path / "sub" / "ck.pt", kind=KIND, metadata=metadata, tensors=tensors
    )
    assert returned == tmp_path / "sub" / "ck.pt"
    assert returned.is_file()

    loaded_meta, loaded = load_checkpoint(tmp_path / "sub" / "ck.pt", kind=KIND)
    assert loaded_meta == metadata
    assert sorted(loaded) == sorted(tensors)
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype
        assert loaded[name].device.type == "cpu"
        assert not loaded[name].requires_grad
        assert torch.equal(loaded[name], tensor.detach())
    assert loaded["weights"].tolist() == [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
    assert _leftovers(tmp_path / "sub") == []


def test_round_trip_with_no_tensors(tmp_path):
    save_checkpoint(tmp_path / "ck.pt", kind=KIND, metadata={}, tensors={})
    assert load_checkpoint(tmp_path / "ck.pt", kind=KIND) == ({}, {})


def test_save_overwrites_existing_checkpoint(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, kind=KIND, metadata={"v": 1}, tensors={"x": torch.zeros(2)})
    save_checkpoint(path, kind=KIND, metadata={"v": 2}, tensors={"x": torch.ones(2)})
    metadata, tensors = load_checkpoint(path, kind=KIND)
    assert metadata == {"v": 2}
    assert tensors["x"].tolist() == [1.0, 1.0]
    assert _leftovers(tmp_path) == []


def test_save_rejects_non_json_metadata_and_writes_nothing(tmp_path):
    with pytest.raises(TypeError, match=r"^metadata: .*JSON"):
        save_checkpoint(tmp_path / "ck.pt", kind=KIND, metadata={"x": object()}, tensors={})
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- atomic writes


def test_atomic_write_renames_and_leaves_no_temp(tmp_path):
    seen = []

    def write(tmp: Path) -> None:
        seen.append(tmp)
        tmp.write_bytes(b"hello")

    target = atomic_write(tmp_path / "a" / "b.bin", write)
    assert target == tmp_path / "a" / "b.bin"
    assert target.read_bytes() == b"hello"
    # The temporary file was in the target's own directory and is gone.
    assert seen[0].parent == target.parent
    assert seen[0] != target
    assert not seen[0].exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["b.bin"]


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_atomic_write_failure_removes_temp_and_keeps_no_target(tmp_path, error):
    def write(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise error

    with pytest.raises(type(error)):
        atomic_write(tmp_path / "b.bin", write)
    assert list(tmp_path.iterdir()) == []


def test_save_checkpoint_when_torch_save_fails_midway(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"

    def failing_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match=r"disk full"):
        save_checkpoint(path, kind=KIND, metadata={}, tensors={"x": torch.zeros(3)})
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, kind=KIND, metadata={"v": 1}, tensors={"x": torch.arange(3.0)})
    before = path.read_bytes()

    def failing_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"garbage")
        raise RuntimeError("crash while writing")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(RuntimeError, match=r"crash while writing"):
        save_checkpoint(path, kind=KIND, metadata={"v": 2}, tensors={"x": torch.zeros(3)})
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]
    metadata, tensors = load_checkpoint(path, kind=KIND)
    assert metadata == {"v": 1}
    assert tensors["x"].tolist() == [0.0, 1.0, 2.0]


# ---------------------------------------------------------------------- bad files


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^path: no checkpoint file"):
        load_checkpoint(tmp_path / "nope.pt", kind=KIND)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path, kind=KIND)  # a directory is not a checkpoint file


def test_random_bytes_are_a_checkpoint_error(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match=r"not a readable mbwrap checkpoint"):
        load_checkpoint(path, kind=KIND)


def test_empty_file_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError):
        load_checkpoint(path, kind=KIND)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_truncated_file_is_a_checkpoint_error(tmp_path, fraction):
    path = tmp_path / "ck.pt"
    _good_checkpoint(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(CheckpointError, match=repr(str(path))):
        load_checkpoint(path, kind=KIND)


@pytest.mark.parametrize(
    "payload",
    [
        {"weight": torch.zeros(2, 2), "bias": torch.zeros(2)},  # a plain state dict
        torch.zeros(3),
        [1, 2, 3],
    ],
    ids=["state_dict", "tensor", "list"],
)
def test_foreign_torch_file_is_a_checkpoint_error(tmp_path, payload):
    path = tmp_path / "foreign.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"not an mbwrap checkpoint"):
        load_checkpoint(path, kind=KIND)


def test_wrong_kind_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, kind="mbwrap.replay_buffer", metadata={}, tensors={})
    with pytest.raises(
        CheckpointError, match=r"'mbwrap.replay_buffer' checkpoint, expected 'mbwrap.model'"
    ):
        load_checkpoint(path, kind="mbwrap.model")


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, 99, "1", None])
def test_newer_or_invalid_format_version_is_a_checkpoint_error(tmp_path, version):
    path = tmp_path / "ck.pt"
    payload = {"mbwrap_format": KIND, "metadata": "{}", "tensors": {}}
    if version is not None:
        payload["format_version"] = version
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"format version"):
        load_checkpoint(path, kind=KIND)


def test_older_format_version_still_loads(tmp_path):
    path = tmp_path / "ck.pt"
    torch.save(
        {"mbwrap_format": KIND, "format_version": 0, "metadata": '{"a": 2}', "tensors": {}}, path
    )
    assert load_checkpoint(path, kind=KIND) == ({"a": 2}, {})


@pytest.mark.parametrize(
    ("metadata", "tensors"),
    [
        ("{not json", {}),
        ("[1, 2]", {}),
        ("{}", {"x": "not a tensor"}),
        (None, {}),
    ],
    ids=["bad-json", "json-list", "non-tensor", "no-metadata"],
)
def test_corrupt_contents_are_a_checkpoint_error(tmp_path, metadata, tensors):
    path = tmp_path / "ck.pt"
    payload = {"mbwrap_format": KIND, "format_version": 1, "tensors": tensors}
    if metadata is not None:
        payload["metadata"] = metadata
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"corrupt"):
        load_checkpoint(path, kind=KIND)


# ---------------------------------------------------------------------- no code execution


def test_load_uses_weights_only(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    _good_checkpoint(path)
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_checkpoint(path, kind=KIND)
    assert len(calls) == 1
    assert calls[0].get("weights_only") is True


def test_pickled_object_inside_checkpoint_is_refused_without_running(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pt"
    payload = {
        "mbwrap_format": KIND,
        "format_version": 1,
        "metadata": "{}",
        "tensors": {},
        "extra": _RunsCode(marker),
    }
    torch.save(payload, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path, kind=KIND)
    assert not marker.exists()
    # The file really does run code when loaded unsafely, so the check above means something.
    torch.load(path, weights_only=False)
    assert marker.is_dir()


def test_plain_pickle_file_is_refused_without_running(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as handle:
        pickle.dump(_RunsCode(marker), handle, protocol=2)
    with pytest.raises(CheckpointError):
        load_checkpoint(path, kind=KIND)
    assert not marker.exists()


# ---------------------------------------------------------------------- checked fields


@pytest.mark.parametrize("value", [0, 7, np.int64(3), torch.tensor(5)])
def test_check_count_takes_ints_from_zero(value):
    assert check_count(value, name="run.steps") == int(value)


@pytest.mark.parametrize("value", [-1, 1.0, 2.5, True, "3", None, torch.tensor([1, 2])])
def test_check_count_names_the_field(value):
    with pytest.raises(CheckpointError, match=r"^run\.steps: expected a count \(an int >= 0\)"):
        check_count(value, name="run.steps")


def test_check_index_and_indices_name_the_field_and_range():
    assert check_index(4, name="pos", size=5) == 4
    for bad in (5, -1, 2.0):
        with pytest.raises(CheckpointError, match=r"^pos: expected an int in \[0, 5\)"):
            check_index(bad, name="pos", size=5)
    indices = check_indices(np.array([0, 2], dtype=np.int32), name="elites", size=3)
    assert indices.dtype == torch.int64 and indices.tolist() == [0, 2]
    with pytest.raises(CheckpointError, match=r"^elites: expected indices in \[0, 3\), got 3 "
                                              r"\(one of 2 outside\)"):
        check_indices(torch.tensor([3, 1, -1]), name="elites", size=3)
    with pytest.raises(CheckpointError, match=r"^elites: expected integer indices"):
        check_indices(torch.tensor([0.0]), name="elites", size=3)
