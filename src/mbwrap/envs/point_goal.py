"""A small goal-conditioned task: move a point in the plane to a goal.

It has the observation layout of Gymnasium-Robotics' goal-conditioned envs (a ``Dict`` of
``observation``, ``achieved_goal`` and ``desired_goal``) and their ``compute_reward``, the
sparse reward of Andrychowicz et al. (2017): ``0`` within ``distance_threshold`` of the goal,
else ``-1``. It steps in microseconds, so tests and examples of Dict observations and
hindsight relabelling run anywhere.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class PointGoalEnv(gym.Env):
    """A point in ``[-1, 1]^2`` moved by velocity actions toward a random goal.

    Observation: ``Dict(observation=Box(-1, 1, (2,)), achieved_goal=Box(-1, 1, (2,)),
    desired_goal=Box(-1, 1, (2,)))``: the point's position (also the achieved goal) and
    the goal. Action: ``Box(-1, 1, (2,))``, a displacement of at most ``max_step`` per
    axis. Reward: :meth:`compute_reward`. The episode never terminates; register it with a
    time limit (``mbwrap/PointGoal-v0``: 50 steps, as FetchReach's).

    :param distance_threshold: success radius (FetchReach's 0.05).
    :param max_step: largest move per axis and step.
    """

    metadata = {"render_modes": []}

    def __init__(self, distance_threshold: float = 0.05, max_step: float = 0.1) -> None:
        self.distance_threshold = float(distance_threshold)
        self.max_step = float(max_step)
        box = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = spaces.Dict(
            {"observation": box, "achieved_goal": box, "desired_goal": box}
        )
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._pos = np.zeros(2, np.float32)
        self._goal = np.zeros(2, np.float32)

    def _obs(self) -> dict[str, np.ndarray]:
        return {
            "observation": self._pos.copy(),
            "achieved_goal": self._pos.copy(),
            "desired_goal": self._goal.copy(),
        }

    def compute_reward(
        self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any
    ) -> np.ndarray:
        """``0`` where ``achieved_goal`` is within the threshold of ``desired_goal``, else
        ``-1``; batched over leading dimensions (``[..., 2] -> [...]``), as HER needs."""
        distance = np.linalg.norm(np.asarray(achieved_goal) - np.asarray(desired_goal), axis=-1)
        return -(distance > self.distance_threshold).astype(np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self._pos = self.np_random.uniform(-0.5, 0.5, 2).astype(np.float32)
        self._goal = self.np_random.uniform(-0.8, 0.8, 2).astype(np.float32)
        return self._obs(), {}

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        move = np.clip(np.asarray(action, np.float32), -1.0, 1.0) * self.max_step
        self._pos = np.clip(self._pos + move, -1.0, 1.0).astype(np.float32)
        reward = float(self.compute_reward(self._pos, self._goal, None))
        info = {"is_success": reward == 0.0}
        return self._obs(), reward, False, False, info
