"""Dreamer: the DreamerV3 recipe's pieces, its SB3 surface and a short learning run."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

import mbwrap
from mbwrap.algos.dreamer import Dreamer
from mbwrap.algos.presets import DREAMER_CARTPOLE
from mbwrap.device import make_generator
from mbwrap.errors import CheckpointError, UnsupportedSpaceError
from mbwrap.testing import assert_load_restores_everything, assert_resume_is_exact

TINY = {
    "model_kwargs": {
        "deter": 16,
        "hidden": 16,
        "layers": 1,
        "stoch": 4,
        "classes": 4,
        "batch_size": 4,
        "sequence_length": 8,
        "reward_bins": 31,
    },
    "hidden": 16,
    "layers": 1,
    "imagination_horizon": 5,
    "train_freq": 1,
    "gradient_steps": 1,
    "learning_starts": 40,
}


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


def test_registered_and_gradient_steps_per_env_step() -> None:
    algo = mbwrap.make_algo("dreamer", gym.make("CartPole-v1"), device="cpu", **TINY)
    assert isinstance(algo, Dreamer)
    # DreamerV3's train ratio 32 replayed steps per env step over batches of 4 x 8
    # replayed steps.
    assert algo.gradient_steps_per_env_step() == pytest.approx(32 / (4 * 8))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gamma": 0.0}, "gamma"),
        ({"gae_lambda": 1.5}, "gae_lambda"),
        ({"ent_coef": -1.0}, "ent_coef"),
        ({"learning_starts": -1}, "learning_starts"),
        ({"imagination_horizon": 0}, "imagination_horizon"),
        ({"train_freq": 0}, "train_freq"),
        ({"gradient_steps": 0}, "gradient_steps"),
    ],
)
def test_bad_settings_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Dreamer(gym.make("CartPole-v1"), device="cpu", **{**TINY, **kwargs})


def test_unbounded_box_actions_are_refused() -> None:
    class Unbounded(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
        action_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)

    with pytest.raises(UnsupportedSpaceError, match="action_space"):
        Dreamer(Unbounded(), device="cpu", **TINY)


def test_learn_counts_real_steps_and_trains() -> None:
    algo = Dreamer(gym.make("CartPole-v1"), seed=0, device="cpu", **TINY)
    algo.learn(100)
    assert algo.num_timesteps == 100
    # 60 steps after learning_starts at one gradient step per env step.
    assert algo.n_updates == 60
    assert algo.model.gradient_steps == 60
    assert len(algo.buffer) == 100


def test_reinforce_leaves_the_world_model_alone_and_moves_the_actor() -> None:
    algo = Dreamer(gym.make("CartPole-v1"), seed=0, device="cpu", **TINY)
    algo.learn(60)
    starts = algo.model.initial_state(8) + 0.1
    model_before, actor_before = _params(algo.model), _params(algo.actor)
    critic_before = _params(algo.critic.slow)
    algo.model.zero_grad(set_to_none=True)
    metrics = algo._imagine_and_learn(starts)
    assert not _changed(model_before, algo.model)
    assert all(p.grad is None or not p.grad.any() for p in algo.model.parameters())
    assert _changed(actor_before, algo.actor)
    assert _changed(critic_before, algo.critic.slow)  # the slow copy follows
    assert np.isfinite(metrics["actor_loss"]) and np.isfinite(metrics["critic_loss"])


def test_continuous_actions_learn_through_the_dynamics() -> None:
    # With no entropy term, a Box actor's only gradient is the return's, which reaches it
    # through the imagined states (dynamics backpropagation).
    algo = Dreamer(gym.make("Pendulum-v1"), seed=0, device="cpu", **{**TINY, "ent_coef": 0.0})
    algo.learn(80)
    before = _params(algo.actor)
    algo._imagine_and_learn(algo.model.initial_state(8) + 0.1)
    assert _changed(before, algo.actor)
    action, _ = algo.predict(np.zeros(3, np.float32))
    assert action.shape == (1,) and -2.0 <= float(action[0]) <= 2.0


def test_predict_keeps_latent_state_and_restarts_on_episode_start() -> None:
    algo = Dreamer(gym.make("CartPole-v1"), seed=0, device="cpu", **TINY)
    obs = np.zeros((2, 4), np.float32)
    actions, state = algo.predict(obs)
    assert actions.shape == (2,)
    latent, prev_action = state
    assert latent.shape == (2, algo.model.feature_size) and prev_action.shape == (2, 2)
    # Where an episode starts, the state passed in does not matter.
    other = (np.random.default_rng(0).normal(size=latent.shape).astype(np.float32), prev_action)
    outputs = []
    for given in (state, other):
        algo.filter.generator = make_generator("cpu", 3)
        outputs.append(algo.predict(obs, given, episode_start=np.array([True, True]))[1][0])
    np.testing.assert_array_equal(outputs[0], outputs[1])
    # Elsewhere it does.
    algo.filter.generator = make_generator("cpu", 3)
    kept = algo.predict(obs, other, episode_start=np.array([False, False]))[1][0]
    assert not np.array_equal(kept, outputs[0])
    single, _ = algo.predict(np.zeros(4, np.float32))
    assert np.asarray(single).shape == ()


def test_evaluate_policy_on_a_vec_env() -> None:
    algo = Dreamer(gym.make("CartPole-v1"), seed=0, device="cpu", **TINY)
    mean, _ = evaluate_policy(algo, make_vec_env("CartPole-v1", n_envs=2, seed=0), 4)
    assert mean > 0


def test_save_load_round_trip(tmp_path) -> None:
    algo = Dreamer(gym.make("CartPole-v1"), seed=0, device="cpu", **TINY)
    algo.learn(80)
    path = tmp_path / "dreamer.mbwrap"
    algo.save(path)
    loaded = Dreamer.load(path, env=gym.make("CartPole-v1"), device="cpu")
    assert loaded.num_timesteps == 80 and len(loaded.buffer) == 80
    obs = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    out = []
    for agent in (algo, loaded):
        agent.filter.generator = make_generator("cpu", 7)
        out.append(agent.predict(obs, deterministic=True))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_allclose(out[0][1][0], out[1][1][0], atol=1e-6)
    assert float(loaded.return_scale) == pytest.approx(float(algo.return_scale))
    with pytest.raises(CheckpointError):
        mbwrap.algos.MuZero.load(path)


# ---------------------------------------------------------------------- resume
def _pendulum() -> gym.Env:
    return gym.make("Pendulum-v1", max_episode_steps=50)


def _small_dreamer() -> Dreamer:
    return Dreamer(_pendulum(), seed=0, device="cpu", **{**TINY, "train_freq": 5})


def test_load_restores_the_whole_run(tmp_path) -> None:
    algo = _small_dreamer()
    algo.learn(75)  # mid-episode: the filter's state is kept too
    assert algo.n_updates == 7 and algo.filter.state is not None
    loaded = assert_load_restores_everything(algo, tmp_path, env=_pendulum(), device="cpu")
    assert loaded.n_updates == 7 and len(loaded.buffer) == 75
    assert float(loaded.return_scale) == float(algo.return_scale) != 0.0
    torch.testing.assert_close(loaded.filter.state, algo.filter.state, rtol=0, atol=0)
    slow = zip(algo.critic.slow.parameters(), loaded.critic.slow.parameters(), strict=True)
    assert all(torch.equal(mine, theirs) for mine, theirs in slow)
    small = tmp_path / "small.pt"
    algo.save(small, include_buffer=False)
    assert small.stat().st_size < (tmp_path / "saved.pt").stat().st_size
    assert len(Dreamer.load(small, device="cpu").buffer) == 0


def test_a_run_resumed_at_an_episode_boundary_follows_the_uninterrupted_one(tmp_path) -> None:
    # 50 random steps, then 50 acting and training, saved where the second episode ends.
    assert_resume_is_exact(_small_dreamer, _pendulum, 100, 50, tmp_path)


def test_dreamer_learns_cartpole_over_random() -> None:
    # DREAMER_CARTPOLE, 2,000 real steps (500 random, then 375 gradient steps): random play
    # averages about 22; the trained agent balances markedly longer.
    torch.manual_seed(0)
    algo = Dreamer(gym.make("CartPole-v1"), seed=0, device="cpu", **DREAMER_CARTPOLE)
    algo.learn(2_000)
    mean, _ = evaluate_policy(
        algo, make_vec_env("CartPole-v1", n_envs=5, seed=100), 5, deterministic=True
    )
    assert mean >= 60.0


def _pong() -> gym.Env:
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")  # AtariPreprocessing resizes with OpenCV (the atari extra)
    from mbwrap.envs.atari import make_atari_env

    return make_atari_env("ALE/Pong-v5", frame_stack=1, screen_size=64)


def _cartpole_pixels() -> gym.Env:
    from mbwrap.envs.pixels import PixelObservation

    return PixelObservation(gym.make("CartPole-v1", render_mode="rgb_array"), size=(64, 64))


@pytest.mark.parametrize("make_env", [_pong, _cartpole_pixels], ids=["atari", "render"])
def test_learns_from_pixels(make_env) -> None:
    env = make_env()
    kwargs = {**TINY, "model_kwargs": {**TINY["model_kwargs"], "cnn_depth": 4}}
    algo = Dreamer(env, seed=0, device="cpu", buffer_size=500, **kwargs)
    algo.learn(48)
    assert algo.n_updates == 8
    frames = algo.model.decode(algo.model.initial_state(2))
    assert frames.shape == (2, *env.observation_space.shape) and frames.dtype == torch.uint8
    action, _ = algo.predict(env.observation_space.sample())
    assert env.action_space.contains(action)


def test_critic_loss_is_the_two_hot_and_slow_copy_cross_entropies() -> None:
    from mbwrap.networks import LatentCritic
    from mbwrap.transforms import scalar_to_two_hot, symlog

    torch.manual_seed(0)
    critic = LatentCritic(features=6, hidden=8, layers=1, bins=21)
    torch.nn.init.normal_(critic.slow[-1].weight)  # a slow copy that differs from the net
    features = torch.randn(3, 4, 6)
    returns = torch.randn(3, 4) * 5
    weight = torch.rand(3, 4)
    logits = critic.logits(features)
    loss = critic.loss(logits, features, returns, weight)
    log_probs = torch.log_softmax(logits, -1)
    two_hot = scalar_to_two_hot(symlog(returns), critic.bins)
    slow = torch.softmax(critic.slow(features), -1)
    expected = weight * (-(two_hot * log_probs).sum(-1) - (slow * log_probs).sum(-1))
    torch.testing.assert_close(loss, expected.mean())
    # The slow copy is a target: no gradient reaches it.
    loss.backward()
    assert all(p.grad is None for p in critic.slow.parameters())
    assert critic.net[-1].weight.grad is not None
