"""distill_planner: DAgger from a planner into an SB3 policy, on a line whose best action
is known; the distilled policy then acts as well as the planner, or seeds POPLIN-A."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.evaluation import evaluate_policy

from mbwrap.algos import distill_planner
from mbwrap.models import WorldModel
from mbwrap.planners import CEM, POPLINA
from mbwrap.types import ModelStep


class Line(gym.Env):
    """``s' = s + a``, reward ``-s'^2``, 20 steps from ``s ~ U(-3, 3)``: the best action is
    ``clip(-s, -1, 1)``."""

    observation_space = spaces.Box(-10.0, 10.0, (1,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: Any = None):
        super().reset(seed=seed)
        self.s = self.np_random.uniform(-3, 3, (1,)).astype(np.float32)
        self.t = 0
        return self.s.copy(), {}

    def step(self, action):
        self.s = np.clip(self.s + np.clip(action, -1, 1), -10, 10).astype(np.float32)
        self.t += 1
        return self.s.copy(), float(-(self.s[0] ** 2)), False, self.t >= 20, {}


class LineModel(WorldModel):
    def __init__(self) -> None:
        super().__init__(Line.observation_space, Line.action_space, device="cpu")

    def get_config(self) -> dict[str, Any]:
        return {}

    def fit(self, buffer: Any, **kwargs: Any) -> dict[str, Any]:
        return {}

    def step(self, state, action, *, generator=None, member=None) -> ModelStep:
        next_state = state + action.reshape(state.shape)
        return ModelStep(
            next_state=next_state, reward=-next_state.square().sum(-1), terminated=None
        )


def test_dagger_distils_the_planner_into_td3():
    torch.manual_seed(0)
    planner = CEM(
        LineModel(), horizon=3, population=64, num_elites=8, iterations=3, particles=1, seed=0
    )
    agent, report = distill_planner(
        planner,
        Line(),
        "TD3",
        agent_kwargs={"policy_kwargs": {"net_arch": [32, 32]}},
        iterations=2,
        steps_per_iteration=100,
        bc_epochs=100,
        bc_batch_size=64,
        seed=0,
        device="cpu",
    )
    assert [r["iteration"] for r in report] == [0.0, 1.0, 2.0]
    assert [r["pairs"] for r in report] == [100.0, 200.0, 300.0]  # aggregated
    assert report[-1]["expert_gap"] < 0.01
    env = Line()
    env.reset(seed=123)
    planner_return, _ = evaluate_policy(planner, env, n_eval_episodes=5, warn=False)
    env.reset(seed=123)
    policy_return, _ = evaluate_policy(agent, env, n_eval_episodes=5, warn=False)
    # Within 10% of the planner's return on the same start states.
    assert policy_return >= 1.1 * planner_return, (policy_return, planner_return)
    # The policy then proposes POPLIN-A's initial plans.
    poplin = POPLINA(
        LineModel(), policy=agent, horizon=3, population=16, num_elites=4, particles=1, seed=0
    )
    plan = poplin.policy_sequences(torch.tensor([[2.5]]))
    assert plan.shape == (1, 3, 1) and float(plan[0, 0, 0]) < -0.8  # towards 0


def test_errors_name_the_argument():
    planner = CEM(LineModel(), horizon=2, population=8, num_elites=2, particles=1)
    with pytest.raises(TypeError, match="planner"):
        distill_planner(object(), Line())
    with pytest.raises(TypeError, match="env"):
        distill_planner(planner, "Line")
    with pytest.raises(ValueError, match="steps_per_iteration"):
        distill_planner(planner, Line(), steps_per_iteration=0)
    with pytest.raises(ValueError, match="bc_loss"):
        distill_planner(planner, Line(), bc_loss="l1")
    with pytest.raises(ValueError, match="bc_loss: 'nll' needs a stochastic policy"):
        distill_planner(planner, Line(), "TD3", bc_loss="nll", device="cpu")


def test_labels_follow_each_episode_in_order_planned_side_by_side():
    from mbwrap.algos.distill_planner import label_in_order

    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple[list[float], list[bool]]] = []

        def reset(self) -> None:
            pass

        def predict(self, obs, episode_start=None, deterministic=False):
            self.calls.append((obs[:, 0].tolist(), list(episode_start)))
            return 2 * obs, None

    obs = np.arange(5, dtype=np.float32)[:, None]  # episodes [0, 1, 2] and [3, 4]
    planner = Recorder()
    labels = label_in_order(planner, obs, [0, 3])
    np.testing.assert_array_equal(labels, 2 * obs)
    # One batched call per time step; the shorter episode repeats its last state.
    assert planner.calls == [
        ([0, 3], [True, True]),
        ([1, 4], [False, False]),
        ([2, 4], [False, False]),
    ]
