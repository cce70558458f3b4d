"""Tests of model predictive path integral control (mbwrap.planners.mppi)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mbwrap.errors import UnsupportedSpaceError
from mbwrap.planners import MPPI
from mbwrap.planners.mppi import filter_sequences, mppi_update, mppi_weights


def test_defaults_are_pddm(shift_model):
    config = MPPI(shift_model).get_config()
    assert config["population"] == 700 and config["horizon"] == 7
    assert config["temperature"] == pytest.approx(1 / 20)
    assert config["noise_std"] == 0.9 and config["beta"] == 0.6 and config["iterations"] == 1


def test_weights_are_a_softmax_of_returns_over_temperature():
    weights = mppi_weights(torch.tensor([[0.0, -1.0]]), 1.0)
    e = math.exp(-1.0)
    torch.testing.assert_close(weights, torch.tensor([[1 / (1 + e), e / (1 + e)]]))
    # Halving the temperature squares the odds.
    sharper = mppi_weights(torch.tensor([[0.0, -1.0]]), 0.5)
    assert sharper[0, 1] / sharper[0, 0] == pytest.approx(e**2)


def test_weights_do_not_overflow():
    weights = mppi_weights(torch.tensor([[1e4, 0.0, -1e10]]), 1e-3)
    assert torch.isfinite(weights).all()
    torch.testing.assert_close(weights, torch.tensor([[1.0, 0.0, 0.0]]))


def test_update_is_the_weighted_mean_of_the_candidates():
    nominal = torch.zeros(1, 1, 1)
    candidates = torch.tensor([1.0, 3.0]).reshape(1, 2, 1, 1)
    updated = mppi_update(nominal, candidates, torch.tensor([[0.25, 0.75]]))
    assert updated.item() == pytest.approx(0.25 * 1 + 0.75 * 3)


def test_filter_by_hand():
    samples = torch.tensor([2.0, 0.0, 0.0]).reshape(1, 1, 3, 1)
    past = torch.tensor([[4.0]])
    # a_0 = 0.5 * 2 + 0.5 * 4 = 3, a_1 = 0.5 * 0 + 0.5 * 3 = 1.5, a_2 = 0.75.
    assert filter_sequences(samples, past, 0.5).flatten().tolist() == [3.0, 1.5, 0.75]
    assert filter_sequences(samples, past, 1.0).flatten().tolist() == [2.0, 0.0, 0.0]


def _replayed(planner, state, init, past):
    """What one MPPI iteration must return, recomputed from the same random numbers."""
    batch, horizon, dim = init.shape
    noise = torch.randn(batch, planner.population, horizon, dim, generator=planner.generator)
    std = planner.noise_std * (planner.upper - planner.lower) / 2
    candidates = filter_sequences(init.unsqueeze(1) + std * noise, past, planner.beta)
    candidates = torch.clamp(candidates, planner.lower, planner.upper)
    weights = mppi_weights(planner.objective(state)(candidates), planner.temperature)
    return (weights[..., None, None] * candidates).sum(1)


def test_optimize_filters_from_the_last_executed_action(shift_model):
    planner = MPPI(shift_model, population=20, horizon=3, beta=0.5, seed=0)
    state = torch.tensor([[0.5, -0.3], [1.5, 0.2]])
    init = torch.full((2, 3, 2), 0.1)
    # First decision: no past action, so the filter starts from the nominal first step.
    before = planner.generator.get_state()
    first = planner.optimize(state, init)
    planner.generator.set_state(before)
    torch.testing.assert_close(first, _replayed(planner, state, init, init[:, 0]))
    # Second decision: it starts from the action just executed.
    executed = torch.clamp(first[:, 0], planner.lower, planner.upper)
    before = planner.generator.get_state()
    second = planner.optimize(state, init)
    planner.generator.set_state(before)
    torch.testing.assert_close(second, _replayed(planner, state, init, executed))


def test_episode_start_forgets_the_past_action_of_that_env_only(shift_model):
    planner = MPPI(shift_model, population=20, horizon=3, seed=0)
    obs = np.array([[0.5, -0.3], [1.5, 0.2]], np.float32)
    planner.predict(obs)
    seen = []
    optimize = planner.optimize

    def spy(state, init):
        seen.append(planner._past_valid.clone())
        return optimize(state, init)

    planner.optimize = spy
    planner.predict(obs, episode_start=np.array([True, False]))
    assert seen[0].tolist() == [False, True]
    planner.predict(obs, episode_start=None)
    planner.reset()
    assert planner._past_action is None


def test_refuses_discrete_actions(discrete_shift_model):
    with pytest.raises(UnsupportedSpaceError, match="Box actions only"):
        MPPI(discrete_shift_model)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": 0.0}, "temperature: expected a float > 0, got 0.0"),
        ({"temperature": float("inf")}, "temperature"),
        ({"noise_std": -0.1}, "noise_std"),
        ({"beta": 0.0}, "beta"),
        ({"beta": 1.5}, "beta"),
        ({"population": 0}, "population"),
        ({"iterations": 0}, "iterations"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, match, shift_model):
    with pytest.raises(ValueError, match=match):
        MPPI(shift_model, **kwargs)
