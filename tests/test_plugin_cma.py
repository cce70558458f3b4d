"""The example plugin ``mbwrap-cma``: discovery, the unit-cube map, known optima, batching,
seeding, a real env through SB3's ``evaluate_policy``, persistence and errors."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

import mbwrap
from mbwrap.errors import ModelOutputError, UnsupportedSpaceError
from mbwrap.models import WorldModel
from mbwrap.types import ModelStep

# The plugin is a separate distribution; the suite runs without it.
cma = pytest.importorskip("cma")
mbwrap_cma = pytest.importorskip("mbwrap_cma")
CMAESPlanner = mbwrap_cma.CMAESPlanner


class ShiftModel(WorldModel):
    """``s' = s + a``, reward ``-||s'||^2``, actions in ``[-1, 1]^D`` (as
    ``tests/planners/conftest.py``): the best first action from ``s`` is ``clip(-s, -1, 1)``.

    ``reward_scale=nan`` makes every predicted return non-finite.
    """

    def __init__(self, dim: int = 2, *, reward_scale: float = 1.0, discrete: bool = False):
        obs = spaces.Box(-10.0, 10.0, (dim,), np.float32)
        act = spaces.Discrete(3) if discrete else spaces.Box(-1.0, 1.0, (dim,), np.float32)
        super().__init__(obs, act, device="cpu")
        self.reward_scale = reward_scale
        self.calls = 0

    def get_config(self) -> dict[str, Any]:
        return {"dim": self.observation_space.shape[0]}

    def fit(self, buffer: Any, **kwargs: Any) -> dict[str, Any]:
        return {}

    def step(self, state, action, *, generator=None, member=None) -> ModelStep:
        self.calls += 1
        next_state = state + action.reshape(state.shape)
        reward = -self.reward_scale * next_state.square().sum(-1)
        return ModelStep(next_state=next_state, reward=reward, terminated=None)


STATES = torch.tensor([[0.3, -2.5], [1.5, 0.2], [-0.4, 0.8], [0.0, 0.0]])
BEST_FIRST = (-STATES).clamp(-1.0, 1.0)
# Horizon 2 and 40 generations of cma's default 8 candidates (n = 4): measured first-action
# errors about 1e-3 over seeds 0-4; 5 generations leave errors of about 0.4.
CONVERGED = {"horizon": 2, "iterations": 40}


# ---------------------------------------------------------------------- pure functions
def test_unit_box_maps_bounds_to_minus_one_one_and_back():
    lower, upper = torch.tensor([-2.0, 0.0, 3.0]), torch.tensor([2.0, 1.0, 3.0])
    actions = torch.tensor([[1.0, 0.25, 3.0], [-2.0, 1.0, 3.0], [5.0, -1.0, 3.0]])
    unit = mbwrap_cma.to_unit_box(actions, lower, upper)
    # Worked by hand: (a - middle) / half-width, clipped; the zero-width dimension is 0.
    expected = torch.tensor([[0.5, -0.5, 0.0], [-1.0, 1.0, 0.0], [1.0, -1.0, 0.0]])
    assert torch.equal(unit, expected)
    back = mbwrap_cma.from_unit_box(unit, lower, upper)
    assert torch.equal(back[:2], actions[:2])
    assert torch.equal(back[2], torch.tensor([2.0, 0.0, 3.0]))  # clipped into the Box


@pytest.mark.parametrize("dimension", [2, 3, 10, 30, 180])
def test_default_population_is_cmas_own(dimension):
    es = cma.CMAEvolutionStrategy(np.zeros(dimension), 0.5, {"verbose": -9, "verb_log": 0})
    assert mbwrap_cma.default_population(dimension) == es.popsize


# ---------------------------------------------------------------------- registry
def test_plugin_is_discovered_with_its_distribution():
    info = mbwrap.registry.available("planner")["cma-es"]
    assert info.dist == "mbwrap-cma"
    assert info.version == importlib.metadata.version("mbwrap-cma")
    assert info.target == "mbwrap_cma.planner:CMAESPlanner"
    assert info.load() is CMAESPlanner


def test_make_planner_builds_it_with_its_defaults():
    planner = mbwrap.make_planner("cma-es", ShiftModel(3), seed=0)
    assert isinstance(planner, CMAESPlanner)
    assert planner.horizon == 30
    assert planner.population == 4 + int(3 * np.log(90))
    assert (planner.iterations, planner.sigma0) == (5, 0.5)


# ---------------------------------------------------------------------- known optimum
def test_finds_the_best_first_action_with_one_model_batch_per_generation():
    model = ShiftModel(2)
    planner = mbwrap.make_planner("cma-es", model, seed=0, **CONVERGED)
    actions = planner.plan(STATES)
    assert actions.shape == (4, 2)
    torch.testing.assert_close(actions, BEST_FIRST, atol=0.02, rtol=0)
    # One objective call per generation for all 4 states; each steps the model H times.
    assert model.calls == CONVERGED["iterations"] * CONVERGED["horizon"]


def test_a_batch_plans_each_state_as_if_alone():
    batched = mbwrap.make_planner("cma-es", ShiftModel(2), seed=3, **CONVERGED)
    together = batched.optimize(STATES, batched.fresh_solution(4))
    for b in range(4):
        alone = mbwrap.make_planner("cma-es", ShiftModel(2), seed=3, **CONVERGED)
        solo = alone.optimize(STATES[b : b + 1], alone.fresh_solution(1))
        torch.testing.assert_close(solo[0, 0], together[b, 0], atol=0.03, rtol=0)
    # Strategy b draws from its own stream, so state 0's plan is bit-for-bit the same
    # whatever else is in the batch.
    other = mbwrap.make_planner("cma-es", ShiftModel(2), seed=3, **CONVERGED)
    mixed = torch.stack([STATES[0], torch.tensor([4.0, -4.0])])
    assert torch.equal(other.optimize(mixed, other.fresh_solution(2))[0], together[0])


def test_the_warm_start_is_kept_when_nothing_better_is_found():
    planner = mbwrap.make_planner(
        "cma-es", ShiftModel(2), horizon=3, iterations=1, sigma0=2.0, seed=0
    )
    state = STATES[:1]
    best = torch.stack([BEST_FIRST[0], torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0])])
    solution = planner.optimize(state, best[None])
    objective = planner.objective(state)
    assert objective(solution[:, None]).item() >= objective(best[None, None]).item()


def test_same_seed_same_plan_and_numpys_global_generator_is_untouched():
    # cma by default reseeds NumPy's legacy global generator; the planner must not.
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    plans = [
        mbwrap.make_planner("cma-es", ShiftModel(2), horizon=3, seed=11).plan(STATES)
        for _ in range(2)
    ]
    assert torch.equal(plans[0], plans[1])
    assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002
    other = mbwrap.make_planner("cma-es", ShiftModel(2), horizon=3, seed=12).plan(STATES)
    assert not torch.equal(other, plans[0])


# ---------------------------------------------------------------------- a real env
class PointEnv(gym.Env):
    """A point at ``s in R^2`` moved by ``0.5 a``, rewarded ``-||s'||^2``, for 10 steps."""

    observation_space = spaces.Box(-5.0, 5.0, (2,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = self.np_random.uniform(-2.0, 2.0, 2).astype(np.float32)
        self.t = 0
        return self.state.copy(), {}

    def step(self, action):
        self.state = np.clip(self.state + 0.5 * np.asarray(action, np.float32), -5.0, 5.0)
        self.t += 1
        return self.state.copy(), -float(np.square(self.state).sum()), False, self.t >= 10, {}


class ScriptedPolicy:
    """An SB3-style ``predict`` from a function of the observation batch."""

    def __init__(self, act):
        self.act = act

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        return self.act(obs), None


def _mean_return(policy: Any, episodes: int = 5) -> float:
    env = Monitor(PointEnv())
    env.reset(seed=1)  # every policy meets the same start states
    mean, _ = evaluate_policy(policy, env, n_eval_episodes=episodes)
    return float(mean)


@pytest.fixture(scope="module")
def point_model() -> WorldModel:
    torch.manual_seed(0)
    env = PointEnv()
    buffer = mbwrap.ReplayBuffer(env.observation_space, env.action_space, 1000, device="cpu")
    mbwrap.collect(env, buffer, 1000, seed=0)
    model = mbwrap.make_model(
        "mlp",
        env.observation_space,
        env.action_space,
        hidden_sizes=(64, 64),
        batch_size=64,
        device="cpu",
    )
    model.fit(buffer, epochs=20)
    return model


def test_evaluate_policy_on_a_real_env_comes_close_to_the_optimum(point_model):
    planner = mbwrap.make_planner("cma-es", point_model, horizon=3, seed=0)
    planned = _mean_return(planner)
    # Heading straight for the origin at full speed is optimal: the cost is separable.
    optimal = _mean_return(ScriptedPolicy(lambda obs: np.clip(-2.0 * obs, -1.0, 1.0)))
    standing = _mean_return(ScriptedPolicy(lambda obs: np.zeros_like(obs)))
    # Measured: about -2.4 planned (seeds 0-2), -1.5 optimal, -24.8 standing still.
    assert planned > optimal - 0.1 * (optimal - standing)


# ---------------------------------------------------------------------- persistence
def test_save_load_round_trip_through_the_registry(point_model, tmp_path):
    planner = mbwrap.make_planner(
        "cma-es",
        point_model,
        horizon=4,
        population=6,
        iterations=2,
        sigma0=0.3,
        gamma=0.9,
        seed=7,
    )
    path = tmp_path / "cma.mbw"
    planner.save(path)
    loaded = mbwrap.Planner.load(path, device="cpu")
    assert type(loaded) is CMAESPlanner
    assert loaded.get_config() == planner.get_config()
    assert loaded.get_config()["sigma0"] == 0.3
    obs = np.array([[1.0, -1.5], [0.2, 0.4]], np.float32)
    assert np.array_equal(loaded.predict(obs)[0], planner.predict(obs)[0])


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("population", 1),
        ("population", 2.5),
        ("population", True),
        ("iterations", 0),
        ("iterations", "5"),
        ("sigma0", 0.0),
        ("sigma0", -0.5),
        ("sigma0", float("nan")),
        ("sigma0", float("inf")),
    ],
)
def test_bad_settings_name_the_argument(setting, value):
    with pytest.raises(ValueError, match=rf"{setting}: expected .* got {value!r}"):
        mbwrap.make_planner("cma-es", ShiftModel(2), **{setting: value})


def test_a_single_decision_variable_is_refused():
    with pytest.raises(ValueError, match="horizon: CMA-ES needs at least 2"):
        mbwrap.make_planner("cma-es", ShiftModel(1), horizon=1)


def test_discrete_actions_are_unsupported():
    with pytest.raises(UnsupportedSpaceError, match="Box actions only"):
        mbwrap.make_planner("cma-es", ShiftModel(1, discrete=True))


def test_non_finite_returns_raise_model_output_error():
    planner = mbwrap.make_planner(
        "cma-es", ShiftModel(2, reward_scale=float("nan")), horizon=2, iterations=1
    )
    with pytest.raises(ModelOutputError, match="non-finite"):
        planner.plan(STATES)
