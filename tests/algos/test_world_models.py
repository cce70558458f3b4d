"""World Models: the controller, its evolution in the dream and the algorithm (V and M,
the ``"vae-mdn-rnn"`` model, are tested in tests/models/test_vae_mdn_rnn.py)."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv

from mbwrap.algos.pets import PETS
from mbwrap.algos.world_models import WorldModels, controller_size, linear_controller
from mbwrap.algos.world_models_controller import (
    cma_es,
    controller_actions,
    dream_returns,
    real_returns,
)
from mbwrap.envs.pixels import PixelObservation
from mbwrap.errors import CheckpointError, SpaceMismatchError, UnsupportedSpaceError
from mbwrap.testing import assert_load_restores_everything, assert_resume_is_exact

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

FRAMES = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
SMALL = {
    "model_kwargs": {
        "latent_dim": 4,
        "vae_channels": [4, 8, 8, 16],
        "hidden_size": 16,
        "vae_learning_rate": 1e-3,
    },
    "fit_kwargs": {"vae_epochs": 1, "rnn_epochs": 2},
    "population": 4,
    "rollouts": 2,
    "generations": 2,
    "imagination_horizon": 10,
    "learning_starts": 120,
}


def small(**changes) -> dict:
    """:data:`SMALL` with ``changes``; ``model_kwargs`` changes are merged into its own."""
    model_kwargs = {**SMALL["model_kwargs"], **changes.pop("model_kwargs", {})}
    return {**SMALL, **changes, "model_kwargs": model_kwargs}


def cartpole_pixels(max_steps: int = 30) -> PixelObservation:
    return PixelObservation(
        gym.make("CartPole-v1", render_mode="rgb_array", max_episode_steps=max_steps)
    )


def square_frames(n: int, seed: int = 0) -> torch.Tensor:
    """``[n, 64, 64, 3]`` uint8: a white 16x16 square at a random place on black."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((n, 64, 64, 3), dtype=np.uint8)
    for i, (y, x) in enumerate(rng.integers(0, 48, size=(n, 2))):
        frames[i, y : y + 16, x : x + 16] = 255
    return torch.from_numpy(frames)


# ---------------------------------------------------------------------------- controller
def test_controller_has_the_papers_parameter_count():
    assert controller_size(32 + 256, 3) == 867  # World Models, CarRacing
    algo = WorldModels(
        None, observation_space=FRAMES, action_space=gym.spaces.Box(-1, 1, (3,)), device="cpu"
    )
    assert algo.controller.numel() == 867
    assert algo.model.rnn.hidden_size == 256 and algo.model.vae.latent_dim == 32
    assert algo.config.population == 64 and algo.model.rnn.num_components == 5
    assert algo.model.temperature == 1.15  # World Models, Table 2 (Doom)


def test_linear_controller_uses_each_candidates_own_weights():
    params = torch.arange(2 * 2 * 4, dtype=torch.float32).reshape(2, 8)  # F = 3, out = 2
    features = torch.tensor([[[1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0]]])
    out = linear_controller(params, features, 2)
    # Candidate 0: W = [[0, 1, 2], [3, 4, 5]], b = [6, 7]; candidate 1: W = [[8, 9, 10],
    # [11, 12, 13]], b = [14, 15].
    torch.testing.assert_close(out, torch.tensor([[[0.0 + 6, 3 + 7]], [[10.0 + 14, 13 + 15]]]))


def dream_algo(reward_fn=None, **model_kwargs) -> WorldModels:
    algo = WorldModels(
        None,
        observation_space=FRAMES,
        action_space=gym.spaces.Discrete(2),
        device="cpu",
        seed=0,
        reward_fn=reward_fn,
        **small(imagination_horizon=25, model_kwargs=model_kwargs),
    )
    with torch.no_grad():  # a termination head that ends some dreams early, others late
        algo.model.rnn.head.bias[-1] = 0.0
        algo.model.rnn.head.weight[-1].normal_(std=1.0, generator=torch.Generator().manual_seed(0))
    return algo


def in_order(frames: torch.Tensor):
    """Dream start states: ``frames`` in order at the first reset (later resets, of
    episodes already counted, get the first frames again)."""
    return lambda n, generator: frames[:n]


def test_dream_rollouts_in_one_batch_equal_each_row_alone():
    algo = dream_algo(temperature=0.0)
    generator = torch.Generator().manual_seed(0)
    params = torch.randn(3, algo.controller.numel(), generator=generator)
    starts = square_frames(6, seed=2).reshape(3, 2, 64, 64, 3)
    batch = algo.make_dream(6, start_states=in_order(starts.reshape(6, 64, 64, 3)))
    returns, lengths = dream_returns(params, batch)
    assert returns.shape == lengths.shape == (3, 2)
    assert len(set(lengths.flatten().tolist())) > 1  # episodes end at different steps
    for p in range(3):
        for r in range(2):
            alone = algo.make_dream(1, start_states=in_order(starts[p, r : r + 1]))
            alone_returns, length = dream_returns(params[p : p + 1], alone)
            torch.testing.assert_close(alone_returns[0, 0], returns[p, r])
            assert length[0, 0] == lengths[p, r]


def test_a_reward_function_replaces_the_reward_head():
    algo = dream_algo(
        reward_fn=lambda z, a, next_z: torch.full((z.shape[0],), 2.0), temperature=0.0
    )
    assert not algo.model.rnn.predict_reward
    assert algo.config.model_kwargs["predict_reward"] is False  # a checkpoint rebuilds it so
    params = torch.zeros(1, algo.controller.numel())
    dream = algo.make_dream(3, start_states=in_order(square_frames(3)))
    returns, lengths = dream_returns(params, dream)
    torch.testing.assert_close(returns, 2.0 * lengths)


def test_wrong_spaces_are_refused_by_name():
    # Refused by the algorithm's declared spaces, before the env is wrapped.
    with pytest.raises(UnsupportedSpaceError, match=r"env\.observation_space: .*PixelObservation"):
        WorldModels(gym.make("CartPole-v1"), device="cpu")
    with pytest.raises(ValueError, match="population: expected a value >= 2, got 0"):
        WorldModels(cartpole_pixels(), population=0, device="cpu")
    with pytest.raises(ValueError, match=r"sigma0: expected a value > 0, got 0\.0"):
        WorldModels(cartpole_pixels(), sigma0=0.0, device="cpu")
    algo = WorldModels(cartpole_pixels(), device="cpu", **SMALL)
    with pytest.raises(SpaceMismatchError, match="observation: expected uint8"):
        algo.predict(np.zeros((64, 64, 3), dtype=np.float32))


def test_frames_of_any_size_and_offset_actions_run_end_to_end():
    class OffsetActions(gym.ActionWrapper):
        def __init__(self, env: gym.Env) -> None:
            super().__init__(env)
            self.action_space = gym.spaces.Discrete(2, start=3)

        def action(self, action):
            assert self.action_space.contains(np.int64(action)), action
            return int(action) - 3

    env = OffsetActions(PixelObservation(
        gym.make("CartPole-v1", render_mode="rgb_array", max_episode_steps=10), size=(37, 53)
    ))
    algo = WorldModels(env, seed=0, device="cpu", **small(learning_starts=10, generations=1))
    algo.learn(14)  # OffsetActions asserts every action is 3 or 4
    assert algo.model.vae.frame_size == (37, 53)
    frame = env.observation_space.sample()
    assert algo.model.decode(algo.model.encode(frame[None])).shape == (1, 37, 53, 3)
    action, _ = algo.predict(frame)
    assert int(action) in (3, 4)


# ---------------------------------------------------------------------------- algorithm
def test_learn_is_seeded_and_save_load_round_trips(tmp_path):
    def trained() -> WorldModels:
        algo = WorldModels(cartpole_pixels(), seed=3, device="cpu", **SMALL)
        return algo.learn(120)

    first, second = trained(), trained()
    assert first.num_timesteps == 120
    assert first.controller.abs().sum() > 0  # CMA-ES moved it
    torch.testing.assert_close(first.controller, second.controller, rtol=0, atol=0)
    for (name, a), b in zip(
        first.model.rnn.state_dict().items(), second.model.rnn.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)

    path = tmp_path / "wm.pt"
    first.save(path)
    loaded = WorldModels.load(path, device="cpu")
    assert loaded.get_config() == first.get_config()
    torch.testing.assert_close(loaded.controller, first.controller)
    env = cartpole_pixels()
    obs, _ = env.reset(seed=0)
    frames = np.stack([obs, env.step(0)[0], env.step(1)[0]])
    state_a = state_b = None
    for frame in frames:
        action_a, state_a = first.predict(frame, state_a, deterministic=True)
        action_b, state_b = loaded.predict(frame, state_b, deterministic=True)
        assert action_a == action_b
        np.testing.assert_allclose(state_a[0], state_b[0], atol=1e-6)
    with pytest.raises(CheckpointError, match=r"not mbwrap\.algos\.pets:PETS"):
        PETS.load(path)


def test_predict_keeps_a_state_per_env_and_episode_start_resets_it():
    algo = WorldModels(cartpole_pixels(), seed=0, device="cpu", **SMALL)
    torch.nn.init.normal_(algo.controller, std=1.0)
    frames = square_frames(2).numpy()
    actions, state = algo.predict(frames, deterministic=True)
    assert actions.shape == (2,) and state[0].shape == (2, 16)
    assert not np.allclose(state[0], 0)
    _, fresh = algo.predict(frames, deterministic=True)
    _, after_two = algo.predict(frames, state, deterministic=True)
    _, restarted = algo.predict(
        frames, state, episode_start=np.array([True, False]), deterministic=True
    )
    np.testing.assert_allclose(restarted[0][0], fresh[0][0], atol=1e-6)  # row 0 restarted
    np.testing.assert_allclose(restarted[0][1], after_two[0][1], atol=1e-6)  # row 1 kept
    assert not np.allclose(after_two[0][0], fresh[0][0])


def test_evolve_in_real_env_counts_real_steps_and_scores_candidates():
    algo = WorldModels(cartpole_pixels(max_steps=15), seed=0, device="cpu", **SMALL)
    venv = DummyVecEnv([lambda: cartpole_pixels(max_steps=15) for _ in range(3)])
    params = torch.randn(4, algo.controller.numel())
    returns, steps = real_returns(algo, params, venv, algo.config.rollouts)
    assert returns.shape == (4, 2)
    # CartPole pays 1 per step: the returns add up to the steps the episodes took.
    assert steps == int(returns.sum().item()) and (returns >= 1).all() and (returns <= 15).all()
    metrics = algo.evolve_in_real_env(venv, generations=1)
    assert metrics["real_steps"] > 0 and metrics["generations"] == 1


@pytest.mark.slow
def test_a_controller_evolved_in_the_dream_acts_on_the_real_cartpole():
    env = gym.make("CartPole-v1", render_mode="rgb_array", max_episode_steps=200)
    env.unwrapped.screen_width, env.unwrapped.screen_height = 300, 200
    algo = WorldModels(
        PixelObservation(env, grayscale=True),
        model_kwargs={
            "latent_dim": 16,
            "vae_channels": [8, 16, 32, 64],
            "reconstruction": "bernoulli",
            "hidden_size": 64,
            "batch_size": 32,
            "vae_learning_rate": 1e-3,
        },
        fit_kwargs={"vae_epochs": 10, "rnn_epochs": 50},
        population=16,
        rollouts=4,
        generations=10,
        learning_starts=5000,
        seed=0,
        device="cpu",
    )
    algo.learn(5000)
    mean, _ = evaluate_policy(algo, algo.env, n_eval_episodes=10, deterministic=True)
    # Always pushing one way lasts about 9 steps, random actions about 22.
    assert mean > 20


# ---------------------------------------------------------------------------- resume
def pendulum_pixels() -> PixelObservation:
    """Episodes of exactly 50 steps (Pendulum never terminates), so a run of 100 steps
    stops where every episode just ended."""
    return PixelObservation(gym.make("Pendulum-v1", render_mode="rgb_array", max_episode_steps=50))


def small_pendulum() -> WorldModels:
    return WorldModels(
        pendulum_pixels(),
        seed=0,
        device="cpu",
        **small(learning_starts=50, train_freq=50, imagination_horizon=8),
    )


def test_load_restores_the_whole_run(tmp_path):
    algo = small_pendulum().learn(100)
    loaded = assert_load_restores_everything(algo, tmp_path, env=pendulum_pixels(), device="cpu")
    assert len(loaded.buffer) == 100 and loaded.real_steps == 100
    torch.testing.assert_close(loaded.controller, algo.controller, rtol=0, atol=0)
    assert loaded.model.optimizer_state_dict()["rnn"]["state"]  # Adam's moments came back
    small_file = tmp_path / "small.pt"
    algo.save(small_file, include_buffer=False)
    assert small_file.stat().st_size < (tmp_path / "saved.pt").stat().st_size
    assert len(WorldModels.load(small_file, device="cpu").buffer) == 0


def test_a_run_resumed_at_an_episode_boundary_follows_the_uninterrupted_one(tmp_path):
    # Random steps, a fit and a dream; then 50 steps acting with C, a refit, a dream.
    assert_resume_is_exact(small_pendulum, pendulum_pixels, 100, 100, tmp_path)


def test_controller_actions_take_the_argmax_or_squash_into_the_bounds():
    outputs = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 0.5]])
    # Discrete: the argmax, offset by the space's start.
    assert controller_actions(outputs, spaces.Discrete(3, start=-1)).tolist() == [0, -1]
    box = spaces.Box(
        low=np.array([-2.0, 0.0, 1.0], np.float32), high=np.array([2.0, 1.0, 5.0], np.float32)
    )
    expected = box.low + (np.tanh(outputs.numpy()) + 1) / 2 * (box.high - box.low)
    np.testing.assert_allclose(controller_actions(outputs, box).numpy(), expected, rtol=1e-6)


def test_cma_es_climbs_a_quadratic_fitness_in_one_call_per_generation():
    target = torch.tensor([3.0, -2.0, 0.5])
    calls, records = [], []

    def fitness(params):
        calls.append(params.shape)
        return -((params - target) ** 2).sum(-1)

    mean, info = cma_es(
        torch.zeros(3), fitness, population=8, sigma0=1.0, generations=40, seed=1,
        record=lambda generation, scores, sigma: records.append(generation),
    )
    assert calls == [(8, 3)] * 40 and records == list(range(1, 41))
    torch.testing.assert_close(mean, target, atol=0.05, rtol=0)
    assert info["generations"] == 40 and info["fitness_max"] > -0.01
    with pytest.raises(ValueError, match="generations"):
        cma_es(torch.zeros(3), fitness, population=8, sigma0=1.0, generations=0, seed=1,
               record=lambda *args: None)
