"""One network trained to predict what a Gaussian ensemble predicts: its mean and its whole
spread (the members' noise and their disagreement), so that imagination and planning
run one model instead of ``E``.

The student is a one-member :class:`~mbwrap.models.GaussianEnsemble` with the teacher's
architecture and normalisers. For each input the teacher's predictive distribution, the
uniform mixture of its elites' Gaussians, is summarised by its first two moments
``mu = mean_m mu_m`` and ``var = mean_m (var_m + mu_m^2) - mu^2`` (soft labels); the student
minimises the expected negative log-likelihood of that distribution under its own
Gaussian, ``0.5 * sum_d [logvar_d + (var_d + (mu_d - mu'_d)^2) exp(-logvar_d)]`` + const,
whose minimum is the moment-matched Gaussian (Hinton, Vinyals & Dean 2015 distil soft
labels; here the labels are densities).
"""

from __future__ import annotations

from typing import Any

import torch

from mbwrap.buffers import ReplayBuffer
from mbwrap.device import make_generator
from mbwrap.models.gaussian_ensemble import GaussianEnsemble
from mbwrap.models.losses import mixture_nll
from mbwrap.spaces import flatten
from mbwrap.types import Transition


def ensemble_moments(
    teacher: GaussianEnsemble, inputs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and variance of the teacher's elite mixture in normalised target units.

    :param inputs: ``[B, I]`` normalised network inputs.
    :return: ``(mean [B, T], var [B, T])``.
    """
    head, _ = teacher._forward(inputs)
    means, logvars = teacher._gaussian(head[teacher.elite_indices])  # [K, B, T]
    mean = means.mean(0)
    second = (logvars.exp() + means.square()).mean(0)
    return mean, (second - mean.square()).clamp_min(1e-12)


def soft_gaussian_nll(
    mean: torch.Tensor, logvar: torch.Tensor, label_mean: torch.Tensor, label_var: torch.Tensor
) -> torch.Tensor:
    """Expected Gaussian NLL (without its constant) of labels distributed with
    ``label_mean`` and ``label_var`` under ``N(mean, exp(logvar))``, summed over the last
    dimension: ``[..., T] -> [...]``. Equal labels (``label_var = 0``) give the ordinary NLL."""
    precision = torch.exp(-logvar)
    return 0.5 * (logvar + (label_var + (label_mean - mean).square()) * precision).sum(-1)


def _targets(model: GaussianEnsemble, data: Transition) -> tuple[torch.Tensor, torch.Tensor]:
    """``(normalised inputs [N, I], env-unit targets [N, T])`` of real transitions."""
    state = model.encode(data.obs.to(model.device))
    next_state = model.encode(data.next_obs.to(model.device))
    count = state.shape[0]
    flat = state.reshape(count, -1).float()
    action = flatten(data.action.to(model.device), model.action_space).float()
    target = torch.cat(
        [
            next_state.reshape(count, -1).float() - flat,
            data.reward.to(model.device).float()[:, None],
        ],
        dim=-1,
    )
    return model._inputs(flat, action), target


@torch.no_grad()
def _nll(model: GaussianEnsemble, inputs: torch.Tensor, target: torch.Tensor) -> float:
    """Mean NLL in nats of env-unit targets under the model's elite mixture."""
    head, _ = model._forward(inputs)
    means, logvars = model._gaussian(head[model.elite_indices])
    std = model.target_normalizer.std
    means = model.target_normalizer.denormalize(means).transpose(0, 1)  # [B, K, T]
    logvars = (logvars + 2.0 * torch.log(std)).transpose(0, 1)
    logits = torch.zeros(means.shape[:2], device=means.device)
    return float(mixture_nll(logits, means, logvars, target).mean())


def distill_ensemble(
    ensemble: GaussianEnsemble,
    buffer: ReplayBuffer,
    *,
    steps: int = 4000,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    holdout_ratio: float = 0.2,
    seed: int | None = None,
) -> tuple[GaussianEnsemble, dict[str, float]]:
    """Train one network on ``ensemble``'s predictive mean and variance (soft labels).

    The student copies the teacher's settings with one member, starts from its normalisers
    and log-variance bounds, and learns on the inputs of ``buffer``'s transitions (a
    ``holdout_ratio`` share held out, drawn with ``seed``), labelled by the teacher alone:
    no real next state enters its loss. Both are then scored on the held-out real
    transitions by their one-step NLL (the teacher's by its elite mixture).

    :param ensemble: a fitted :class:`GaussianEnsemble` with two members or more.
    :param buffer: real transitions in the model's spaces.
    :param steps: gradient steps, each on ``batch_size`` inputs drawn with replacement.
    :return: ``(student, report)``; ``report`` has ``teacher_nll``, ``student_nll`` (nats per
        transition, held out), ``nll_gap`` (student minus teacher, relative to the
        teacher's magnitude), ``train_loss``, ``transitions`` and ``steps``.
    """
    if not isinstance(ensemble, GaussianEnsemble):
        raise TypeError(
            f"ensemble: expected an mbwrap.models.GaussianEnsemble, got {type(ensemble).__name__}"
        )
    if not isinstance(buffer, ReplayBuffer):
        raise TypeError(f"buffer: expected an mbwrap.ReplayBuffer, got {type(buffer).__name__}")
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
    if not 0.0 < holdout_ratio < 1.0:
        raise ValueError(f"holdout_ratio: expected a number in (0, 1), got {holdout_ratio!r}")
    if len(buffer) < 2:
        raise ValueError(f"buffer: needs 2 transitions or more to distil on, got {len(buffer)}")
    config: dict[str, Any] = {
        **ensemble.get_config(),
        "ensemble_size": 1,
        "num_elites": 1,
        "bootstrap": False,
    }
    student = GaussianEnsemble(
        ensemble.observation_space, ensemble.action_space, **config, device=ensemble.device
    )
    student.input_normalizer.load_state_dict(ensemble.input_normalizer.state_dict())
    student.target_normalizer.load_state_dict(ensemble.target_normalizer.state_dict())
    with torch.no_grad():
        student.max_logvar.copy_(ensemble.max_logvar)
        student.min_logvar.copy_(ensemble.min_logvar)

    generator = make_generator(ensemble.device, seed)
    inputs, targets = _targets(ensemble, buffer.transitions())
    order = torch.randperm(inputs.shape[0], device=ensemble.device, generator=generator)
    held = max(1, round(holdout_ratio * inputs.shape[0]))
    train, test = order[held:], order[:held]
    with torch.no_grad():
        label_mean, label_var = ensemble_moments(ensemble, inputs[train])
    optimizer = torch.optim.Adam(student.parameters(), lr=learning_rate)
    loss = torch.zeros(())
    for _ in range(steps):
        rows = torch.randint(
            train.numel(), (batch_size,), device=ensemble.device, generator=generator
        )
        head, _ = student._forward(inputs[train[rows]])
        mean, logvar = student._gaussian(head[0])
        loss = soft_gaussian_nll(mean, logvar, label_mean[rows], label_var[rows]).mean()
        loss = loss + student._regularizer()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    student.eval()
    teacher_nll = _nll(ensemble, inputs[test], targets[test])
    student_nll = _nll(student, inputs[test], targets[test])
    return student, {
        "teacher_nll": teacher_nll,
        "student_nll": student_nll,
        "nll_gap": (student_nll - teacher_nll) / max(abs(teacher_nll), 1e-8),
        "train_loss": float(loss.detach()),
        "transitions": float(train.numel()),
        "steps": float(steps),
    }
