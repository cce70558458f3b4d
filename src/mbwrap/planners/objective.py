"""The planning objective: the predicted return of candidate action sequences."""

from __future__ import annotations

import torch

from mbwrap.envs.fns import BatchedFn
from mbwrap.models import WorldModel
from mbwrap.tree import tree_index

#: Returns below this are treated as "the model broke down" (NaN or infinite output).
NONFINITE_RETURN = -1e10


def predicted_returns(
    model: WorldModel,
    state: torch.Tensor,
    candidates: torch.Tensor,
    *,
    particles: int = 1,
    reward_fn: BatchedFn | None = None,
    termination_fn: BatchedFn | None = None,
    discount: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Expected return of every candidate sequence from every start state, in one batch.

    Each candidate is rolled out ``particles`` times (trajectory sampling, Chua et al.
    2018): the ``B * N * P`` rollouts step through the model together, and the return is
    the mean over particles. Each particle asks the model for its ensemble member once
    (``model.sample_members``: TS-inf models fix one per particle; others choose per
    step). A terminated rollout collects no reward afterwards; a learned termination head
    is used as a probability (the expected alive mask), never sampled. Returns that are
    NaN or infinite become :data:`NONFINITE_RETURN`.

    :param model: the world model.
    :param state: ``[B, *state_shape]`` model states (``model.encode(obs)``).
    :param candidates: ``[B, N, H, *act_shape]`` action sequences, elements of
        ``model.action_space`` (int64 for Discrete).
    :param particles: ``P`` rollouts per candidate.
    :param reward_fn: batched ``(obs, action, next_obs) -> [n]``; ``None``: the model's
        reward head.
    :param termination_fn: batched ``(obs, action, next_obs) -> [n]`` bool; ``None``: the
        model's termination head if it has one, else no termination.
    :param discount: per-step discount of the return.
    :return: ``[B, N]`` float32.
    """
    batch, num, horizon = candidates.shape[:3]
    rows = batch * num * particles
    # Row r of the rollout batch is (start b, candidate n, particle p) in C order.
    current = state.repeat_interleave(num * particles, dim=0)
    actions = candidates.repeat_interleave(particles, dim=1).reshape(
        rows, horizon, *candidates.shape[3:]
    )
    member = model.sample_members(rows, generator)
    out = model.rollout(current, actions, generator=generator, member=member)
    steps = actions.transpose(0, 1).flatten(0, 1)  # [H * R, *act_shape], step-major
    # Decoding is only needed by functions of observations (and costs a decoder pass for
    # latent models), so it is skipped when the model's own heads decide. Each function
    # is called once on all H * R transitions.
    if reward_fn is not None or termination_fn is not None:
        # Step-major: row t * R + r is rollout r at step t (a tensor or a dict of them).
        obs = model.decode(out.states.flatten(0, 1))
        before = tree_index(obs, slice(0, horizon * rows))
        after = tree_index(obs, slice(rows, None))
    if reward_fn is not None:
        reward = reward_fn(before, steps, after).reshape(horizon, rows)
    elif out.reward is not None:
        reward = out.reward
    else:
        raise ValueError(
            f"reward_fn: {type(model).__name__} has no reward head and no reward function "
            f"is registered for env id {model.env_id!r}; give the planner a reward_fn"
        )
    if termination_fn is not None:
        done = termination_fn(before, steps, after).reshape(horizon, rows).float()
    elif out.terminated is not None:
        done = out.terminated.float()
    else:
        done = None
    # A rollout collects step t's reward while alive: not terminated before step t.
    weights = discount ** torch.arange(horizon, device=state.device, dtype=torch.float32)
    gains = reward.float() * weights[:, None]
    if done is not None:
        alive = torch.cumprod(1.0 - done, 0)
        gains = gains * torch.cat([torch.ones_like(alive[:1]), alive[:-1]])
    total = torch.nan_to_num(
        gains.sum(0), nan=NONFINITE_RETURN, posinf=NONFINITE_RETURN, neginf=NONFINITE_RETURN
    )
    return total.reshape(batch, num, particles).mean(-1)
