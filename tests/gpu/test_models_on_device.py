"""Every registered world model, built on the device and fitted briefly there, steps a
batch on the device without an operation touching memory anywhere else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces

import mbwrap
from mbwrap.buffers import ReplayBuffer
from mbwrap.device import make_generator
from mbwrap.device_watch import DeviceWatch
from mbwrap.registry import available, plugins

from .conftest import on_device, random_buffer, tensors_in

pytestmark = pytest.mark.gpu

BOX3 = spaces.Box(-2.0, 2.0, (3,), np.float32)
BOX2 = spaces.Box(-1.0, 1.0, (2,), np.float32)
#: The local-linear model's time-varying dynamics cover episodes of this many steps.
HORIZON = 4


@dataclass(frozen=True)
class Case:
    """How to build, fit and step one model with tiny settings.

    :ivar fit: ``(model, buffer) -> None``, a brief fit.
    :ivar buffer: keywords of :func:`random_buffer` besides the spaces.
    """

    observation_space: spaces.Space
    action_space: spaces.Space
    kwargs: dict[str, Any]
    fit: Callable[[Any, ReplayBuffer], Any]
    buffer: dict[str, Any] = field(default_factory=dict)


FRAMES = spaces.Box(0, 255, (16, 16, 3), np.uint8)  # World Models' V: [H, W, C]
STACKS = spaces.Box(0, 255, (2, 8, 8), np.uint8)  # SimPLe's video model: [S, H, W]

# The tiny settings of each model's own tests (tests/models/test_<name>.py), smaller still.
CASES: dict[str, Case] = {
    "gaussian-ensemble": Case(
        BOX3,
        BOX2,
        {"ensemble_size": 2, "num_elites": 2, "hidden_sizes": (8,), "batch_size": 32},
        lambda m, b: m.fit(b, epochs=2),
    ),
    "gp": Case(BOX3, BOX2, {"max_points": 20, "fit_iterations": 3}, lambda m, b: m.fit(b)),
    "linear": Case(BOX3, BOX2, {}, lambda m, b: m.fit(b)),
    "local-linear": Case(
        BOX3,
        BOX2,
        {"horizon": HORIZON, "min_samples_per_cluster": 10},
        lambda m, b: m.fit(b, generator=make_generator(m.device, 0)),
        {"n_envs": 8, "steps": 16, "episode": HORIZON},
    ),
    "mdn": Case(
        BOX3,
        BOX2,
        {"hidden_sizes": (8,), "batch_size": 32, "num_components": 2},
        lambda m, b: m.fit(b, epochs=2),
    ),
    "mlp": Case(
        BOX3,
        spaces.Discrete(3),
        {"hidden_sizes": (8,), "batch_size": 32},
        lambda m, b: m.fit(b, epochs=2),
    ),
    "rssm": Case(
        BOX3,
        spaces.Discrete(2),
        {
            "deter": 16,
            "hidden": 16,
            "layers": 1,
            "stoch": 4,
            "classes": 4,
            "batch_size": 4,
            "sequence_length": 8,
        },
        lambda m, b: m.fit(b, steps=2),
    ),
    "tabular": Case(spaces.Discrete(5), spaces.Discrete(2), {}, lambda m, b: m.fit(b)),
    "vae-mdn-rnn": Case(
        FRAMES,
        spaces.Discrete(2),
        {"latent_dim": 4, "vae_channels": (2, 2, 2, 2), "hidden_size": 8, "batch_size": 8},
        lambda m, b: m.fit(b, vae_epochs=1, rnn_epochs=1),
        {"steps": 8, "episode": 4},
    ),
    "video": Case(
        STACKS,
        spaces.Discrete(2),
        {
            "hidden_size": 4,
            "compress_steps": 2,
            "bits": 8,
            "bit_predictor_size": 8,
            "batch_size": 4,
            "sequence_length": 1,
            "dropout": 0.0,
        },
        lambda m, b: m.fit(b, gradient_steps=2),
        {"steps": 8, "episode": 4},
    ),
}


def test_every_model_mbwrap_registers_has_a_case():
    """A model added to mbwrap (or its example plugins) is not silently left untested."""
    ours = {
        info.name for dist in ("mbwrap", "mbwrap-linear") for info in plugins("model", dist=dist)
    }
    assert ours <= set(CASES), f"no GPU case for {sorted(ours - set(CASES))}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_fitted_model_steps_on_the_device_alone(name, device):
    """Built on the device and fitted there on a small buffer of random transitions, a
    model encodes and steps a batch whose every output is on the device, and its step
    touches no tensor elsewhere."""
    if name not in available("model"):
        pytest.skip(f"model {name!r} is not installed")
    case = CASES[name]
    torch.manual_seed(0)
    model = mbwrap.make_model(
        name, case.observation_space, case.action_space, device=device, **case.kwargs
    )
    assert model.device.type == device.type
    buffer = random_buffer(case.observation_space, case.action_space, device, **case.buffer)
    case.fit(model, buffer)
    batch = buffer.sample(6, generator=make_generator(device, 1))
    assert on_device(batch.action, device)
    with torch.no_grad():
        state = model.encode(batch.obs)
    if name == "local-linear":
        # encode() starts every state at step 0; spread them over the fitted steps.
        state[:, -1] = torch.arange(6, device=device) % HORIZON
    assert all(on_device(t, device) for t in tensors_in(state))
    generator = make_generator(device, 2)
    with torch.no_grad(), DeviceWatch(device) as watch:
        step = model.step(state, batch.action, generator=generator)
    outputs = tensors_in((step.next_state, step.reward, step.terminated))
    assert outputs and all(on_device(t, device) for t in outputs), [t.device for t in outputs]
    assert step.next_state.shape[0] == 6
    assert watch.foreign == [], watch.summary()
    assert all(on_device(p, device) for p in model.parameters())
