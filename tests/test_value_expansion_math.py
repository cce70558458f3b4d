"""The pure math of model-based value expansion: per-horizon targets (MVE, STEVE) and
STEVE's inverse-variance mix, against hand-worked numbers."""

from __future__ import annotations

import pytest
import torch

from mbwrap.returns import (
    expansion_as_one_step,
    horizon_targets,
    inverse_variance_mix,
    lambda_returns,
)


def test_horizon_targets_by_hand():
    # gamma 0.5, rewards 1 and 2, values 10, 20, 40 of the states 0, 1, 2:
    # T_0 = 10; T_1 = 1 + 0.5 * 20 = 11; T_2 = 1 + 0.5 * 2 + 0.25 * 40 = 12.
    reward = torch.tensor([[1.0], [2.0]])
    value = torch.tensor([[10.0], [20.0], [40.0]])
    running = horizon_targets(reward, value, torch.ones(2, 1), discount=0.5)
    torch.testing.assert_close(running, torch.tensor([[10.0], [11.0], [12.0]]))
    # The episode ends after the first step: nothing after it counts.
    ended = horizon_targets(reward, value, torch.tensor([[0.0], [1.0]]), discount=0.5)
    torch.testing.assert_close(ended, torch.tensor([[10.0], [1.0], [1.0]]))


def test_the_longest_horizon_is_the_monte_carlo_return_bootstrapped_at_the_end():
    generator = torch.Generator().manual_seed(0)
    reward = torch.randn(5, 3, 4, generator=generator)
    value = torch.randn(6, 3, 4, generator=generator)
    continues = (torch.rand(5, 3, 4, generator=generator) > 0.2).float()
    targets = horizon_targets(reward, value, continues, discount=0.9)
    assert targets.shape == (6, 3, 4)
    full = lambda_returns(reward, value, continues, discount=0.9, lambda_=1.0)[0]
    torch.testing.assert_close(targets[-1], full)
    torch.testing.assert_close(targets[0], value[0])


def test_horizon_targets_check_shapes():
    with pytest.raises(ValueError, match=r"value: expected shape \(3, 1\)"):
        horizon_targets(torch.zeros(2, 1), torch.zeros(2, 1), torch.ones(2, 1), discount=0.9)
    with pytest.raises(ValueError, match="continues: expected the reward's shape"):
        horizon_targets(torch.zeros(2, 1), torch.zeros(3, 1), torch.ones(2, 2), discount=0.9)


def test_inverse_variance_mix_by_hand():
    # Horizon 0: candidates 1 and 3 (mean 2, variance 1); horizon 1: 5 and 9 (mean 7,
    # variance 4). Weights 1/1 and 1/4, normalised: 0.8 and 0.2; target 0.8*2 + 0.2*7 = 3.
    candidates = torch.tensor([[[1.0], [3.0]], [[5.0], [9.0]]])
    target, weights = inverse_variance_mix(candidates)
    torch.testing.assert_close(weights, torch.tensor([[0.8], [0.2]]))
    torch.testing.assert_close(target, torch.tensor([3.0]))


def test_a_horizon_whose_candidates_agree_takes_the_weight():
    candidates = torch.tensor([[[2.0], [2.0]], [[0.0], [10.0]]])
    target, weights = inverse_variance_mix(candidates)
    assert weights[0, 0] > 0.999 and abs(target.item() - 2.0) < 1e-3
    with pytest.raises(ValueError, match=r"candidates: expected \[H \+ 1, E, \.\.\.\] with E >= 2"):
        inverse_variance_mix(torch.zeros(3, 1, 4))


def test_expansion_as_one_step_by_hand():
    # H = 2, gamma 0.5, rewards 1 and 2, running throughout. State 0: rewards 1 + 0.5 * 2
    # = 2, Q' discounted by gamma^2 = 0.25 = (1 - dones) * gamma -> dones = 0.5. State 1:
    # reward 2, Q' discounted by gamma -> dones = 0.
    rewards, dones = expansion_as_one_step(
        torch.tensor([[1.0], [2.0]]), torch.ones(2, 1), discount=0.5
    )
    torch.testing.assert_close(rewards, torch.tensor([[2.0], [2.0]]))
    torch.testing.assert_close(dones, torch.tensor([[0.5], [0.0]]))
    # The episode ends after step 0: state 0 keeps its own reward only, and no Q'.
    rewards, dones = expansion_as_one_step(
        torch.tensor([[1.0], [2.0]]), torch.tensor([[0.0], [1.0]]), discount=0.5
    )
    torch.testing.assert_close(rewards, torch.tensor([[1.0], [2.0]]))
    torch.testing.assert_close(dones, torch.tensor([[1.0], [0.0]]))


def test_sb3_s_one_step_target_of_the_expansion_is_the_td_k_target():
    generator = torch.Generator().manual_seed(1)
    horizon, gamma = 4, 0.9
    reward = torch.randn(horizon, 5, generator=generator)
    continues = (torch.rand(horizon, 5, generator=generator) > 0.3).float()
    value = torch.randn(horizon + 1, 5, generator=generator)
    rewards, dones = expansion_as_one_step(reward, continues, discount=gamma)
    sb3_target = rewards + (1 - dones) * gamma * value[-1]  # Q'(s_H) for every state
    # TD-k: the state i's target is the lambda = 1 return from i, bootstrapped at s_H.
    expected = lambda_returns(reward, value, continues, discount=gamma, lambda_=1.0)
    torch.testing.assert_close(sb3_target, expected)
