"""The parts of parallel collection that need no Ray: seeds, rollouts, env makers, the
worker itself run in-process, and the error when Ray is missing."""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env

from mbwrap.algos import Dyna
from mbwrap.distributed import CollectionWorker, concat_obs, env_maker, require_ray, worker_seed
from mbwrap.distributed.cpu_copy import CopySpec, CpuCopy
from mbwrap.distributed.rollout import trim_infos
from mbwrap.spaces import space_from_json


def test_worker_seeds():
    assert worker_seed(None, 3, 1) is None
    assert worker_seed(7, 0, 0) == 7  # worker 0's first life is the in-process run
    seeds = {worker_seed(7, i, life) for i in range(3) for life in range(3)}
    assert len(seeds) == 9  # every (worker, life) draws its own stream
    assert worker_seed(7, 1, 2) == worker_seed(7, 1, 2)


def test_concat_obs_joins_arrays_dicts_and_tuples_along_the_env_axis():
    a, b = np.zeros((2, 3)), np.ones((1, 3))
    np.testing.assert_array_equal(concat_obs([a, b]), np.concatenate([a, b]))
    joined = concat_obs([{"x": a, "y": (a, a[:, :1])}, {"x": b, "y": (b, b[:, :1])}])
    assert joined["x"].shape == (3, 3) and joined["y"][0].shape == (3, 3)
    assert joined["y"][1].shape == (3, 1)
    np.testing.assert_array_equal(joined["x"][2], [1, 1, 1])


def test_trim_infos_keeps_what_the_learner_reads():
    infos = [
        {"episode": {"r": 1.0, "l": 2}, "terminal_observation": np.zeros(3), "x": 1},
        {"is_success": True},
        {},
    ]
    assert trim_infos(infos) == [{"episode": {"r": 1.0, "l": 2}}, {"is_success": True}, {}]


def test_env_maker_rebuilds_from_the_spec_with_its_wrappers():
    env = gym.make("CartPole-v1", max_episode_steps=17)
    maker = env_maker(make_vec_env(lambda: env, n_envs=1))
    copy = maker()
    assert copy.spec.id == "CartPole-v1" and copy.spec.max_episode_steps == 17
    assert "make('CartPole-v1')" in repr(maker)


def test_env_maker_refuses_an_env_without_a_spec_naming_env():
    from mbwrap.envs.dyna_maze import DynaMazeEnv

    with pytest.raises(ValueError, match=r"^env: num_workers > 0 rebuilds the env .* has none"):
        env_maker(DynaMazeEnv())


def test_require_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"num_workers > 0 runs on Ray.*mbwrap\[ray\]"):
        require_ray()


def _worker(algo: Dyna, n_envs: int = 2, index: int = 0) -> CollectionWorker:
    return CollectionWorker(CopySpec.of(algo), env_maker(algo.env), n_envs, index)


def test_copy_spec_names_the_class_spaces_and_changed_settings():
    algo = Dyna(gym.make("CartPole-v1"), "PPO", "mlp", seed=3, device="cpu")
    spec = CopySpec.of(algo, {"seed": 5})
    assert spec.algo_class == "mbwrap.algos.dyna:Dyna"
    assert spec.config["seed"] == 5 and spec.config["agent"] == algo.get_config()["agent"]
    assert space_from_json(spec.action_space) == algo.action_space
    copy = CpuCopy(spec).build(None, index=0, life=0)
    assert type(copy) is Dyna and copy.config.seed == 5 and copy.config.num_workers == 0


def test_a_worker_in_process_collects_well_formed_rounds_and_takes_weights():
    algo = Dyna(gym.make("CartPole-v1"), "PPO", "mlp", learning_starts=10, seed=0, device="cpu")
    worker = _worker(algo)
    rollout = worker.collect(5, "random")
    assert len(rollout) == 5 and rollout.version == -1 and not rollout.restarted
    assert rollout.obs[0].shape == (2, 4) and rollout.actions[0].shape == (2,)
    assert rollout.rewards[0].dtype == np.float32 and rollout.terminated[0].dtype == bool
    # The step's observation follows the previous one, stream by stream.
    np.testing.assert_array_equal(rollout.obs[1], rollout.new_obs[0])
    # The learner's weights, as NumPy arrays, reach the worker's copy of the agent.
    tensors = algo.get_tensors(include_buffer=False, include_generators=False)
    with torch.no_grad():
        for p in algo.agent.policy.parameters():
            p.add_(1.0)
    tensors = algo.get_tensors(include_buffer=False, include_generators=False)
    assert worker.set_weights({k: v.numpy() for k, v in tensors.items()}, 4) == 4
    for mine, theirs in zip(
        algo.agent.policy.parameters(), worker.algo.agent.policy.parameters(), strict=True
    ):
        torch.testing.assert_close(mine, theirs)
    acted = worker.collect(3, "agent")
    assert acted.version == 4 and len(acted) == 3


def test_workers_run_different_episodes_and_a_new_life_new_ones():
    algo = Dyna(gym.make("CartPole-v1"), "PPO", "mlp", learning_starts=10, seed=0, device="cpu")
    first, second = _worker(algo, 1, 0), _worker(algo, 1, 1)
    assert not np.array_equal(first.collect(1, "random").obs[0], second.collect(1, "random").obs[0])
    again = _worker(algo, 1, 0)
    start = again.collect(1, "random").obs[0]
    again.start(life=1)
    assert not np.array_equal(again.collect(1, "random").obs[0], start)


def test_an_unknown_role_is_refused():
    algo = Dyna(gym.make("CartPole-v1"), "PPO", "mlp", learning_starts=10, seed=0, device="cpu")
    with pytest.raises(ValueError, match="role: expected one of"):
        _worker(algo, 1).collect(1, "teacher")
