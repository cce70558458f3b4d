"""SimPLe on an Atari game (tiny frames and networks): the loop fits the video model on
the paper's schedule, PPO trains only in the simulated game on frame stacks from real
starts, save/load and resume are exact, and the spaces it cannot take are named."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import mbwrap
from mbwrap.algos.presets import ATARI_SIMPLE_SMALL
from mbwrap.algos.simple import SimPLe
from mbwrap.envs import make_atari_vec_env
from mbwrap.errors import UnsupportedSpaceError
from mbwrap.testing import assert_load_restores_everything

pytest.importorskip("ale_py")

GAME = "ALE/Pong-v5"
TINY_MODEL = {
    "hidden_size": 4,
    "compress_steps": 2,
    "bits": 8,
    "bit_predictor_size": 8,
    "batch_size": 4,
    "sequence_length": 2,
}
TINY = {
    "model_kwargs": TINY_MODEL,
    "learning_starts": 40,
    "train_freq": 20,
    "first_fit_steps": 3,
    "fit_steps": 2,
    "imagined_steps": 64,
    "num_imagined_envs": 2,
    "imagination_horizon": 8,
    "agent_kwargs": {"n_steps": 8, "batch_size": 16, "n_epochs": 1},
}


def game():
    return make_atari_vec_env(GAME, 1, seed=0, screen_size=16)


def test_the_loop_fits_on_the_schedule_and_trains_ppo_only_in_the_simulated_game():
    algo = mbwrap.make_algo("simple", game(), seed=0, device="cpu", **TINY)
    assert isinstance(algo, SimPLe)
    algo.learn(40 + 2 * 20)  # random play, then two iterations
    assert algo.real_steps == 80
    assert int(algo.model.gradient_steps_done) == 3 + 2 + 2  # 45K, then 15K, in the paper
    # PPO's rollouts are simulated: 2 envs x 8 steps, 64 steps (rounded up) per iteration.
    assert algo.agent.num_timesteps == 3 * 64
    assert algo.dream.single_observation_space == algo.observation_space  # [4, 16, 16]
    assert algo.dream.horizon == 8
    action, _ = algo.predict(np.zeros((4, 16, 16), np.uint8), deterministic=True)
    assert 0 <= int(action) < algo.action_space.n


def test_the_defaults_are_the_papers():
    config = SimPLe.Config()
    assert (config.num_imagined_envs, config.imagination_horizon) == (16, 50)
    assert (config.train_freq, config.first_fit_steps, config.fit_steps) == (6_400, 45_000, 15_000)
    assert config.model == "video" and config.agent == "PPO"
    # tensor2tensor's ppo_original_params, reaching SB3's PPO.
    algo = SimPLe(game(), seed=0, device="cpu", model_kwargs=TINY_MODEL)
    ppo = algo.agent
    assert (ppo.n_steps, ppo.batch_size, ppo.n_epochs) == (50, 400, 3)
    assert (ppo.ent_coef, ppo.vf_coef, ppo.clip_range(1.0)) == (0.01, 1.0, 0.1)
    assert ppo.lr_schedule(1.0) == pytest.approx(2.5e-4)
    small = SimPLe.Config(**ATARI_SIMPLE_SMALL)  # smaller networks and budgets, same loop
    assert (small.num_imagined_envs, small.imagination_horizon) == (16, 50)


def test_save_load_restores_everything(tmp_path):
    """The learner's state round-trips exactly. A resumed run is not compared with an
    uninterrupted one: the emulator's own state (ALE) is not part of a checkpoint."""
    torch.manual_seed(0)
    algo = SimPLe(game(), seed=0, device="cpu", **TINY)
    algo.learn(60)
    loaded = assert_load_restores_everything(algo, tmp_path, env=game(), device="cpu")
    assert int(loaded.model.gradient_steps_done) == 3 + 2
    loaded.learn(20, reset_num_timesteps=False)  # and it continues: a later fit, not a first
    assert int(loaded.model.gradient_steps_done) == 3 + 2 + 2


def test_spaces_it_cannot_take_are_named():
    with pytest.raises(UnsupportedSpaceError, match="observation"):
        SimPLe(gym.make("CartPole-v1"))
