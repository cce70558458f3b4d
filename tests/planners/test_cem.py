"""Tests of the cross-entropy method as PETS plans with it (mbwrap.planners.cem)."""

from __future__ import annotations

import math

import pytest
import torch

from mbwrap.planners import CEM
from mbwrap.planners.cem import (
    categorical_cem_update,
    categorical_sequences,
    cem_update,
    select_elites,
    truncated_normal_sequences,
)

# Standard deviation of a standard normal truncated at +-2: sqrt(1 - 4 phi(2) / (2 Phi(2) - 1)).
_PHI2 = math.exp(-2.0) / math.sqrt(2 * math.pi)
TRUNCATED_STD = math.sqrt(1 - 4 * _PHI2 / math.erf(2 / math.sqrt(2)))


def test_defaults_are_pets(shift_model):
    config = CEM(shift_model).get_config()
    assert config["population"] == 500 and config["num_elites"] == 50
    assert config["iterations"] == 5 and config["alpha"] == 0.1
    assert config["horizon"] == 30 and config["particles"] == 20


def test_truncated_normal_is_cut_at_two_deviations():
    lower, upper = torch.full((2,), -1.0), torch.ones(2)
    mean, std = torch.zeros(1, 3, 2), torch.full((1, 3, 2), 0.25)
    samples = truncated_normal_sequences(
        mean, std, lower, upper, num=20000, generator=torch.Generator().manual_seed(0)
    )
    assert samples.shape == (1, 20000, 3, 2)
    assert samples.abs().max() <= 0.5
    assert samples.abs().max() > 0.49  # the whole +-2 std range is used
    assert samples.std(dim=1).sub(0.25 * TRUNCATED_STD).abs().max() < 0.005
    assert samples.mean(dim=1).abs().max() < 0.01


def test_truncated_normal_shrinks_its_deviation_near_a_bound():
    # 2 std must fit between the mean and the bound: std = (1 - 0.9) / 2 = 0.05.
    lower, upper = torch.full((1,), -1.0), torch.ones(1)
    samples = truncated_normal_sequences(
        torch.full((1, 1, 1), 0.9),
        torch.full((1, 1, 1), 0.5),
        lower,
        upper,
        num=20000,
        generator=torch.Generator().manual_seed(1),
    )
    assert samples.min() >= 0.8 and samples.max() <= 1.0
    assert abs(samples.std().item() - 0.05 * TRUNCATED_STD) < 0.001


def test_cem_update_smooths_mean_and_variance_by_hand():
    mean, std = torch.zeros(1, 1, 1), torch.ones(1, 1, 1)
    elites = torch.tensor([0.0, 4.0]).reshape(1, 2, 1, 1)  # mean 2, variance 4
    new_mean, new_std = cem_update(mean, std, elites, 0.1)
    assert new_mean.item() == pytest.approx(0.1 * 0 + 0.9 * 2)
    assert new_std.item() == pytest.approx(math.sqrt(0.1 * 1 + 0.9 * 4))


def test_categorical_cem_update_by_hand():
    probs = torch.full((1, 1, 3), 1 / 3)
    elites = torch.tensor([0, 0, 2, 0]).reshape(1, 4, 1)  # frequencies 3/4, 0, 1/4
    updated = categorical_cem_update(probs, elites, 0.1)
    expected = torch.tensor([0.1 / 3 + 0.675, 0.1 / 3, 0.1 / 3 + 0.225])
    torch.testing.assert_close(updated.reshape(3), expected)


def test_categorical_sequences_follow_each_steps_distribution():
    probs = torch.tensor([[[0.7, 0.2, 0.1], [0.0, 0.0, 1.0]]])  # [B=1, H=2, n=3]
    picks = categorical_sequences(probs, num=20000, generator=torch.Generator().manual_seed(0))
    assert picks.shape == (1, 20000, 2) and picks.dtype == torch.int64
    freq = torch.bincount(picks[0, :, 0], minlength=3) / 20000
    assert (freq - probs[0, 0]).abs().max() < 0.015
    assert (picks[0, :, 1] == 2).all()


def test_select_elites_are_the_best_first():
    candidates = torch.arange(5.0).reshape(1, 5, 1, 1)
    returns = torch.tensor([[0.0, 4.0, 1.0, 3.0, 2.0]])
    elites, elite_returns = select_elites(candidates, returns, 2)
    assert elites.flatten().tolist() == [1.0, 3.0]
    assert elite_returns.flatten().tolist() == [4.0, 3.0]


def test_optimize_returns_the_refitted_mean(shift_model):
    """With one iteration and alpha = 0 the solution is exactly the elites' mean, drawn from
    the truncated normal around the warm start with std (upper - lower) / 4."""
    planner = CEM(
        shift_model,
        population=30,
        num_elites=5,
        iterations=1,
        alpha=0.0,
        horizon=3,
        particles=1,
        seed=0,
    )
    state = torch.tensor([[0.5, -0.3], [1.5, 0.2]])
    init = torch.full((2, 3, 2), 0.1)
    before = planner.generator.get_state()
    solution = planner.optimize(state, init)
    planner.generator.set_state(before)
    candidates = truncated_normal_sequences(
        init,
        torch.full_like(init, 0.5),
        planner.lower,
        planner.upper,
        num=30,
        generator=planner.generator,
    )
    elites, _ = select_elites(candidates, planner.objective(state)(candidates), 5)
    torch.testing.assert_close(solution, elites.mean(dim=1))


def test_discrete_cem_picks_the_right_move(discrete_shift_model):
    # Discrete(3) moves -1 / 0 / +1 towards the goal 0.
    planner = CEM(
        discrete_shift_model,
        population=100,
        num_elites=10,
        iterations=3,
        horizon=3,
        particles=1,
        seed=0,
    )
    actions, _ = planner.predict(torch.tensor([[2.0], [-1.0], [0.0]]).numpy())
    assert actions.tolist() == [0, 2, 1]
    assert planner._solution is not None
    torch.testing.assert_close(planner._solution.sum(-1), torch.ones(3, 3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"population": 10, "num_elites": 11}, "num_elites: expected at most population = 10"),
        ({"population": 0}, "population"),
        ({"num_elites": 0}, "num_elites"),
        ({"iterations": 0}, "iterations"),
        ({"alpha": 1.0}, r"alpha: expected a float in \[0, 1\), got 1.0"),
        ({"alpha": -0.1}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"alpha": True}, "alpha"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, match, shift_model):
    with pytest.raises(ValueError, match=match):
        CEM(shift_model, **kwargs)
