"""World Models' V and M: the ConvVAE, the MDN-RNN, and both as one latent WorldModel
(``"vae-mdn-rnn"``) whose dream is a DreamVecEnv."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from mbwrap.buffers import ReplayBuffer
from mbwrap.envs import DreamVecEnv
from mbwrap.errors import SpaceMismatchError, UnsupportedSpaceError
from mbwrap.models import WorldModel
from mbwrap.models.mdn_rnn import MDNRNN, sample_mixture
from mbwrap.models.vae import (
    ConvVAE,
    check_frames_space,
    frames_to_tensor,
    kl_to_standard_normal,
    latent_grid,
    vae_loss,
)
from mbwrap.models.vae_mdn_rnn import VAEMDNRNN, episode_pieces

FRAMES = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
SMALL = {"latent_dim": 4, "vae_channels": (4, 8, 8, 16), "hidden_size": 16}


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


@pytest.mark.parametrize(
    ("size", "grid", "padded"),
    [((64, 64), (1, 1), (64, 64)), ((210, 160), (11, 7), (224, 160)), ((37, 53), (1, 1), (64, 64))],
)
def test_frames_of_any_size_are_padded_to_the_next_size_the_layers_fit(size, grid, padded):
    # 16 m + 48 >= size for the smallest m >= 1: 210 -> m = 11 (224), 160 -> m = 7 (160).
    vae = ConvVAE(4, (2, 2, 2, 2), image_channels=1, frame_size=size, device="cpu")
    assert vae.grid == grid and vae.padded == padded
    assert vae.get_config()["frame_size"] == list(size)
    # The encoder's maps are m + 1 wide; the decoder starts from an m-wide grid.
    assert vae.to_mean.in_features == 2 * (grid[0] + 1) * (grid[1] + 1)
    assert vae.from_latent.out_features == 4 * 2 * grid[0] * grid[1]
    x = torch.rand(2, 1, *size)
    logits, mean, _ = vae(x)
    assert logits.shape == (2, 1, *size) and mean.shape == (2, 4)


def test_a_bad_frame_size_is_refused_by_name():
    for bad in ((3, 64), (64,), (64.0, 64)):
        with pytest.raises(ValueError, match="frame_size"):
            ConvVAE(frame_size=bad, device="cpu")


@pytest.mark.parametrize("shape", [(210, 160, 3), (37, 53, 1)], ids=["atari-native", "odd"])
def test_world_models_v_and_m_on_frames_of_any_size(shape):
    torch.manual_seed(0)
    space = gym.spaces.Box(0, 255, shape, np.uint8)
    m = VAEMDNRNN(space, gym.spaces.Discrete(2), device="cpu", batch_size=4,
                  **{**SMALL, "vae_channels": (2, 2, 2, 2)})
    frames = np.random.default_rng(0).integers(0, 256, (7, *shape), dtype=np.uint8)
    state = m.encode(frames[:2])
    decoded = m.decode(state)
    assert decoded.shape == (2, *shape) and decoded.dtype == torch.uint8
    buffer = ReplayBuffer(space, m.action_space, 10, device="cpu")
    for t in range(6):
        buffer.add(frames[t], np.int64(t % 2), 1.0, frames[t + 1], False, t == 5)
    metrics = m.fit(buffer, vae_epochs=1, rnn_epochs=1)
    assert metrics["frames"] == 7 and math.isfinite(metrics["vae_loss"])
    assert math.isfinite(metrics["rnn_loss"])
    with pytest.raises(SpaceMismatchError, match=r"obs: expected frames of shape"):
        m.encode(np.zeros((1, 64, 64, shape[2]), np.uint8))


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


# ---------------------------------------------------------------------------- V and M as one model
def test_episode_pieces_cut_streams_at_episode_ends_and_at_the_length():
    # Two streams of 5 steps: stream 0 ends an episode at step 1; stream 1 never does.
    ends = torch.tensor(
        [[False, False], [True, False], [False, False], [False, False], [False, False]]
    )
    rows, cols, mask = episode_pieces(ends, 3)
    # Stream 0: steps 0-1, then 2-4 (ended by the newest step); stream 1: 0-2, then 3-4.
    assert rows.tolist() == [[0, 1, 0], [2, 3, 4], [0, 1, 2], [3, 4, 0]]
    assert cols.tolist() == [[0, 0, 0], [0, 0, 0], [1, 1, 1], [1, 1, 0]]
    assert mask.tolist() == [
        [True, True, False],
        [True, True, True],
        [True, True, True],
        [True, True, False],
    ]
    # Longer pieces allowed: three pieces, padded only to the longest (stream 1's 5 steps).
    rows, cols, mask = episode_pieces(ends, 1000)
    assert rows.tolist() == [[0, 1, 0, 0, 0], [2, 3, 4, 0, 0], [0, 1, 2, 3, 4]]
    assert cols.tolist() == [[0] * 5, [0] * 5, [1] * 5]
    assert mask.sum(1).tolist() == [2, 3, 5]


def model(action_space=None, **kwargs) -> VAEMDNRNN:
    torch.manual_seed(0)
    return VAEMDNRNN(
        FRAMES, action_space or gym.spaces.Discrete(2), device="cpu", **{**SMALL, **kwargs}
    )


def test_the_protocol_encode_step_decode_on_a_flat_state():
    m = model()
    frames = square_frames(3)
    state = m.encode(frames)
    assert state.shape == (3, 4 + 2 * 16)
    mean, _ = m.vae.encode_frames(frames)
    torch.testing.assert_close(state[:, :4], mean)  # the posterior mean, zero LSTM state
    assert not state[:, 4:].any()
    pred = m.step(state, torch.tensor([0, 1, 1]), generator=torch.Generator().manual_seed(0))
    assert pred.next_state.shape == state.shape and pred.reward.shape == (3,)
    assert ((0 <= pred.terminated) & (pred.terminated <= 1)).all()
    assert pred.next_state[:, 4:].abs().sum() > 0  # the LSTM moved
    decoded = m.decode(state)
    assert decoded.shape == (3, 64, 64, 3) and decoded.dtype == torch.uint8
    assert m.dream_observation_space.shape == (4 + 16,)
    torch.testing.assert_close(m.dream_observation(pred.next_state), pred.next_state[:, :20])
    # A Box action is scaled to [-1, 1] for M: the bounds map to -1 and 1.
    box = model(gym.spaces.Box(-2.0, 2.0, (1,)))
    features = box.action_features(torch.tensor([[-2.0], [0.0], [2.0]]))
    torch.testing.assert_close(features, torch.tensor([[-1.0], [0.0], [1.0]]))


def test_temperature_zero_dreams_deterministically_with_hard_terminations():
    m = model(temperature=0.0)
    with torch.no_grad():
        m.rnn.head.weight[-1].normal_(std=1.0, generator=torch.Generator().manual_seed(0))
    state = m.encode(square_frames(8))
    first = m.step(state, torch.zeros(8, dtype=torch.long), generator=torch.Generator())
    again = m.step(state, torch.zeros(8, dtype=torch.long), generator=torch.Generator())
    torch.testing.assert_close(first.next_state, again.next_state)
    assert set(first.terminated.tolist()) <= {0.0, 1.0}


def test_spaces_that_are_not_frames_or_unbounded_actions_are_refused_by_name():
    with pytest.raises(SpaceMismatchError, match=r"observation_space: .*PixelObservation"):
        VAEMDNRNN(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), device="cpu")
    with pytest.raises(UnsupportedSpaceError, match=r"action_space: .*bounded 1-D Box"):
        VAEMDNRNN(FRAMES, gym.spaces.Box(-np.inf, np.inf, (2,)), device="cpu")


def filled_buffer(m: VAEMDNRNN, episodes: list[int], n_envs: int = 1) -> ReplayBuffer:
    """A buffer of ``episodes`` (their lengths) of square frames; each episode's first
    frame is all grey (value 128)."""
    buffer = ReplayBuffer(FRAMES, m.action_space, 1000, device="cpu", n_envs=n_envs)
    frames = square_frames(sum(episodes) + len(episodes), seed=1).numpy()
    i = 0
    for length in episodes:
        frames[i] = 128
        for t in range(length):
            last = t == length - 1
            buffer.add(
                frames[i][None],
                np.array([t % 2]),
                np.array([1.0]),
                frames[i + 1][None],
                np.array([last]),
                np.array([False]),
            )
            i += 1
        i += 1
    return buffer


def test_dream_starts_come_from_the_posterior_of_stored_first_frames():
    m = model()
    buffer = filled_buffer(m, [3, 4, 2])
    grey_mean, grey_logvar = m.vae.encode_frames(np.full((1, 64, 64, 3), 128, np.uint8))
    starts = m.dream_start_states(buffer, 4000, torch.Generator().manual_seed(0))
    assert starts.shape == (4000, 4 + 32) and not starts[:, 4:].any()
    # Every episode starts from the grey frame: z ~ N(mean, exp(logvar)) of that frame.
    torch.testing.assert_close(starts[:, :4].mean(0), grey_mean[0], atol=0.1, rtol=0)
    torch.testing.assert_close(
        starts[:, :4].std(0), (0.5 * grey_logvar[0]).exp(), atol=0.05, rtol=0.1
    )


def test_fit_trains_v_and_m_on_whole_episodes_and_keeps_its_optimizers(tmp_path):
    m = model(batch_size=8, vae_learning_rate=1e-3)
    buffer = filled_buffer(m, [5, 7, 4])
    torch.manual_seed(0)
    metrics = m.fit(buffer, vae_epochs=2, rnn_epochs=3)
    # 16 steps and the 3 frames that end the episodes; one sequence per episode.
    assert metrics["frames"] == 16 + 3 and metrics["sequences"] == 3
    assert metrics["vae_epochs"] == 2 and metrics["rnn_epochs"] == 3
    assert math.isfinite(metrics["vae_loss"]) and math.isfinite(metrics["rnn_loss"])
    moments = m.optimizer_state_dict()
    assert moments["vae"]["state"] and moments["rnn"]["state"]
    path = tmp_path / "vae_mdn_rnn.pt"
    m.save(path)
    loaded = WorldModel.load(path, device="cpu")
    assert isinstance(loaded, VAEMDNRNN) and loaded.get_config() == m.get_config()
    state = m.encode(square_frames(2))
    torch.testing.assert_close(loaded.encode(square_frames(2)), state)


def test_a_dream_vec_env_over_the_model_observes_z_and_h_and_starts_from_real_frames():
    m = model()
    buffer = filled_buffer(m, [6, 6])
    dream = DreamVecEnv(m, 5, start_states=buffer, horizon=4)
    obs, _ = dream.reset(seed=0)
    assert obs.shape == (5, 20) and obs.dtype == np.float32
    assert not obs[:, 4:].any()  # h starts at zero
    obs, reward, terminated, truncated, _ = dream.step(np.array([0, 1, 0, 1, 0]))
    assert obs.shape == (5, 20) and reward.shape == (5,)
    assert dream.core.reward_source == "model" and dream.core.termination_source == "model"


def test_latent_grid_is_the_smallest_that_covers_the_frame():
    # The decoder's deconvolutions turn an m x m grid into 16 m + 48 pixels.
    assert [latent_grid(size) for size in (4, 48, 64, 65, 80, 81, 96)] == [1, 1, 1, 2, 2, 3, 3]
    for size in range(4, 200):
        m = latent_grid(size)
        assert 16 * m + 48 >= size and (m == 1 or 16 * (m - 1) + 48 < size)


def test_check_frames_space_returns_the_channels_or_names_the_argument():
    assert check_frames_space(FRAMES, name="observation_space") == 3
    assert check_frames_space(gym.spaces.Box(0, 255, (10, 12, 1), np.uint8), name="x") == 1
    for bad in (
        gym.spaces.Box(0, 1, (64, 64, 3), np.float32),
        gym.spaces.Box(0, 255, (3, 64, 64), np.uint8),
        gym.spaces.Box(0, 255, (64, 64, 2), np.uint8),
        gym.spaces.Box(0, 255, (3, 3, 3), np.uint8),
        gym.spaces.Discrete(4),
    ):
        with pytest.raises(SpaceMismatchError, match="observation_space: World Models reads"):
            check_frames_space(bad, name="observation_space")
