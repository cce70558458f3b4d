"""Guided policy search's global side: the neural policy fitted linearly around the samples,
trained by supervised learning on the local controllers, and the step size that mirror
descent adapts (Montgomery & Levine 2016, "Guided Policy Search via Approximate Mirror
Descent", Sections 3-4)."""

from __future__ import annotations

import torch
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy

from mbwrap.algos.mb_mf_distill import deterministic_actions
from mbwrap.models.local_linear import NormalInverseWishart, fit_conditional_gaussian
from mbwrap.planners.lqg import LinearGaussianController


def policy_actions(policy: BasePolicy, x: torch.Tensor) -> torch.Tensor:
    """The global policy's mean actions at the sample states: ``x: [M, N, T, X] ->
    [M, N, T, U]`` float64 on ``x``'s device."""
    with torch.no_grad():
        obs = x.reshape(-1, x.shape[-1]).to(policy.device, torch.float32)
        mean = deterministic_actions(policy, obs).reshape(len(obs), -1)
    return mean.to(x.device, torch.float64).reshape(*x.shape[:-1], -1)


def linearise_policy(
    x: torch.Tensor,
    actions: torch.Tensor,
    cov: torch.Tensor,
    prior: NormalInverseWishart | None = None,
) -> LinearGaussianController:
    """The global policy as a linear-Gaussian controller around the samples: at each
    condition and step, the linear regression of its mean actions on the sample states
    (:func:`~mbwrap.models.fit_conditional_gaussian`, with a mixture prior over
    ``(x, pi(x))`` where there are fewer samples than state dimensions, as the GPS code's
    ``PolicyPriorGMM``), with covariance ``cov``.

    :param x: ``[M, N, T, X]`` sample states.
    :param actions: ``[M, N, T, U]`` the policy's mean actions there (:func:`policy_actions`).
    :param cov: ``[U, U]`` the policy's action covariance.
    :param prior: over ``(x, u)`` per ``[M, T]``; ``None``: the plain regression.
    :return: gains ``[M, T, U, X]``, offsets ``[M, T, U]``, covariances ``[M, T, U, U]``.
    """
    gain, offset, _ = fit_conditional_gaussian(x, actions, prior)
    count, horizon, width = offset.shape
    return LinearGaussianController(
        gain=gain,
        offset=offset,
        cov=cov.to(x.device, torch.float64).expand(count, horizon, width, width).clone(),
    )


def precision_weighted_loss(
    predicted: torch.Tensor, target: torch.Tensor, precision: torch.Tensor
) -> torch.Tensor:
    """The global policy's supervised loss on the local controllers' actions: the mean of
    ``(mu(x) - mu_p(x))^T Sigma_p^{-1} (mu(x) - mu_p(x)) / 2``, the part of
    ``KL(pi(.|x) || p(.|x))`` the policy's mean controls (Montgomery & Levine 2016, eq. 4).

    :param predicted: ``[B, U]``; :param target: ``[B, U]``; :param precision: ``[B, U, U]``.
    :return: a scalar.
    """
    gap = predicted - target
    return 0.5 * torch.einsum("bu,buv,bv->b", gap, precision, gap).mean()


def policy_covariance(controller: LinearGaussianController) -> torch.Tensor:
    """``[U, U]``: the inverse of the local controllers' mean precision over conditions
    and steps, the covariance that minimises the policy's KL to all of them (Levine &
    Abbeel 2014, Section 4)."""
    precision = torch.linalg.inv(controller.cov).mean((0, 1))
    return torch.linalg.inv(precision)


def train_global_policy(
    policy: BasePolicy,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    controller: LinearGaussianController,
    *,
    steps: int,
    batch_size: int,
    generator: torch.Generator,
) -> float:
    """Fit the policy's mean action to the local controllers' mean actions at the sample
    states (:func:`precision_weighted_loss`), then set a Gaussian policy's standard
    deviation to :func:`policy_covariance`'s.

    :param x: ``[M, N, T, X]`` sample states; the controller is ``[M, T, ...]``.
    :return: the loss of the last minibatch (``nan`` when ``steps`` is 0).
    """
    samples, dim = x.shape[1], x.shape[-1]
    target = torch.einsum("mtux,mntx->mntu", controller.gain, x) + controller.offset[:, None]
    precision = torch.linalg.inv(controller.cov)[:, None].expand(-1, samples, -1, -1, -1)
    obs = x.reshape(-1, dim).to(policy.device, torch.float32)
    target = target.reshape(len(obs), -1).to(policy.device, torch.float32)
    precision = precision.reshape(len(obs), *precision.shape[-2:]).to(policy.device, torch.float32)
    # Precisions of tight controllers reach 1e4; scale them so that Adam's steps stay sane.
    precision = precision / precision.diagonal(dim1=-2, dim2=-1).mean()
    loss = torch.tensor(float("nan"))
    policy.set_training_mode(True)
    for _ in range(steps):
        pick = torch.randint(len(obs), (min(batch_size, len(obs)),), generator=generator)
        pick = pick.to(obs.device)
        predicted = deterministic_actions(policy, obs[pick]).reshape(len(pick), -1)
        loss = precision_weighted_loss(predicted, target[pick], precision[pick])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    policy.set_training_mode(False)
    if isinstance(policy, ActorCriticPolicy) and hasattr(policy, "log_std"):
        std = policy_covariance(controller).diagonal().sqrt()
        with torch.no_grad():
            policy.log_std.copy_(std.log().to(policy.log_std))
    return float(loss.detach())


def step_multiplier(
    previous: torch.Tensor,
    predicted: torch.Tensor,
    actual: torch.Tensor,
    multiplier: torch.Tensor,
    *,
    low: float,
    high: float,
) -> torch.Tensor:
    """Mirror descent's step-size rule: scale the KL step by how much of the improvement
    the last step predicted was realised (Montgomery & Levine 2016, Section 4.1).

    With ``predicted_impr = previous - predicted`` and ``actual_impr = previous - actual``,
    the multiplier is scaled by ``predicted_impr / (2 max(predicted_impr - actual_impr,
    1e-4))``, that factor kept in ``[0.1, 5]`` (the GPS code's bounds), and the result in
    ``[low, high]``.

    :param previous: ``[M]`` expected cost of the last linearised policy, under the last
        dynamics and cost.
    :param predicted: ``[M]`` the current linearised policy's, under the last ones.
    :param actual: ``[M]`` the current linearised policy's, under the current ones.
    :param multiplier: ``[M]`` the current multiples of the KL step.
    """
    predicted_impr = previous - predicted
    actual_impr = previous - actual
    factor = predicted_impr / (2.0 * torch.clamp(predicted_impr - actual_impr, min=1e-4))
    factor = factor.clamp(0.1, 5.0)
    return (multiplier * factor).clamp(low, high)
