"""Bad inputs to the image models, the planners and tree search: each is refused with
mbwrap's error type and a message that names the argument."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from mbwrap.algos.muzero import MuZero
from mbwrap.errors import SpaceMismatchError, UnsupportedSpaceError
from mbwrap.models import RSSM, VAEMDNRNN, ConvVAE, WorldModel
from mbwrap.models.encoders import ObservationEncoder
from mbwrap.planners import MPPI, MCTSPlanner
from mbwrap.types import ModelStep

TINY_RSSM = {"deter": 8, "hidden": 8, "layers": 1, "stoch": 2, "classes": 2, "cnn_depth": 2}
TINY_VAE = {"latent_dim": 2, "vae_channels": (2, 2, 2, 2), "hidden_size": 4}
OFFSET = spaces.Discrete(3, start=-1)


def _rssm(shape: tuple[int, ...]) -> RSSM:
    space = spaces.Box(0, 255, shape, np.uint8)
    return RSSM(space, spaces.Discrete(2), device="cpu", **TINY_RSSM)


class _Frames(gym.Env):
    """An env of uint8 observations of ``shape`` (never stepped)."""

    action_space = spaces.Discrete(2)

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.observation_space = spaces.Box(0, 255, shape, np.uint8)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        return self.observation_space.sample(), 0.0, False, False, {}


class _OffsetModel(WorldModel):
    """A model with ``Discrete(3, start=-1)`` actions that stays where it is."""

    def __init__(self) -> None:
        super().__init__(spaces.Box(-1.0, 1.0, (1,), np.float32), OFFSET, device="cpu")

    def get_config(self) -> dict[str, Any]:
        return {}

    def fit(self, buffer: Any, **kwargs: Any) -> dict[str, Any]:
        return {}

    def step(self, state, action, *, generator=None, member=None) -> ModelStep:
        return ModelStep(next_state=state, reward=state[:, 0], terminated=None)


# ---------------------------------------------------------------------- wrong image dtype
def test_rssm_refuses_float_frames_for_a_uint8_image_space():
    model = _rssm((37, 53, 3))
    with pytest.raises(SpaceMismatchError, match=r"obs: expected uint8"):
        model.encode(np.zeros((2, 37, 53, 3), np.float32))


def test_world_models_v_refuses_float_frames_for_a_uint8_image_space():
    model = VAEMDNRNN(spaces.Box(0, 255, (37, 53, 3), np.uint8), spaces.Discrete(2),
                      device="cpu", **TINY_VAE)
    with pytest.raises(SpaceMismatchError, match=r"obs: expected uint8"):
        model.encode(np.zeros((2, 37, 53, 3), np.float32))


def test_encoder_refuses_float_values_for_a_uint8_vector_space():
    encoder = ObservationEncoder(spaces.Box(0, 255, (128,), np.uint8), 8, 1, 2)
    with pytest.raises(SpaceMismatchError, match=r"obs: expected uint8 values"):
        encoder(torch.zeros(2, 128))


# ---------------------------------------------------------------------- wrong channel layout
def test_rssm_refuses_an_image_space_with_no_plausible_channel_axis():
    with pytest.raises(UnsupportedSpaceError, match=r"observation_space: .*channel axis"):
        _rssm((40, 40, 40))


def test_rssm_refuses_an_image_space_too_small_for_either_layout():
    with pytest.raises(UnsupportedSpaceError, match=r"observation_space: .*at least 4 pixels"):
        _rssm((3, 2, 3))


def test_rssm_refuses_frames_in_the_other_layout():
    model = _rssm((37, 53, 3))
    with pytest.raises(SpaceMismatchError, match=r"obs: expected shape"):
        model.encode(np.zeros((2, 3, 37, 53), np.uint8))


def test_world_models_refuses_channels_first_frames():
    with pytest.raises(SpaceMismatchError, match=r"observation_space: .*channels last"):
        VAEMDNRNN(spaces.Box(0, 255, (3, 64, 64), np.uint8), spaces.Discrete(2), device="cpu",
                  **TINY_VAE)


def test_muzero_refuses_an_image_space_with_no_plausible_channel_axis():
    with pytest.raises(UnsupportedSpaceError, match=r"env\.observation_space: .*channel axis"):
        MuZero(_Frames((40, 40, 40)), device="cpu",
               network_kwargs={"hidden_size": 4, "layers": 1, "support_size": 2})


# ---------------------------------------------------------------------- wrong frame size
def test_vae_refuses_frames_of_another_size_than_it_was_built_for():
    vae = ConvVAE(2, (2, 2, 2, 2), frame_size=(37, 53), device="cpu")
    with pytest.raises(SpaceMismatchError, match=r"frames: expected frames of shape \[B, 37, 53"):
        vae.encode_frames(np.zeros((1, 64, 64, 3), np.uint8))


def test_vae_refuses_a_frame_size_below_the_minimum():
    with pytest.raises(ValueError, match=r"frame_size: expected \(height, width\)"):
        ConvVAE(frame_size=(2, 64), device="cpu")


# ---------------------------------------------------------------------- offset Discrete actions
def test_box_only_planner_refuses_an_offset_discrete_action_space():
    with pytest.raises(UnsupportedSpaceError, match=r"model\.action_space: MPPI"):
        MPPI(_OffsetModel(), horizon=2)


def test_tree_search_refuses_an_action_space_of_another_size_than_its_model():
    planner = MCTSPlanner(_OffsetModel(), num_simulations=2)
    with pytest.raises(UnsupportedSpaceError, match=r"action_space: tree search needs Discrete"):
        MCTSPlanner(planner.search_model, num_simulations=2,
                    observation_space=_OffsetModel().observation_space,
                    action_space=spaces.Discrete(4, start=-1))
