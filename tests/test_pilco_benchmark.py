"""benchmarks/pilco.py: PILCO's predicted costs per start Gaussian against real runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import mbwrap

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "pilco.py"
STARTS = [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.5]]  # Pendulum's (cos, sin, velocity)


@pytest.fixture(scope="module")
def pilco_benchmark():
    spec = importlib.util.spec_from_file_location("pilco_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def agent():
    algo = mbwrap.make_algo(
        "pilco",
        gym.make("Pendulum-v1", max_episode_steps=20),
        seed=0,
        device="cpu",
        horizon=5,
        num_basis=4,
        policy_iterations=2,
        start_means=STARTS,
        start_std=1e-6,
        model_kwargs={"max_points": 30},
    )
    algo.learn(40)
    return algo


def test_predicted_against_real_pairs_each_start_with_its_own_real_runs(pilco_benchmark, agent):
    rows = pilco_benchmark.predicted_against_real(agent, "Pendulum-v1", samples=3, seed=0)
    assert len(rows) == len(STARTS)
    predicted = agent.predicted_costs(per_start=True).detach()
    for k, (row, start) in enumerate(zip(rows, STARTS, strict=True)):
        assert row["predicted"] == pytest.approx(float(predicted[:, k].sum()))
        # A start Gaussian this narrow is its mean: replay that start by hand.
        env = gym.make("Pendulum-v1")
        env.reset(seed=0)
        env.unwrapped.state = np.array([np.arctan2(start[1], start[0]), start[2]])
        obs, total = np.array(start, dtype=np.float32), 0.0
        for _ in range(5):
            action, _ = agent.predict(obs[None], deterministic=True)
            obs = env.step(action[0])[0]
            flat = torch.as_tensor(obs[None], dtype=torch.float64)
            total += float(agent.expected_cost(flat, torch.zeros(1, 3, 3, dtype=torch.float64)))
        assert row["real"] == pytest.approx(total, abs=1e-4)
        assert np.all(row["real_std"] < 1e-3)
        assert row["predicted_std"].shape == (3,)
