"""Pure return estimators for learning from imagined trajectories."""

from __future__ import annotations

import torch


def lambda_returns(
    reward: torch.Tensor,
    value: torch.Tensor,
    continues: torch.Tensor,
    *,
    discount: float,
    lambda_: float,
) -> torch.Tensor:
    """TD(lambda) returns of imagined trajectories, computed backwards in time.

    ``R_t = r_t + gamma c_t ((1 - lambda) v_{t+1} + lambda R_{t+1})`` with ``R_H = v_H``
    (Dreamer, Hafner et al. 2020, eq. 6; DreamerV3, eq. 7). ``r_t`` is the reward of the
    step from ``t`` to ``t + 1`` and ``c_t`` the probability that the episode continues
    after it.

    :param reward: ``[H, B]``, the rewards of the ``H`` imagined steps.
    :param value: ``[H + 1, B]``, value estimates of the states ``0 .. H``.
    :param continues: ``[H, B]`` in ``[0, 1]``, continuation after each step.
    :param discount: ``gamma``.
    :param lambda_: ``lambda`` in ``[0, 1]``: 0 gives one-step TD targets, 1 the
        discounted Monte-Carlo return bootstrapped at the horizon.
    :return: ``[H, B]`` returns of the states ``0 .. H - 1``.
    """
    if reward.ndim < 1 or value.shape[0] != reward.shape[0] + 1:
        raise ValueError(
            f"value: expected one more step than reward ({reward.shape[0] + 1}), got shape "
            f"{tuple(value.shape)} for reward of shape {tuple(reward.shape)}"
        )
    if continues.shape != reward.shape:
        raise ValueError(
            f"continues: expected the reward's shape {tuple(reward.shape)}, got "
            f"{tuple(continues.shape)}"
        )
    if not 0.0 <= lambda_ <= 1.0:
        raise ValueError(f"lambda_: expected a value in [0, 1], got {lambda_!r}")
    # The bootstrap part of every target is known up front, so the loop carries only the
    # recursion itself.
    interim = reward + discount * continues * (1.0 - lambda_) * value[1:]
    out = torch.empty_like(reward)
    last = value[-1]
    for t in range(reward.shape[0] - 1, -1, -1):
        last = interim[t] + discount * continues[t] * lambda_ * last
        out[t] = last
    return out


def percentile_range(x: torch.Tensor, low: float = 0.05, high: float = 0.95) -> torch.Tensor:
    """``quantile(x, high) - quantile(x, low)`` over all elements: a scalar tensor.

    DreamerV3 (Section 4) divides advantages by ``max(1, S)`` where ``S`` is an
    exponential moving average (decay 0.99) of this range of the returns with the 5th
    and 95th percentiles, robust to outliers and never amplifying small returns.
    """
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"low, high: expected 0 <= low < high <= 1, got {low!r}, {high!r}")
    flat = x.detach().float().reshape(-1)
    bounds = torch.quantile(flat, torch.tensor([low, high], device=flat.device))
    return bounds[1] - bounds[0]
