"""The RSSM world model and its routed observation encoders and decoders."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import mbwrap
from mbwrap import ReplayBuffer
from mbwrap.errors import SpaceMismatchError, UnsupportedSpaceError
from mbwrap.models import RSSM, WorldModel
from mbwrap.models.encoders import ObservationDecoder, ObservationEncoder
from mbwrap.types import Sequence

RING = 6
EPISODE = 30
SMALL = {"deter": 64, "hidden": 64, "layers": 1, "stoch": 8, "classes": 8}


class RingEnv(gym.Env):
    """A point on a ring of ``RING`` cells seen as a one-hot vector; action 0 moves it
    back, 1 forward; the reward is the new cell's index / (RING - 1). Deterministic after
    the random start, truncated after ``EPISODE`` steps."""

    observation_space = spaces.Box(0.0, 1.0, (RING,), np.float32)
    action_space = spaces.Discrete(2)

    def _obs(self) -> np.ndarray:
        return np.eye(RING, dtype=np.float32)[self.cell]

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.cell, self.t = int(self.np_random.integers(RING)), 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.cell = (self.cell + (1 if int(action) == 1 else -1)) % RING
        self.t += 1
        return self._obs(), self.cell / (RING - 1), False, self.t >= EPISODE, {}


def _ring_buffer(steps: int, seed: int) -> ReplayBuffer:
    env = RingEnv()
    buffer = ReplayBuffer(env.observation_space, env.action_space, steps, device="cpu")
    mbwrap.collect(env, buffer, steps, seed=seed)
    return buffer


def _small_rssm(space: spaces.Space = RingEnv.observation_space, **kwargs: Any) -> RSSM:
    options = {**SMALL, "device": "cpu", **kwargs}
    return RSSM(space, RingEnv.action_space, **options)


@pytest.fixture(scope="module")
def fitted() -> tuple[RSSM, ReplayBuffer]:
    torch.manual_seed(0)
    buffer = _ring_buffer(3_000, seed=0)
    model = _small_rssm(learning_rate=2e-3, batch_size=16, sequence_length=20)
    model.fit(buffer, steps=180)
    return model, buffer


# ---------------------------------------------------------------- encoders


def test_encoder_routes_vectors_discrete_and_images_by_their_space():
    vector = ObservationEncoder(spaces.Box(-1, 1, (5,), np.float32), 32, 2, 4)
    assert vector.kinds == {"": "vector"} and vector.out_features == 32
    assert vector(torch.zeros(7, 5)).shape == (7, 32)
    assert vector(torch.zeros(3, 7, 5), lead=2).shape == (3, 7, 32)

    discrete = ObservationEncoder(spaces.Discrete(4, start=2), 16, 1, 4)
    assert discrete.kinds == {"": "discrete"}
    out = discrete(torch.tensor([2, 3, 5, 2]))
    assert out.shape == (4, 16)
    torch.testing.assert_close(out[0], out[3])
    assert not torch.allclose(out[0], out[1])

    for shape in ((32, 48, 3), (1, 32, 48)):  # HWC and CHW
        image = ObservationEncoder(spaces.Box(0, 255, shape, np.uint8), 16, 1, 4)
        assert image.kinds == {"": "image"}
        # 4 stride-2 stages: 32 x 48 -> 2 x 3 maps of 4 * 8 channels.
        assert image.out_features == 4 * 8 * 2 * 3
        pixels = torch.randint(0, 256, (2, 5, *shape), dtype=torch.uint8)
        assert image(pixels, lead=2).shape == (2, 5, image.out_features)

    mixed = spaces.Dict(
        {
            "pos": spaces.Box(-1, 1, (3,), np.float32),
            "mode": spaces.Discrete(3),
            "camera": spaces.Box(0, 255, (16, 16, 3), np.uint8),
        }
    )
    encoder = ObservationEncoder(mixed, 16, 1, 4)
    assert encoder.kinds == {"pos": "vector", "mode": "discrete", "camera": "image"}
    assert encoder.out_features == 16 + 16 + 4 * 8
    obs = {
        "pos": torch.zeros(2, 3),
        "mode": torch.tensor([0, 2]),
        "camera": torch.zeros(2, 16, 16, 3, dtype=torch.uint8),
    }
    assert encoder(obs).shape == (2, encoder.out_features)


def test_decoder_heads_losses_and_decoded_dtypes():
    mixed = spaces.Dict(
        {
            "pos": spaces.Box(-1, 1, (3,), np.float32),
            "mode": spaces.Discrete(3, start=1),
            "camera": spaces.Box(0, 255, (3, 16, 16), np.uint8),
        }
    )
    decoder = ObservationDecoder(mixed, 10, 16, 1, 4)
    features = torch.randn(2, 4, 10)
    raw = decoder(features)
    assert raw["pos"].shape == (2, 4, 3) and raw["mode"].shape == (2, 4, 3)
    assert raw["camera"].shape == (2, 4, 3, 16, 16)
    target = {
        "pos": torch.zeros(2, 4, 3),
        "mode": torch.ones(2, 4, dtype=torch.long),
        "camera": torch.zeros(2, 4, 3, 16, 16, dtype=torch.uint8),
    }
    assert decoder.loss(features, target).shape == (2, 4)
    out = decoder.decode(features)
    assert out["camera"].dtype == torch.uint8 and out["camera"].shape == (2, 4, 3, 16, 16)
    assert ((out["mode"] >= 1) & (out["mode"] <= 3)).all()
    assert out["pos"].dtype == torch.float32


def test_encoder_errors_name_the_problem():
    image = ObservationEncoder(spaces.Box(0, 255, (32, 32, 3), np.uint8), 16, 1, 4)
    with pytest.raises(SpaceMismatchError, match="expected shape"):
        image(torch.zeros(2, 16, 16, 3, dtype=torch.uint8))
    with pytest.raises(SpaceMismatchError, match="uint8"):
        image(torch.zeros(2, 32, 32, 3))
    # No end axis can be the channels: too many of them, or too few pixels beside them.
    for shape in ((40, 40, 40), (3, 2, 3)):
        with pytest.raises(UnsupportedSpaceError, match=r"observation_space: .*channel axis"):
            ObservationEncoder(spaces.Box(0, 255, shape, np.uint8), 16, 1, 4)
    with pytest.raises(UnsupportedSpaceError, match=r"observation_space\['cam'\]: .*channel"):
        ObservationEncoder(spaces.Dict({"cam": spaces.Box(0, 255, (2, 2, 2), np.uint8)}), 8, 1, 4)
    with pytest.raises(UnsupportedSpaceError, match=r"\['flags'\]"):
        ObservationEncoder(
            spaces.Dict({"pos": spaces.Box(-1, 1, (2,)), "flags": spaces.MultiBinary(4)}), 16, 1, 4
        )
    with pytest.raises(UnsupportedSpaceError, match="Box vectors"):
        ObservationEncoder(spaces.Box(-1, 1, (4, 4), np.float32), 16, 1, 4)
    with pytest.raises(UnsupportedSpaceError, match="Box vectors"):
        ObservationEncoder(spaces.Box(0.0, 1.0, (16, 16, 3), np.float32), 16, 1, 4)
    both = ObservationEncoder(
        spaces.Dict({"a": spaces.Box(-1, 1, (2,)), "b": spaces.Discrete(2)}), 16, 1, 4
    )
    with pytest.raises(SpaceMismatchError, match="keys"):
        both({"a": torch.zeros(1, 2)})
    with pytest.raises(SpaceMismatchError, match="dict"):
        both(torch.zeros(1, 2))


def test_rssm_rejects_float_pixels_and_unsupported_actions():
    space = spaces.Box(0, 255, (16, 16, 3), np.uint8)
    model = RSSM(space, spaces.Discrete(2), device="cpu", cnn_depth=4, **SMALL)
    assert model.encode(np.zeros((2, 16, 16, 3), np.uint8)).shape == (2, model.feature_size)
    with pytest.raises(SpaceMismatchError, match="uint8"):
        model.encode(np.zeros((2, 16, 16, 3), np.float32))
    with pytest.raises(UnsupportedSpaceError, match="action_space"):
        RSSM(RingEnv.observation_space, spaces.MultiBinary(3), device="cpu", **SMALL)


# ---------------------------------------------------------------- any image size, RAM bytes
TINY = {"deter": 8, "hidden": 8, "layers": 1, "stoch": 2, "classes": 2, "cnn_depth": 2}


def _random_buffer(space: spaces.Box, steps: int = 6, seed: int = 0) -> ReplayBuffer:
    """``steps`` transitions of random uint8 observations of ``space``, one episode."""
    rng = np.random.default_rng(seed)
    buffer = ReplayBuffer(space, spaces.Discrete(2), steps, device="cpu")
    frames = rng.integers(0, 256, (steps + 1, *space.shape), dtype=np.uint8)
    for t in range(steps):
        buffer.add(frames[t], np.int64(t % 2), 1.0, frames[t + 1], False, t == steps - 1)
    return buffer


@pytest.mark.parametrize(
    "shape",
    [(210, 160, 3), (37, 53, 1), (1, 37, 53), (40, 40, 3)],
    ids=["atari-native-hwc", "odd-hwc", "odd-chw", "not-a-multiple-of-16"],
)
def test_rssm_on_images_of_any_size_encodes_decodes_the_exact_shape_and_fits(shape):
    torch.manual_seed(0)
    space = spaces.Box(0, 255, shape, np.uint8)
    model = RSSM(space, spaces.Discrete(2), device="cpu", batch_size=2, sequence_length=4,
                 **TINY)
    frames = np.random.default_rng(1).integers(0, 256, (3, *shape), dtype=np.uint8)
    state = model.encode(frames)
    assert state.shape == (3, model.feature_size)
    decoded = model.decode(state)
    assert decoded.shape == (3, *shape) and decoded.dtype == torch.uint8
    metrics = model.fit(_random_buffer(space), steps=1)
    assert np.isfinite(metrics["loss"]) and model.gradient_steps == 1


def test_image_reconstruction_loss_counts_only_the_real_pixels():
    space = spaces.Box(0, 255, (37, 53, 1), np.uint8)
    decoder = ObservationDecoder(space, 6, 8, 1, 2)
    features = torch.randn(4, 6)
    pred = decoder(features)[""]
    assert pred.shape == (4, 37, 53, 1)
    target = torch.randint(0, 256, (4, 37, 53, 1), dtype=torch.uint8)
    expected = (pred - (target.float() / 255 - 0.5)).square().flatten(1).sum(-1)
    torch.testing.assert_close(decoder.loss(features, {"": target}), expected)


def test_uint8_vectors_are_bytes_features_not_images():
    ram = spaces.Box(0, 255, (128,), np.uint8)
    encoder = ObservationEncoder(ram, 16, 1, 4)
    assert encoder.kinds == {"": "bytes"} and encoder.out_features == 16
    # Scaled to [0, 1]: the MLP sees x / 255.
    x = torch.randint(0, 256, (5, 128), dtype=torch.uint8)
    torch.testing.assert_close(encoder(x), encoder.nets["_"](x.float() / 255.0))
    with pytest.raises(SpaceMismatchError, match=r"obs: expected uint8 values"):
        encoder(x.float())

    torch.manual_seed(0)
    model = RSSM(ram, spaces.Discrete(2), device="cpu", batch_size=2, sequence_length=4, **TINY)
    state = model.encode(x.numpy())
    assert state.shape == (5, model.feature_size)
    decoded = model.decode(state)
    assert decoded.shape == (5, 128) and decoded.dtype == torch.uint8
    metrics = model.fit(_random_buffer(ram), steps=1)
    assert np.isfinite(metrics["loss"]) and model.gradient_steps == 1


def test_decoded_bytes_stay_within_the_space_bounds():
    space = spaces.Box(np.array([0, 10], np.uint8), np.array([5, 200], np.uint8), dtype=np.uint8)
    decoder = ObservationDecoder(space, 4, 8, 1, 2)
    with torch.no_grad():
        decoder.nets["_"][-1].bias.copy_(torch.tensor([3.0, -3.0]))  # far above, far below
    out = decoder.decode(torch.zeros(2, 4))
    assert out.tolist() == [[5, 10], [5, 10]]


# ---------------------------------------------------------------- the model


def test_features_shapes_and_registry():
    model = mbwrap.make_model(
        "rssm", RingEnv.observation_space, RingEnv.action_space, device="cpu", **SMALL
    )
    assert isinstance(model, RSSM)
    assert model.feature_size == 64 + 8 * 8
    assert model.dream_observation_space == spaces.Box(-np.inf, np.inf, (128,), np.float32)
    state = model.encode(np.eye(RING, dtype=np.float32)[:3])
    assert state.shape == (3, 128)
    # The stochastic part is 8 one-hot categoricals.
    z = state[:, 64:].reshape(3, 8, 8)
    torch.testing.assert_close(z.sum(-1), torch.ones(3, 8))
    step = model.step(state, torch.tensor([0, 1, 1]))
    assert step.next_state.shape == (3, 128)
    assert step.reward.shape == (3,) and step.terminated.shape == (3,)
    # Zero-initialised reward head: the untrained model predicts reward 0.
    torch.testing.assert_close(step.reward, torch.zeros(3))


def test_open_loop_reward_prediction_after_fitting(fitted):
    model, _ = fitted
    model.eval()
    env = RingEnv()
    rng = np.random.default_rng(1)
    context, horizon = 4, 15
    errors = []
    with torch.no_grad():
        for episode in range(8):
            obs, _ = env.reset(seed=100 + episode)
            observations, actions, rewards = [obs], [], []
            for _ in range(context + horizon):
                action = int(rng.integers(2))
                obs, reward, *_ = env.step(action)
                observations.append(obs)
                actions.append(action)
                rewards.append(reward)
            obs_t = torch.as_tensor(np.stack(observations))[None]
            sequence = Sequence(
                obs=obs_t[:, :context],
                action=torch.tensor(actions[:context])[None],
                reward=torch.tensor(rewards[:context])[None],
                next_obs=obs_t[:, 1 : context + 1],
                terminated=torch.zeros(1, context, dtype=torch.bool),
                truncated=torch.zeros(1, context, dtype=torch.bool),
            )
            state = model.observe(sequence, sample=False)["states"][:, -1]
            generator = torch.Generator().manual_seed(episode)
            for t in range(context, context + horizon):
                step = model.step(state, torch.tensor([actions[t]]), generator=generator)
                errors.append(abs(float(step.reward[0]) - rewards[t]))
                state = step.next_state
    # Rewards are in {0, 0.2, ..., 1}; guessing the mean would be off by 0.3 on average.
    # Measured: mean 0.03, 90th percentile 0.06.
    assert np.mean(errors) < 0.1, f"open-loop reward error {np.mean(errors):.3f}"
    assert np.percentile(errors, 90) < 0.25


def _two_episode_sequence(buffer: ReplayBuffer) -> tuple[Sequence, int]:
    """One stored sequence of 40 steps whose first episode ends after step ``EPISODE``."""
    data = buffer.transitions()
    first, length = 0, 40
    fields = {
        name: getattr(data, name)[first : first + length][None]
        for name in ("obs", "action", "reward", "next_obs", "terminated", "truncated")
    }
    end = fields["truncated"] | fields["terminated"]
    assert end[0].nonzero().flatten().tolist() == [EPISODE - 1]
    return Sequence(**fields, episode_end=end), EPISODE


def test_observe_restarts_the_state_where_an_episode_ends(fitted):
    model, buffer = fitted
    sequence, split = _two_episode_sequence(buffer)
    with torch.no_grad():
        joined = model.observe(sequence, sample=False)
        second = Sequence(
            **{
                name: getattr(sequence, name)[:, split:]
                for name in ("obs", "action", "reward", "next_obs", "terminated", "truncated")
            }
        )
        alone = model.observe(second, sample=False)
        torch.testing.assert_close(joined["states"][:, split:], alone["states"])
        # Without the marker the state runs on from the first episode and differs.
        carried = model.observe(
            Sequence(**{**sequence.__dict__, "episode_end": None}), sample=False
        )
        assert not torch.allclose(carried["states"][:, split], alone["states"][:, 0])

        # Sampled filtering draws from the generator: same seed, same states.
        a = model.observe(sequence, torch.Generator().manual_seed(3))
        b = model.observe(sequence, torch.Generator().manual_seed(3))
        torch.testing.assert_close(a["states"], b["states"])
        assert a["states"].shape == (1, 40, model.feature_size)
        assert a["post"].shape == a["prior"].shape == (1, 40, 8, 8)


def test_seeded_imagination_is_reproducible(fitted):
    model, buffer = fitted
    start = model.dream_start_states(buffer, 5, torch.Generator().manual_seed(0))
    again = model.dream_start_states(buffer, 5, torch.Generator().manual_seed(0))
    torch.testing.assert_close(start, again)

    def policy(features: torch.Tensor) -> torch.Tensor:
        return model.action_vector((features[:, 0] > 0).long())

    with torch.no_grad():
        states, actions = model.imagine(policy, start, 12, torch.Generator().manual_seed(7))
        same, _ = model.imagine(policy, start, 12, torch.Generator().manual_seed(7))
        other, _ = model.imagine(policy, start, 12, torch.Generator().manual_seed(8))
    assert states.shape == (13, 5, model.feature_size) and actions.shape == (12, 5, 2)
    torch.testing.assert_close(states[0], start)
    torch.testing.assert_close(states, same)
    assert not torch.equal(states, other)
    with pytest.raises(ValueError, match="horizon"):
        model.imagine(policy, start, 0)


def test_imagination_backpropagates_into_the_policy():
    model = _small_rssm()
    start = model.initial_state(3)
    weight = torch.zeros(model.feature_size, 2, requires_grad=True)

    def policy(features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(features @ weight, -1)

    states, _ = model.imagine(policy, start, 4)
    # (The reward head starts at zero, so the continuation head carries the gradient.)
    model.continue_prob(states[1:]).sum().backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0


def test_fit_on_too_few_steps_says_so():
    buffer = _ring_buffer(10, seed=0)
    model = _small_rssm(sequence_length=24)
    with pytest.raises(ValueError, match="sequences of 24 steps need 24 stored steps"):
        model.fit(buffer, steps=1)
    with pytest.raises(ValueError, match="steps"):
        model.fit(buffer, steps=0)


def test_fit_rejects_a_buffer_of_other_spaces():
    buffer = ReplayBuffer(spaces.Box(-1, 1, (3,), np.float32), spaces.Discrete(2), 50, "cpu")
    with pytest.raises(SpaceMismatchError, match="buffer"):
        _small_rssm().fit(buffer, steps=1)


def test_save_load_round_trip(fitted, tmp_path):
    model, buffer = fitted
    path = tmp_path / "rssm.mbw"
    model.save(path)
    sequence = buffer.sample_sequences(4, 20, generator=torch.Generator().manual_seed(0))
    actions = torch.tensor([0, 1, 1, 0])
    outputs = []
    for loaded in (model, WorldModel.load(path, device="cpu"), RSSM.load(path, device="cpu")):
        assert isinstance(loaded, RSSM) and loaded.get_config() == model.get_config()
        with torch.no_grad():
            states = loaded.observe(sequence, torch.Generator().manual_seed(1))["states"]
            step = loaded.step(states[:, -1], actions, generator=torch.Generator().manual_seed(2))
        outputs.append((states, step.next_state, step.reward, step.terminated))
    for other in outputs[1:]:
        for a, b in zip(outputs[0], other, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_gaussian_latent_trains_and_imagines():
    torch.manual_seed(0)
    buffer = _ring_buffer(200, seed=1)
    model = _small_rssm(latent="gaussian", sequence_length=16, batch_size=8)
    assert model.feature_size == 64 + 8
    sequence = buffer.sample_sequences(8, 16, cross_episodes=True)
    first, _, _ = model.loss(sequence)
    for _ in range(20):
        metrics, states = model.train_step(sequence)
    assert states.shape == (8, 17, model.feature_size)
    last, _, _ = model.loss(sequence)
    assert np.isfinite(metrics["loss"]) and last < first
    with torch.no_grad():
        out = model.observe(sequence)
        assert out["post"].shape == (8, 16, 2 * 8)
        step = model.step(out["states"][:, -1], torch.zeros(8, dtype=torch.long))
    assert step.next_state.shape == (8, model.feature_size)
    assert torch.isfinite(step.reward).all()


def test_dict_observations_through_observe_encode_and_training():
    space = spaces.Dict(
        {
            "pos": spaces.Box(-1, 1, (3,), np.float32),
            "mode": spaces.Discrete(3),
            "camera": spaces.Box(0, 255, (16, 16, 3), np.uint8),
        }
    )
    model = RSSM(space, spaces.Discrete(2), device="cpu", cnn_depth=4, **SMALL)
    batch, length = 2, 5
    generator = torch.Generator().manual_seed(0)

    def obs(offset: int) -> dict[str, torch.Tensor]:
        return {
            "pos": torch.rand(batch, length, 3, generator=generator) * 2 - 1,
            "mode": torch.randint(3, (batch, length), generator=generator),
            "camera": torch.randint(0, 256, (batch, length, 16, 16, 3), generator=generator).to(
                torch.uint8
            ),
        }

    sequence = Sequence(
        obs=obs(0),
        action=torch.randint(2, (batch, length)),
        reward=torch.rand(batch, length),
        next_obs=obs(1),
        terminated=torch.zeros(batch, length, dtype=torch.bool),
        truncated=torch.zeros(batch, length, dtype=torch.bool),
    )
    out = model.observe(sequence)
    assert out["states"].shape == (batch, length, model.feature_size)
    metrics, _ = model.train_step(sequence)
    assert np.isfinite(metrics["loss"])
    first = {k: v[:, 0] for k, v in sequence.obs.items()}
    assert model.encode(first).shape == (batch, model.feature_size)
    decoded = model.decode(out["states"][:, -1])
    assert decoded["camera"].shape == (batch, 16, 16, 3) and decoded["mode"].shape == (batch,)
    with pytest.raises(SpaceMismatchError, match="keys"):
        model.encode({"pos": first["pos"]})
    with pytest.raises(SpaceMismatchError, match="dict"):
        model.encode(first["pos"])


def test_dict_observation_space_round_trips_through_a_checkpoint(tmp_path) -> None:
    from gymnasium import spaces as gym_spaces

    from mbwrap.models import RSSM, WorldModel

    space = gym_spaces.Dict(
        {
            "camera": gym_spaces.Box(0, 255, (16, 16, 3), np.uint8),
            "mode": gym_spaces.Discrete(3),
        }
    )
    model = RSSM(
        space,
        gym_spaces.Discrete(2),
        device="cpu",
        deter=8,
        hidden=8,
        layers=1,
        stoch=2,
        classes=2,
        cnn_depth=2,
    )
    model.save(tmp_path / "rssm.pt")
    loaded = WorldModel.load(tmp_path / "rssm.pt", device="cpu")
    assert isinstance(loaded, RSSM) and loaded.observation_space == space
    state = model.initial_state(2)
    assert torch.equal(model.decode(state)["camera"], loaded.decode(state)["camera"])
