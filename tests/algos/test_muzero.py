"""MuZero: networks, losses, the search model, the SB3 surface and learning on CartPole."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from mbwrap.algos.muzero import MuZero, MuZeroConfig, visit_temperature
from mbwrap.algos.presets import MUZERO_CARTPOLE
from mbwrap.buffers.prioritized import PrioritizedBatch
from mbwrap.errors import CheckpointError, UnsupportedSpaceError
from mbwrap.models.muzero_nets import (
    MuZeroNetworks,
    categorical_cross_entropy,
    muzero_losses,
    scale_gradient,
    scale_hidden_state,
    support,
)
from mbwrap.planners.mcts import SearchModel, gumbel_muzero_policy, muzero_policy
from mbwrap.testing import assert_load_restores_everything, assert_resume_is_exact

torch.set_num_threads(1)

TINY = {
    "num_simulations": 4,
    "network_kwargs": {"hidden_size": 16, "layers": 1, "support_size": 5},
    "batch_size": 16,
    "learning_starts": 50,
    "train_freq": 4,
    "gradient_steps": 1,
    "buffer_size": 2_000,
    "device": "cpu",
}


# ---------------------------------------------------------------------- networks
def test_mlp_networks_shapes_and_scaled_states():
    nets = MuZeroNetworks((4,), 2, hidden_size=32, layers=2, support_size=10)
    obs = torch.randn(5, 4)
    state = nets.represent(obs)
    assert state.shape == (5, 32)
    assert state.min() >= 0 and state.max() <= 1
    next_state, reward = nets.dynamics(state, torch.tensor([0, 1, 0, 1, 1]))
    assert next_state.shape == (5, 32) and reward.shape == (5, 21)
    assert next_state.min() >= 0 and next_state.max() <= 1
    logits, value = nets.predict(next_state)
    assert logits.shape == (5, 2) and value.shape == (5, 21)
    # Value and reward heads start at 0.
    torch.testing.assert_close(nets.to_scalar(value), torch.zeros(5), atol=1e-4, rtol=0)
    torch.testing.assert_close(nets.to_scalar(reward), torch.zeros(5), atol=1e-4, rtol=0)


@pytest.mark.parametrize(("obs_shape", "downsample", "plane"),
                         [((4, 84, 84), True, (6, 6)), ((3, 8, 8), False, (8, 8))])
def test_resnet_networks_shapes(obs_shape, downsample, plane):
    nets = MuZeroNetworks(obs_shape, 6, hidden_size=8, layers=1, support_size=3,
                          downsample=downsample)
    assert nets.kind == "resnet" and nets.plane_shape == plane
    state = nets.represent(torch.rand(2, *obs_shape))
    assert state.shape == (2, 8, *plane)
    next_state, reward = nets.dynamics(state, torch.tensor([5, 0]))
    assert next_state.shape == state.shape and reward.shape == (2, 7)
    logits, value = nets.predict(next_state)
    assert logits.shape == (2, 6) and value.shape == (2, 7)


def test_network_arguments_are_checked():
    with pytest.raises(ValueError, match="kind"):
        MuZeroNetworks((4,), 2, kind="transformer")
    with pytest.raises(ValueError, match="obs_shape"):
        MuZeroNetworks((4,), 2, kind="resnet")
    with pytest.raises(ValueError, match="support_size"):
        MuZeroNetworks((4,), 2, support_size=0)


def test_scale_hidden_state_by_hand():
    state = torch.tensor([[1.0, 3.0, 2.0], [-2.0, -2.0, 2.0]])
    torch.testing.assert_close(
        scale_hidden_state(state, eps=0.0), torch.tensor([[0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    )


def test_scale_gradient_keeps_values_and_scales_gradients():
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    y = scale_gradient(x, 0.5)
    torch.testing.assert_close(y, x.detach())
    (y * torch.tensor([2.0, 4.0])).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([1.0, 2.0]))


# ---------------------------------------------------------------------- losses
def test_categorical_cross_entropy_by_hand():
    logits = torch.log(torch.tensor([[0.25, 0.75]]))
    ce = categorical_cross_entropy(logits, torch.tensor([[0.0, 1.0]]))
    torch.testing.assert_close(ce, -torch.log(torch.tensor([0.75])))


def test_muzero_losses_targets_masks_and_unroll_scale():
    points = support(3)  # -3..3
    steps, actions = 3, 2  # K = 2
    target_values = torch.tensor([[1.0, 0.0, 0.0]])
    batch = PrioritizedBatch(
        indices=torch.zeros(1, dtype=torch.long), weights=torch.ones(1),
        obs=torch.zeros(1, 4), actions=torch.zeros(1, 2, dtype=torch.long),
        target_values=target_values, target_rewards=torch.zeros(1, steps),
        target_policies=torch.tensor([[[1.0, 0.0]] * steps]),
        value_mask=torch.tensor([[True, True, False]]),
        reward_mask=torch.tensor([[False, True, True]]),
        policy_mask=torch.tensor([[True, False, False]]),
    )
    policy_logits = torch.zeros(1, steps, actions)
    value_logits = torch.zeros(1, steps, 7)
    losses = muzero_losses(policy_logits, value_logits, torch.zeros(1, steps, 7), batch, points)
    uniform = torch.log(torch.tensor(7.0))
    # Value: steps 0 (weight 1) and 1 (weight 1/K = 1/2); step 2 masked.
    torch.testing.assert_close(losses["value"], (uniform * 1.5).reshape(1))
    # Reward: steps 1 and 2, each 1/2.
    torch.testing.assert_close(losses["reward"], uniform.reshape(1))
    # Policy: step 0 only, cross-entropy of a uniform guess = log 2.
    torch.testing.assert_close(losses["policy"], torch.log(torch.tensor([2.0])))
    # A value head that predicts h(1) exactly is better on step 0.
    sharp = value_logits.clone()
    sharp[0, 0] = torch.log(torch.tensor([1e-6, 1e-6, 1e-6, 0.582, 0.418, 1e-6, 1e-6]))
    better = muzero_losses(policy_logits, sharp, torch.zeros(1, steps, 7), batch, points)
    assert better["value"] < losses["value"]


def test_visit_temperature_schedule():
    assert [visit_temperature(p) for p in (0.0, 0.49, 0.5, 0.74, 0.75, 1.0)] == [
        1.0, 1.0, 0.5, 0.5, 0.25, 0.25
    ]


# ---------------------------------------------------------------------- search model
def _cartpole(n_envs=2, seed=0):
    return make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed)


def test_search_model_runs_both_searches_batched():
    algo = MuZero(_cartpole(), seed=0, **TINY)
    model = algo.search_model
    assert isinstance(model, SearchModel) and model.num_actions == 2
    root = model.root(np.zeros((3, 4), dtype=np.float32))
    assert root.prior_logits.shape == (3, 2) and root.value.shape == (3,)
    out, state = model.recurrent_fn(root.embedding, torch.tensor([0, 1, 1]))
    assert state.shape == root.embedding.shape and out.reward.shape == (3,)
    assert torch.all(out.discount == algo.config.gamma)
    pol = muzero_policy(root, model.recurrent_fn, 8)
    assert pol.action.shape == (3,) and pol.search_tree.summary().visit_counts.sum(-1).eq(8).all()
    gum = gumbel_muzero_policy(root, model.recurrent_fn, 8, max_num_considered_actions=2)
    torch.testing.assert_close(gum.action_weights.sum(-1), torch.ones(3))


def test_non_discrete_action_space_is_named():
    with pytest.raises(UnsupportedSpaceError, match="action_space"):
        MuZero(gym.make("Pendulum-v1"), **TINY)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="search"):
        MuZero(_cartpole(1), search="alphabeta", **TINY)
    with pytest.raises(ValueError, match="eval_num_simulations"):
        MuZero(_cartpole(1), eval_num_simulations=-1, **TINY)


# ---------------------------------------------------------------------- the SB3 surface
def test_learn_smoke_fills_replay_trains_and_logs(tmp_path):
    from stable_baselines3.common.logger import configure

    algo = MuZero(_cartpole(4), seed=0, **TINY)
    algo.set_logger(configure(str(tmp_path), ["csv"]))
    eval_cb = EvalCallback(gym.make("CartPole-v1"), n_eval_episodes=1, eval_freq=40,
                           warn=False, verbose=0)
    algo.learn(240, callback=eval_cb, log_interval=1, progress_bar=True)
    assert algo.num_timesteps == 240
    assert algo.n_updates > 0 and algo.buffer.num_positions > 0
    assert eval_cb.last_mean_reward > 0  # EvalCallback evaluated the algorithm
    logged = (tmp_path / "progress.csv").read_text()
    for key in ("train/value_loss", "train/priority_mean", "rollout/ep_rew_mean"):
        assert key in logged


def test_save_load_round_trip_predicts_the_same(tmp_path):
    algo = MuZero(_cartpole(2), seed=1, search="muzero", **TINY)
    algo.learn(120)
    path = tmp_path / "muzero.pt"
    algo.save(path)
    loaded = MuZero.load(path, env=_cartpole(2), device="cpu")
    obs = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    torch.testing.assert_close(loaded.search_model.root(obs).value,
                               algo.search_model.root(obs).value)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0],
                                  algo.predict(obs, deterministic=True)[0])
    assert loaded.buffer.added == algo.buffer.added
    assert loaded.config == algo.config
    with pytest.raises(CheckpointError):
        from mbwrap.algos.pets import PETS

        PETS.load(path)


def test_predict_without_search_uses_the_policy_head():
    algo = MuZero(_cartpole(1), eval_num_simulations=0, **TINY)
    obs = np.zeros((3, 4), dtype=np.float32)
    actions, _ = algo.predict(obs, deterministic=True)
    expected = algo.search_model.root(obs).prior_logits.argmax(-1).numpy()
    np.testing.assert_array_equal(actions, expected)
    single, _ = algo.predict(obs[0], deterministic=True)
    assert np.ndim(single) == 0


def test_reanalyse_changes_stored_values_when_the_network_changes():
    algo = MuZero(_cartpole(2), seed=0, **{**TINY, "learning_starts": 10_000})
    algo.learn(60)
    rows = torch.nonzero(algo.buffer.priority > 0).squeeze(-1)
    algo.buffer.reanalyse(algo._reanalyse_fn, rows)
    first = algo.buffer.root_value[rows].clone()
    algo.buffer.reanalyse(algo._reanalyse_fn, rows)
    torch.testing.assert_close(algo.buffer.root_value[rows], first)  # same network
    with torch.no_grad():
        algo.networks.value_head[-1].bias[-1] += 5.0  # shift values up
    algo.buffer.reanalyse(algo._reanalyse_fn, rows)
    assert (algo.buffer.root_value[rows] > first + 0.5).all()


def test_learn_with_reanalyse_refreshes_replayed_values():
    algo = MuZero(_cartpole(2), seed=0,
                  **{**TINY, "reanalyse_fraction": 0.5, "bootstrap_with_network": True})
    algo.learn(60)
    stored = algo.buffer.root_value.clone()
    algo.learn(40, reset_num_timesteps=False)
    assert algo.n_updates > 0
    old_rows = algo.buffer.priority[: stored.shape[0]] > 0
    assert not torch.equal(algo.buffer.root_value[old_rows], stored[old_rows])


def test_target_network_is_refreshed_every_interval():
    algo = MuZero(_cartpole(2), seed=0, **{**TINY, "learning_starts": 10_000,
                                            "bootstrap_with_network": True,
                                            "target_update_interval": 3})
    algo.learn(80)
    assert algo.target_model.networks is not algo.networks

    def same() -> bool:
        return all(torch.equal(a, b) for a, b in zip(
            algo.networks.parameters(), algo.target_model.networks.parameters(), strict=True))

    assert same()
    algo.train_step()
    algo.train_step()
    assert not same()
    algo.train_step()
    assert same()


def test_train_steps_fit_a_fixed_replay():
    algo = MuZero(_cartpole(4), seed=0, **{**TINY, "learning_starts": 10_000,
                                            "learning_rate": 3e-3})
    algo.learn(400)
    first = [float(algo.train_step()["loss"]) for _ in range(5)]
    for _ in range(150):
        algo.train_step()
    last = [float(algo.train_step()["loss"]) for _ in range(5)]
    assert np.mean(last) < 0.7 * np.mean(first)


@pytest.mark.slow
def test_learns_cartpole():
    env = _cartpole(8, seed=0)
    algo = MuZero(env, seed=0, device="cpu", **MUZERO_CARTPOLE)
    algo.learn(8_000)
    eval_env = gym.make("CartPole-v1")
    eval_env.reset(seed=123)
    mean, _ = evaluate_policy(algo, eval_env, n_eval_episodes=5, deterministic=True, warn=False)
    assert mean > 150


def test_atari_pong_builds_and_runs_a_few_steps():
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    from mbwrap.envs.atari import make_atari_vec_env

    env = make_atari_vec_env("ALE/Pong-v5", n_envs=2, seed=0)
    assert env.observation_space.shape == (4, 84, 84)
    algo = MuZero(env, seed=0, device="cpu", num_simulations=2, batch_size=4,
                  learning_starts=16, train_freq=4, buffer_size=400,
                  segment_length=16,
                  network_kwargs={"hidden_size": 8, "layers": 1, "support_size": 5})
    assert algo.networks.kind == "resnet" and algo.buffer.obs.dtype == torch.uint8
    algo.learn(40)
    assert algo.n_updates > 0 and algo.buffer.num_positions > 0
    actions, _ = algo.predict(env.reset(), deterministic=True)
    assert actions.shape == (2,)


# ---------------------------------------------------------------------- resume
def _short_cartpole() -> gym.Env:
    # CartPole cannot fall in fewer than 8 steps: every episode ends at step 5, so a run of
    # a multiple of 5 steps ends where an episode ends.
    return gym.make("CartPole-v1", max_episode_steps=5)


def _small_muzero(**settings) -> MuZero:
    return MuZero(_short_cartpole(), seed=0, **{**TINY, "learning_starts": 20, **settings})


@pytest.mark.parametrize("settings", [
    {"search": "muzero"},
    {"bootstrap_with_network": True, "target_update_interval": 3, "reanalyse_fraction": 0.25},
])
def test_load_restores_the_whole_run(tmp_path, settings):
    algo = _small_muzero(**settings)
    algo.learn(60)
    loaded = assert_load_restores_everything(algo, tmp_path, env=_short_cartpole(), device="cpu")
    assert loaded.n_updates == algo.n_updates > 0 and loaded.real_steps == 60
    assert torch.equal(loaded.buffer.priority, algo.buffer.priority)
    small = tmp_path / "small.pt"
    algo.save(small, include_buffer=False)
    assert small.stat().st_size < (tmp_path / "saved.pt").stat().st_size
    assert MuZero.load(small, device="cpu").buffer.added == 0


@pytest.mark.parametrize("settings", [
    {"search": "muzero"},
    {"search": "gumbel", "bootstrap_with_network": True, "target_update_interval": 3},
])
def test_a_run_resumed_at_an_episode_boundary_follows_the_uninterrupted_one(tmp_path, settings):
    assert_resume_is_exact(lambda: _small_muzero(**settings), _short_cartpole, 40, 30, tmp_path)


def test_a_config_object_and_unknown_settings():
    config = MuZeroConfig(**TINY)
    algo = MuZero(_cartpole(1), config=config, num_simulations=2)
    assert algo.config.num_simulations == 2 and algo.config.buffer_size == 2_000
    with pytest.raises(TypeError, match=r"buffer_capacity: not a setting of 'muzero'\. Did you "
                                        r"mean 'buffer_size'"):
        MuZero(_cartpole(1), buffer_capacity=10)
    with pytest.raises(ValueError, match="segment_length: expected at most buffer_size - 1"):
        MuZero(_cartpole(1), buffer_size=100, segment_length=100)


# ---------------------------------------------------------------------- any image, offset actions
class _FrameChase(gym.Env):
    """Random uint8 frames of an odd size, channels last; ``Discrete(3, start=-1)``
    actions (checked); reward 1 for action 1; 8 steps an episode."""

    observation_space = gym.spaces.Box(0, 255, (37, 53, 3), np.uint8)
    action_space = gym.spaces.Discrete(3, start=-1)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        assert self.action_space.contains(np.int64(action)), action
        self.t += 1
        return self.observation_space.sample(), float(action == 1), False, self.t >= 8, {}


class _OffsetActions(gym.ActionWrapper):
    """CartPole's actions renamed ``start`` and ``start + 1``."""

    def __init__(self, env: gym.Env, start: int) -> None:
        super().__init__(env)
        self.start = start
        self.action_space = gym.spaces.Discrete(2, start=start)

    def action(self, action):
        assert self.action_space.contains(np.int64(action)), action
        return int(action) - self.start


def test_resnet_reads_channels_last_images_of_any_size_as_channels_first():
    torch.manual_seed(0)
    hwc = MuZeroNetworks((37, 53, 3), 3, hidden_size=4, layers=1, support_size=2,
                         channels_last=True)
    torch.manual_seed(0)
    chw = MuZeroNetworks((3, 37, 53), 3, hidden_size=4, layers=1, support_size=2)
    assert hwc.plane_shape == chw.plane_shape == (3, 4)  # 37 x 53 halved four times
    x = torch.rand(2, 37, 53, 3)
    torch.testing.assert_close(hwc.represent(x), chw.represent(x.permute(0, 3, 1, 2)))
    assert hwc.get_config()["channels_last"] is True
    with pytest.raises(ValueError, match="channels_last"):
        MuZeroNetworks((4,), 2, channels_last=True)


def test_muzero_on_odd_sized_channels_last_frames_with_offset_actions():
    algo = MuZero(_FrameChase(), seed=0, **{**TINY, "learning_starts": 8, "batch_size": 4,
                                            "segment_length": 8,
                                            "network_kwargs": {"hidden_size": 4, "layers": 1,
                                                               "support_size": 2}})
    assert algo.networks.kind == "resnet" and algo.networks.channels_last
    algo.learn(24)  # _FrameChase asserts every action is -1, 0 or 1
    assert algo.n_updates > 0
    # Stored actions are the networks' indices 0..2, not the env's values.
    stored = algo.buffer.action[: len(algo.buffer)]
    assert stored.min() >= 0 and stored.max() <= 2
    actions, _ = algo.predict(np.stack([_FrameChase.observation_space.sample()] * 2))
    assert set(actions.tolist()) <= {-1, 0, 1}


@pytest.mark.parametrize("eval_num_simulations", [None, 0])
def test_muzero_acts_with_the_values_of_an_offset_discrete_space(eval_num_simulations):
    env = make_vec_env(lambda: _OffsetActions(gym.make("CartPole-v1"), 5), n_envs=2, seed=0)
    algo = MuZero(env, seed=0, eval_num_simulations=eval_num_simulations,
                  **{**TINY, "learning_starts": 20})
    algo.learn(40)  # _OffsetActions asserts every action is 5 or 6
    assert algo.n_updates > 0
    obs = np.zeros((3, 4), dtype=np.float32)
    actions, _ = algo.predict(obs, deterministic=True)
    assert actions.shape == (3,) and set(actions.tolist()) <= {5, 6}
    eval_env = _OffsetActions(gym.make("CartPole-v1", max_episode_steps=10), 5)
    mean, _ = evaluate_policy(algo, eval_env, n_eval_episodes=1, warn=False)
    assert mean > 0
