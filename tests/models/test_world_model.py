"""Tests of the WorldModel contract (mbwrap.models.base) with a small neural subclass."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces

from mbwrap import WorldModel
from mbwrap.checkpoint import load_checkpoint, save_checkpoint
from mbwrap.errors import (
    CheckpointError,
    SpaceMismatchError,
    UnknownPluginError,
    UnsupportedSpaceError,
)
from mbwrap.spaces import flat_dim, flatten
from mbwrap.types import ModelStep

OBS = spaces.Box(-5, 5, (3,), np.float32)
ACT = spaces.Discrete(2)


class AffineModel(WorldModel):
    """A tiny deterministic neural model: enough to exercise the base class."""

    def __init__(
        self, observation_space, action_space, *, hidden: int = 4, env_id=None, device="auto"
    ):
        super().__init__(observation_space, action_space, env_id=env_id, device=device)
        self.hidden = hidden
        width = flat_dim(observation_space) + flat_dim(action_space)
        self.body = torch.nn.Linear(width, hidden, device=self.device)
        self.head = torch.nn.Linear(hidden, flat_dim(observation_space) + 2, device=self.device)

    def fit(self, buffer: Any, **kwargs: Any) -> dict[str, Any]:
        return {"epochs": 0}

    def step(self, state, action, *, generator=None, member=None) -> ModelStep:
        x = torch.cat(
            [flatten(state, self.observation_space), flatten(action, self.action_space)], -1
        )
        out = self.head(torch.tanh(self.body(x)))
        d = flat_dim(self.observation_space)
        return ModelStep(out[:, :d], out[:, d], torch.sigmoid(out[:, d + 1]))

    def get_config(self) -> dict[str, Any]:
        return {"hidden": self.hidden}


class OtherAffineModel(AffineModel):
    pass


class UnregisteredName(AffineModel):
    registry_name = "no-such-model-anywhere"


def test_world_model_is_abstract():
    with pytest.raises(TypeError):
        WorldModel(OBS, ACT)  # type: ignore[abstract]

    class NoConfig(WorldModel):
        def fit(self, buffer, **kwargs):
            return {}

        def step(self, state, action, *, generator=None, member=None):
            return ModelStep(state, None, None)

    with pytest.raises(TypeError, match=r"get_config"):
        NoConfig(OBS, ACT)


def test_constructor_checks_spaces():
    with pytest.raises(UnsupportedSpaceError, match=r"^observation_space:"):
        AffineModel(spaces.Dict({"a": OBS}), ACT, device="cpu")
    with pytest.raises(UnsupportedSpaceError, match=r"^action_space:"):
        AffineModel(OBS, spaces.Tuple((ACT,)), device="cpu")


def test_device_auto_and_explicit(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert AffineModel(OBS, ACT).device == torch.device("cpu")
    model = AffineModel(OBS, ACT, device="meta")
    assert model.device == torch.device("meta")
    assert model.body.weight.device.type == "meta"


def test_device_follows_to():
    model = AffineModel(OBS, ACT, device="cpu")
    model.to("meta")
    assert model.device == torch.device("meta")
    model.to_empty(device="cpu")
    assert model.device == torch.device("cpu")


def test_encode_batches_and_checks_observations():
    model = AffineModel(OBS, ACT, device="cpu")
    single = model.encode(np.array([1.0, 2.0, 3.0], dtype=np.float64))
    assert single.shape == (1, 3) and single.dtype == torch.float32
    assert single.tolist() == [[1.0, 2.0, 3.0]]
    batch = model.encode(torch.zeros(5, 3))
    assert batch.shape == (5, 3)
    with pytest.raises(SpaceMismatchError, match=r"^obs: expected shape"):
        model.encode(np.zeros(4))
    state = torch.ones(2, 3)
    assert model.decode(state) is state


def test_anchor_is_not_saved():
    assert "_anchor" not in AffineModel(OBS, ACT, device="cpu").state_dict()


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = AffineModel(OBS, ACT, hidden=7, env_id="some/Env-v1", device="cpu")
    path = tmp_path / "m" / "model.pt"
    model.save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]
    metadata, tensors = load_checkpoint(path, kind="mbwrap.model")
    assert metadata["class"].endswith(":AffineModel")
    assert metadata["registry_name"] is None
    assert metadata["config"] == {"hidden": 7}
    assert metadata["env_id"] == "some/Env-v1"
    assert set(tensors) == {"body.weight", "body.bias", "head.weight", "head.bias"}

    loaded = AffineModel.load(path, device="cpu")
    assert (loaded.hidden, loaded.env_id) == (7, "some/Env-v1")
    assert loaded.observation_space == OBS and loaded.action_space == ACT
    for (name, a), (_, b) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    state, action = torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 1, 0])
    a, b = model.step(state, action), loaded.step(state, action)
    assert torch.equal(a.next_state, b.next_state)
    assert torch.equal(a.reward, b.reward)
    assert torch.equal(a.terminated, b.terminated)


def test_load_with_another_class_is_checkpoint_error(tmp_path):
    AffineModel(OBS, ACT, device="cpu").save(tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match=r"AffineModel' model, not a .*OtherAffineModel"):
        OtherAffineModel.load(tmp_path / "a.pt")


def test_world_model_load_needs_a_registry_name(tmp_path):
    AffineModel(OBS, ACT, device="cpu").save(tmp_path / "a.pt")
    with pytest.raises(
        CheckpointError, match=r"has no registry name; load it with that class's own load"
    ):
        WorldModel.load(tmp_path / "a.pt")


def test_world_model_load_of_an_uninstalled_plugin_names_it(tmp_path):
    UnregisteredName(OBS, ACT, device="cpu").save(tmp_path / "a.pt")
    with pytest.raises(UnknownPluginError, match=r"no model plugin named 'no-such-model-anywhere'"):
        WorldModel.load(tmp_path / "a.pt")
    assert type(UnregisteredName.load(tmp_path / "a.pt", device="cpu")) is UnregisteredName


def test_load_with_mismatched_weights_is_checkpoint_error(tmp_path):
    path = tmp_path / "a.pt"
    AffineModel(OBS, ACT, hidden=3, device="cpu").save(path)
    metadata, tensors = load_checkpoint(path, kind="mbwrap.model")
    metadata["config"]["hidden"] = 5
    save_checkpoint(path, kind="mbwrap.model", metadata=metadata, tensors=tensors)
    with pytest.raises(CheckpointError, match=r"model checkpoint does not fit"):
        AffineModel.load(path)


def test_non_object_metadata_is_checkpoint_error(tmp_path):
    path = tmp_path / "a.pt"
    torch.save(
        {"mbwrap_format": "mbwrap.model", "format_version": 1, "metadata": "[1]", "tensors": {}},
        path,
    )
    with pytest.raises(CheckpointError):
        AffineModel.load(path)
    with pytest.raises(CheckpointError):
        WorldModel.load(path)
