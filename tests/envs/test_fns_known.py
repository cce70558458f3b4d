"""The registered reward and termination functions of Gymnasium's tasks agree with the
real envs (default constructor arguments) on real transitions, called batched."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from mbwrap.envs.fns import EnvFns
from mbwrap.registry import get_fn

ENV_IDS = [
    "CartPole-v1",
    "Pendulum-v1",
    "MountainCarContinuous-v0",
    "InvertedPendulum-v5",
    "InvertedDoublePendulum-v5",
    "Hopper-v5",
    "Walker2d-v5",
    "HalfCheetah-v5",
    "Ant-v5",
    "Humanoid-v5",
    "Reacher-v5",
]
WITH_REWARD = {
    "CartPole-v1",
    "Pendulum-v1",
    "MountainCarContinuous-v0",
    "InvertedPendulum-v5",
    "Reacher-v5",
}
NEVER_TERMINATES = {"Pendulum-v1", "HalfCheetah-v5", "Reacher-v5"}
NUM_TRANSITIONS = 2000
SEED = 0


@dataclass(frozen=True)
class Transitions:
    """``n`` real steps: ``obs``, ``action``, ``next_obs`` as ``[n, ...]`` tensors in the
    env's own dtypes, ``reward: [n]`` float64 and ``terminated: [n]`` bool arrays."""

    obs: torch.Tensor
    action: torch.Tensor
    next_obs: torch.Tensor
    reward: np.ndarray
    terminated: np.ndarray


def _mountain_car_near_goal(env: Any, rng: np.random.Generator) -> np.ndarray:
    """Put the car around the goal, moving either way; return that observation."""
    state = np.array([rng.uniform(0.35, 0.6), rng.uniform(-0.07, 0.07)], dtype=np.float32)
    env.unwrapped.state = state
    return state.copy()


def _collect(
    env_id: str,
    *,
    sample_action: Callable[[gym.Env, np.random.Generator], Any] | None = None,
    set_start: Callable[[gym.Env, np.random.Generator], np.ndarray] | None = None,
    n: int = NUM_TRANSITIONS,
) -> Transitions:
    """Step ``gym.make(env_id)`` ``n`` times, resetting whenever an episode ends.

    :param sample_action: draws each action; the action space's ``sample`` by default.
    :param set_start: puts the env in a chosen state before each step and returns its
        observation.
    """
    env = gym.make(env_id)
    env.action_space.seed(SEED)
    rng = np.random.default_rng(SEED)
    obs, _ = env.reset(seed=SEED)
    rows: list[tuple[Any, ...]] = []
    for _ in range(n):
        if set_start is not None:
            obs = set_start(env, rng)
        action = env.action_space.sample() if sample_action is None else sample_action(env, rng)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        rows.append((obs, action, next_obs, float(reward), bool(terminated)))
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    obs_, action, next_obs_, reward, terminated = zip(*rows, strict=True)
    return Transitions(
        obs=torch.as_tensor(np.stack(obs_)),
        action=torch.as_tensor(np.stack(action)),
        next_obs=torch.as_tensor(np.stack(next_obs_)),
        reward=np.array(reward, dtype=np.float64),
        terminated=np.array(terminated, dtype=bool),
    )


@functools.cache
def _transitions(env_id: str) -> Transitions:
    """Random-action transitions of ``env_id``; MountainCar's start near the goal, since
    random actions never get there."""
    if env_id == "MountainCarContinuous-v0":
        return _collect(env_id, set_start=_mountain_car_near_goal)
    return _collect(env_id)


def _fns(env_id: str) -> EnvFns:
    fns = get_fn(env_id)
    assert isinstance(fns, EnvFns), f"{env_id}: get_fn returned {fns!r}"
    return fns


def _predict(fn: Callable, data: Transitions) -> np.ndarray:
    out = fn(data.obs, data.action, data.next_obs)
    assert isinstance(out, torch.Tensor)
    assert out.shape == (data.obs.shape[0],)
    return out.numpy()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_registered_for_every_env(env_id: str) -> None:
    fns = _fns(env_id)
    assert callable(fns.termination)
    assert (fns.reward is not None) == (env_id in WITH_REWARD)


@pytest.mark.parametrize("env_id", sorted(set(ENV_IDS) - {"InvertedDoublePendulum-v5"}))
def test_termination_matches_env(env_id: str) -> None:
    data = _transitions(env_id)
    if env_id in NEVER_TERMINATES:
        assert not data.terminated.any()
    else:
        assert data.terminated.any() and not data.terminated.all(), "need both kinds of step"
    terminated = _predict(_fns(env_id).termination, data)
    assert terminated.dtype == np.bool_
    np.testing.assert_array_equal(terminated, data.terminated)


def test_inverted_double_pendulum_termination_matches_env_off_the_threshold() -> None:
    # The env reads the tip from MuJoCo's site_xpos of the last RK4 stage, up to ~5e-5 from
    # the tip of the observed angles; only steps that close to the threshold may disagree.
    data = _transitions("InvertedDoublePendulum-v5")
    assert data.terminated.any() and not data.terminated.all()
    terminated = _predict(_fns("InvertedDoublePendulum-v5").termination, data)
    s1, s2, c1, c2 = (data.next_obs[:, i].numpy() for i in (1, 2, 3, 4))
    height = 0.6 * c1 + 0.6 * (c1 * c2 - s1 * s2)
    away = np.abs(height - 1.0) > 1e-4
    assert away.mean() > 0.99
    np.testing.assert_array_equal(terminated[away], data.terminated[away])


@pytest.mark.parametrize("env_id", sorted(WITH_REWARD))
def test_reward_matches_env(env_id: str) -> None:
    data = _transitions(env_id)
    reward = _predict(_fns(env_id).reward, data)
    np.testing.assert_allclose(reward, data.reward, rtol=1e-5, atol=1e-5)


def test_mountain_car_reaches_and_misses_the_goal_in_the_data() -> None:
    data = _transitions("MountainCarContinuous-v0")
    # Otherwise the +100 branch of the reward would go untested.
    assert 0.1 < data.terminated.mean() < 0.9


def test_pendulum_reward_clips_out_of_bounds_actions_like_the_env() -> None:
    data = _collect(
        "Pendulum-v1", sample_action=lambda env, rng: rng.uniform(-6.0, 6.0, size=(1,)), n=300
    )
    assert data.action.dtype == torch.float64
    assert (data.action.abs() > 2.0).float().mean() > 0.5
    reward = _predict(_fns("Pendulum-v1").reward, data)
    np.testing.assert_allclose(reward, data.reward, rtol=1e-5, atol=1e-5)
    # Clipped: the cost of a torque of 6 is that of 2.
    obs = torch.tensor([[1.0, 0.0, 0.0]])
    for torque in (6.0, 2.0, -6.0):
        reward = _fns("Pendulum-v1").reward(obs, torch.tensor([[torque]]), obs)
        assert float(reward) == pytest.approx(-0.001 * 2.0**2)


def test_mountain_car_reward_charges_the_unclipped_action_like_the_env() -> None:
    data = _collect(
        "MountainCarContinuous-v0",
        sample_action=lambda env, rng: rng.uniform(-3.0, 3.0, size=(1,)).astype(np.float32),
        set_start=_mountain_car_near_goal,
        n=300,
    )
    assert (data.action.abs() > 1.0).any() and data.terminated.any()
    fns = _fns("MountainCarContinuous-v0")
    np.testing.assert_array_equal(_predict(fns.termination, data), data.terminated)
    np.testing.assert_allclose(_predict(fns.reward, data), data.reward, rtol=1e-5, atol=1e-5)


def test_pendulum_reward_in_float64_and_with_a_flat_action() -> None:
    data = _transitions("Pendulum-v1")
    fn = _fns("Pendulum-v1").reward
    reward64 = fn(data.obs.double(), data.action.double(), data.next_obs.double())
    assert reward64.dtype == torch.float64
    np.testing.assert_allclose(reward64.numpy(), data.reward, rtol=1e-5, atol=1e-5)
    flat = fn(data.obs, data.action[:, 0], data.next_obs)
    np.testing.assert_allclose(flat.numpy(), data.reward, rtol=1e-5, atol=1e-5)


def test_cartpole_takes_int64_actions_and_float64_observations() -> None:
    data = _transitions("CartPole-v1")
    assert data.action.dtype == torch.int64 and data.action.shape == (NUM_TRANSITIONS,)
    fns = _fns("CartPole-v1")
    obs, next_obs = data.obs.double(), data.next_obs.double()
    np.testing.assert_array_equal(
        fns.termination(obs, data.action, next_obs).numpy(), data.terminated
    )
    np.testing.assert_array_equal(fns.reward(obs, data.action, next_obs).numpy(), data.reward)


@functools.cache
def _spaces(env_id: str) -> tuple[gym.Space, gym.Space]:
    env = gym.make(env_id)
    env.close()
    return env.observation_space, env.action_space


def _terminates_at(env_id: str, entries: dict[int, float]) -> bool:
    """Termination of one hand-made ``next_obs``: a healthy-looking observation of
    ``env_id`` (torso at a height inside the range) with ``entries`` set."""
    obs_space, action_space = _spaces(env_id)
    next_obs = torch.zeros(1, *obs_space.shape, dtype=torch.float64)
    next_obs[0, 0] = {
        "Hopper-v5": 1.25,
        "Walker2d-v5": 1.25,
        "Ant-v5": 0.75,
        "Humanoid-v5": 1.4,
    }.get(env_id, 0.0)
    for index, value in entries.items():
        next_obs[0, index] = value
    action = torch.zeros(1, *action_space.shape, dtype=torch.float64)
    return bool(_fns(env_id).termination(torch.zeros_like(next_obs), action, next_obs)[0])


@pytest.mark.parametrize(
    ("env_id", "entries", "expected"),
    [
        # hopper_v5.py: 0.7 < z, -0.2 < angle < 0.2, -100 < qpos[2:], qvel < 100, all strict.
        ("Hopper-v5", {}, False),
        ("Hopper-v5", {0: 0.7}, True),
        ("Hopper-v5", {0: 500.0}, False),  # z is not in the state check
        ("Hopper-v5", {1: 0.2}, True),
        ("Hopper-v5", {3: 100.0}, True),
        ("Hopper-v5", {3: 99.0}, False),
        ("Hopper-v5", {0: math.nan}, True),
        # walker2d_v5.py: 0.8 < z < 2, -1 < angle < 1; joint angles are not checked.
        ("Walker2d-v5", {0: 2.0}, True),
        ("Walker2d-v5", {0: 0.8}, True),
        ("Walker2d-v5", {1: -0.99}, False),
        ("Walker2d-v5", {1: -1.0}, True),
        ("Walker2d-v5", {3: 500.0}, False),
        # ant_v5.py: 0.2 <= z <= 1 inclusive, qpos and qvel finite; contact forces unchecked.
        ("Ant-v5", {0: 0.2}, False),
        ("Ant-v5", {0: 1.0}, False),
        ("Ant-v5", {0: 1.01}, True),
        ("Ant-v5", {26: math.inf}, True),
        ("Ant-v5", {27: math.nan}, False),
        # humanoid_v5.py: 1 < z < 2 strict.
        ("Humanoid-v5", {0: 1.0}, True),
        ("Humanoid-v5", {0: 1.99}, False),
        ("Humanoid-v5", {0: 2.0}, True),
        # inverted_pendulum_v5.py: |angle| > 0.2 or anything non-finite.
        ("InvertedPendulum-v5", {1: 0.2}, False),
        ("InvertedPendulum-v5", {1: -0.21}, True),
        ("InvertedPendulum-v5", {3: math.nan}, True),
        # inverted_double_pendulum_v5.py: tip height 0.6 cos q1 + 0.6 cos(q1 + q2) <= 1;
        # entries are [x, sin q1, sin q2, cos q1, cos q2, ...].
        ("InvertedDoublePendulum-v5", {3: 1.0, 4: 1.0}, False),
        ("InvertedDoublePendulum-v5", {1: 1.0, 3: 0.0, 4: 1.0}, True),
        ("HalfCheetah-v5", {0: 100.0}, False),
    ],
)
def test_termination_at_the_edges_of_the_healthy_ranges(
    env_id: str, entries: dict[int, float], expected: bool
) -> None:
    assert _terminates_at(env_id, entries) is expected


@pytest.mark.parametrize(
    ("x", "theta", "expected"),
    [
        (2.4, 0.0, False),
        (2.41, 0.0, True),
        (-2.41, 0.0, True),
        (0.0, -0.2094, False),
        (0.0, 0.2095, True),
    ],
)
def test_cartpole_thresholds(x: float, theta: float, expected: bool) -> None:
    next_obs = torch.tensor([[x, 0.0, theta, 0.0]])
    action = torch.zeros(1, dtype=torch.int64)
    assert bool(_fns("CartPole-v1").termination(next_obs, action, next_obs)[0]) is expected


@pytest.mark.parametrize(
    ("position", "velocity", "expected"),
    [(0.45, 0.0, True), (0.6, 0.07, True), (0.45, -1e-4, False), (0.4499, 0.07, False)],
)
def test_mountain_car_goal_edges(position: float, velocity: float, expected: bool) -> None:
    # continuous_mountain_car.py: position >= 0.45 and velocity >= goal_velocity = 0.
    next_obs = torch.tensor([[position, velocity]])
    action = torch.tensor([[0.5]])
    fns = _fns("MountainCarContinuous-v0")
    assert bool(fns.termination(next_obs, action, next_obs)[0]) is expected
    reward = float(fns.reward(next_obs, action, next_obs)[0])
    assert reward == pytest.approx(100.0 * expected - 0.1 * 0.5**2)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_stays_on_the_inputs_device(env_id: str) -> None:
    # The meta device holds no data: any host round-trip or tensor made elsewhere fails.
    obs_space, action_space = _spaces(env_id)
    obs = torch.empty(7, *obs_space.shape, device="meta")
    if isinstance(action_space, gym.spaces.Discrete):
        action = torch.empty(7, dtype=torch.int64, device="meta")
    else:
        action = torch.empty(7, *action_space.shape, device="meta")
    fns = _fns(env_id)
    for fn in (fns.reward, fns.termination):
        if fn is not None:
            out = fn(obs, action, obs)
            assert out.device.type == "meta" and out.shape == (7,)
