"""PlaNet: planning from filtered latent states, per-env beliefs, action repeat, the
training schedule, the SB3-style surface, checkpoints, errors, and learning a task a
random policy fails."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from mbwrap.algos.pets import PETS
from mbwrap.algos.planet import PLANET_CEM_KWARGS, PLANET_MODEL_KWARGS, PlaNet
from mbwrap.errors import CheckpointError
from mbwrap.models import RSSM, WorldModel
from mbwrap.planners import CEM
from mbwrap.testing import assert_load_restores_everything, assert_resume_is_exact
from mbwrap.types import ModelStep


class Reach(gym.Env):
    """Move a point on a line to the origin: ``x' = x + 0.5 a``, reward ``-x'^2``, 20 steps
    from ``x ~ U(-4, 4)``. Random actions score about -150 to -230 per episode; the best
    policy (full speed to the origin, then stay) about -18."""

    observation_space = spaces.Box(-10.0, 10.0, (1,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = self.np_random.uniform(-4, 4, (1,)).astype(np.float32)
        self.t = 0
        return self.x.copy(), {}

    def step(self, action):
        self.x = np.clip(self.x + 0.5 * np.clip(action, -1, 1), -10, 10).astype(np.float32)
        self.t += 1
        return self.x.copy(), float(-(self.x[0] ** 2)), False, self.t >= 20, {}


class DiscreteReach(Reach):
    """:class:`Reach` with moves ``-1, 0, +1`` (actions 0, 1, 2)."""

    action_space = spaces.Discrete(3)

    def step(self, action):
        return super().step(np.array([float(action) - 1.0], np.float32))


class Clock(gym.Env):
    """Observation: the step count; reward 1 per step; episodes of ``length`` steps
    (truncated)."""

    observation_space = spaces.Box(0.0, 100.0, (1,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, length: int = 5) -> None:
        self.length = length

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], np.float32), 1.0, False, self.t >= self.length, {}


TINY: dict[str, Any] = {
    "model_kwargs": {"deter": 16, "hidden": 16, "stoch": 4, "layers": 1},
    "planner_kwargs": {"population": 16, "num_elites": 4, "iterations": 2, "horizon": 3},
    "batch_size": 4,
    "sequence_length": 5,
    "gradient_steps": 2,
    "learning_starts": 20,  # one episode of Reach
}


class EncodingShift(WorldModel):
    """``encode(obs) = 2 obs``, ``s' = s + a``, reward ``-s'^2``: planning from
    ``encode(obs)`` and from ``obs`` itself give different actions."""

    def __init__(self) -> None:
        box = spaces.Box(-10.0, 10.0, (1,), np.float32)
        super().__init__(box, spaces.Box(-1.0, 1.0, (1,), np.float32), device="cpu")

    def get_config(self) -> dict[str, Any]:
        return {}

    def fit(self, buffer: Any, **kwargs: Any) -> dict[str, Any]:
        return {}

    def encode(self, obs: Any) -> torch.Tensor:
        return 2.0 * torch.as_tensor(obs, dtype=torch.float32)

    def step(self, state, action, *, generator=None, member=None) -> ModelStep:
        next_state = state + action.reshape(state.shape)
        return ModelStep(next_state=next_state, reward=-next_state[:, 0].square(), terminated=None)


# ---------------------------------------------------------------------- plan_states
def test_plan_states_is_plan_after_encoding():
    model = EncodingShift()
    obs = torch.tensor([[0.3], [-0.2], [0.45]])
    kwargs = {"population": 64, "num_elites": 8, "iterations": 4, "horizon": 3, "particles": 1}
    planned = CEM(model, seed=3, **kwargs).plan(obs)
    from_states = CEM(model, seed=3, **kwargs).plan_states(model.encode(obs))
    from_obs = CEM(model, seed=3, **kwargs).plan_states(obs)
    torch.testing.assert_close(planned, from_states)
    # The states are 2 * obs: the best move is -2 * obs (clipped), not -obs.
    torch.testing.assert_close(planned, torch.clamp(-2 * obs, -1, 1), atol=0.08, rtol=0)
    assert not torch.allclose(planned, from_obs, atol=0.05)


def test_plan_states_warm_starts_and_checks_its_input():
    planner = CEM(EncodingShift(), seed=0, population=16, num_elites=4, horizon=4, particles=1)
    planner.plan_states(torch.zeros(2, 1))
    assert planner._solution is not None and planner._solution.shape == (2, 4, 1)
    with pytest.raises(TypeError, match=r"state: expected a tensor \[B, \*state_shape\]"):
        planner.plan_states(np.zeros((2, 1)))
    with pytest.raises(TypeError, match=r"state: .*got \(\)"):
        planner.plan_states(torch.tensor(1.0))


# ---------------------------------------------------------------------- defaults
def test_paper_defaults_reach_the_model_and_the_planner():
    algo = PlaNet(Reach(), seed=0, device="cpu")
    assert isinstance(algo.model, RSSM) and isinstance(algo.planner, CEM)
    config = algo.model.get_config()
    assert {k: config[k] for k in PLANET_MODEL_KWARGS} == PLANET_MODEL_KWARGS
    assert config["latent"] == "gaussian" and config["stoch"] == 30 and config["deter"] == 200
    planner = algo.planner.get_config()
    assert {k: planner[k] for k in PLANET_CEM_KWARGS} == PLANET_CEM_KWARGS
    config = algo.config
    # The paper's S = 5 seed episodes of 1000 env steps.
    assert (config.learning_starts, config.gradient_steps, config.batch_size) == (5000, 100, 50)
    assert (config.sequence_length, config.action_repeat, config.exploration_noise) == (50, 1, 0.3)
    assert algo.model.config["batch_size"] == 50 and algo.model.config["sequence_length"] == 50
    # The latent model's heads give reward and termination, never functions of observations.
    assert algo.planner.reward_fn is None and algo.planner.termination_fn is None


def test_model_and_planner_kwargs_update_the_paper_defaults():
    algo = PlaNet(Reach(), device="cpu", model_kwargs={"deter": 8}, planner_kwargs={"horizon": 4})
    assert algo.model.deter == 8 and algo.model.latent == "gaussian" and algo.model.stoch == 30
    assert algo.planner.horizon == 4 and algo.planner.population == 1000


# ---------------------------------------------------------------------- beliefs
def test_predict_filters_per_env_and_restarts_where_an_episode_starts():
    algo = PlaNet(Reach(), seed=0, device="cpu", **TINY)
    model = algo.model
    first_deter = model._first_deter(1)[0]
    obs = np.array([[1.0], [-2.0]], np.float32)
    actions, state = algo.predict(obs, state=None, episode_start=np.array([True, True]))
    assert actions.shape == (2, 1) and state is None
    belief = algo.latent_state
    assert belief is not None and belief.shape == (2, model.feature_size)
    torch.testing.assert_close(belief[:, : model.deter], first_deter.expand(2, -1))

    previous = belief.clone()
    algo.predict(obs + 0.5, episode_start=np.array([True, False]))
    belief = algo.latent_state
    # Env 0 restarted from its new observation alone; env 1 advanced its own belief.
    torch.testing.assert_close(belief[0, : model.deter], first_deter)
    with torch.no_grad():
        expected = model._recurrent(previous[1:], model.action_vector(torch.as_tensor(actions[1:])))
    torch.testing.assert_close(belief[1:, : model.deter], expected)
    assert not torch.allclose(belief[1, : model.deter], first_deter)


def test_action_repeat_decides_every_r_calls_and_restarts_with_episodes(monkeypatch):
    algo = PlaNet(Reach(), seed=0, device="cpu", action_repeat=3, **TINY)
    decisions = []
    plan_states = algo.planner.plan_states
    monkeypatch.setattr(
        algo.planner, "plan_states", lambda s: decisions.append(len(s)) or plan_states(s)
    )
    obs = np.zeros((1, 1), np.float32)
    first, _ = algo.predict(obs, episode_start=np.array([True]), deterministic=False)
    for _ in range(2):
        again, _ = algo.predict(obs, episode_start=np.array([False]), deterministic=False)
        np.testing.assert_array_equal(again, first)
    assert len(decisions) == 1
    algo.predict(obs, episode_start=np.array([False]))
    assert len(decisions) == 2
    algo.predict(obs, episode_start=np.array([True]))  # a new episode decides at once
    assert len(decisions) == 3


def test_predict_works_in_evaluate_policy_on_a_vector_env():
    algo = PlaNet(Reach(), seed=0, device="cpu", **TINY)
    venv = DummyVecEnv([lambda: Monitor(Reach()) for _ in range(3)])
    venv.seed(5)
    mean, std = evaluate_policy(algo, venv, n_eval_episodes=6, warn=False)
    assert np.isfinite(mean) and np.isfinite(std)
    assert algo.latent_state is not None and algo.latent_state.shape[0] == 3
    single, _ = algo.predict(np.array([0.5], np.float32))
    assert single.shape == (1,) and algo.latent_state.shape[0] == 1


# ---------------------------------------------------------------------- collecting
def test_action_repeat_sums_rewards_and_cuts_transitions_at_episode_ends():
    algo = PlaNet(Clock(), seed=0, device="cpu", action_repeat=2, learning_starts=100)
    algo.learn(10)
    data = algo.buffer.transitions()
    # Episodes of 5 steps, 2 steps per decision: 0 -> 2 -> 4 -> 5 (end), twice.
    assert algo.num_timesteps == 10 and len(algo.buffer) == 6 and algo.real_episodes == 2
    np.testing.assert_array_equal(data.reward.numpy(), [2, 2, 1, 2, 2, 1])
    np.testing.assert_array_equal(data.obs[:, 0].numpy(), [0, 2, 4, 0, 2, 4])
    np.testing.assert_array_equal(data.next_obs[:, 0].numpy(), [2, 4, 5, 2, 4, 5])
    np.testing.assert_array_equal(data.truncated.numpy(), [0, 0, 1, 0, 0, 1])
    assert not data.terminated.any()


def test_vector_envs_decide_together_when_an_episode_ends_within_a_repeat():
    venv = DummyVecEnv([lambda: Clock(5), lambda: Clock(4)])
    algo = PlaNet(venv, seed=0, device="cpu", action_repeat=2, learning_starts=100)
    algo.learn(16)
    data = algo.buffer.transitions()  # rows of (env 0, env 1)
    assert algo.num_timesteps == 16 and len(algo.buffer) == 8 and algo.real_episodes == 3
    # Env 1 ends at step 4; env 0 at step 5, then spends the repeat's second step in its
    # next episode (0 -> 1, not stored) and decides with env 1 from there.
    np.testing.assert_array_equal(data.obs[:, 0].numpy(), [0, 0, 2, 2, 4, 0, 1, 2])
    np.testing.assert_array_equal(data.next_obs[:, 0].numpy(), [2, 2, 4, 4, 5, 2, 3, 4])
    np.testing.assert_array_equal(data.reward.numpy(), [2, 2, 2, 2, 1, 2, 2, 2])
    np.testing.assert_array_equal(data.truncated.numpy(), [0, 0, 0, 1, 1, 0, 0, 1])


def test_plans_for_every_env_of_a_vector_env_at_once(monkeypatch):
    venv = DummyVecEnv([Reach for _ in range(3)])
    algo = PlaNet(venv, seed=0, device="cpu", **{**TINY, "learning_starts": 60})
    batches = []
    planner = algo._collecting.planner
    plan_states = planner.plan_states
    monkeypatch.setattr(planner, "plan_states", lambda s: batches.append(len(s)) or plan_states(s))
    algo.learn(90)  # 3 random episodes at once, then 10 planned steps of 3 envs
    assert algo.real_episodes == 3 and algo.train_rounds == 1
    assert batches == [3] * 10 and len(algo.buffer) == 90
    beliefs = algo._collecting.filter.state
    assert beliefs is not None and beliefs.shape[0] == 3


def test_trains_after_the_random_steps_then_before_each_episode():
    algo = PlaNet(Reach(), seed=0, device="cpu", **TINY)
    algo.learn(20)
    assert algo.train_rounds == 0 and algo.real_episodes == 1  # the random seed episode
    algo.learn(41, reset_num_timesteps=False)
    # Updates before planned episodes 2, 3 and at the start of 4.
    assert algo.train_rounds == 3 and algo.model.gradient_steps == 3 * TINY["gradient_steps"]
    assert algo.num_timesteps == 61 and len(algo.buffer) == 61


def test_train_every_counts_real_steps():
    algo = PlaNet(Reach(), seed=0, device="cpu", train_freq=15, **TINY)
    algo.learn(80)
    # Random first episode (20 steps), then updates at 20, 35, 50, 65.
    assert algo.train_rounds == 4


def test_discrete_actions_plan_and_explore():
    algo = PlaNet(DiscreteReach(), seed=0, device="cpu", **TINY)
    algo.learn(30)
    assert algo.train_rounds == 1
    actions = algo.buffer.transitions().action
    assert actions.dtype == torch.int64 and set(actions.tolist()) <= {0, 1, 2}
    action, _ = algo.predict(np.array([[3.0], [-3.0]], np.float32), deterministic=True)
    assert action.shape == (2,) and set(action.tolist()) <= {0, 1, 2}


class OffsetReach(Reach):
    """:class:`Reach` with moves ``-1, 0, +1`` as the actions themselves:
    ``Discrete(3, start=-1)``, checked."""

    action_space = spaces.Discrete(3, start=-1)

    def step(self, action):
        assert self.action_space.contains(np.int64(action)), action
        return super().step(np.array([float(action)], np.float32))


def test_offset_discrete_actions_plan_explore_and_train():
    algo = PlaNet(OffsetReach(), seed=0, device="cpu", exploration_noise=0.5, **TINY)
    algo.learn(30)  # OffsetReach asserts every action is -1, 0 or 1
    assert algo.train_rounds == 1
    assert set(algo.buffer.transitions().action.tolist()) <= {-1, 0, 1}
    action, _ = algo.predict(np.array([[3.0], [-3.0]], np.float32), deterministic=True)
    assert set(action.tolist()) <= {-1, 0, 1}
    noisy = algo._explore(torch.zeros(30_000, dtype=torch.int64), torch.Generator())
    # Half become uniform over the values -1, 0, 1: a third of those change.
    assert set(noisy.unique().tolist()) == {-1, 0, 1}
    assert abs(float((noisy != 0).float().mean()) - 1 / 3) < 0.01


def test_exploration_noise_follows_the_action_range():
    algo = PlaNet(Reach(), seed=0, device="cpu", exploration_noise=0.3, **TINY)
    planned = torch.zeros(20_000, 1)
    noisy = algo._explore(planned, torch.Generator().manual_seed(0))
    assert abs(float(noisy.std()) - 0.3) < 0.01 and float(noisy.abs().max()) <= 1.0
    discrete = PlaNet(DiscreteReach(), device="cpu", exploration_noise=0.3, **TINY)
    swapped = discrete._explore(torch.ones(30_000, dtype=torch.int64), torch.Generator())
    # 30% become uniform over 3 actions: 20% change.
    assert abs(float((swapped != 1).float().mean()) - 0.2) < 0.01


def test_callbacks_logging_and_evaluation_during_learning(tmp_path):
    class Count(BaseCallback):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def _on_step(self):
            self.calls += 1
            return self.num_timesteps < 45

    count = Count()
    evaluate = EvalCallback(Monitor(Reach()), n_eval_episodes=1, eval_freq=25, verbose=0)
    algo = PlaNet(Reach(), seed=0, device="cpu", **TINY)
    algo.set_logger(configure(str(tmp_path), ["csv"]))
    algo.learn(100, callback=[count, evaluate])
    assert count.calls == 45 and algo.num_timesteps == 45
    assert evaluate.n_calls == 45 and np.isfinite(evaluate.last_mean_reward)
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss", "train/reward_loss", "train/kl", "rollout/ep_rew_mean"} <= set(header)


def test_seeded_runs_are_reproducible():
    runs = []
    for _ in range(2):
        algo = PlaNet(Reach(), seed=3, device="cpu", **TINY)
        algo.learn(30)
        runs.append(algo)
    first, second = (run.buffer.transitions() for run in runs)
    torch.testing.assert_close(first.action, second.action, rtol=0, atol=0)
    for key, value in runs[0].model.state_dict().items():
        torch.testing.assert_close(runs[1].model.state_dict()[key], value, rtol=0, atol=0)


# ---------------------------------------------------------------------- persistence
def test_save_load_round_trip_gives_identical_actions(tmp_path):
    algo = PlaNet(Reach(), seed=0, device="cpu", **TINY)
    algo.learn(30)
    path = tmp_path / "planet.mbw"
    algo.save(path)
    loaded = PlaNet.load(path, env=Reach(), device="cpu")
    assert isinstance(loaded, PlaNet) and loaded.get_config() == algo.get_config()
    assert loaded.num_timesteps == 30 and len(loaded.buffer) == 30
    assert (loaded.real_episodes, loaded.train_rounds) == (1, 1)
    for key, value in algo.model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[key], value)
    obs = np.array([[2.0], [-1.0]], np.float32)
    runs = []
    for agent in (algo, loaded):
        agent.set_random_seed(7)
        starts = np.array([True, True])
        taken = []
        for step in range(4):
            action, _ = agent.predict(obs + step, episode_start=starts, deterministic=False)
            taken.append(action)
            starts = np.array([False, step == 1])
        runs.append(np.stack(taken))
    np.testing.assert_array_equal(runs[0], runs[1])
    # and learning continues from the loaded model and buffer
    loaded.learn(10, reset_num_timesteps=False)
    assert loaded.num_timesteps == 40 and len(loaded.buffer) == 40


def test_load_refuses_other_algorithms(tmp_path):
    pets = PETS(
        Reach(),
        device="cpu",
        model_kwargs={"ensemble_size": 2, "num_elites": 2, "hidden_sizes": [8]},
        planner_kwargs={"population": 8, "num_elites": 2, "horizon": 2, "particles": 1},
    )
    pets.save(tmp_path / "pets.mbw")
    with pytest.raises(CheckpointError, match=r"not mbwrap\.algos\.planet:PlaNet"):
        PlaNet.load(tmp_path / "pets.mbw")


def _pendulum() -> gym.Env:
    return gym.make("Pendulum-v1", max_episode_steps=50)


def _small_planet() -> PlaNet:
    return PlaNet(
        _pendulum(), seed=0, device="cpu", action_repeat=2, **{**TINY, "learning_starts": 50}
    )


def test_load_restores_the_whole_run(tmp_path):
    algo = _small_planet()
    algo.learn(70)  # mid-episode: the collecting beliefs are kept too
    assert algo.train_rounds == 1 and algo.collect_filter.state is not None
    loaded = assert_load_restores_everything(algo, tmp_path, env=_pendulum(), device="cpu")
    assert (loaded.real_episodes, loaded.train_rounds, len(loaded.buffer)) == (1, 1, 35)
    torch.testing.assert_close(loaded.collect_filter.state, algo.collect_filter.state)
    small = tmp_path / "small.pt"
    algo.save(small, include_buffer=False)
    assert small.stat().st_size < (tmp_path / "saved.pt").stat().st_size
    assert len(PlaNet.load(small, device="cpu").buffer) == 0


def test_a_run_resumed_at_an_episode_boundary_follows_the_uninterrupted_one(tmp_path):
    # One random episode, one planned (a round before it), saved where it ends, then two
    # more planned episodes with a round before each.
    assert_resume_is_exact(_small_planet, _pendulum, 100, 100, tmp_path)


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"learning_starts": -1}, "learning_starts: expected a value >= 0, got -1"),
        ({"action_repeat": 0}, "action_repeat: expected a value >= 1, got 0"),
        ({"gradient_steps": 2.5}, "gradient_steps: expected an int, got 2.5"),
        ({"train_freq": 0}, "train_freq: expected an int >= 1 or None, got 0"),
        ({"sequence_length": True}, "sequence_length: expected an int, got True"),
        ({"exploration_noise": -0.1}, "exploration_noise: expected a finite float >= 0"),
        ({"exploration_noise": float("nan")}, "exploration_noise: expected a finite float"),
        ({"planner_kwargs": {"reward_fn": abs}}, "planner_kwargs: PlaNet plans with the model"),
        ({"model": "gaussian-ensemble"}, "model: PlaNet filters .* lacks embed"),
        ({"planner": CEM}, "planner: expected a registered planner name"),
        ({"model_kwargs": [1]}, "model_kwargs: expected a dict, got \\[1\\]"),
        ({"model_kwargs": {"batch_size": 8}}, "model_kwargs: set batch_size as PlaNet's own"),
        ({"horizon": 5}, "horizon: not a setting of 'planet'"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        PlaNet(Reach(), device="cpu", **kwargs)


def test_discrete_exploration_noise_is_a_probability():
    with pytest.raises(ValueError, match=r"exploration_noise: expected a probability in \[0, 1\]"):
        PlaNet(DiscreteReach(), device="cpu", exploration_noise=1.5)


def test_predict_checks_episode_start_and_observations():
    algo = PlaNet(Reach(), device="cpu", **TINY)
    with pytest.raises(ValueError, match=r"episode_start: expected 2 booleans.*got shape \(3,\)"):
        algo.predict(np.zeros((2, 1), np.float32), episode_start=np.ones(3, bool))
    with pytest.raises(ValueError, match="observation: expected shape"):
        algo.predict(np.zeros((2, 4), np.float32))


# ---------------------------------------------------------------------- learning
class _Random:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        return self.rng.uniform(-1, 1, (np.asarray(obs).reshape(-1, 1).shape[0], 1)), None


def test_learns_to_reach_the_origin_with_its_own_reward_model():
    algo = PlaNet(
        Reach(),
        seed=0,
        device="cpu",
        learning_starts=40,  # two episodes
        gradient_steps=60,
        batch_size=16,
        sequence_length=10,
        model_kwargs={"deter": 32, "hidden": 32, "stoch": 4, "layers": 1},
        planner_kwargs={"population": 64, "num_elites": 8, "iterations": 3, "horizon": 5},
    )
    algo.learn(200)  # 2 random + 8 planned episodes
    env = Reach()
    env.reset(seed=123)
    planet, _ = evaluate_policy(algo, env, n_eval_episodes=5, warn=False)
    env.reset(seed=123)
    random, _ = evaluate_policy(_Random(0), env, n_eval_episodes=5, warn=False)
    # Measured on seeds 0, 1, 2: PlaNet -82, -23, -37; random -150 to -235; standing still
    # about -107; the best policy about -18.
    assert planet > random + 60 and planet > -100


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_swings_up_pendulum_from_its_own_latent_model(seed):
    # benchmarks/planet.py's settings: 15 real episodes (2 random), 3000 real steps.
    env = gym.make("Pendulum-v1")
    algo = PlaNet(
        env,
        seed=seed,
        device="cpu",
        learning_starts=400,  # two episodes
        gradient_steps=50,
        batch_size=16,
        action_repeat=2,
        model_kwargs={"deter": 64, "hidden": 64, "stoch": 16, "layers": 1},
        planner_kwargs={"population": 150, "num_elites": 15, "iterations": 5},
    )
    algo.learn(3000)
    eval_env = gym.make("Pendulum-v1")
    eval_env.reset(seed=seed + 10_000)
    planet, _ = evaluate_policy(algo, eval_env, n_eval_episodes=3, warn=False)
    # Random torques score about -1200 on Pendulum-v1.
    assert planet > -400
