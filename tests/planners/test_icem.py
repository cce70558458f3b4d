"""Tests of the improved cross-entropy method (mbwrap.planners.icem)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mbwrap.errors import UnsupportedSpaceError
from mbwrap.planners import ICEM
from mbwrap.planners.icem import colored_noise, icem_update, population_sizes


def test_defaults_are_the_released_icem_settings(shift_model):
    config = ICEM(shift_model).get_config()
    assert config["population"] == 40 and config["num_elites"] == 10
    assert config["iterations"] == 3 and config["alpha"] == 0.1
    assert config["noise_beta"] == 3.0 and config["population_decay"] == 1.25
    assert config["keep_elites_fraction"] == 0.3 and config["init_std"] == 0.5
    assert config["horizon"] == 30


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.5])
def test_colored_noise_spectrum_falls_as_f_to_the_minus_beta(beta):
    noise = colored_noise(beta, (4000, 64), generator=torch.Generator().manual_seed(0))
    power = torch.fft.rfft(noise).abs().square().mean(0)[1:]  # without the zero frequency
    freqs = torch.fft.rfftfreq(64)[1:]
    slope = np.polyfit(np.log(freqs.numpy()), np.log(power.numpy()), 1)[0]
    assert slope == pytest.approx(-beta, abs=0.05)


@pytest.mark.parametrize("steps", [1, 2, 7, 30])
def test_colored_noise_has_unit_variance(steps):
    noise = colored_noise(2.0, (20000, steps), generator=torch.Generator().manual_seed(1))
    assert noise.shape == (20000, steps) and noise.dtype == torch.float32
    assert noise.var(0).sub(1).abs().max() < 0.05
    assert noise.mean(0).abs().max() < 0.05


def test_colored_noise_is_smooth_for_large_beta():
    generator = torch.Generator().manual_seed(2)
    white = colored_noise(0.0, (2000, 30), generator=generator)
    red = colored_noise(3.0, (2000, 30), generator=generator)

    def lag_one(x):
        return (x[:, 1:] * x[:, :-1]).mean() / x.var()

    assert abs(lag_one(white)) < 0.05 and lag_one(red) > 0.9


def test_population_sizes_decay_to_twice_the_elites():
    assert population_sizes(40, 10, 1.25, 3) == [40, 32, 25]
    assert population_sizes(100, 10, 2.0, 4) == [100, 50, 25, 20]


def test_icem_update_smooths_mean_and_deviation_by_hand():
    elites = torch.tensor([0.0, 4.0]).reshape(1, 2, 1, 1)  # mean 2, deviation 2
    mean, std = icem_update(torch.zeros(1, 1, 1), torch.ones(1, 1, 1), elites, 0.1)
    assert mean.item() == pytest.approx(1.8) and std.item() == pytest.approx(0.1 + 0.9 * 2)


def _spied(planner):
    """Record every batch of candidates the planner evaluates, with its returns."""
    calls = []
    objective = planner.objective

    def recording(state):
        returns = objective(state)

        def record(candidates):
            values = returns(candidates)
            calls.append((candidates.clone(), values))
            return values

        return record

    planner.objective = recording
    return calls


def test_executes_the_best_sequence_evaluated(shift_model):
    planner = ICEM(shift_model, population=20, num_elites=4, iterations=4, horizon=5, seed=0)
    calls = _spied(planner)
    state = torch.tensor([[0.5, -0.3], [1.5, 0.2]])
    solution = planner.optimize(state, planner.fresh_solution(2))
    candidates = torch.cat([c for c, _ in calls], dim=1)
    returns = torch.cat([r for _, r in calls], dim=1)
    torch.testing.assert_close(solution, candidates[torch.arange(2), returns.argmax(1)])


def test_population_decays_and_kept_elites_are_not_evaluated_again(shift_model):
    planner = ICEM(shift_model, population=40, num_elites=10, iterations=3, horizon=4, seed=0)
    calls = _spied(planner)
    planner.optimize(torch.zeros(1, 2), planner.fresh_solution(1))
    assert [c.shape[1] for c, _ in calls] == [40, 32, 25]


def test_mean_is_a_candidate_in_the_last_iteration(shift_model):
    planner = ICEM(shift_model, population=20, num_elites=4, iterations=1, horizon=3, seed=0)
    calls = _spied(planner)
    init = torch.full((1, 3, 2), 0.3)
    planner.optimize(torch.zeros(1, 2), init)
    torch.testing.assert_close(calls[0][0][:, 0], init)


def test_kept_elites_are_shifted_into_the_next_decision(shift_model):
    planner = ICEM(shift_model, population=40, num_elites=10, iterations=2, horizon=4, seed=0)
    calls = _spied(planner)
    obs = np.array([[0.5, -0.3], [1.5, 0.2]], np.float32)
    planner.predict(obs)
    kept = planner._elites
    assert kept is not None and kept.shape == (2, 3, 4, 2)  # int(0.3 * 10) elites
    calls.clear()
    planner.predict(obs, episode_start=np.array([True, False]))
    first = calls[0][0]
    assert first.shape[1] == 40 + 3
    # Env 1 continues: its last candidates are the kept elites, one step on.
    torch.testing.assert_close(first[1, -3:, :-1], kept[1, :, 1:])
    # Env 0 started a new episode: no memory of the old one.
    assert not torch.isclose(first[0, -3:, :-1], kept[0, :, 1:]).all(-1).all(-1).any()


def test_refuses_discrete_actions(discrete_shift_model):
    with pytest.raises(UnsupportedSpaceError, match="Box actions only"):
        ICEM(discrete_shift_model)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"population": 30, "num_elites": 16},
            r"num_elites: expected at most population // 2 = 15 .*, got 16",
        ),
        ({"noise_beta": -1.0}, "noise_beta: expected a float >= 0"),
        ({"population_decay": 0.5}, "population_decay: expected a float >= 1"),
        ({"keep_elites_fraction": 1.5}, "keep_elites_fraction"),
        ({"init_std": 0.0}, "init_std"),
        ({"alpha": 1.0}, "alpha"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, match, shift_model):
    with pytest.raises(ValueError, match=match):
        ICEM(shift_model, **kwargs)
