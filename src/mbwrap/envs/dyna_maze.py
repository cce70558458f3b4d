"""The Dyna maze of Sutton & Barto (2018), Figure 8.2."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

# Sutton & Barto 2018, Figure 8.2: 6 x 9 grid, start S, goal G, walls #.
DYNA_MAZE_LAYOUT: tuple[str, ...] = (
    ".......#G",
    "..#....#.",
    "S.#....#.",
    "..#......",
    ".....#...",
    ".........",
)

# Row and column change of each action.
_MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]])


class DynaMazeEnv(gym.Env):
    """A deterministic grid maze: reward 1 and termination on reaching ``G``, else 0.

    Observation: ``Discrete(rows * cols)``, the cell ``row * cols + col``.
    Action: ``Discrete(4)``: up, down, left, right. A move into a wall or off the grid
    leaves the agent in place. There is no time limit: an episode ends only at the goal
    (the book's setting).

    :param layout: rows of ``.`` (free), ``#`` (wall), ``S`` (start) and ``G`` (goal);
        defaults to the book's maze. Its fns entry (``mbwrap.fns``) assumes the default.
    :param render_mode: ``"ansi"`` or ``None``.
    """

    # render_fps as gymnasium's toy-text grids (FrozenLake); its env checker warns without one.
    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self, layout: tuple[str, ...] | list[str] = DYNA_MAZE_LAYOUT, render_mode: str | None = None
    ):
        grid = [list(row) for row in layout]
        widths = {len(row) for row in grid}
        if len(widths) != 1:
            raise ValueError(f"layout: rows must have equal length, got lengths {sorted(widths)}")
        self.layout = tuple(layout)
        self.rows, self.cols = len(grid), widths.pop()
        self.walls = np.array([[c == "#" for c in row] for row in grid])
        starts = [(r, c) for r, row in enumerate(grid) for c, ch in enumerate(row) if ch == "S"]
        goals = [(r, c) for r, row in enumerate(grid) for c, ch in enumerate(row) if ch == "G"]
        if len(starts) != 1 or len(goals) != 1:
            raise ValueError("layout: needs exactly one 'S' and one 'G'")
        self.start, self.goal = starts[0], goals[0]
        self.observation_space = spaces.Discrete(self.rows * self.cols)
        self.action_space = spaces.Discrete(4)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode: expected one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.render_mode = render_mode
        self._pos = self.start

    @property
    def goal_state(self) -> int:
        """The observation of the goal cell."""
        return self.goal[0] * self.cols + self.goal[1]

    def _obs(self) -> int:
        return self._pos[0] * self.cols + self._pos[1]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[int, dict]:
        super().reset(seed=seed)
        self._pos = self.start
        return self._obs(), {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict]:
        if not self.action_space.contains(action):
            raise ValueError(f"action: expected an int in [0, 4), got {action!r}")
        r, c = self._pos[0] + _MOVES[int(action)][0], self._pos[1] + _MOVES[int(action)][1]
        if 0 <= r < self.rows and 0 <= c < self.cols and not self.walls[r, c]:
            self._pos = (int(r), int(c))
        reached = self._pos == self.goal
        return self._obs(), float(reached), bool(reached), False, {}

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        lines = []
        for r in range(self.rows):
            row = [
                "A" if (r, c) == self._pos else self.layout[r][c].replace("S", ".")
                for c in range(self.cols)
            ]
            lines.append("".join(row))
        return "\n".join(lines) + "\n"
