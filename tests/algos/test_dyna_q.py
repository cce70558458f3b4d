"""Dyna-Q: the pure update rules, the SB3-style surface, and the book's Figure 8.2 result."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback, StopTrainingOnMaxEpisodes
from stable_baselines3.common.evaluation import evaluate_policy

import mbwrap
from mbwrap.algos import DynaQ, EpisodeStatsCallback, settings_table
from mbwrap.algos.dyna_q import DynaQConfig, epsilon_greedy, flat_index, q_learning_target
from mbwrap.cli.demo import dyna_maze_curves, first_episode_below
from mbwrap.errors import CheckpointError, UnsupportedSpaceError
from mbwrap.testing import assert_load_restores_everything, assert_resume_is_exact


def test_q_learning_target_by_hand():
    reward = np.array([1.0, 0.0, 0.5])
    next_q = np.array([[0.0, 2.0], [4.0, 1.0], [3.0, 3.0]])
    terminated = np.array([0.0, 0.0, 1.0])
    # 1 + 0.9 * 2 = 2.8; 0 + 0.9 * 4 = 3.6; terminal: no bootstrap.
    np.testing.assert_allclose(q_learning_target(reward, next_q, terminated, 0.9), [2.8, 3.6, 0.5])


def test_flat_index_numbers_discrete_and_multidiscrete_elements_by_hand():
    np.testing.assert_array_equal(flat_index([3, 5], gym.spaces.Discrete(4, start=2)), [1, 3])
    space = gym.spaces.MultiDiscrete([2, 3], start=[1, 0])
    # (row - 1) * 3 + col: (1, 0) -> 0, (1, 2) -> 2, (2, 1) -> 4.
    np.testing.assert_array_equal(flat_index([[1, 0], [1, 2], [2, 1]], space), [0, 2, 4])


def test_epsilon_greedy_breaks_ties_uniformly_and_explores():
    rng = np.random.default_rng(0)
    q = np.zeros((20_000, 4))
    q[:, 3] = -1.0  # actions 0..2 tie for the max
    greedy = epsilon_greedy(q, 0.0, rng)
    counts = np.bincount(greedy, minlength=4) / len(greedy)
    np.testing.assert_allclose(counts[:3], 1 / 3, atol=0.02)
    assert counts[3] == 0
    explore = epsilon_greedy(q, 1.0, rng)
    np.testing.assert_allclose(np.bincount(explore, minlength=4) / len(explore), 0.25, atol=0.02)


def test_defaults_are_the_books():
    algo = DynaQ(gym.make("mbwrap/DynaMaze-v0"))
    config = algo.config
    assert (config.learning_rate, config.gamma, config.exploration_rate) == (0.1, 0.95, 0.1)


def test_made_through_the_registry_and_acts_in_the_given_env():
    env = gym.make("mbwrap/DynaMaze-v0")
    algo = mbwrap.make_algo("dyna-q", env, planning_steps=5, seed=0)
    assert isinstance(algo, DynaQ)
    # Only SB3's Monitor (which records episodes, never cuts them) sits between.
    assert algo.get_env().envs[0].env is env
    assert env.spec.max_episode_steps is None


def _optimal_q(gamma: float = 0.95) -> np.ndarray:
    """Q* of the Dyna maze by value iteration on the env's own step function."""
    env = mbwrap.DynaMazeEnv()
    n = env.observation_space.n
    nxt, rew = np.zeros((n, 4), dtype=int), np.zeros((n, 4))
    for s in range(n):
        for a in range(4):
            env._pos = divmod(s, env.cols)
            nxt[s, a], rew[s, a] = env.step(a)[:2]
    q = np.zeros((n, 4))
    for _ in range(500):
        value = np.where(np.arange(n) == env.goal_state, 0.0, q.max(1))
        q = rew + gamma * value[nxt]
    return q


def test_planning_converges_to_the_optimal_values_off_policy():
    # With a uniformly random behaviour policy every pair gets visited; Q-learning on real
    # and imagined transitions is off-policy, so Q must reach Q* and the greedy path the
    # maze's 14-step shortest path.
    env = gym.make("mbwrap/DynaMaze-v0")
    algo = DynaQ(env, planning_steps=50, exploration_rate=1.0, seed=0).learn(8_000)
    q_star = _optimal_q()
    visited = algo._visited_mask
    assert visited.sum() == 46 * 4  # every action in every free cell but the goal
    np.testing.assert_allclose(algo.q_table[visited], q_star[visited], atol=1e-3)
    obs, _ = env.reset()
    for step in range(1, 100):
        obs, reward, terminated, _, _ = env.step(algo.predict(obs, deterministic=True)[0])
        if terminated:
            break
    assert terminated and reward == 1.0 and step == 14
    batch, _ = algo.predict(np.array([18, 18]), deterministic=True)
    assert batch.shape == (2,)


def test_epsilon_greedy_agent_finds_a_near_shortest_path():
    env = gym.make("mbwrap/DynaMaze-v0")
    algo = DynaQ(env, planning_steps=50, seed=1)
    algo.learn(10**6, callback=StopTrainingOnMaxEpisodes(30))
    obs, _ = env.reset()
    for step in range(1, 100):
        obs, reward, terminated, _, _ = env.step(algo.predict(obs, deterministic=True)[0])
        if terminated:
            break
    # Dyna-Q does not explore systematically (that is Dyna-Q+), so the greedy route can
    # miss the optimum by a detour; it must still be close to the 14-step shortest path.
    assert terminated and 14 <= step <= 18


def test_callbacks_see_sb3_locals_and_can_stop(tmp_path):
    seen = []

    class Stop(BaseCallback):
        def _on_step(self) -> bool:
            seen.append((self.num_timesteps, len(self.locals["dones"])))
            return self.num_timesteps < 25

    algo = DynaQ(gym.make("mbwrap/DynaMaze-v0"), seed=0)
    algo.learn(1000, callback=Stop())
    assert seen[-1] == (25, 1)
    assert algo.num_timesteps == 25


def test_learn_counts_real_steps_and_logs_csv(tmp_path):
    from stable_baselines3.common.logger import configure

    algo = DynaQ(gym.make("mbwrap/DynaMaze-v0"), planning_steps=5, seed=0)
    algo.set_logger(configure(str(tmp_path), ["csv"]))
    algo.learn(3000, log_interval=1)
    assert algo.num_timesteps == 3000
    text = (tmp_path / "progress.csv").read_text()
    assert "rollout/ep_len_mean" in text and "time/total_timesteps" in text


def test_progress_bar_and_evaluate_policy():
    env = gym.make("mbwrap/DynaMaze-v0")
    algo = DynaQ(env, planning_steps=20, seed=0).learn(4000, progress_bar=True)
    eval_env = gym.make("mbwrap/DynaMaze-v0", max_episode_steps=200)
    mean, _ = evaluate_policy(algo, eval_env, n_eval_episodes=3, deterministic=True, warn=False)
    assert mean == 1.0


def test_save_load_round_trip(tmp_path):
    env = gym.make("mbwrap/DynaMaze-v0")
    algo = DynaQ(env, planning_steps=50, seed=0).learn(2000)
    path = tmp_path / "dyna_q.pt"
    algo.save(path)
    loaded = DynaQ.load(path, env=gym.make("mbwrap/DynaMaze-v0"))
    np.testing.assert_array_equal(loaded.q_table, algo.q_table)
    assert loaded.config.planning_steps == 50 and loaded.num_timesteps == 2000
    assert (loaded.model.counts == algo.model.counts).all()
    obs = np.arange(54)
    unique = (algo.q_table == algo.q_table.max(1, keepdims=True)).sum(1) == 1
    assert unique.sum() > 10
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0][unique],
        algo.predict(obs, deterministic=True)[0][unique],
    )
    # Prediction needs no env; learning continues with one.
    assert DynaQ.load(path).predict(18, deterministic=True)[0] in range(4)
    loaded.learn(100, reset_num_timesteps=False)
    assert loaded.num_timesteps == 2100


def test_load_rejects_corrupt_and_foreign_files(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        DynaQ.load(bad)
    model = mbwrap.TabularModel(gym.spaces.Discrete(3), gym.spaces.Discrete(2), device="cpu")
    model.save(tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match=r"mbwrap\.model"):
        DynaQ.load(tmp_path / "model.pt")


def test_bad_arguments():
    with pytest.raises(UnsupportedSpaceError, match="finite"):
        DynaQ(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="planning_steps"):
        DynaQ(gym.make("mbwrap/DynaMaze-v0"), planning_steps=-1)
    with pytest.raises(ValueError, match="exploration_rate"):
        DynaQ(gym.make("mbwrap/DynaMaze-v0"), exploration_rate=1.5)


def test_multidiscrete_spaces():
    class Grid(gym.Env):
        """2-D corridor: MultiDiscrete position; reaching (2, 2) ends with reward 1."""

        observation_space = gym.spaces.MultiDiscrete([3, 3])
        action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.pos = np.array([0, 0])
            return self.pos.copy(), {}

        def step(self, action):
            self.pos[action] = min(self.pos[action] + 1, 2)
            done = bool((self.pos == 2).all())
            return self.pos.copy(), float(done), done, False, {}

    algo = DynaQ(Grid(), planning_steps=10, seed=0).learn(500)
    assert algo.q_table.shape == (9, 2)
    assert algo.q_table.max() > 0


def test_more_planning_finds_the_short_path_in_fewer_episodes():
    # Figure 8.2's left end on 10 runs of 12 episodes (seeds 0-9 gave 3 for n = 50 and 6
    # for n = 5; episode 1 averaged 1,026 steps over the 20 runs, 17.6 late).
    curves = dyna_maze_curves((5, 50), seeds=10, episodes=12)
    first = {n: first_episode_below(curve.mean(0), 20.0) for n, curve in curves.items()}
    assert first[50] <= 3 and 4 <= first[5] <= 10
    assert 500 < np.concatenate([curve[:, 0] for curve in curves.values()]).mean() < 1_400
    for curve in curves.values():
        assert 14 <= curve[:, -4:].mean() < 20


@pytest.fixture(scope="module")
def figure_8_2():
    # Sutton & Barto 2018, Figure 8.2: 30 runs of 50 episodes for n = 0, 5, 50.
    return dyna_maze_curves((0, 5, 50), seeds=30, episodes=50)


@pytest.mark.slow  # about 5 minutes on 2 cores
def test_reproduces_sutton_barto_figure_8_2(figure_8_2):
    first = {n: first_episode_below(curve.mean(0), 20.0) for n, curve in figure_8_2.items()}
    # n = 50: below 20 steps by the third episode; n = 0: about 25 episodes; n = 5 between.
    assert first[50] <= 3
    assert 4 <= first[5] <= 10
    assert 18 <= first[0] <= 35
    assert first[50] < first[5] < first[0]
    # Episode 1 is a random walk for every n: its expected length from S to G is 868.7
    # steps (solved exactly from the maze's transition matrix).
    all_first = np.concatenate([curve[:, 0] for curve in figure_8_2.values()])
    assert 650 < all_first.mean() < 1100
    # Late episodes: near the 14-step shortest path, epsilon-greedy keeps the mean near 17.
    for curve in figure_8_2.values():
        assert 14 <= curve[:, -10:].mean() < 19


def test_episode_stats_callback_records_every_episode():
    stats = EpisodeStatsCallback()
    DynaQ(gym.make("mbwrap/DynaMaze-v0"), planning_steps=50, seed=3).learn(
        10**6, callback=[stats, StopTrainingOnMaxEpisodes(5)]
    )
    assert len(stats.episode_lengths) == 5
    assert all(r == 1.0 for r in stats.episode_returns)
    assert min(stats.episode_lengths) >= 14


# ---------------------------------------------------------------------- config
def test_settings_are_keywords_of_one_config():
    env = gym.make("mbwrap/DynaMaze-v0")
    with pytest.raises(TypeError, match=r"at most 0 positional settings"):
        DynaQ(env, 5)
    with pytest.raises(TypeError, match=r"planing_steps: not a setting of 'dyna-q'\. Did you "
                                        r"mean 'planning_steps'\?"):
        DynaQ(env, planing_steps=5)
    config = DynaQConfig(planning_steps=50, seed=0)
    algo = DynaQ(env, config=config, exploration_rate=0.2)
    assert (algo.config.planning_steps, algo.config.exploration_rate) == (50, 0.2)
    # The config names the model as a checkpoint rebuilds it.
    assert algo.config.model == "tabular"
    assert algo.config.model_kwargs["env_id"] == "mbwrap/DynaMaze-v0"
    assert [row["name"] for row in settings_table(DynaQConfig)][-6:] == [
        "planning_steps", "learning_rate", "gamma", "exploration_rate", "model", "model_kwargs"
    ]


def test_the_model_is_a_table_given_by_name_keywords_or_instance():
    env = gym.make("mbwrap/DynaMaze-v0")
    algo = DynaQ(env, model_kwargs={"mode": "most-likely"}, device="cpu")
    assert algo.model.mode == "most-likely"
    model = mbwrap.TabularModel(env.observation_space, env.action_space, device="cpu")
    assert DynaQ(env, model=model).model is model
    # The feed-forward models take Discrete states too, but Dyna-Q's planning needs a table.
    with pytest.raises(UnsupportedSpaceError, match="use TabularModel"):
        DynaQ(env, model="mlp", device="cpu")


class _OffsetCorridor(gym.Env):
    """States 10..14 (``Discrete(5, start=10)``), actions -1 (left) and 0 (right)
    (``Discrete(2, start=-1)``); reaching 14 ends the episode with reward 1."""

    observation_space = gym.spaces.Discrete(5, start=10)
    action_space = gym.spaces.Discrete(2, start=-1)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = 10
        return np.int64(self.state), {}

    def step(self, action):
        assert self.action_space.contains(action), action
        self.state = int(np.clip(self.state + (1 if action == 0 else -1), 10, 14))
        return np.int64(self.state), float(self.state == 14), self.state == 14, False, {}


def test_learns_with_start_offset_spaces():
    algo = DynaQ(_OffsetCorridor(), planning_steps=10, seed=0)
    algo.learn(300)
    assert algo.model.counts.sum() == 300
    # Rows and columns are the values minus start: state 13 is row 3, action 0 column 1.
    assert algo.q_table[3, 1] > algo.q_table[3, 0]
    actions, _ = algo.predict(np.array([10, 11, 12, 13]), deterministic=True)
    assert actions.tolist() == [0, 0, 0, 0]  # right, toward the goal


# ---------------------------------------------------------------------- resume
def _maze() -> gym.Env:
    return gym.make("mbwrap/DynaMaze-v0")


def _small_dyna_q() -> DynaQ:
    return DynaQ(_maze(), planning_steps=5, seed=0, device="cpu")


def test_load_restores_the_whole_run(tmp_path):
    algo = _small_dyna_q().learn(3_000)
    assert algo.q_table.max() > 0  # the goal was reached: values were learned
    loaded = assert_load_restores_everything(algo, tmp_path, env=_maze(), device="cpu")
    np.testing.assert_array_equal(loaded.q_table, algo.q_table)
    np.testing.assert_array_equal(loaded.visited, algo.visited)
    np.testing.assert_array_equal(loaded._visited_mask, algo._visited_mask)
    assert loaded.rng.bit_generator.state == algo.rng.bit_generator.state
    assert torch.equal(loaded.model_rng.get_state(), algo.model_rng.get_state())
    assert torch.equal(loaded.model.counts, algo.model.counts)
    assert (loaded.real_steps, loaded.num_timesteps) == (3_000, 3_000)


def test_a_run_resumed_at_an_episode_boundary_follows_the_uninterrupted_one(tmp_path):
    # The maze's episodes end only at the goal: save where the first one (a seeded random
    # walk) ended, so that the straight run's next step is a fresh episode too.
    stats = EpisodeStatsCallback()
    _small_dyna_q().learn(10**6, callback=[stats, StopTrainingOnMaxEpisodes(1)])
    first = stats.episode_lengths[0]
    assert_resume_is_exact(_small_dyna_q, _maze, first, 300, tmp_path)
    resumed = DynaQ.load(tmp_path / "resumed.pt", device="cpu")
    assert resumed.num_timesteps == first + 300 and resumed.q_table.max() > 0


def test_a_q_table_of_another_shape_is_refused():
    algo = DynaQ(_maze(), seed=0, device="cpu")
    tensors = algo.get_tensors()
    key = next(k for k in tensors if k.startswith("state.parts.q_table"))
    tensors[key] = tensors[key][:10]
    with pytest.raises(ValueError, match=r"q_table: has shape \(10, 4\), expected \(54, 4\)"):
        algo.set_tensors(tensors)
