"""Short model rollouts branched from real states, stored as transitions (MBPO's
"model rollouts", Janner et al. 2019, Algorithm 2): every rollout of the batch is stepped
in one model call per step, on the model's device."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from mbwrap.buffers import ReplayBuffer
from mbwrap.envs.imagination import ImaginationCore
from mbwrap.models import WorldModel

#: ``obs: [B, *obs_shape] -> actions: [B, *act_shape]`` on the model's device.
BatchPolicy = Callable[[torch.Tensor], torch.Tensor]


def branched_rollouts(
    model: WorldModel,
    start_states: Any,
    policy: BatchPolicy,
    buffer: ReplayBuffer,
    *,
    num_rollouts: int,
    length: int,
    seed: int | None = None,
) -> dict[str, float]:
    """Roll ``num_rollouts`` rollouts of at most ``length`` steps out of ``model`` from
    start states drawn uniformly from ``start_states``, acting with ``policy``, and add
    each transition to ``buffer``.

    A rollout stops where it terminates (the registered termination function, else the
    model's head); ``truncated`` is never set. A transition with a non-finite prediction
    is dropped, ends its rollout and is reported once (``NonFiniteModelWarning``).

    :param start_states: what :class:`~mbwrap.envs.imagination.ImaginationCore` draws
        start states from (a :class:`~mbwrap.ReplayBuffer` of real transitions).
    :param seed: seeds the draw of start states and the model's sampling.
    :return: ``rollout_length``, ``mean_rollout_length`` (transitions added per rollout),
        ``reward_mean``, ``added``, ``model_buffer_size``, ``model_buffer_capacity``.
    """
    core = ImaginationCore(model, num_rollouts, start_states=start_states)
    core.seed(seed)
    obs = core.reset()
    alive = torch.ones(num_rollouts, dtype=torch.bool, device=model.device)
    added, reward_sum = 0, 0.0
    for _ in range(length):
        action = policy(obs)
        # Ended rollouts are stepped too (one batched call) and their output dropped; the
        # core keeps any non-finite state at its last finite value.
        next_obs, reward, terminated, nonfinite = core.step(action)
        keep = alive & ~nonfinite
        count = int(keep.sum())
        core.report_nonfinite(int((alive & nonfinite).sum()))
        if count:
            truncated = torch.zeros(count, dtype=torch.bool, device=keep.device)
            buffer.extend(
                obs[keep], action[keep], reward[keep], next_obs[keep], terminated[keep], truncated
            )
            added += count
            reward_sum += float(reward[keep].sum())
        alive = keep & ~terminated
        if not bool(alive.any()):
            break
        obs = next_obs
    return {
        "rollout_length": length,
        "mean_rollout_length": added / num_rollouts,
        "reward_mean": reward_sum / max(added, 1),
        "added": added,
        "model_buffer_size": len(buffer),
        "model_buffer_capacity": buffer.capacity,
    }
