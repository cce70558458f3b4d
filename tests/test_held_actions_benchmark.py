"""benchmarks/held_actions.py: windows of the real game from saved states, and their summary."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "held_actions.py"


@pytest.fixture(scope="module")
def held_actions():
    pytest.importorskip("ale_py")
    spec = importlib.util.spec_from_file_location("held_actions", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summary_picks_the_best_held_action_and_pairs_it_with_random_play(held_actions):
    returns = {
        "NOOP": np.array([0.0, 0.0, 0.0]),
        "UP": np.array([3.0, 5.0, 4.0]),
        "random": np.array([1.0, 2.0, 3.0]),
    }
    s = held_actions.summary(returns)
    assert s["random"] == pytest.approx(2.0)
    assert s["best"] == ("UP", pytest.approx(4.0))
    assert s["worst"] == ("NOOP", pytest.approx(0.0))
    # Paired differences 2, 3, 1: mean 2, sample std 1, over sqrt(3).
    assert s["lead"] == pytest.approx(2.0)
    assert s["lead_se"] == pytest.approx(1.0 / np.sqrt(3.0))


def test_a_window_replays_from_its_saved_state(held_actions):
    env = held_actions.make_atari_env("ALE/Alien-v5", screen_size=42)
    rng = np.random.default_rng(0)
    states = held_actions.random_play_states(env, 2, 40, rng)
    assert len(states) == 2
    # The same state and actions give the same window, whatever was played in between.
    first = held_actions.window_return(env, states[1], lambda t: 5, 40)
    held_actions.window_return(env, states[0], lambda t: 2, 40)
    assert held_actions.window_return(env, states[1], lambda t: 5, 40) == first
    # A window of no steps earns nothing; rewards are counted by sign.
    assert held_actions.window_return(env, states[1], lambda t: 5, 0) == 0.0
    window = held_actions.window_return(env, states[1], lambda t: int(rng.integers(18)), 60)
    assert window == int(window) and 0 <= window <= 60
    env.close()


def test_scan_reports_every_action_and_random_play_per_start(held_actions):
    returns = held_actions.scan("ALE/Alien-v5", starts=3, steps=10, repeats=2, spacing=20)
    assert list(returns)[-1] == "random" and len(returns) == 18 + 1
    assert all(r.shape == (3,) for r in returns.values())
    # Random play's entry is a mean of 2 windows of whole reward signs per start.
    assert all(float(2 * r).is_integer() for r in returns["random"])
