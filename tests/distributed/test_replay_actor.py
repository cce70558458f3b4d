"""MuZero's replay on its own Ray actor (``replay_actor``): the actor's replay is the
learner's own buffer fed the same segments, batches come prefetched and priorities go
back, a run stores and trains through it, ``close`` brings the replay home, and a killed
replay actor restarts empty while the run goes on."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from mbwrap.algos import MuZero
from mbwrap.algos.presets import MUZERO_CARTPOLE
from mbwrap.buffers.prioritized import PrioritizedTrajectoryBuffer
from mbwrap.distributed.cpu_copy import CopySpec
from mbwrap.distributed.replay import RemoteReplay, ReplayLostWarning, ReplayWorker
from mbwrap.distributed.self_play import SegmentOutbox, store_played

pytestmark = pytest.mark.usefixtures("ray_session")


def _short_cartpole() -> gym.Env:
    # CartPole cannot fall in fewer than 8 steps: every episode is cut at step 5.
    return gym.make("CartPole-v1", max_episode_steps=5)


def _played(algo: MuZero, moves: int, seed: int = 0) -> list[dict]:
    """Segments of ``moves`` random CartPole moves, as an outbox sends them."""
    outbox = SegmentOutbox(algo.buffer)
    rng = np.random.default_rng(seed)
    obs = torch.as_tensor(rng.normal(size=(moves + 1, 4)), dtype=torch.float32)
    outbox.add_segment(
        obs=obs,
        actions=torch.as_tensor(rng.integers(0, 2, moves)),
        rewards=torch.ones(moves),
        root_values=torch.as_tensor(rng.normal(size=moves + 1), dtype=torch.float32),
        policies=torch.full((moves, 2), 0.5),
        terminated=True,
    )
    return outbox.drain()


# ---------------------------------------------------------------------- without Ray
def test_the_actor_replay_holds_what_the_learner_buffer_would(tiny_muzero):
    algo = MuZero(_short_cartpole(), seed=0, **tiny_muzero)
    worker = ReplayWorker(CopySpec.of(algo))
    assert isinstance(worker.buffer, PrioritizedTrajectoryBuffer)
    stored = _played(algo, 12) + _played(algo, 7, seed=1)
    assert worker.store(stored) == (19, 21)  # 19 positions; a slot per segment's end
    store_played(algo.buffer, stored)
    ours, theirs = algo.buffer.state_dict(), worker.state_dict()
    for key in ("obs", "action", "reward", "root_value", "policy", "priority", "index", "end"):
        np.testing.assert_array_equal(theirs[key], ours[key].numpy(), err_msg=key)
    batch = worker.sample(16)
    assert batch["obs"].shape == (16, 4) and batch["actions"].shape == (16, 5)
    assert set(batch) >= {"indices", "weights", "target_values", "target_policies"}
    rows = batch["indices"][:3]
    worker.update_priorities(rows, np.array([7.0, 7.0, 7.0], dtype=np.float32))
    np.testing.assert_allclose(worker.state_dict()["priority"][rows], 7.0, rtol=1e-5)
    rows, index, obs = worker.positions_to_reanalyse(8)
    worker.apply_search(
        rows,
        np.full(len(rows), 3.0, np.float32),
        np.tile([[1.0, 0.0]], (len(rows), 1)).astype(np.float32),
        index,
    )
    assert (worker.state_dict()["root_value"][rows] == 3.0).all()
    fresh = ReplayWorker(CopySpec.of(algo))
    assert fresh.sample(4) is None  # nothing stored yet
    fresh.load_state_dict(worker.state_dict())
    np.testing.assert_array_equal(fresh.state_dict()["priority"], worker.state_dict()["priority"])


def test_replay_actor_settings_are_checked(tiny_muzero):
    with pytest.raises(ValueError, match="replay_actor: needs num_workers > 0"):
        MuZero(_short_cartpole(), replay_actor=True, **tiny_muzero)


def _value(obs: torch.Tensor) -> torch.Tensor:
    return obs.sum(-1).float()


def test_bootstrap_terms_turn_stored_value_targets_into_network_ones(tiny_muzero):
    # Two replays with the same segments and generator state draw the same rows: one
    # bootstraps from a value function, the other from stored values plus the terms.
    settings = {**tiny_muzero, "n_step": 3}
    a = MuZero(_short_cartpole(), seed=0, **settings)
    b = MuZero(_short_cartpole(), seed=0, **settings)
    stored = _played(a, 12) + _played(a, 9, seed=1)
    stored[-1]["terminated"] = False  # one segment cut, one ended
    for algo in (a, b):
        store_played(algo.buffer, stored)
    fresh = a.buffer.sample(32, bootstrap_fn=_value)
    plain = b.buffer.sample(32)
    torch.testing.assert_close(plain.indices, fresh.indices)
    rows, scale = b.buffer.bootstrap_terms(plain.indices)
    finished = plain.target_values + scale * (
        _value(b.buffer.obs[rows]) - b.buffer.root_value[rows]
    )
    torch.testing.assert_close(finished, fresh.target_values)
    assert (scale == 0).any() and (scale > 0).any()


# ---------------------------------------------------------------------- on Ray
def test_remote_replay_prefetches_batches_and_takes_priorities(tiny_muzero):
    algo = MuZero(_short_cartpole(), seed=0, **tiny_muzero)
    remote = RemoteReplay(CopySpec.of(algo))
    assert remote.sample(8) is None and remote.num_positions == 0
    remote.store(_played(algo, 30))
    assert (remote.num_positions, remote.added, len(remote)) == (30, 31, 30)
    first = remote.sample(8)
    assert first.obs.shape == (8, 4) and first.obs.dtype == torch.float32
    assert remote._next is not None  # the next batch is being drawn meanwhile
    remote.update_priorities(first.indices, torch.full((8,), 50.0))
    second, third = remote.sample(8), remote.sample(8)
    assert second.indices.shape == third.indices.shape == (8,)
    state = remote.state_dict()
    np.testing.assert_allclose(state["priority"][first.indices], 50.0, rtol=1e-5)
    # Bootstrapping from the learner's networks: the actor sends what the value needs.
    remote.sample(8, bootstrap_fn=_value)  # the batch drawn before asking for values
    batch = remote.sample(8, bootstrap_fn=_value)
    buffer = algo.buffer
    store_played(buffer, _played(algo, 30))  # the same replay, in this process
    rows = batch.indices
    end = buffer.end[rows].unsqueeze(-1)
    expected, _ = buffer.value_targets(
        buffer.index[rows].unsqueeze(-1) + torch.arange(buffer.num_unroll_steps + 1),
        end,
        buffer.terminal[end % buffer.capacity],
        _value,
    )
    torch.testing.assert_close(batch.target_values, expected)
    remote.close()


def test_a_run_stores_and_trains_through_the_replay_actor_and_brings_it_home(tmp_path, tiny_muzero):
    algo = MuZero(
        _short_cartpole(),
        seed=0,
        num_workers=2,
        envs_per_worker=2,
        worker_cpus=0.5,  # two self-play actors and a reanalyse actor on 2 CPUs
        replay_actor=True,
        reanalyse_fraction=0.25,
        **tiny_muzero,
    )
    algo.learn(80)
    assert isinstance(algo.buffer, RemoteReplay)
    # As with the replay in this process: every move stored, 16 updates from move 20.
    assert algo.buffer.num_positions == 80 and algo.buffer.added == 96
    assert algo.n_updates == 16
    assert algo.reanalyse_pool.reanalysed > 0
    priorities = algo.buffer.state_dict()["priority"]
    assert len(set(priorities[priorities > 0].tolist())) > 10, "updates sent priorities"
    algo.close()
    assert isinstance(algo.buffer, PrioritizedTrajectoryBuffer)
    assert algo.buffer.num_positions == 80
    torch.testing.assert_close(algo.buffer.state_dict()["priority"], priorities)
    algo.save(tmp_path / "run.pt")
    loaded = MuZero.load(tmp_path / "run.pt", env=_short_cartpole(), device="cpu")
    assert loaded.buffer.num_positions == 80
    # The home replay goes back to an actor; new actors play 5 moves of 4 new games.
    algo.learn(20, reset_num_timesteps=False)
    assert isinstance(algo.buffer, RemoteReplay) and algo.buffer.num_positions == 100
    algo.close()


def test_a_killed_replay_actor_restarts_empty_and_the_run_goes_on(tiny_muzero):
    algo = MuZero(
        _short_cartpole(),
        seed=0,
        num_workers=2,
        envs_per_worker=2,
        replay_actor=True,
        **tiny_muzero,
    )
    algo.learn(40)
    replay = algo.buffer
    assert replay.num_positions == 40
    updates = algo.n_updates
    import ray

    ray.kill(replay.workers[0], no_restart=False)
    with pytest.warns(ReplayLostWarning, match="replay actor 0 died"):
        algo.learn(40, reset_num_timesteps=False)
    assert replay.restarts == 1 and replay.lost_positions == 40
    assert replay.num_positions == 40  # what was played since
    assert algo.n_updates > updates, "training resumed on the new games"
    algo.close()


@pytest.mark.slow  # about 2 minutes on 2 cores
def test_muzero_learns_cartpole_with_its_replay_on_an_actor():
    # MUZERO_CARTPOLE on 2 self-play actors with the replay on its own actor
    # (benchmarks/muzero.py --workers 2 --replay-actor, seed 0): 486.7 over 10 episodes at
    # 8,000 real steps (201.9 at 4,000); a uniformly random policy lasts about 22 steps.
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    env = make_vec_env("CartPole-v1", n_envs=8, seed=0)
    algo = MuZero(env, seed=0, device="cpu", num_workers=2, replay_actor=True, **MUZERO_CARTPOLE)
    algo.learn(8_000)
    algo.close()
    mean, _ = evaluate_policy(
        algo,
        make_vec_env("CartPole-v1", n_envs=10, seed=10_000),
        n_eval_episodes=10,
        deterministic=True,
        warn=False,
    )
    assert mean >= 400
