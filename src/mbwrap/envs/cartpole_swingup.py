"""The cart-pole swing-up task as PILCO defines it (Deisenroth & Rasmussen 2011, Section
3.1; the dynamics and constants of its released code): a continuous force moves the cart,
the pole starts hanging down, and the reward is how close the pole's tip is to its upright
position."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

# PILCO's cart-pole: pole length and mass, cart mass, friction, gravity; force in
# [-10, 10] N applied for dt = 0.1 s (zero-order hold); the cost width 0.25 m.
POLE_LENGTH, POLE_MASS, CART_MASS, FRICTION, GRAVITY = 0.5, 0.5, 0.5, 0.1, 9.82
MAX_FORCE, DT, COST_WIDTH = 10.0, 0.1, 0.25
_SUBSTEPS = 10  # RK4 steps per control step


def cartpole_derivatives(z: np.ndarray, force: float) -> np.ndarray:
    """``d/dt (x, x_dot, theta_dot, theta)``, theta = 0 hanging down (PILCO's
    ``dynamics_cp``)."""
    _, dx, dtheta, theta = z
    m, big_m, ell, b, g = POLE_MASS, CART_MASS, POLE_LENGTH, FRICTION, GRAVITY
    s, c = np.sin(theta), np.cos(theta)
    ddx = (2 * m * ell * dtheta**2 * s + 3 * m * g * s * c + 4 * force - 4 * b * dx) / (
        4 * (big_m + m) - 3 * m * c**2
    )
    ddtheta = (
        -3 * m * ell * dtheta**2 * s * c - 6 * (big_m + m) * g * s - 6 * (force - b * dx) * c
    ) / (4 * ell * (m + big_m) - 3 * m * ell * c**2)
    return np.array([dx, ddx, ddtheta, dtheta])


def tip_distance(observation: np.ndarray) -> np.ndarray:
    """Distance of the pole's tip from its upright position above the origin, ``[...]``
    from observations ``[..., 5]`` = ``(x, x_dot, theta_dot, sin theta, cos theta)``."""
    x, s, c = observation[..., 0], observation[..., 3], observation[..., 4]
    return np.hypot(x + POLE_LENGTH * s, POLE_LENGTH + POLE_LENGTH * c)


class CartPoleSwingUpEnv(gym.Env):
    """PILCO's cart-pole swing-up.

    Observation: ``(x, x_dot, theta_dot, sin theta, cos theta)`` with theta = 0 hanging
    down and pi upright. Action: the force, ``Box(-10, 10, (1,))`` N, held for 0.1 s.
    Start: ``theta, x, ...`` all ``N(0, 0.1^2)`` (the pole hanging down). Reward:
    ``exp(-d^2 / (2 * 0.25^2))`` with ``d`` the tip's distance from upright (1 minus
    PILCO's saturating cost), so an episode's return counts the steps near upright. The
    episode never terminates; ``mbwrap/CartPoleSwingUp-v0`` limits it to 30 steps (3 s;
    PILCO's task horizon was 2.5 s). ``info["is_success"]``: the tip is within 0.25 m of
    upright.
    """

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        high = np.array([np.inf, np.inf, np.inf, 1.0, 1.0], np.float32)
        self.observation_space = spaces.Box(-high, high, (5,), np.float32)
        self.action_space = spaces.Box(-MAX_FORCE, MAX_FORCE, (1,), np.float32)
        self._z = np.zeros(4)

    def _obs(self) -> np.ndarray:
        x, dx, dtheta, theta = self._z
        return np.array([x, dx, dtheta, np.sin(theta), np.cos(theta)], np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._z = self.np_random.normal(0.0, 0.1, 4)
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        force = float(np.clip(np.asarray(action, np.float64).reshape(-1)[0], -MAX_FORCE, MAX_FORCE))
        h = DT / _SUBSTEPS
        z = self._z
        for _ in range(_SUBSTEPS):
            k1 = cartpole_derivatives(z, force)
            k2 = cartpole_derivatives(z + h / 2 * k1, force)
            k3 = cartpole_derivatives(z + h / 2 * k2, force)
            k4 = cartpole_derivatives(z + h * k3, force)
            z = z + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        self._z = z
        obs = self._obs()
        distance = float(tip_distance(obs))
        reward = float(np.exp(-0.5 * distance**2 / COST_WIDTH**2))
        return obs, reward, False, False, {"is_success": distance < COST_WIDTH}
