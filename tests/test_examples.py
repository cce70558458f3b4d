"""The examples run and do what they say."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_dyna_q_maze_example():
    example = _load("dyna_q_maze")
    lengths = example.main(example.Config(episodes=10))
    assert len(lengths) == 10
    assert lengths[-1] < lengths[0]


def test_ppo_trained_only_in_imagination_reaches_the_real_goal():
    torch.set_num_threads(1)
    example = _load("ppo_in_imagination")
    # PPO never sees the real maze during training; on the real maze it must reach the goal.
    assert example.main(example.Config()) == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ppo_in_imagination_other_seeds(seed):
    torch.set_num_threads(1)
    example = _load("ppo_in_imagination")
    assert example.main(example.Config(seed=seed)) == 1.0


@pytest.mark.slow
def test_pets_new_goal_example():
    # Swing-up after 10 real episodes, then the same model held level by a new reward.
    example = _load("pets_new_goal")
    result = example.main(example.Config())
    assert result["return"] >= -250 and result["upright_cos"] > 0.9
    assert result["level_cos"] < 0.3


def test_tree_search_over_a_learned_model_balances_cartpole():
    example = _load("mcts_cartpole")
    result = example.main(
        example.Config(num_simulations=16, eval_episodes=2, max_episode_steps=100)
    )
    # Measured 231 of 500 with the default settings (random play: 30).
    assert result["mcts"] >= 90 and result["random"] < 40


@pytest.mark.slow
def test_latent_ppo_example_reaches_195():
    # PPO trained only in an RSSM's latent imagination, evaluated on the real CartPole
    # through LatentFilterWrapper (measured: 197, 382, 335 after 1k, 2k, 3k real steps).
    torch.set_num_threads(1)
    example = _load("latent_ppo_cartpole")
    assert max(example.main()) >= 195


@pytest.mark.slow
def test_dreamer_example_balances_the_pole():
    # Dreamer's CartPole target: an evaluation of 10 deterministic episodes at 475 or more
    # within a budget of real steps, here 15,000; the example stops training there. Seed 0
    # reached 500.0 at 5,000 steps, then 500.0 on 10 fresh episodes and 484.9 loaded; seeds
    # 0-5 all reached it, at 5,000 to 15,000 (benchmarks/RESULTS.md, Dreamer on CartPole-v1).
    # A fixed 7,500 steps hung on the CPU's rounding: 500.0 on one machine, 471.2 on another.
    # About 3 minutes on one core for seed 0.
    torch.set_num_threads(1)
    example = _load("dreamer_cartpole")
    result = example.main(["--steps", "15000", "--seed", "0"])
    assert result["best"] >= 475.0 and result["steps"] <= 15_000
    assert result["return"] >= 475.0
    assert result["loaded"] >= 200.0  # the loaded agent balances too (random play: about 22)


def test_planning_in_a_learned_model_of_dict_observations_reaches_goals():
    example = _load("goal_planning")
    result = example.main(example.Config(ensemble_size=3, population=64, eval_episodes=3))
    # Measured 100% of 10 episodes with the default settings (random play: 0%).
    assert result["cem"] >= 2 / 3 and result["random"] < 1 / 3


def test_steve_example_logs_and_plots_the_horizon_weights(tmp_path):
    example = _load("steve_pendulum")
    settings = {**example.Config().settings, "learning_starts": 400, "model_train_freq": 200}
    config = example.Config(
        total_timesteps=600, settings=settings, eval_episodes=1, plot=str(tmp_path / "weights.png")
    )
    result = example.main(config)
    assert result["weights"].shape == (len(result["steps"]), 4)  # horizons 0..3
    np.testing.assert_allclose(result["weights"].sum(1), 1.0, atol=1e-4)
    assert (tmp_path / "weights.png").stat().st_size > 1000


@pytest.mark.slow
def test_steve_example_swings_the_pendulum_up():
    # STEVE-TD3 reached -200 after 3,500-4,000 real steps on seeds 0-2 (benchmarks/RESULTS.md).
    example = _load("steve_pendulum")
    assert example.main(example.Config())["return"] >= -250


def test_tdm_example_predicts_distances_and_plots_the_paths(tmp_path):
    example = _load("tdm_point_goal")
    settings = {**example.Config().settings, "learning_starts": 100}
    config = example.Config(
        total_timesteps=200, settings=settings, eval_episodes=2, plot=str(tmp_path / "paths.png")
    )
    result = example.main(config)
    assert len(result["paths"]) == 2 and result["goals"].shape == (2, 2)
    assert np.isfinite(result["prediction_error"]) and 0.0 <= result["success"] <= 1.0
    assert (tmp_path / "paths.png").stat().st_size > 1000


@pytest.mark.slow
def test_tdm_example_reaches_goals_and_predicts_where_it_will_be():
    # Measured on seed 1: success 0.90, prediction off by 0.010 (start distance 0.835, L1).
    result = _load("tdm_point_goal").main()
    assert result["success"] >= 0.85
    assert result["prediction_error"] < 0.1 * result["start_distance"]


def test_pilco_example_plots_its_prediction_against_the_real_episodes(tmp_path):
    example = _load("pilco_swing_up")
    settings = {
        "horizon": 5,
        "num_basis": 4,
        "policy_iterations": 2,
        "model_kwargs": {"max_points": 30},
    }
    config = example.Config(
        episodes=2, settings=settings, eval_episodes=2, plot=str(tmp_path / "p.png")
    )
    result = example.main(config)
    assert result["paths"].shape == (2, 31, 5)
    assert result["predicted_mean"].shape == (5, 5) and np.all(result["predicted_std"] >= 0)
    assert 0.0 <= result["within_band"] <= 1.0 and 0.0 <= result["success"] <= 1.0
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_gps_example_plots_the_policy_beside_the_local_controllers(tmp_path):
    example = _load("gps_reacher")
    settings = {"samples": 2, "policy_steps": 10}
    config = example.Config(
        iterations=2,
        conditions=[100, 101],
        held_out=[200],
        settings=settings,
        plot=str(tmp_path / "g.png"),
    )
    result = example.main(config)
    assert result["real_steps"] == 2 * 2 * 2 * 50 and len(result["curve"]) == 2
    assert result["paths"].shape == (2, 51, 2)
    assert np.isfinite(result["policy_return"]) and 0.0 <= result["held_out_distance"] < 1.0
    assert (tmp_path / "g.png").stat().st_size > 1000


def test_simple_example_plots_real_frames_above_imagined_ones(tmp_path):
    pytest.importorskip("ale_py")
    example = _load("simple_atari")
    settings = {
        "model_kwargs": {
            "hidden_size": 4,
            "compress_steps": 2,
            "bits": 8,
            "bit_predictor_size": 8,
            "batch_size": 4,
            "sequence_length": 2,
        },
        "learning_starts": 40,
        "train_freq": 20,
        "first_fit_steps": 3,
        "fit_steps": 2,
        "imagined_steps": 32,
        "num_imagined_envs": 2,
        "imagination_horizon": 8,
        "agent_kwargs": {"n_steps": 8, "batch_size": 16, "n_epochs": 1},
    }
    config = example.Config(
        screen_size=16,
        iterations=1,
        settings=settings,
        open_loop_steps=3,
        plot=str(tmp_path / "s.png"),
    )
    result = example.main(config)
    assert result["real"].shape == result["imagined"].shape == (3, 16, 16)
    assert result["imagined"].dtype == np.uint8 and np.all(
        (0 <= result["close"]) & (result["close"] <= 1)
    )
    assert "model/pixel_accuracy" in result["metrics"]
    assert (tmp_path / "s.png").stat().st_size > 1000
