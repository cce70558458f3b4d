"""Self-play on Ray workers (``num_workers`` on AlphaZero and MuZero): a worker's games
are the in-process ones, what the actors play reaches the learner's replay, callbacks see
every move, weights go out after training, a killed actor is restarted, and AlphaZero
still learns tic-tac-toe."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

from mbwrap.algos.alphazero import AlphaZero
from mbwrap.algos.muzero import MuZero
from mbwrap.algos.self_play_workers import join_steps
from mbwrap.buffers.replay import ReplayBuffer
from mbwrap.distributed.cpu_copy import CopySpec
from mbwrap.distributed.self_play import (
    PositionOutbox,
    SegmentOutbox,
    SelfPlayWorker,
    SelfPlayWorkerLostWarning,
    outbox_for,
    store_played,
)

ray = pytest.importorskip("ray")

# As tests/algos/test_alphazero.py: one training phase per move of the 8 games.
SMALL = {
    "num_parallel_games": 8,
    "num_simulations": 8,
    "batch_size": 32,
    "learning_starts": 32,
    "train_freq": 8,
    "device": "cpu",
    "seed": 0,
}


pytestmark = pytest.mark.usefixtures("ray_session")


def _worker(algo, n_games: int, index: int = 0) -> SelfPlayWorker:
    """A worker of ``algo`` in this process, as its pool would start it."""
    make_games, changes = algo._worker_games(n_games)
    return SelfPlayWorker(CopySpec.of(algo, changes), make_games, index)


def _short_cartpole() -> gym.Env:
    # CartPole cannot fall in fewer than 8 steps: every episode is cut at step 5.
    return gym.make("CartPole-v1", max_episode_steps=5)


# ---------------------------------------------------------------------- without Ray
def test_worker_zero_plays_the_in_process_muzero_games(tiny_muzero):
    # Without training, worker 0's copy (seeded as the learner) plays the learner's own
    # games: the segments it sends, stored, are the in-process replay bit for bit.
    settings = {**tiny_muzero, "learning_starts": 10**6}
    here = MuZero(make_vec_env("CartPole-v1", n_envs=2, seed=0), seed=0, **settings)
    there = MuZero(make_vec_env("CartPole-v1", n_envs=2, seed=0), seed=0, **settings)
    here.learn(80)
    worker = _worker(there, 2)
    played = worker.play(40, num_timesteps=0, total_timesteps=80)
    assert played.moves == 40 and played.version == -1 and played.worker == 0
    assert len(played.stored) == len(played.episodes) > 0
    for step in played.steps:
        assert step["actions"].shape == step["dones"].shape == step["rewards"].shape == (2,)
        assert len(step["infos"]) == 2
    ended = sum(int(step["dones"].sum()) for step in played.steps)
    assert ended == len(played.episodes)
    store_played(there.buffer, played.stored)
    assert there.buffer.added == here.buffer.added > 0
    for name in ("obs", "action", "reward", "root_value", "policy", "priority", "end", "terminal"):
        rows = slice(0, here.buffer.added)
        assert torch.equal(getattr(there.buffer, name)[rows], getattr(here.buffer, name)[rows])
    assert [e["r"] for e in played.episodes] == [e["r"] for e in here.ep_info_buffer]
    # Moves played and not sent are those of the segments in progress.
    assert played.unsent == 80 - here.buffer.num_positions == int(here._writer.length.sum())
    again = worker.play(3)  # the games go on; what was sent is not sent again
    sent = sum(len(item["actions"]) for item in again.stored)
    assert again.unsent == played.unsent + 6 - sent


def test_worker_zero_plays_the_in_process_alphazero_games():
    here = AlphaZero("tictactoe_v3", **{**SMALL, "learning_starts": 10**6})
    there = AlphaZero("tictactoe_v3", **{**SMALL, "learning_starts": 10**6})
    here.learn(8 * 12)
    played = _worker(there, 8).play(12)
    assert played.counters["games_played"] == here.games_played > 0
    assert played.counters["_positions_seen"] == 8 * 12
    assert len(played.episodes) == here.games_played
    store_played(there.buffer, played.stored)
    for name, value in here.buffer.positions().items():
        assert torch.equal(there.buffer.positions()[name], value), name


def test_games_are_rebuilt_from_picklable_makers_even_without_tensor_rules(tiny_muzero):
    # A game searched by snapshot and restore: the worker's games are copies of the game.
    algo = AlphaZero(
        "tictactoe_v3",
        tensor_rules=False,
        num_parallel_games=2,
        num_simulations=4,
        device="cpu",
        seed=0,
        network_kwargs={"kind": "mlp", "channels": 16, "blocks": 1},
    )
    make_games, changes = algo._worker_games(3)
    assert changes == {"num_parallel_games": 3, "buffer_size": 1}
    game = pickle.loads(pickle.dumps(make_games))()
    assert game is not algo.game and game.name == "tictactoe_v3"
    worker = _worker(algo, 3)
    assert worker.n_games == 3 and worker.algo.rules is None
    played = worker.play(12)
    assert played.counters["games_played"] == len(played.episodes) >= 3
    positions = sum(len(item["obs"]) for item in played.stored)
    assert positions + played.unsent == 3 * 12
    make_env, changes = MuZero(_short_cartpole(), **tiny_muzero)._worker_games(2)
    assert changes == {"buffer_size": tiny_muzero.get("segment_length", 200) + 1}
    assert pickle.loads(pickle.dumps(make_env))().num_envs == 2


def test_set_weights_gives_the_copy_the_networks_and_keeps_its_own_run(tiny_muzero):
    learner = MuZero(_short_cartpole(), seed=1, **tiny_muzero)
    worker = _worker(MuZero(_short_cartpole(), seed=2, **tiny_muzero), 2)
    worker.play(7)
    copy = worker.algo
    generator_state = copy.self_play_rng.get_state()
    arrays = {
        k: v.numpy()
        for k, v in learner.get_tensors(include_buffer=False, include_generators=False).items()
    }
    learner.num_timesteps = 12345
    assert worker.set_weights(arrays, 3) == 3 and worker.version == 3
    for (name, a), b in zip(
        learner.networks.state_dict().items(), copy.networks.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert torch.equal(copy.self_play_rng.get_state(), generator_state)
    assert copy.num_timesteps != 12345 and isinstance(copy.buffer, SegmentOutbox)
    assert worker.play(1).version == 3


def test_outboxes_pass_on_only_the_buffers_self_play_stores():
    algo = AlphaZero("tictactoe_v3", **SMALL)
    assert isinstance(outbox_for(algo.buffer), PositionOutbox)
    replay = ReplayBuffer(gym.spaces.Box(-1, 1, (2,)), gym.spaces.Discrete(2), 10)
    with pytest.raises(
        TypeError,
        match="buffer: self-play workers pass on a "
        "PrioritizedTrajectoryBuffer or a SelfPlayBuffer, got a ReplayBuffer",
    ):
        outbox_for(replay)
    with pytest.raises(ValueError, match="moves: expected an int >= 0, got -1"):
        _worker(algo, 2).play(-1)


def test_join_steps_concatenates_workers_in_order():
    joined = join_steps(
        [
            {
                "actions": np.array([1, 2]),
                "dones": np.array([False, True]),
                "infos": [{}, {"a": 1}],
            },
            {"actions": np.array([3]), "dones": np.array([True]), "infos": [{"b": 2}]},
        ]
    )
    assert joined["actions"].tolist() == [1, 2, 3]
    assert joined["dones"].tolist() == [False, True, True]
    assert joined["infos"] == [{}, {"a": 1}, {"b": 2}]


# ---------------------------------------------------------------------- on Ray
class _Record(BaseCallback):
    def __init__(self, n_envs: int) -> None:
        super().__init__()
        self.n_envs = n_envs
        self.steps: list[int] = []
        self.done_moves: list[int] = []

    def _on_step(self) -> bool:
        self.steps.append(self.num_timesteps)
        assert self.locals["dones"].shape == self.locals["actions"].shape == (self.n_envs,)
        assert len(self.locals["infos"]) == self.n_envs
        if self.locals["dones"].all():
            self.done_moves.append(len(self.steps))
        return True


def test_two_muzero_actors_store_what_they_play_and_take_new_weights(tmp_path, tiny_muzero):
    algo = MuZero(_short_cartpole(), seed=0, num_workers=2, envs_per_worker=2, **tiny_muzero)
    assert algo.n_envs == 4
    algo.set_logger(configure(str(tmp_path), ["csv"]))
    record = _Record(4)
    algo.learn(80, callback=record, log_interval=5)  # 20 moves of each of the 4 games
    pool = algo.self_play_pool
    assert algo.num_timesteps == algo.real_steps == 80
    assert record.steps == list(range(4, 81, 4))
    # Every episode ends at its 5th move: 4 per game, every move stored.
    assert record.done_moves == [5, 10, 15, 20]
    assert algo.buffer.num_positions == 80 and algo.buffer.added == 80 + 16
    assert len(algo.ep_info_buffer) == algo._episode_num == 16
    assert all(e["l"] == 5 for e in algo.ep_info_buffer)
    # Training starts at the move that reaches 20 moves: one update per round from the
    # 5th on; weights went out first and after each training.
    assert algo.n_updates == 16 and 2 <= pool.version <= 17
    assert pool.restarts == pool.lost_moves == 0
    # The two actors played different games.
    obs = algo.buffer.obs[: algo.buffer.added]
    assert len({tuple(row.tolist()) for row in obs}) > 40
    algo.learn(8, reset_num_timesteps=False)  # the same actors go on
    assert algo.self_play_pool is pool and algo.num_timesteps == 88
    positions = algo.buffer.num_positions
    algo.learn(1000, callback=_StopAt(8))  # a new count, stopped after its 2nd move
    assert algo.num_timesteps == 8 and algo.real_steps == 96
    assert algo.buffer.num_positions > positions
    algo.close()
    log = (tmp_path / "progress.csv").read_text()
    assert "workers/weights_version" in log and "train/loss" in log


class _StopAt(BaseCallback):
    def __init__(self, moves: int) -> None:
        super().__init__()
        self.moves = moves

    def _on_step(self) -> bool:
        return self.num_timesteps < self.moves


def test_a_killed_actor_is_restarted_and_the_run_goes_on(tiny_muzero, kill_worker):
    algo = MuZero(_short_cartpole(), seed=0, num_workers=2, envs_per_worker=2, **tiny_muzero)
    # Killed 11 moves into its games' third episodes: the moves of those are lost.
    with pytest.warns(SelfPlayWorkerLostWarning, match="self-play worker 0 died"):
        algo.learn(80, callback=kill_worker(lambda: algo.self_play_pool, at=44))
    pool = algo.self_play_pool
    assert algo.num_timesteps == 80
    assert pool.restarts == 1 and pool.lives == [1, 0] and pool.lost_moves in (2, 4)
    # Every move counted is stored, lost, or in a game still in progress.
    assert algo.buffer.num_positions + pool.lost_moves + pool.unsent_moves == 80
    assert pool.unsent_moves > 0
    algo.close()


def test_two_alphazero_actors_self_play_and_train():
    algo = AlphaZero("tictactoe_v3", num_workers=2, **SMALL)
    assert algo.n_envs == 16
    algo.learn(16 * 15)
    assert algo.num_timesteps == 240 and algo.games_played >= 20 and algo.n_updates > 0
    assert algo._positions_seen == 240 and len(algo.ep_info_buffer) == algo.games_played
    assert len(algo.buffer) == algo.buffer.added <= 240
    obs, policy, outcome = algo.buffer.sample(64)
    assert set(outcome.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert torch.allclose(policy.sum(-1), torch.ones(64))
    occupied = obs.reshape(64, 9, 2).sum(-1) > 0
    assert policy[occupied].sum() == 0
    assert algo.self_play_pool.version >= 1
    algo.close()


@pytest.mark.slow
def test_alphazero_on_two_actors_learns_to_draw_perfect_tictactoe():
    """The example's settings (tests/algos/test_alphazero.py), self-play on two actors:
    no loss in 20 games against minimax."""
    from pettingzoo.classic import tictactoe_v3

    from mbwrap.envs.opponents import MinimaxTicTacToe, play_match

    algo = AlphaZero(
        tictactoe_v3.env(),
        num_parallel_games=256,
        num_simulations=48,
        eval_num_simulations=128,
        temperature_moves=3,
        batch_size=256,
        train_freq=256,
        gradient_steps=16,
        learning_starts=2_000,
        learning_rate=1e-3,
        buffer_size=30_000,
        augment=True,
        seed=0,
        device="cpu",
        num_workers=2,
        envs_per_worker=128,
    )
    algo.learn(256 * 370)
    algo.close()

    def agent(obs: dict) -> int:
        return int(algo.predict(obs, deterministic=True)[0])

    result = play_match("tictactoe_v3", agent, MinimaxTicTacToe(seed=0), 20)
    assert result.losses == 0


@pytest.mark.slow  # about 60 s on 2 cores
def test_muzero_learns_cartpole_on_two_actors():
    # MUZERO_CARTPOLE with 2 self-play actors of 8 games each (benchmarks/muzero.py
    # --workers 2, seed 0): 500.0 over 10 episodes at 4,000 real steps (in-process: 353.8
    # at 4,000, 489.1 at 6,000); a uniformly random policy lasts about 22 steps.
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    from mbwrap.algos.presets import MUZERO_CARTPOLE

    env = make_vec_env("CartPole-v1", n_envs=8, seed=0)
    algo = MuZero(env, seed=0, device="cpu", num_workers=2, **MUZERO_CARTPOLE)
    algo.learn(4_000)
    algo.close()
    assert algo.num_timesteps == 4_000
    mean, _ = evaluate_policy(
        algo,
        make_vec_env("CartPole-v1", n_envs=10, seed=10_000),
        n_eval_episodes=10,
        deterministic=True,
        warn=False,
    )
    assert mean >= 300
