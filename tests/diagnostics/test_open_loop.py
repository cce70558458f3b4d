"""Open-loop prediction error: exact models, errors worked out by hand, episodes never
mixed, ensembles and noise, real models (tabular, linear), and bad input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import mbwrap
from mbwrap.diagnostics import DEFAULT_NUM_STARTS, open_loop_error, open_loop_predictions
from mbwrap.errors import SpaceMismatchError

BIAS = (0.1, -0.2, 0.3)


def test_exact_model_has_zero_error_at_every_horizon(make_drift_model, make_drift_buffer):
    buffer = make_drift_buffer([[12, 20, 8], [25, 15]])
    result = open_loop_error(make_drift_model(), buffer, 8, num_starts=500, seed=0)
    assert torch.equal(result["mse"], torch.zeros(8, dtype=torch.float64))
    assert torch.equal(result["mse_per_dim"], torch.zeros(8, 3, dtype=torch.float64))
    assert torch.equal(result["reward_mse"], torch.zeros(8, dtype=torch.float64))


def test_constant_bias_gives_error_growing_linearly(make_drift_model, make_drift_buffer):
    # After h steps the prediction is off by h * bias in every dimension, so the squared
    # error per dimension is (h * b_d)^2 and its mean h^2 * (0.01 + 0.04 + 0.09) / 3. The
    # reward at step t is read from the state before it, off by t * b_0 = (h - 1) * 0.1.
    buffer = make_drift_buffer([[30, 30]])
    result = open_loop_error(make_drift_model(BIAS), buffer, 10, num_starts=200, seed=0)
    h = torch.arange(1, 11, dtype=torch.float64)
    bias = torch.tensor(BIAS, dtype=torch.float64)
    torch.testing.assert_close(result["mse_per_dim"], (h[:, None] * bias) ** 2, rtol=1e-3, atol=0)
    torch.testing.assert_close(result["mse"], h**2 * 0.14 / 3, rtol=1e-3, atol=0)
    torch.testing.assert_close(result["reward_mse"], ((h - 1) * 0.1) ** 2, rtol=1e-3, atol=1e-9)
    # The root of the error grows linearly: h times the one-step error.
    rmse = result["mse"].sqrt()
    torch.testing.assert_close(rmse / rmse[0], h, rtol=1e-3, atol=0)


def test_result_shapes_and_counts(make_drift_model, make_drift_buffer):
    buffer = make_drift_buffer([[40]])
    result = open_loop_error(make_drift_model(BIAS), buffer, 5, seed=0)
    assert result["horizon"] == 5
    assert result["num_starts"] == DEFAULT_NUM_STARTS
    assert result["mse"].shape == (5,) and result["mse"].dtype == torch.float64
    assert result["mse_per_dim"].shape == (5, 3)
    assert result["reward_mse"].shape == (5,)
    assert all(result[k].device.type == "cpu" for k in ("mse", "mse_per_dim", "reward_mse"))
    assert open_loop_error(make_drift_model(), buffer, 5, num_starts=7)["num_starts"] == 7


def test_model_without_reward_head_has_no_reward_error(make_drift_model, make_drift_buffer):
    result = open_loop_error(
        make_drift_model(reward_head=False), make_drift_buffer([[20]]), 4, num_starts=10
    )
    assert result["reward_mse"] is None
    assert result["mse"].shape == (4,)


def test_episodes_are_never_mixed(make_drift_model, make_drift_buffer):
    # Episodes of exactly the horizon's length: every valid start is an episode's first
    # step, and a rollout running into the next episode (of its own stream, or of the
    # other stream stored beside it) would miss by about EPISODE_OFFSET.
    buffer = make_drift_buffer([[6] * 8, [6] * 8])
    result = open_loop_error(make_drift_model(), buffer, 6, num_starts=2000, seed=1)
    assert float(result["mse"].max()) == 0.0
    with pytest.raises(ValueError, match=r"^horizon: no stored sub-trajectory of 7 steps"):
        open_loop_error(make_drift_model(), buffer, 7)


def test_sequences_are_used_whole_and_cut_to_the_horizon(make_drift_model, make_drift_buffer):
    sequences = make_drift_buffer([[50]]).sample_sequences(9, 12, generator=torch.Generator())
    result = open_loop_error(make_drift_model(BIAS), sequences, 4)
    assert result["num_starts"] == 9
    h = torch.arange(1, 5, dtype=torch.float64)
    torch.testing.assert_close(result["mse"], h**2 * 0.14 / 3, rtol=1e-3, atol=0)


def test_predictions_feed_the_model_its_own_output(make_drift_model, make_drift_buffer):
    sequences = make_drift_buffer([[30]]).sample_sequences(4, 5, generator=torch.Generator())
    pred_obs, pred_reward = open_loop_predictions(make_drift_model(BIAS), sequences)
    expected = sequences.next_obs + torch.arange(1, 6)[None, :, None] * torch.tensor(BIAS)
    torch.testing.assert_close(pred_obs, expected, rtol=0, atol=1e-4)
    assert pred_reward.shape == (4, 5)


def test_noise_accumulates_along_the_rollout(make_drift_model, make_drift_buffer):
    # Independent N(0, s^2) noise on each of h fed-back steps: error variance h * s^2.
    buffer = make_drift_buffer([[40] * 5])
    model = make_drift_model(noise=0.5)
    result = open_loop_error(model, buffer, 6, num_starts=4000, seed=0)
    expected = torch.arange(1, 7, dtype=torch.float64) * 0.25
    torch.testing.assert_close(result["mse"], expected, rtol=0.08, atol=0)
    again = open_loop_error(model, buffer, 6, num_starts=4000, seed=0)
    assert torch.equal(again["mse"], result["mse"])
    other = open_loop_error(model, buffer, 6, num_starts=4000, seed=1)
    assert not torch.equal(other["mse"], result["mse"])


def test_ensemble_members_are_followed_for_the_whole_rollout(make_drift_model, make_drift_buffer):
    buffer = make_drift_buffer([[30, 30]])
    model = make_drift_model(member_biases=[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    h2 = torch.arange(1, 6, dtype=torch.float64) ** 2
    assert float(open_loop_error(model, buffer, 5, member=0, num_starts=50)["mse"].max()) == 0
    fixed = open_loop_error(model, buffer, 5, member=1, num_starts=50)
    torch.testing.assert_close(fixed["mse"], h2, rtol=1e-4, atol=0)
    # Each rollout keeps the member it drew (TS-inf), so the error is h^2 times the share of
    # rollouts on member 1, the same share at every horizon.
    model.members_seen.clear()
    drawn = open_loop_error(model, buffer, 5, num_starts=400, seed=0)
    share = drawn["mse"] / h2
    assert 0.4 < float(share[0]) < 0.6
    torch.testing.assert_close(share, share[:1].expand(5), rtol=1e-4, atol=0)
    assert all(torch.equal(m, model.members_seen[0]) for m in model.members_seen)


def test_tabular_model_of_a_deterministic_maze_is_exact():
    env = gym.make("mbwrap/DynaMaze-v0")
    buffer = mbwrap.ReplayBuffer(env.observation_space, env.action_space, 5000, device="cpu")
    mbwrap.collect(env, buffer, 3000, seed=0)
    model = mbwrap.make_model("tabular", env.observation_space, env.action_space, device="cpu")
    model.fit(buffer)  # every (s, a) the rollouts meet was seen, and the maze is deterministic
    result = open_loop_error(model, buffer, 15, num_starts=500, seed=0)
    assert result["mse_per_dim"].shape == (15, 1)
    assert float(result["mse"].max()) == 0.0
    assert float(result["reward_mse"].max()) == 0.0
    # The model predicts "stay put" for pairs it never saw: an empty model is not exact.
    empty = mbwrap.make_model("tabular", env.observation_space, env.action_space, device="cpu")
    assert float(open_loop_error(empty, buffer, 15, num_starts=500, seed=0)["mse"][-1]) > 1.0


def _linear_system_buffer(seed: int) -> mbwrap.ReplayBuffer:
    """Random-action episodes of ``x' = A x + B u + e`` (A stable), ``r = c x + d u``."""
    rng = np.random.default_rng(0)  # the same system for every seed
    a_matrix = 0.95 * np.eye(3) + 0.05 * rng.standard_normal((3, 3))
    b_matrix, e = rng.standard_normal((3, 2)), rng.standard_normal(3)
    c, d = rng.standard_normal(3), rng.standard_normal(2)
    obs_space = spaces.Box(-np.inf, np.inf, (3,), np.float32)
    act_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    buffer = mbwrap.ReplayBuffer(obs_space, act_space, 2000, device="cpu")
    data = np.random.default_rng(seed)
    for _ in range(20):
        x = data.uniform(-2.0, 2.0, 3)
        for t in range(100):
            u = data.uniform(-1.0, 1.0, 2)
            x_next = a_matrix @ x + b_matrix @ u + e
            buffer.add(x, u, c @ x + d @ u, x_next, False, t == 99)
            x = x_next
    return buffer


def test_linear_model_of_a_linear_system_is_exact_on_held_out_episodes():
    fit_data, held_out = _linear_system_buffer(seed=1), _linear_system_buffer(seed=2)
    model = mbwrap.make_model(
        "linear", fit_data.observation_space, fit_data.action_space, device="cpu"
    )
    model.fit(fit_data)
    result = open_loop_error(model, held_out, 10, num_starts=500, seed=0)
    scale = float(held_out.transitions().next_obs.square().mean())
    assert float(result["mse"].max()) < 1e-8 * scale
    assert float(result["reward_mse"].max()) < 1e-8 * scale


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize("horizon", [0, -3, 2.5, True, "5"])
def test_bad_horizon_is_a_value_error(make_drift_model, make_drift_buffer, horizon):
    with pytest.raises(ValueError, match=r"^horizon: expected an int >= 1"):
        open_loop_error(make_drift_model(), make_drift_buffer([[20]]), horizon)


def test_bad_num_starts_and_member_are_value_errors(make_drift_model, make_drift_buffer):
    buffer = make_drift_buffer([[20]])
    with pytest.raises(ValueError, match=r"^num_starts: expected an int >= 1"):
        open_loop_error(make_drift_model(), buffer, 3, num_starts=0)
    with pytest.raises(ValueError, match=r"^member: expected None or an ensemble index"):
        open_loop_error(make_drift_model(), buffer, 3, member=-1)
    sequences = buffer.sample_sequences(4, 3)
    with pytest.raises(ValueError, match=r"^num_starts: only applies to a buffer"):
        open_loop_error(make_drift_model(), sequences, 3, num_starts=4)
    with pytest.raises(ValueError, match=r"^horizon: the sequences are 3 steps long"):
        open_loop_error(make_drift_model(), sequences, 4)


def test_space_mismatch_between_model_and_data(make_drift_model, make_drift_buffer):
    wide = spaces.Box(-1e4, 1e4, (4,), np.float32)
    buffer = make_drift_buffer([[20]])
    with pytest.raises(SpaceMismatchError, match=r"^data.observation_space: expected Box"):
        open_loop_error(make_drift_model(observation_space=wide), buffer, 3)
    other_actions = mbwrap.ReplayBuffer(wide, spaces.Discrete(2), 10, device="cpu")
    with pytest.raises(SpaceMismatchError, match=r"^data.action_space: expected Box"):
        open_loop_error(make_drift_model(observation_space=wide), other_actions, 3)
    sequences = buffer.sample_sequences(4, 3)
    with pytest.raises(SpaceMismatchError, match=r"^data.obs: expected shape \(batch, length"):
        open_loop_error(make_drift_model(observation_space=wide), sequences, 3)


def test_empty_buffer_and_wrong_types(make_drift_model, make_drift_buffer):
    model = make_drift_model()
    empty = mbwrap.ReplayBuffer(model.observation_space, model.action_space, 10, device="cpu")
    with pytest.raises(ValueError, match=r"^data: the buffer is empty"):
        open_loop_error(model, empty, 3)
    with pytest.raises(TypeError, match=r"^data: expected a ReplayBuffer or a Sequence"):
        open_loop_error(model, make_drift_buffer([[20]]).transitions(), 3)
    with pytest.raises(TypeError, match=r"^model: expected an mbwrap.models.WorldModel"):
        open_loop_error(object(), make_drift_buffer([[20]]), 3)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("mlp", {}),
        ("gaussian-ensemble", {"ensemble_size": 3, "num_elites": 2, "propagation": "ts-inf"}),
        ("gaussian-ensemble", {"ensemble_size": 3, "num_elites": 2, "propagation": "ts1"}),
        ("mdn", {"num_components": 2}),
    ],
)
def test_builtin_neural_models(make_drift_buffer, name, kwargs):
    buffer = make_drift_buffer([[40, 40], [30, 50]])
    model = mbwrap.make_model(
        name,
        buffer.observation_space,
        buffer.action_space,
        hidden_sizes=(16,),
        weight_decay=0.0,
        device="cpu",
        **kwargs,
    )
    torch.manual_seed(0)
    model.fit(buffer, epochs=1)
    result = open_loop_error(model, buffer, 5, num_starts=64, seed=0)
    assert result["mse_per_dim"].shape == (5, 3) and result["reward_mse"].shape == (5,)
    assert bool(torch.isfinite(result["mse"]).all())
    again = open_loop_error(model, buffer, 5, num_starts=64, seed=0)
    assert torch.equal(again["mse"], result["mse"])
