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


def horizon_targets(
    reward: torch.Tensor, value: torch.Tensor, continues: torch.Tensor, *, discount: float
) -> torch.Tensor:
    """Value-expansion targets of one state for every horizon ``i = 0 .. H``.

    ``T_i = sum_{t < i} gamma^t C_t r_t + gamma^i C_i v_i`` with ``C_t = prod_{s < t} c_s``
    the probability that the episode is still running at step ``t``: the first ``i``
    imagined rewards, then the value of the state reached (STEVE, Buckman et al. 2018,
    Section 3; ``T_H`` is MVE's target, Feinberg et al. 2018, eq. 3). Extra dimensions
    after the first (ensemble members, batch) are carried through.

    :param reward: ``[H, ...]`` rewards of the imagined steps.
    :param value: ``[H + 1, ...]`` values of the states ``0 .. H``.
    :param continues: ``[H, ...]`` in ``[0, 1]``, continuation after each step.
    :return: ``[H + 1, ...]``.
    """
    if value.shape[0] != reward.shape[0] + 1 or value.shape[1:] != reward.shape[1:]:
        raise ValueError(
            f"value: expected shape {(reward.shape[0] + 1, *reward.shape[1:])} (one more "
            f"step than reward), got {tuple(value.shape)}"
        )
    if continues.shape != reward.shape:
        raise ValueError(
            f"continues: expected the reward's shape {tuple(reward.shape)}, got "
            f"{tuple(continues.shape)}"
        )
    horizon = reward.shape[0]
    powers = discount ** torch.arange(horizon + 1, dtype=value.dtype, device=value.device)
    powers = powers.reshape(-1, *([1] * (value.ndim - 1)))
    running = torch.cat([torch.ones_like(value[:1]), torch.cumprod(continues, 0)])  # C_0..C_H
    earned = torch.cat(
        [torch.zeros_like(value[:1]), torch.cumsum(powers[:-1] * running[:-1] * reward, 0)]
    )
    return earned + powers * running * value


def inverse_variance_mix(
    candidates: torch.Tensor, *, eps: float = 1e-8
) -> tuple[torch.Tensor, torch.Tensor]:
    """STEVE's target: the candidates' mean at each horizon, weighted by the inverse of
    their variance across the ensembles (Buckman et al. 2018, eq. 5).

    :param candidates: ``[H + 1, E, ...]`` the target of each horizon under each of ``E``
        ensemble combinations (dynamics x reward x Q members).
    :param eps: added to each variance, so that a horizon whose candidates agree exactly
        takes (almost) all the weight without dividing by zero.
    :return: ``(target [...], weights [H + 1, ...])``; the weights sum to 1 over the
        horizons.
    """
    if candidates.ndim < 2 or candidates.shape[1] < 2:
        raise ValueError(
            "candidates: expected [H + 1, E, ...] with E >= 2 ensemble combinations, got "
            f"shape {tuple(candidates.shape)}"
        )
    mean = candidates.mean(1)
    precision = 1.0 / (candidates.var(1, unbiased=False) + eps)
    weights = precision / precision.sum(0, keepdim=True)
    return (weights * mean).sum(0), weights


def expansion_as_one_step(
    reward: torch.Tensor, continues: torch.Tensor, *, discount: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Value-expansion targets written as one-step transitions, so that an SB3 off-policy
    agent's own update computes them.

    SB3's critics regress on ``rewards + (1 - dones) * gamma * Q'(next_obs)``. For the
    imagined state ``i`` of an ``H``-step rollout (MVE's TD-k trick trains every one,
    Feinberg et al. 2018, Section 3.1) the target is ``sum_{t = i}^{H - 1} gamma^{t - i}
    C_{i,t} r_t + gamma^{H - i} C_{i,H} Q'(s_H)`` with ``C_{i,t}`` the continuation from
    ``i`` to ``t``: the same form with ``next_obs = s_H``, these ``rewards`` and
    ``dones = 1 - gamma^{H - i - 1} C_{i,H}``.

    :param reward: ``[H, ...]`` rewards of the imagined steps.
    :param continues: ``[H, ...]`` in ``[0, 1]``, continuation after each step.
    :return: ``(rewards [H, ...], dones [H, ...])`` for the states ``0 .. H - 1``.
    """
    if continues.shape != reward.shape:
        raise ValueError(
            f"continues: expected the reward's shape {tuple(reward.shape)}, got "
            f"{tuple(continues.shape)}"
        )
    rewards = torch.empty_like(reward)
    carried = torch.ones_like(reward)  # gamma^{H - 1 - i} C_{i,H}, built backwards
    total = torch.zeros_like(reward[0])
    weight = torch.ones_like(reward[0])
    for i in range(reward.shape[0] - 1, -1, -1):
        total = reward[i] + discount * continues[i] * total
        weight = continues[i] * (weight if i == reward.shape[0] - 1 else discount * weight)
        rewards[i], carried[i] = total, weight
    return rewards, 1.0 - carried
