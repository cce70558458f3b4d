"""A learned world model as a ``gymnasium.vector.VectorEnv`` stepped in one batched call."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from mbwrap.device import accelerator_paths
from mbwrap.envs.action_masks import ActionMasks
from mbwrap.envs.dream_env import _check_horizon
from mbwrap.envs.fns.base import ActionMaskFn, BatchedFn
from mbwrap.envs.host_copy import step_to_host
from mbwrap.envs.imagination import ImaginationCore, NonFinitePolicy, StartStates
from mbwrap.models import WorldModel
from mbwrap.spaces import to_numpy


def _row(batch: Any, row: int) -> Any:
    """Row ``row`` of a host batch: an array, or a nested ``dict``/``tuple`` of arrays."""
    if isinstance(batch, dict):
        return {key: _row(value, row) for key, value in batch.items()}
    if isinstance(batch, tuple):
        return tuple(_row(value, row) for value in batch)
    return batch[row]


class DreamVecEnv(VectorEnv):
    """``num_envs`` imagined episodes, all stepped by one batched model call on its device.

    Reward, termination and truncation follow :class:`~mbwrap.DreamEnv`. Finished
    episodes restart from a fresh start state according to ``autoreset_mode``:

    - ``SAME_STEP`` (default): the step that ends an episode already returns the next
      episode's first observation; the last one is in ``info["final_obs"]`` (masked by
      ``info["_final_obs"]``). This is what SB3 expects.
    - ``NEXT_STEP`` (Gymnasium's usual default): the ending step returns the last
      observation; the next ``step`` ignores that env's action and returns the reset
      observation with reward 0.

    :param num_envs: number of imagined episodes run in parallel.
    :param autoreset_mode: see above; declared in ``metadata["autoreset_mode"]``.
    :param action_mask_fn: batched ``(obs) -> [num_envs, n]`` bool valid actions for
        :meth:`action_masks` (else the registered one, the model's head, or all valid).

    Other parameters as :class:`~mbwrap.DreamEnv`.
    """

    def __init__(
        self,
        model: WorldModel,
        num_envs: int,
        start_states: StartStates,
        horizon: int,
        reward_fn: BatchedFn | None = None,
        termination_fn: BatchedFn | None = None,
        on_nonfinite: NonFinitePolicy = "truncate",
        member: int | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
        action_mask_fn: ActionMaskFn | None = None,
    ) -> None:
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs: expected a positive int, got {num_envs!r}")
        try:
            mode = AutoresetMode(autoreset_mode)
        except ValueError as err:
            raise ValueError(
                "autoreset_mode: expected AutoresetMode.SAME_STEP or NEXT_STEP, "
                f"got {autoreset_mode!r}"
            ) from err
        if mode == AutoresetMode.DISABLED:
            raise ValueError("autoreset_mode: DreamVecEnv supports SAME_STEP and NEXT_STEP")
        self.horizon = _check_horizon(horizon)
        self.num_envs = int(num_envs)
        self.model = model
        self.core = ImaginationCore(
            model, self.num_envs, start_states, reward_fn, termination_fn, on_nonfinite, member
        )
        #: Where :meth:`action_masks` come from (settable, e.g. after loading).
        self.action_masker = ActionMasks(model, action_mask_fn)
        self.single_observation_space = model.dream_observation_space
        self.single_action_space = model.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.metadata = {"autoreset_mode": mode, "render_modes": []}
        self.render_mode = None
        # Steps since reset() and, per episode, the count at which it is truncated: one
        # comparison a step instead of a counter per episode to increment (and against a
        # NumPy integer, which NumPy compares faster than a Python one).
        self._steps = np.int64(0)
        self._deadline = np.full(self.num_envs, self.horizon, dtype=np.int64)
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        self._packed = False

    @property
    def autoreset_mode(self) -> AutoresetMode:
        return self.metadata["autoreset_mode"]

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Start all ``num_envs`` episodes.

        :param seed: one seed for the whole batch (all envs share one generator); a list
            is accepted for Gymnasium compatibility and its first entry is used.
        """
        if isinstance(seed, (list, tuple)):
            seed = next((s for s in seed if s is not None), None)
        if seed is not None or self._np_random is None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        self.core.seed(int(self.np_random.integers(2**63 - 1)))
        # Whether a step's outputs come to the host as one packed copy (step_to_host): the
        # same arrays either way, so decided here rather than every step, where reading the
        # switch (an environment variable) would cost as much as a small step's arithmetic.
        self._packed = accelerator_paths(self.model.device)
        obs = self.core.reset()
        self._steps = np.int64(0)
        self._deadline[:] = self.horizon
        self._needs_reset[:] = False
        return to_numpy(obs, self.single_observation_space), {}

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        core = self.core
        if core.state is None:
            raise RuntimeError("DreamVecEnv: call reset() before step()")
        device = self.model.device
        space = self.single_observation_space
        next_step = self.autoreset_mode == AutoresetMode.NEXT_STEP
        # np.count_nonzero to test for any: a third of ndarray.any's cost at these sizes.
        restart = self._needs_reset if next_step and np.count_nonzero(self._needs_reset) else None
        # In NEXT_STEP mode the episodes being restarted are stepped too (one batched call)
        # but their outcome is discarded, so their model output must not count.
        obs, reward, terminated, nonfinite = core.step(
            actions, ignore=None if restart is None else torch.as_tensor(restart, device=device)
        )
        self._steps += 1
        obs_np, (reward_np, terminated_np, nonfinite_np) = step_to_host(
            obs,
            space,
            ((reward, np.float64), (terminated, np.bool_), (nonfinite, np.bool_)),
            packed=self._packed,
        )
        truncated_np = (self._deadline <= self._steps) | nonfinite_np
        done = terminated_np | truncated_np
        any_done = np.count_nonzero(done) > 0
        # Episodes cut by non-finite output are done: no second test on the common step.
        n_nonfinite = np.count_nonzero(nonfinite_np) if any_done else 0
        any_nonfinite = n_nonfinite > 0
        infos: dict[str, Any] = {}
        if any_nonfinite:
            core.report_nonfinite(n_nonfinite)
            infos["model_nonfinite"] = nonfinite_np
            infos["_model_nonfinite"] = nonfinite_np.copy()
        if not next_step:
            if any_done:
                ended = np.flatnonzero(done)
                final_obs = np.full(self.num_envs, None, dtype=object)
                for i in ended:
                    final_obs[i] = _row(obs_np, i)
                infos["final_obs"], infos["_final_obs"] = final_obs, done.copy()
                # As gymnasium's SyncVectorEnv: the ending step's own info goes in final_info.
                final_info: dict[str, Any] = {}
                if any_nonfinite:
                    final_info["model_nonfinite"] = nonfinite_np.copy()
                    final_info["_model_nonfinite"] = nonfinite_np.copy()
                infos["final_info"], infos["_final_info"] = final_info, done.copy()
                obs_np = to_numpy(core.reset(torch.as_tensor(ended, device=device)), space)
                self._deadline[done] = self._steps + self.horizon
        else:
            if restart is not None:
                index = torch.as_tensor(np.flatnonzero(restart), device=device)
                obs_np = to_numpy(core.reset(index), space)
                self._deadline[restart] = self._steps + self.horizon
                reward_np[restart] = 0.0
                terminated_np[restart] = False
                truncated_np[restart] = False
                done = terminated_np | truncated_np
            self._needs_reset = done
        return obs_np, reward_np, terminated_np, truncated_np, infos

    def action_masks(self) -> np.ndarray:
        """Which actions are valid now in each episode, as sb3-contrib's ``MaskablePPO``
        asks: ``[num_envs, n]`` bool for ``Discrete(n)``, the per-dimension masks
        concatenated for ``MultiDiscrete`` (see :mod:`mbwrap.envs.action_masks`); one
        batched call for all episodes."""
        return self.action_masker.current(self.core)
