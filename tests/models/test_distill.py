"""Distilling a Gaussian ensemble into one network: the soft labels' moments and loss by
hand, and a student on Pendulum that keeps the ensemble's held-out likelihood."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from mbwrap.buffers import ReplayBuffer, collect
from mbwrap.envs import DreamVecEnv
from mbwrap.models import GaussianEnsemble, MLPModel, distill_ensemble
from mbwrap.models.distill import ensemble_moments, soft_gaussian_nll


def pendulum_buffer(steps: int, seed: int = 0) -> ReplayBuffer:
    """``steps`` uniformly random Pendulum-v1 transitions."""
    env = gym.make("Pendulum-v1")
    buffer = ReplayBuffer(env.observation_space, env.action_space, steps, device="cpu")
    collect(env, buffer, steps, seed=seed)
    return buffer


def test_soft_label_nll_by_hand_and_its_minimum_is_the_matched_gaussian():
    # Labels N(1, 0.5) under N(0, e^0): 0.5 * (0 + (0.5 + 1) * 1) = 0.75.
    zero = torch.zeros(1, 1)
    assert float(soft_gaussian_nll(zero, zero, torch.ones(1, 1), torch.full((1, 1), 0.5))) == 0.75
    mean = torch.zeros(1, 1, requires_grad=True)
    logvar = torch.zeros(1, 1, requires_grad=True)
    loss = soft_gaussian_nll(
        mean + 1.0, logvar + np.log(0.5), torch.ones(1, 1), torch.full((1, 1), 0.5)
    )
    loss.sum().backward()
    assert float(mean.grad.abs().sum()) < 1e-6 and float(logvar.grad.abs().sum()) < 1e-6


def test_ensemble_moments_are_the_mixtures_mean_and_variance():
    env = gym.make("Pendulum-v1")
    torch.manual_seed(0)
    teacher = GaussianEnsemble(
        env.observation_space,
        env.action_space,
        ensemble_size=3,
        num_elites=2,
        hidden_sizes=[8],
        device="cpu",
    )
    teacher.elite_indices.copy_(torch.tensor([0, 2]))
    inputs = torch.randn(5, teacher.input_dim)
    with torch.no_grad():
        mean, var = ensemble_moments(teacher, inputs)
        head, _ = teacher._forward(inputs)
        means, logvars = teacher._gaussian(head[[0, 2]])
    # The mixture of the two elites, by the law of total variance.
    np.testing.assert_allclose(mean, (means[0] + means[1]) / 2, rtol=1e-5)
    within = (logvars.exp()[0] + logvars.exp()[1]) / 2
    between = ((means[0] - means[1]) / 2).square()
    np.testing.assert_allclose(var, within + between, rtol=1e-4)


def test_student_keeps_the_held_out_likelihood_and_imagines_alone():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    buffer = pendulum_buffer(1500)
    env = gym.make("Pendulum-v1")
    teacher = GaussianEnsemble(
        env.observation_space,
        env.action_space,
        ensemble_size=5,
        num_elites=5,
        hidden_sizes=[64, 64],
        max_epochs=60,
        env_id="Pendulum-v1",
        device="cpu",
    )
    teacher.fit(buffer)
    student, report = distill_ensemble(teacher, buffer, seed=0)
    assert student.ensemble_size == 1 and student.hidden_sizes == [64, 64]
    # Held-out NLL within 10% of the ensemble's.
    assert report["nll_gap"] < 0.10, report
    assert report["student_nll"] < 0 and report["teacher_nll"] < 0
    dream = DreamVecEnv(student, 4, start_states=buffer, horizon=5)
    dream.reset()
    obs, reward, *_ = dream.step(torch.zeros(4, 1))
    assert obs.shape == (4, 3) and torch.isfinite(torch.as_tensor(reward)).all()


def test_errors_name_the_argument():
    env = gym.make("Pendulum-v1")
    buffer = pendulum_buffer(10)
    mlp = MLPModel(env.observation_space, env.action_space, device="cpu")
    with pytest.raises(TypeError, match=r"ensemble: expected an mbwrap\.models\.GaussianEnsemble"):
        distill_ensemble(mlp, buffer)
    teacher = GaussianEnsemble(env.observation_space, env.action_space, device="cpu")
    with pytest.raises(TypeError, match="buffer"):
        distill_ensemble(teacher, buffer.transitions())
    with pytest.raises(ValueError, match="steps"):
        distill_ensemble(teacher, buffer, steps=0)
    with pytest.raises(ValueError, match="holdout_ratio"):
        distill_ensemble(teacher, buffer, holdout_ratio=1.0)
