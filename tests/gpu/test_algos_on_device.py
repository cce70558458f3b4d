"""Every registered algorithm learns briefly on the device, saves, and loads back onto the
device: every parameter and buffer of the loaded algorithm's torch modules lives there."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import pytest
import torch
from stable_baselines3.common.base_class import BaseAlgorithm

import mbwrap
from mbwrap.registry import available, plugins

from .conftest import on_device

pytestmark = pytest.mark.gpu

# World Models renders Pendulum to frames without a display.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


@dataclass(frozen=True)
class Case:
    """One algorithm's tiny run, copied from its own tests (tests/algos/test_<name>.py).

    :ivar env: a fresh env to learn in (and to load with).
    :ivar settings: constructor keywords besides ``env``, ``seed`` and ``device``.
    :ivar steps: the ``learn`` budget.
    """

    env: Callable[[], Any]
    settings: dict[str, Any]
    steps: int


def _pendulum(steps: int = 50) -> Callable[[], gym.Env]:
    return lambda: gym.make("Pendulum-v1", max_episode_steps=steps)


def _reacher_conditions() -> Any:
    from mbwrap.envs import condition_vec_env

    return condition_vec_env("Reacher-v5", [100, 101])


def _pendulum_pixels() -> Any:
    from mbwrap.envs.pixels import PixelObservation

    return PixelObservation(gym.make("Pendulum-v1", render_mode="rgb_array", max_episode_steps=50))


def _pong() -> Any:
    from mbwrap.envs import make_atari_vec_env

    return make_atari_vec_env("ALE/Pong-v5", 1, seed=0, screen_size=16)


_NET16 = {"policy_kwargs": {"net_arch": [16]}}
_TD3_EXPANSION = {
    "agent": "TD3",
    "agent_kwargs": {"batch_size": 16, **_NET16},
    "model_kwargs": {"hidden_sizes": [16], "max_epochs": 2},
    "horizon": 2,
    "model_train_freq": 20,
    "learning_starts": 20,
}

CASES: dict[str, Case] = {
    "alphazero": Case(
        lambda: "tictactoe_v3",
        {
            "num_parallel_games": 4,
            "num_simulations": 4,
            "batch_size": 8,
            "learning_starts": 8,
            "train_freq": 4,
            "network_kwargs": {"kind": "mlp", "channels": 16, "blocks": 1},
        },
        4 * 6,
    ),
    "dreamer": Case(
        _pendulum(),
        {
            "model_kwargs": {
                "deter": 16,
                "hidden": 16,
                "layers": 1,
                "stoch": 4,
                "classes": 4,
                "batch_size": 4,
                "sequence_length": 8,
                "reward_bins": 31,
            },
            "hidden": 16,
            "layers": 1,
            "imagination_horizon": 5,
            "train_freq": 5,
            "gradient_steps": 1,
            "learning_starts": 40,
        },
        60,
    ),
    # The Dyna, MBPO and ME-TRPO tests use the "linear" plugin model; a built-in neural
    # model keeps these cases independent of the plugin and puts a network on the device.
    "dyna": Case(
        _pendulum(),
        {
            "agent": "PPO",
            "model": "mlp",
            "model_kwargs": {"hidden_sizes": [16], "max_epochs": 2},
            "agent_kwargs": {"n_steps": 16, "batch_size": 32, **_NET16},
            "num_imagined_envs": 2,
            "imagination_horizon": 20,
            "train_freq": 50,
            "imagined_steps": 64,
            "learning_starts": 50,
        },
        100,
    ),
    "dyna-q": Case(lambda: gym.make("mbwrap/DynaMaze-v0"), {"planning_steps": 5}, 200),
    "gps": Case(
        _reacher_conditions,
        {"samples": 2, "policy_steps": 20, "agent_kwargs": _NET16},
        200,
    ),
    "mb-mf": Case(
        _pendulum(),
        {
            "agent": "PPO",
            "agent_kwargs": {"n_steps": 64, "batch_size": 64, **_NET16},
            "model_kwargs": {"hidden_sizes": [32, 32], "max_epochs": 5},
            "planner_kwargs": {"population": 64, "horizon": 5},
            "learning_starts": 50,
            "model_based_steps": 150,
            "model_train_freq": 50,
            "dagger_iterations": 2,
            "dagger_steps": 50,
            "bc_epochs": 5,
            "bc_batch_size": 32,
        },
        120,
    ),
    "mbpo": Case(
        _pendulum(),
        {
            "agent": "SAC",
            "model": "gaussian-ensemble",
            "model_kwargs": {"ensemble_size": 2, "num_elites": 2, "hidden_sizes": [16]},
            "fit_kwargs": {"epochs": 2},
            "agent_kwargs": {"batch_size": 32, **_NET16},
            "epoch_length": 20,
            "model_train_freq": 10,
            "rollout_batch_size": 8,
            "rollout_schedule": (0, 2, 1, 3),
            "gradient_steps": 2,
            "learning_starts": 20,
        },
        50,
    ),
    "me-trpo": Case(
        _pendulum(),
        {
            "model": "mlp",
            "model_kwargs": {"ensemble_size": 2, "hidden_sizes": [16], "max_epochs": 2},
            "learning_starts": 50,
            "train_freq": 50,
            "num_imagined_envs": 4,
            "imagination_horizon": 20,
            "validation_episodes": 4,
            "validation_interval": 1,
            "patience": 2,
            "max_policy_iterations": 3,
            "agent_kwargs": {"n_steps": 10, "batch_size": 20, **_NET16},
        },
        100,
    ),
    "muzero": Case(
        # CartPole cannot fall in 5 steps: every episode ends at step 5.
        lambda: gym.make("CartPole-v1", max_episode_steps=5),
        {
            "num_simulations": 4,
            "network_kwargs": {"hidden_size": 16, "layers": 1, "support_size": 5},
            "batch_size": 16,
            "learning_starts": 20,
            "train_freq": 4,
            "gradient_steps": 1,
            "buffer_size": 2_000,
        },
        40,
    ),
    "mve": Case(_pendulum(20), _TD3_EXPANSION, 40),
    "pets": Case(
        _pendulum(),
        {
            "model_kwargs": {"ensemble_size": 3, "num_elites": 3, "hidden_sizes": [32, 32]},
            "planner_kwargs": {
                "population": 64,
                "num_elites": 8,
                "iterations": 3,
                "horizon": 5,
                "particles": 2,
            },
            "fit_kwargs": {"epochs": 3},
        },
        70,
    ),
    "pilco": Case(
        lambda: gym.make("mbwrap/CartPoleSwingUp-v0", max_episode_steps=6),
        {"horizon": 4, "num_basis": 4, "policy_iterations": 2, "model_kwargs": {"max_points": 20}},
        12,
    ),
    "planet": Case(
        _pendulum(),
        {
            "model_kwargs": {"deter": 16, "hidden": 16, "stoch": 4, "layers": 1},
            "planner_kwargs": {"population": 16, "num_elites": 4, "iterations": 2, "horizon": 3},
            "batch_size": 4,
            "sequence_length": 5,
            "gradient_steps": 2,
            "learning_starts": 50,
            "action_repeat": 2,
        },
        70,
    ),
    "simple": Case(
        _pong,
        {
            "model_kwargs": {
                "hidden_size": 4,
                "compress_steps": 2,
                "bits": 8,
                "bit_predictor_size": 8,
                "batch_size": 4,
                "sequence_length": 2,
            },
            "learning_starts": 40,
            "train_freq": 20,
            "first_fit_steps": 3,
            "fit_steps": 2,
            "imagined_steps": 64,
            "num_imagined_envs": 2,
            "imagination_horizon": 8,
            "agent_kwargs": {"n_steps": 8, "batch_size": 16, "n_epochs": 1},
        },
        60,
    ),
    "steve": Case(
        _pendulum(20),
        {
            **_TD3_EXPANSION,
            "model_kwargs": {
                **_TD3_EXPANSION["model_kwargs"],
                "ensemble_size": 2,
                "num_elites": 2,
            },
            "dynamics_members": 2,
            "critics": 2,
        },
        40,
    ),
    "tdm": Case(
        lambda: gym.make("mbwrap/PointGoal-v0", max_episode_steps=10),
        {
            "agent": "TD3",
            "agent_kwargs": {"batch_size": 8, **_NET16},
            "learning_starts": 20,
            "max_tau": 3,
        },
        30,
    ),
    "world-models": Case(
        _pendulum_pixels,
        {
            "model_kwargs": {
                "latent_dim": 4,
                "vae_channels": [4, 8, 8, 16],
                "hidden_size": 16,
                "vae_learning_rate": 1e-3,
            },
            "fit_kwargs": {"vae_epochs": 1, "rnn_epochs": 2},
            "population": 4,
            "rollouts": 2,
            "generations": 2,
            "imagination_horizon": 8,
            "learning_starts": 50,
            "train_freq": 50,
        },
        100,
    ),
}

#: Optional dependencies a case needs, by the module it imports.
NEEDS = {"simple": "ale_py", "gps": "mujoco", "world-models": "pygame"}


def torch_modules(algo: Any) -> Iterator[tuple[str, torch.nn.Module]]:
    """``(attribute path, module)`` for every torch module an algorithm holds: its own
    attributes (world models, networks, planners), those of its SB3 agent (the policy and
    its networks) and those of mbwrap objects it holds (filters, samplers, dreams), found
    through lists, tuples and dicts too."""
    seen: set[int] = set()

    def walk(value: Any, path: str, depth: int) -> Iterator[tuple[str, torch.nn.Module]]:
        if id(value) in seen or depth > 3:
            return
        seen.add(id(value))
        if isinstance(value, torch.nn.Module):
            yield path, value
            return
        if isinstance(value, dict):
            items: Any = value.items()
        elif isinstance(value, (list, tuple)):
            items = enumerate(value)
        elif isinstance(value, BaseAlgorithm) or type(value).__module__.startswith("mbwrap"):
            items = vars(value).items() if hasattr(value, "__dict__") else ()
        else:
            return
        for key, item in items:
            yield from walk(item, f"{path}.{key}", depth + 1)

    yield from walk(algo, type(algo).__name__, 0)


def test_every_algorithm_mbwrap_registers_has_a_case():
    """An algorithm added to mbwrap is not silently left untested."""
    ours = {info.name for info in plugins("algo", dist="mbwrap")}
    assert ours <= set(CASES), f"no GPU case for {sorted(ours - set(CASES))}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_algorithm_learns_saves_and_loads_onto_the_device(name, device, tmp_path):
    """A short run on the device, saved and loaded with ``device=``: every parameter and
    buffer of every torch module of the loaded algorithm is on the device (none was left
    on, or restored to, the CPU)."""
    if name not in available("algo"):
        pytest.skip(f"algorithm {name!r} is not installed")
    if name in NEEDS:
        pytest.importorskip(NEEDS[name])
    case = CASES[name]
    torch.manual_seed(0)
    algo = mbwrap.make_algo(name, case.env(), seed=0, device=str(device), **case.settings)
    algo.learn(case.steps)
    path = tmp_path / f"{name}.pt"
    algo.save(path)
    loaded = type(algo).load(path, env=case.env(), device=device)
    assert loaded.num_timesteps == algo.num_timesteps
    modules = dict(torch_modules(loaded))
    assert modules, f"{name}: no torch module found on the loaded algorithm"
    off = [
        f"{where}.{tensor_name} ({tensor.device})"
        for where, module in modules.items()
        for tensor_name, tensor in [*module.named_parameters(), *module.named_buffers()]
        if tensor.numel() and not on_device(tensor, device)
    ]
    assert off == [], f"{name}: off {device}: {off}"
