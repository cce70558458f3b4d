"""World Models: the VAE, the MDN-RNN, the dream and the algorithm."""

from __future__ import annotations

import math
import os

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv

from mbwrap.algos.pets import PETS
from mbwrap.algos.world_models import WorldModels, controller_size, linear_controller
from mbwrap.envs.pixels import PixelObservation
from mbwrap.errors import CheckpointError, SpaceMismatchError
from mbwrap.models.mdn_rnn import MDNRNN, sample_mixture
from mbwrap.models.vae import ConvVAE, frames_to_tensor, kl_to_standard_normal, vae_loss

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

FRAMES = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
SMALL = {
    "latent_dim": 4,
    "vae_channels": (4, 8, 8, 16),
    "hidden_size": 16,
    "popsize": 4,
    "rollouts": 2,
    "generations": 2,
    "dream_horizon": 10,
    "vae_kwargs": {"epochs": 1, "learning_rate": 1e-3},
    "rnn_kwargs": {"epochs": 2},
}


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


# ---------------------------------------------------------------------------- VAE
def test_kl_of_a_worked_posterior_and_the_free_bits_floor():
    mean = torch.tensor([[0.0, 0.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0]])
    logvar = torch.zeros(2, 4)
    # KL(N(3, 1) || N(0, 1)) = 3^2 / 2 = 4.5 nats; the prior itself has none.
    torch.testing.assert_close(kl_to_standard_normal(mean, logvar), torch.tensor([0.0, 4.5]))
    logvar_only = torch.tensor([[math.log(2.0), 0.0, 0.0, 0.0]])
    expected = -0.5 * (1 + math.log(2.0) - 2.0)  # 0.1534 nats
    assert kl_to_standard_normal(torch.zeros(1, 4), logvar_only).item() == pytest.approx(expected)
    target = torch.zeros(2, 3, 64, 64)
    logits = torch.zeros(2, 3, 64, 64)  # every pixel predicted 0.5
    loss, squared, kl = vae_loss(logits, target, mean, logvar, kl_tolerance=0.5)
    # The first frame's KL of 0 is held at 0.5 nats x 4 dims = 2; the second keeps its 4.5.
    assert kl.item() == pytest.approx((2.0 + 4.5) / 2)
    assert squared.item() == pytest.approx(3 * 64 * 64 * 0.25)
    assert loss.item() == pytest.approx(squared.item() + kl.item())
    _, cross_entropy, _ = vae_loss(
        logits, target, mean, logvar, kl_tolerance=0.5, reconstruction="bernoulli"
    )
    assert cross_entropy.item() == pytest.approx(3 * 64 * 64 * math.log(2.0), rel=1e-5)


def test_vae_shapes_and_reconstruction_improves_with_fitting():
    torch.manual_seed(0)
    vae = ConvVAE(8, (8, 16, 16, 32), device="cpu")
    frames = square_frames(96)
    x = frames_to_tensor(frames, channels=3, device=vae.device)
    logits, mean, logvar = vae(x)
    assert logits.shape == (96, 3, 64, 64) and mean.shape == logvar.shape == (96, 8)
    reconstruction = vae.decode(mean)
    assert reconstruction.shape == (96, 3, 64, 64)
    assert 0 <= reconstruction.min() and reconstruction.max() <= 1
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        before = vae.loss(x, generator)[1].item()
    metrics = vae.fit(frames, epochs=15, batch_size=32, learning_rate=2e-3, generator=generator)
    with torch.no_grad():
        after = vae.loss(x, generator)[1].item()
    assert after < 0.5 * before, (before, after)
    assert metrics["kl"] >= 0.5 * 8 - 1e-4  # never below the free-bits floor


def test_paper_sized_vae_matches_appendix_shapes():
    vae = ConvVAE(device="cpu")
    mean, _ = vae.encode(torch.zeros(2, 3, 64, 64))
    assert mean.shape == (2, 32)
    assert vae.decode(mean).shape == (2, 3, 64, 64)
    assert vae.encoder[6].out_channels == 256 and vae.decoder[0].in_channels == 1024


def test_frames_of_the_wrong_size_or_dtype_are_refused_by_name():
    vae = ConvVAE(4, (4, 8, 8, 16), device="cpu")
    with pytest.raises(SpaceMismatchError, match=r"frames: expected uint8.*float32"):
        vae.encode_frames(torch.zeros(2, 64, 64, 3))
    with pytest.raises(
        SpaceMismatchError,
        match=r"frames: expected frames of shape \[B, 64, 64, 3\].*\[2, 32, 32, 3\]",
    ):
        vae.encode_frames(torch.zeros(2, 32, 32, 3, dtype=torch.uint8))
    with pytest.raises(SpaceMismatchError, match=r"\[2, 3, 64, 64\]"):  # channels first
        vae.encode_frames(np.zeros((2, 3, 64, 64), dtype=np.uint8))


# ---------------------------------------------------------------------------- MDN-RNN
def toy_sequences(n: int = 32, length: int = 12) -> tuple[torch.Tensor, ...]:
    """A deterministic latent walk: z rotates by a fixed angle, the action picks the sense."""
    generator = torch.Generator().manual_seed(0)
    actions = torch.randint(0, 2, (n, length), generator=generator)
    angle0 = torch.rand(n, generator=generator) * 2 * math.pi
    steps = torch.where(actions == 1, 0.3, -0.3)
    angles = torch.cat([angle0[:, None], angle0[:, None] + steps.cumsum(1)], 1)
    z = torch.stack([angles.cos(), angles.sin()], -1)  # [n, length + 1, 2]
    features = torch.nn.functional.one_hot(actions, 2).float()
    return z, features, torch.ones(n, length, dtype=torch.bool)


def test_mdn_rnn_fits_a_deterministic_latent_sequence():
    torch.manual_seed(0)
    rnn = MDNRNN(2, 2, 32, 5, predict_reward=False, predict_done=False, device="cpu")
    z, actions, mask = toy_sequences()

    def error() -> float:
        with torch.no_grad():
            out, _ = rnn(z[:, :-1], actions)
            prediction = sample_mixture(out.logits, out.means, out.logvars, temperature=0.0)
        return (prediction - z[:, 1:]).abs().mean().item()

    before = error()
    metrics = rnn.fit(z, actions, mask, epochs=300, batch_size=32, learning_rate=1e-2)
    assert error() < 0.05 < before
    assert metrics["nll"] < -1.0  # far more certain than a unit Gaussian (NLL ~1.4)


def test_temperature_scales_the_spread_and_the_mixture_weights():
    generator = torch.Generator().manual_seed(0)
    n = 20_000
    # One component: the spread is exp(logvar / 2) * sqrt(tau).
    logits, means, logvars = torch.zeros(n, 1, 1), torch.zeros(n, 1, 1), torch.zeros(n, 1, 1)
    for tau in (0.25, 1.0, 4.0):
        samples = sample_mixture(logits, means, logvars, temperature=tau, generator=generator)
        assert samples.std().item() == pytest.approx(math.sqrt(tau), rel=0.05)
    # Two narrow components at -1 (weight 0.8) and +1 (weight 0.2): at tau the weight of +1
    # is 0.2^(1/tau) / (0.2^(1/tau) + 0.8^(1/tau)); tau = 0.5 gives 0.04 / 0.68.
    logits = torch.tensor([math.log(0.8), math.log(0.2)]).expand(n, 1, 2)
    means = torch.tensor([-1.0, 1.0]).expand(n, 1, 2)
    logvars = torch.full((n, 1, 2), -10.0)
    for tau, expected in ((0.5, 0.04 / 0.68), (1.0, 0.2), (2.0, 0.2**0.5 / (0.2**0.5 + 0.8**0.5))):
        samples = sample_mixture(logits, means, logvars, temperature=tau, generator=generator)
        assert (samples > 0).float().mean().item() == pytest.approx(expected, abs=0.01)
    # tau = 0: the most likely component's mean, with no noise.
    assert torch.equal(sample_mixture(logits, means, logvars, temperature=0.0), -torch.ones(n, 1))


def test_mdn_rnn_step_is_batched_and_its_temperature_widens_dreams():
    torch.manual_seed(0)
    rnn = MDNRNN(3, 2, 8, 5, device="cpu")
    h, c = rnn.initial_state(4)
    z, a = torch.randn(4, 3), torch.eye(2)[[0, 1, 0, 1]]
    next_z, reward, done, h1, c1 = rnn.step(h, c, z, a, temperature=0.0)
    assert next_z.shape == (4, 3) and reward.shape == done.shape == (4,)
    assert h1.shape == c1.shape == (4, 8) and ((0 <= done) & (done <= 1)).all()
    for i in range(4):  # each row alone gives the same
        row = rnn.step(h[i : i + 1], c[i : i + 1], z[i : i + 1], a[i : i + 1], temperature=0.0)
        torch.testing.assert_close(row[0], next_z[i : i + 1])
        torch.testing.assert_close(row[3], h1[i : i + 1])
    many = 4000
    spread = {}
    for tau in (0.3, 2.0):
        generator = torch.Generator().manual_seed(1)
        out = rnn.step(
            *rnn.initial_state(many),
            torch.zeros(many, 3),
            torch.eye(2)[torch.zeros(many, dtype=torch.long)],
            temperature=tau,
            generator=generator,
        )
        spread[tau] = out[0].std(0).mean().item()
    assert spread[2.0] > 1.5 * spread[0.3]


# ---------------------------------------------------------------------------- controller
def test_controller_has_the_papers_parameter_count():
    assert controller_size(32 + 256, 3) == 867  # World Models, CarRacing
    algo = WorldModels(
        None, observation_space=FRAMES, action_space=gym.spaces.Box(-1, 1, (3,)), device="cpu"
    )
    assert algo.controller.numel() == 867
    assert algo.rnn.hidden_size == 256 and algo.vae.latent_dim == 32
    assert algo.popsize == 64 and algo.rnn.num_components == 5


def test_linear_controller_uses_each_candidates_own_weights():
    params = torch.arange(2 * 2 * 4, dtype=torch.float32).reshape(2, 8)  # F = 3, out = 2
    features = torch.tensor([[[1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0]]])
    out = linear_controller(params, features, 2)
    # Candidate 0: W = [[0, 1, 2], [3, 4, 5]], b = [6, 7]; candidate 1: W = [[8, 9, 10],
    # [11, 12, 13]], b = [14, 15].
    torch.testing.assert_close(out, torch.tensor([[[0.0 + 6, 3 + 7]], [[10.0 + 14, 13 + 15]]]))


def dream_algo(**kwargs) -> WorldModels:
    algo = WorldModels(
        None,
        observation_space=FRAMES,
        action_space=gym.spaces.Discrete(2),
        device="cpu",
        seed=0,
        **{**SMALL, "dream_horizon": 25, **kwargs},
    )
    with torch.no_grad():  # a termination head that ends some dreams early, others late
        algo.rnn.head.bias[-1] = 0.0
        algo.rnn.head.weight[-1].normal_(std=1.0, generator=torch.Generator().manual_seed(0))
    return algo


def test_dream_rollouts_in_one_batch_equal_each_row_alone():
    algo = dream_algo(temperature=0.0)
    generator = torch.Generator().manual_seed(0)
    params = torch.randn(3, algo.controller.numel(), generator=generator)
    starts = torch.randn(3, 2, 4, generator=generator)
    returns, lengths = algo.dream_returns(params, starts)
    assert returns.shape == lengths.shape == (3, 2)
    assert len(set(lengths.flatten().tolist())) > 1  # episodes end at different steps
    for p in range(3):
        for r in range(2):
            alone, length = algo.dream_returns(params[p : p + 1], starts[p : p + 1, r : r + 1])
            torch.testing.assert_close(alone[0, 0], returns[p, r])
            assert length[0, 0] == lengths[p, r]


def test_a_reward_function_replaces_the_reward_head():
    algo = dream_algo(
        temperature=0.0, reward_fn=lambda z, a, next_z: torch.full((z.shape[0],), 2.0)
    )
    assert not algo.rnn.predict_reward
    params = torch.zeros(1, algo.controller.numel())
    returns, lengths = algo.dream_returns(params, torch.zeros(1, 3, 4))
    torch.testing.assert_close(returns, 2.0 * lengths)


def test_wrong_spaces_are_refused_by_name():
    with pytest.raises(SpaceMismatchError, match=r"env\.observation_space: .*PixelObservation"):
        WorldModels(gym.make("CartPole-v1"), device="cpu")
    with pytest.raises(ValueError, match="popsize: expected a positive int, got 0"):
        WorldModels(cartpole_pixels(), popsize=0, device="cpu")
    algo = WorldModels(cartpole_pixels(), device="cpu", **SMALL)
    with pytest.raises(SpaceMismatchError, match="observation: expected uint8"):
        algo.predict(np.zeros((64, 64, 3), dtype=np.float32))


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
        first.rnn.state_dict().items(), second.rnn.state_dict().values(), strict=True
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
    returns, steps = algo._real_returns(params, venv)
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
        latent_dim=16,
        vae_channels=(8, 16, 32, 64),
        reconstruction_loss="bernoulli",
        hidden_size=64,
        popsize=16,
        rollouts=4,
        generations=10,
        vae_kwargs={"epochs": 10, "batch_size": 32, "learning_rate": 1e-3},
        rnn_kwargs={"epochs": 50, "batch_size": 32},
        seed=0,
        device="cpu",
    )
    algo.learn(5000)
    mean, _ = evaluate_policy(algo, algo.env, n_eval_episodes=10, deterministic=True)
    # Always pushing one way lasts about 9 steps, random actions about 22.
    assert mean > 20
