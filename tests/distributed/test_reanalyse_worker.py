"""MuZero Reanalyze on a Ray actor: the actor's search equals the learner's own with the
same weights, results land only on rows that still hold the positions searched, and a
run with ``reanalyse_fraction`` on self-play workers refreshes stored targets."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from mbwrap.algos import MuZero
from mbwrap.distributed.cpu_copy import CopySpec
from mbwrap.distributed.reanalyse import ReanalyseWorker

ray = pytest.importorskip("ray")


pytestmark = pytest.mark.usefixtures("ray_session")


def _cartpole() -> gym.Env:
    return gym.make("CartPole-v1", max_episode_steps=5)


def test_the_worker_searches_as_the_learner_does_with_its_weights(tiny_muzero):
    algo = MuZero(_cartpole(), seed=0, **tiny_muzero)
    algo.learn(40)
    worker = ReanalyseWorker(CopySpec.of(algo), 0)
    tensors = algo.get_tensors(include_buffer=False, include_generators=False)
    assert worker.set_weights({k: v.numpy() for k, v in tensors.items()}, 3) == 3
    for mine, theirs in zip(
        algo.networks.parameters(), worker.algo.networks.parameters(), strict=True
    ):
        torch.testing.assert_close(mine, theirs)
    obs = algo.buffer.obs[:8].numpy()
    values, policies, version = worker.reanalyse(obs)
    assert values.shape == (8,) and policies.shape == (8, 2) and version == 3
    np.testing.assert_allclose(policies.sum(-1), 1.0, rtol=1e-5)


def test_apply_search_skips_rows_written_over_since(tiny_muzero):
    algo = MuZero(_cartpole(), seed=0, **tiny_muzero)
    algo.learn(40)
    buffer = algo.buffer
    rows = torch.tensor([0, 1, 2])
    index = buffer.index[rows].clone()
    index[1] += 1  # as if row 1 had been written over meanwhile
    before, policy_before = buffer.root_value[rows].clone(), buffer.policy[1].clone()
    updated = buffer.apply_search(rows, torch.full((3,), 7.0), torch.full((3, 2), 0.5), index=index)
    assert updated == 2
    assert buffer.root_value[rows].tolist() == [7.0, float(before[1]), 7.0]
    torch.testing.assert_close(buffer.policy[1], policy_before)
    assert buffer.policy[0].tolist() == [0.5, 0.5]


def test_a_run_with_reanalyse_on_workers_refreshes_stored_targets(tmp_path, tiny_muzero):
    from stable_baselines3.common.logger import configure

    algo = MuZero(
        _cartpole(),
        seed=0,
        num_workers=1,
        envs_per_worker=2,
        worker_cpus=0.5,
        reanalyse_fraction=0.5,
        **tiny_muzero,
    )
    assert algo.reanalyses_remotely
    algo.set_logger(configure(str(tmp_path), ["csv"]))
    algo.learn(80, log_interval=5)
    pool = algo.reanalyse_pool
    # 8 positions (0.5 x 16) per update, searched while the next round plays.
    assert pool.reanalysed >= 8 and pool.lost_positions == 0
    assert pool.version == algo.self_play_pool.version >= 1
    algo.close()
    assert "workers/reanalysed" in (tmp_path / "progress.csv").read_text()
