"""Guided policy search's local side: the linear-Gaussian controllers acting in the real
conditions, and the sample trajectories they leave in the replay buffer."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from mbwrap.buffers import ReplayBuffer
from mbwrap.planners.lqg import LinearGaussianController


class LocalControllers:
    """An SB3-style predictor acting with controller ``m`` in env ``m`` of a vector env of
    ``M`` conditions: ``u = gain_t x + offset_t + chol(cov_t) eps``, clipped to the action
    space, ``t`` the step of the current episode.

    The time index is the recurrent ``state`` SB3's ``predict`` passes along; it restarts
    at 0 where ``episode_start`` is true.

    :param controller: ``M`` controllers over ``T`` steps.
    :param action_space: the env's Box action space (actions are clipped to it).
    :param generator: the source of the exploration noise.
    """

    def __init__(
        self,
        controller: LinearGaussianController,
        action_space: spaces.Box,
        generator: torch.Generator,
    ) -> None:
        self.controller = controller
        self.generator = generator
        self.low = torch.as_tensor(action_space.low, dtype=torch.float64)
        self.high = torch.as_tensor(action_space.high, dtype=torch.float64)
        self._chol = torch.linalg.cholesky(controller.cov).cpu()

    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """``observation: [M, X]`` -> actions ``[M, U]`` and the next time indices."""
        obs = torch.as_tensor(np.asarray(observation), dtype=torch.float64)
        count, horizon = self.controller.offset.shape[:2]
        if obs.shape[0] != count:
            raise ValueError(
                f"observation: expected one row per condition ({count}), got {obs.shape[0]}"
            )
        t = np.zeros(count, np.int64) if state is None else np.array(state[0], np.int64)
        if episode_start is not None:
            t[np.asarray(episode_start, bool)] = 0
        step = torch.as_tensor(np.minimum(t, horizon - 1))
        rows = torch.arange(count)
        gain = self.controller.gain[rows, step].cpu()
        action = torch.einsum("mux,mx->mu", gain, obs) + self.controller.offset[rows, step].cpu()
        if not deterministic:
            noise = torch.randn(action.shape, dtype=action.dtype, generator=self.generator)
            action = action + torch.einsum("muv,mv->mu", self._chol[rows, step], noise)
        action = torch.minimum(torch.maximum(action, self.low), self.high)
        return action.float().numpy(), (t + 1,)


def latest_episodes(
    buffer: ReplayBuffer, episodes: int, horizon: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The last ``episodes`` episodes of each of the buffer's ``M`` streams (conditions),
    all of length ``horizon`` and collected side by side.

    :return: ``(x [M, N, T, X], u [M, N, T, U], x_next [M, N, T, X])`` in float64.
    :raises ValueError: when those rows are not whole episodes of ``horizon`` steps ending
        together (an env that terminated early, or collection cut mid-episode).
    """
    rows = episodes * horizon
    if buffer.stored_rows < rows:
        raise ValueError(
            f"buffer: expected {episodes} episodes of {horizon} steps per condition, "
            f"it holds {buffer.stored_rows} steps"
        )
    batch = buffer.transitions()
    count = buffer.n_envs

    def grid(values: torch.Tensor) -> torch.Tensor:
        # transitions() is row-major over [rows, streams]; regroup as [M, N, T, ...].
        tail = values.reshape(-1, count, *values.shape[1:])[-rows:]
        tail = tail.reshape(episodes, horizon, count, -1)
        return tail.permute(2, 0, 1, 3).to(torch.float64)

    ends = grid((batch.terminated | batch.truncated).float()).squeeze(-1)
    expected = torch.zeros_like(ends)
    expected[..., -1] = 1.0
    if not torch.equal(ends, expected):
        raise ValueError(
            f"buffer: the latest steps are not {episodes} whole episodes of {horizon} steps "
            "in every condition; guided policy search needs episodes of fixed length "
            "(no early termination)"
        )
    return grid(batch.obs), grid(batch.action), grid(batch.next_obs)
