"""PILCO's analytic propagation of a Gaussian state distribution through a controller and
a GP model, and its expected saturating cost (Deisenroth & Rasmussen 2011, Sections
2.2-2.3; Deisenroth 2010, Appendix A), as pure batched functions. Each row of the batch
is one Gaussian state distribution; everything is differentiable in the controller's
parameters."""

from __future__ import annotations

import torch

from mbwrap.models.gp import StateLayout
from mbwrap.models.gp_moments import (
    KernelExpansion,
    moment_match,
    trig_augment,
    with_inactive_inputs,
)


def sin_squash_moments(
    mean: torch.Tensor, cov: torch.Tensor, scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Moments of ``y = scale * sin(u)`` for ``u ~ N(mean, cov)``, PILCO's squashing of a
    controller's output into ``[-scale, scale]``.

    :param mean: ``[B, U]``.
    :param cov: ``[B, U, U]``.
    :param scale: ``[U]``, the bound of each output.
    :return: ``(mean [B, U], cov [B, U, U], gain [B, U])``, where ``Cov[x, y_j] =
        Cov[x, u_j] * gain_j`` for any ``x`` jointly Gaussian with ``u`` (Stein's lemma:
        ``gain_j = scale_j E[cos u_j]``).
    """
    var = torch.diagonal(cov, dim1=-2, dim2=-1)  # [B, U]
    damp = torch.exp(-var / 2)
    out_mean = scale * damp * torch.sin(mean)
    # E[sin u_i sin u_j] = (E cos(u_i - u_j) - E cos(u_i + u_j)) / 2.
    vi, vj = var.unsqueeze(2), var.unsqueeze(1)
    mi, mj = mean.unsqueeze(2), mean.unsqueeze(1)
    minus = torch.exp(-(vi + vj - 2 * cov) / 2) * torch.cos(mi - mj)
    plus = torch.exp(-(vi + vj + 2 * cov) / 2) * torch.cos(mi + mj)
    second = (minus - plus) / 2 * scale.unsqueeze(1) * scale.unsqueeze(0)
    out_cov = second - out_mean.unsqueeze(2) * out_mean.unsqueeze(1)
    return out_mean, out_cov, scale * damp * torch.cos(mean)


def expected_saturating_cost(
    mean: torch.Tensor, cov: torch.Tensor, target: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """``E[1 - exp(-(x - target)^T W (x - target) / 2)]`` for ``x ~ N(mean, cov)``:
    ``1 - |I + S W|^-1/2 exp(-(m - t)^T W (I + S W)^-1 (m - t) / 2)`` (Deisenroth 2010,
    eq. 3.46).

    :param mean: ``[B, D]``. :param cov: ``[B, D, D]``.
    :param target: ``[D]``. :param weight: ``[D, D]``, ``W``, symmetric positive
        semi-definite (e.g. ``F^T F / width^2`` for a distance ``|F x - F target|``).
    :return: ``[B]``.
    """
    eye = torch.eye(mean.shape[-1], dtype=mean.dtype, device=mean.device)
    a_mat = eye + cov @ weight  # I + S W
    gap = (mean - target).unsqueeze(-1)  # [B, D, 1]
    quad = (gap.transpose(-1, -2) @ weight @ torch.linalg.solve(a_mat, gap))[..., 0, 0]
    return 1 - torch.exp(-quad / 2) / torch.sqrt(torch.linalg.det(a_mat))


def state_action(
    controller: KernelExpansion,
    action_scale: torch.Tensor,
    mean: torch.Tensor,
    cov: torch.Tensor,
    action_offset: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Gaussian approximation of the joint ``(x, u)`` for ``x ~ N(mean, cov)`` and
    ``u = offset + scale * sin(m(x))`` with ``m`` an RBF network: its exact mean and
    covariance.

    :param controller: the RBF network on the state, before squashing.
    :param action_scale: ``[U]``, half the range of the actions.
    :param action_offset: ``[U]``, their midpoint (default 0).
    :param mean: ``[B, D]``. :param cov: ``[B, D, D]``.
    :return: ``(mean [B, D + U], cov [B, D + U, D + U])``.
    """
    pre_mean, pre_cov, state_pre = moment_match(controller, mean, cov)
    act_mean, act_cov, gain = sin_squash_moments(pre_mean, pre_cov, action_scale)
    state_act = state_pre * gain.unsqueeze(1)  # Cov[x, u], [B, D, U]
    joint_cov = torch.cat(
        [torch.cat([cov, state_act], -1), torch.cat([state_act.transpose(1, 2), act_cov], -1)],
        -2,
    )
    if action_offset is not None:
        act_mean = act_mean + action_offset
    return torch.cat([mean, act_mean], -1), joint_cov


def propagate(
    dynamics: KernelExpansion,
    noise_var: torch.Tensor,
    controller: KernelExpansion,
    action_scale: torch.Tensor,
    mean: torch.Tensor,
    cov: torch.Tensor,
    action_offset: torch.Tensor | None = None,
    layout: StateLayout | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One time step of the state distribution: the joint of state and action
    (:func:`state_action`) moment-matched through GP dynamics on the state change.

    With a ``layout`` (a :class:`~mbwrap.models.gp.GPModel` with angles), the state holds
    angles: it is first augmented with their sines and cosines
    (:func:`~mbwrap.models.gp_moments.trig_augment`), which is what the controller and
    the GPs see, and the angles' covariance with the action and the change comes through
    inputs the functions ignore (:func:`~mbwrap.models.gp_moments.with_inactive_inputs`),
    as in PILCO.

    :param dynamics: the GP of the state change on ``(observation, action)`` inputs.
    :param noise_var: ``[S]``, the GPs' noise, added to the next state's variance.
    :param controller: the RBF network on the observation, before squashing.
    :param action_scale: ``[U]``, half the range of the actions.
    :param mean: ``[B, S]``. :param cov: ``[B, S, S]``.
    :param action_offset: ``[U]``, the actions' midpoint (default 0).
    :param layout: ``None``: the state is the observation.
    :return: the next state's ``(mean [B, S], cov [B, S, S])``.
    """
    inputs_mean, inputs_cov, state_in_inputs = mean, cov, None
    if layout is not None and layout.angles.numel():
        y_mean, y_cov = trig_augment(mean, cov, layout.angles)
        inputs_mean = y_mean[:, layout.inputs]
        inputs_cov = y_cov[:, layout.inputs][:, :, layout.inputs]
        k = layout.angles.numel()
        obs_dim = layout.inputs.numel() - k
        controller = with_inactive_inputs(controller, obs_dim, k)
        dynamics = with_inactive_inputs(dynamics, obs_dim, k)
        state_in_inputs = layout.state_in_inputs
    joint_mean, joint_cov = state_action(
        controller, action_scale, inputs_mean, inputs_cov, action_offset
    )
    delta_mean, delta_cov, joint_delta = moment_match(dynamics, joint_mean, joint_cov)
    # Cov[z, Delta]: the state's rows of Cov[(inputs, action), Delta].
    rows = (
        joint_delta[:, : mean.shape[-1]]
        if state_in_inputs is None
        else (joint_delta[:, state_in_inputs])
    )
    next_cov = cov + delta_cov + rows + rows.transpose(1, 2) + torch.diag(noise_var)
    return mean + delta_mean, (next_cov + next_cov.transpose(1, 2)) / 2
