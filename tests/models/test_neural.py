"""Tests of the machinery the neural models share (mbwrap.models.neural): data checks,
splitting, early stopping, metrics, unrolled training, termination, action spaces."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.logger import Logger

from mbwrap import ReplayBuffer
from mbwrap.errors import ModelOutputError, SpaceMismatchError, UnsupportedSpaceError
from mbwrap.models import GaussianEnsemble, MDNModel, MLPModel, NeuralWorldModel
from mbwrap.models.neural import member_rows

OBS = spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = spaces.Box(-1.0, 1.0, (2,), np.float32)
A = np.array([[0.9, 0.1, 0.0], [0.0, 0.9, 0.1], [0.1, 0.0, 0.9]], np.float32)
C = np.array([1.0, -1.0, 0.5], np.float32)
TINY = {"hidden_sizes": (16,), "batch_size": 64, "device": "cpu"}


def action_effect(action: np.ndarray, space: spaces.Space) -> np.ndarray:
    """``B a`` for a Box action, a column of ``B`` per discrete action."""
    table = np.array([[0.5, 0.0, -0.5], [0.0, 0.5, 0.5], [0.2, 0.2, 0.0]], np.float32)
    if isinstance(space, spaces.Discrete):
        return table[:, action - space.start].T
    if isinstance(space, spaces.MultiDiscrete):
        return table[:, action[:, 0]].T + table[:, action[:, 1]].T
    return action @ table[:, :2].T


def linear_buffer(
    n: int = 400, *, action_space: spaces.Space = ACT, obs_space: spaces.Space = OBS, seed=0
) -> ReplayBuffer:
    """``s' = A s + B a``, ``r = c . s``, terminated when ``s[0] > 1``."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    action_space.seed(seed)
    action = np.stack([action_space.sample() for _ in range(n)])
    next_obs = obs @ A.T + action_effect(action, action_space)
    buffer = ReplayBuffer(obs_space, action_space, n, device="cpu")
    shape = (n, *obs_space.shape)
    buffer.extend(
        obs.reshape(shape),
        action,
        obs @ C,
        next_obs.astype(np.float32).reshape(shape),
        obs[:, 0] > 1.0,
        np.zeros(n, bool),
    )
    return buffer


def trajectory_buffer(n_envs: int) -> ReplayBuffer:
    """Episodes of 10 steps of the linear system of :func:`linear_buffer`."""
    rng = np.random.default_rng(0)
    buffer = ReplayBuffer(OBS, ACT, n_envs * 10, device="cpu", n_envs=n_envs)
    obs = rng.normal(size=(n_envs, 3)).astype(np.float32)
    for t in range(10):
        action = rng.uniform(-1, 1, (n_envs, 2)).astype(np.float32)
        next_obs = (obs @ A.T + action_effect(action, ACT)).astype(np.float32)
        done = np.full(n_envs, t == 9)
        buffer.add(obs, action, obs @ C, next_obs, np.zeros(n_envs, bool), done)
        obs = next_obs
    return buffer


# ---------------------------------------------------------------------- construction


@pytest.mark.parametrize("cls", [MLPModel, GaussianEnsemble, MDNModel])
@pytest.mark.parametrize(
    ("space", "where"),
    [
        (spaces.Box(0, 255, (8, 8, 3), np.uint8), "observation_space"),
        (
            spaces.Dict(
                {"pos": spaces.Box(-1, 1, (2,)), "pixels": spaces.Box(0, 255, (8, 8, 1), np.uint8)}
            ),
            r"observation_space\['pixels'\]",
        ),
    ],
    ids=["image", "dict-with-image"],
)
def test_observation_images_are_refused_naming_the_leaf(cls, space, where):
    # A feed-forward model of raw pixels is no world model of them; the error says which
    # models are.
    with pytest.raises(UnsupportedSpaceError, match=rf"^{where}: .*images.*'rssm'"):
        cls(space, ACT, device="cpu")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"ensemble_size": 0}, "ensemble_size"),
        ({"ensemble_size": 3, "num_elites": 4}, "num_elites"),
        ({"propagation": "ts2"}, "propagation"),
        ({"hidden_sizes": 200}, "hidden_sizes"),
        ({"hidden_sizes": (8, 0)}, "hidden_sizes"),
        ({"activation": "swish!"}, "activation"),
        ({"weight_decay": [1e-4]}, "weight_decay"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"holdout_ratio": 1.0}, "holdout_ratio"),
        ({"patience": 0}, "patience"),
        ({"min_improvement": -0.1}, "min_improvement"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"max_grad_norm": -1.0}, "max_grad_norm"),
        ({"unroll_steps": 0}, "unroll_steps"),
    ],
)
def test_constructor_checks_arguments(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        MLPModel(OBS, ACT, device="cpu", **kwargs)


def test_models_share_the_base_and_start_with_default_elites():
    model = GaussianEnsemble(OBS, ACT, ensemble_size=4, num_elites=2, **TINY)
    assert isinstance(model, NeuralWorldModel)
    assert model.elite_indices.tolist() == [0, 1]
    assert model.device == torch.device("cpu")
    assert MLPModel(OBS, ACT, **TINY).num_elites == 1


# ---------------------------------------------------------------------- data checks


@pytest.mark.parametrize(
    ("field", "value"), [("obs", np.nan), ("next_obs", np.inf), ("reward", -np.inf)]
)
def test_fit_rejects_non_finite_data(field, value):
    rng = np.random.default_rng(0)
    data = {
        "obs": rng.normal(size=(20, 3)).astype(np.float32),
        "action": rng.uniform(-1, 1, (20, 2)).astype(np.float32),
        "reward": np.zeros(20, np.float32),
        "next_obs": rng.normal(size=(20, 3)).astype(np.float32),
    }
    data[field][5] = value
    buffer = ReplayBuffer(OBS, ACT, 20, device="cpu")
    buffer.extend(**data, terminated=np.zeros(20, bool), truncated=np.zeros(20, bool))
    with pytest.raises(
        ValueError, match=rf"^buffer: 1 of 20 .*infinite {field} \(the first at index 5\)"
    ):
        MLPModel(OBS, ACT, **TINY).fit(buffer)


def test_fit_rejects_a_buffer_of_other_spaces():
    model = MLPModel(OBS, ACT, **TINY)
    other_obs = spaces.Box(-np.inf, np.inf, (4,), np.float32)
    with pytest.raises(SpaceMismatchError, match=r"^buffer.observation_space:"):
        model.fit(ReplayBuffer(other_obs, ACT, 10, device="cpu"))
    with pytest.raises(SpaceMismatchError, match=r"^buffer.action_space:"):
        model.fit(ReplayBuffer(OBS, spaces.Discrete(2), 10, device="cpu"))


def test_fit_rejects_too_few_transitions():
    model = MLPModel(OBS, ACT, **TINY)  # holdout_ratio 0.2: at least 5 transitions
    with pytest.raises(ValueError, match=r"^buffer: 4 transitions are too few .* at least 5"):
        model.fit(linear_buffer(4))
    with pytest.raises(ValueError, match=r"^buffer: 0 transitions are too few"):
        model.fit(ReplayBuffer(OBS, ACT, 10, device="cpu"))
    assert model.fit(linear_buffer(5), epochs=1)["holdout_size"] == 1


def test_holdout_is_a_capped_fraction():
    buffer = linear_buffer(200)
    capped = MLPModel(OBS, ACT, holdout_ratio=0.5, max_holdout=10, **TINY)
    assert capped.fit(buffer, epochs=1)["holdout_size"] == 10
    fraction = MLPModel(OBS, ACT, holdout_ratio=0.25, **TINY)
    assert fraction.fit(buffer, epochs=1)["holdout_size"] == 50
    none = MLPModel(OBS, ACT, holdout_ratio=0.0, **TINY)
    assert none.fit(buffer, epochs=1)["holdout_size"] == 0


def test_member_rows_bootstrap_differs_per_member():
    gen = torch.Generator().manual_seed(0)
    rows = member_rows(100, 5, bootstrap=True, generator=gen)
    assert rows.shape == (5, 100) and rows.min() >= 0 and rows.max() < 100
    # Each member draws with replacement (about 63% distinct rows), and differently.
    distinct = [len(set(r.tolist())) for r in rows]
    assert all(50 < d < 80 for d in distinct)
    assert all(not torch.equal(rows[0], rows[e]) for e in range(1, 5))
    plain = member_rows(100, 3, bootstrap=False, generator=gen)
    assert all(r.tolist() == list(range(100)) for r in plain)


# ---------------------------------------------------------------------- training loop


def test_fit_normalises_and_stores_the_statistics():
    buffer = linear_buffer(300)
    model = MLPModel(OBS, ACT, **TINY)
    model.fit(buffer, epochs=1)
    data = buffer.transitions()
    # Fitted on the training 80%: close to, not equal to, the statistics of all the data.
    np.testing.assert_allclose(model.input_normalizer.mean[:3], data.obs.mean(0), atol=0.15)
    delta = data.next_obs - data.obs
    np.testing.assert_allclose(model.target_normalizer.std[:3], delta.std(0), rtol=0.15)
    assert {"input_normalizer.mean", "target_normalizer.std"} <= set(model.state_dict())


def test_early_stopping_stops_and_restores_the_best_weights():
    buffer = linear_buffer(300)
    # No epoch after the first can improve by 99%: training stops after `patience` more
    # epochs and every member goes back to its weights after epoch 1.
    torch.manual_seed(0)
    stopped = GaussianEnsemble(
        OBS, ACT, ensemble_size=2, num_elites=1, min_improvement=0.99, patience=2, **TINY
    )
    metrics = stopped.fit(buffer)
    assert metrics["epochs"] == 3 and metrics["stopped_early"]
    torch.manual_seed(0)
    one_epoch = GaussianEnsemble(OBS, ACT, ensemble_size=2, num_elites=1, **TINY)
    one_epoch.fit(buffer, epochs=1)
    for key, value in one_epoch.net.state_dict().items():
        torch.testing.assert_close(stopped.net.state_dict()[key], value)


def test_early_stopping_on_converged_training_ends_before_max_epochs():
    torch.manual_seed(0)
    model = MLPModel(OBS, ACT, max_epochs=500, **TINY)
    metrics = model.fit(linear_buffer(300))
    assert metrics["stopped_early"] and metrics["epochs"] < 500


def test_epochs_trains_exactly_that_many():
    model = MLPModel(OBS, ACT, min_improvement=0.99, patience=1, **TINY)
    metrics = model.fit(linear_buffer(100), epochs=4)
    assert metrics["epochs"] == 4 and not metrics["stopped_early"]
    with pytest.raises(ValueError, match=r"^epochs:"):
        model.fit(linear_buffer(100), epochs=0)


def test_fit_is_reproducible_under_a_torch_seed():
    buffer = linear_buffer(200)
    results = []
    for _ in range(2):
        torch.manual_seed(3)
        model = GaussianEnsemble(OBS, ACT, ensemble_size=2, num_elites=1, **TINY)
        metrics = model.fit(buffer, epochs=2)
        results.append((metrics["holdout_loss"], model.net.layers[0].weight.clone()))
    assert results[0][0] == results[1][0]
    torch.testing.assert_close(results[0][1], results[1][1], rtol=0, atol=0)


def test_metrics_and_logger():
    logger = Logger(folder=None, output_formats=[])
    model = GaussianEnsemble(OBS, ACT, ensemble_size=3, num_elites=2, **TINY)
    metrics = model.fit(linear_buffer(200), epochs=2, logger=logger)
    assert len(metrics["train_loss"]) == len(metrics["holdout_loss"]) == 3
    assert len(metrics["elites"]) == 2
    assert metrics["transitions"] == 200 and metrics["holdout_size"] == 40
    assert metrics["epochs"] == 2 and metrics["fit_time"] > 0
    assert metrics["holdout_mse"] > 0
    recorded = logger.name_to_value
    assert recorded["model/epochs"] == 2
    assert recorded["model/holdout_mse"] == pytest.approx(metrics["holdout_mse"])
    for key in ("model/train_loss", "model/holdout_loss", "model/fit_time"):
        assert key in recorded


def test_a_diverging_fit_raises_and_keeps_finite_weights():
    torch.manual_seed(0)
    model = MLPModel(OBS, ACT, hidden_sizes=(16, 16), learning_rate=1e10, batch_size=16)
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    with pytest.raises(ModelOutputError, match=r"^fit: the training loss became NaN"):
        model.fit(linear_buffer(200), epochs=5)
    for key, value in model.net.state_dict().items():  # no epoch was good: back to start
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


def test_progress_bar(capsys):
    MLPModel(OBS, ACT, **TINY).fit(linear_buffer(50), epochs=2, progress_bar=True)
    assert "fit MLPModel" in capsys.readouterr().err


def test_a_second_fit_continues_from_the_current_weights():
    torch.manual_seed(0)
    buffer = linear_buffer(300)
    # Without a holdout, the score is on all the (same) data both times.
    model = MLPModel(OBS, ACT, holdout_ratio=0.0, hidden_sizes=(16,), batch_size=16)
    first = model.fit(buffer, epochs=3)
    optimizer = model._optimizer
    second = model.fit(buffer, epochs=3)
    assert model._optimizer is optimizer
    assert second["holdout_loss"][0] < 0.8 * first["holdout_loss"][0]


# ---------------------------------------------------------------------- prediction


@pytest.mark.parametrize(
    "action_space",
    [ACT, spaces.Discrete(3, start=1), spaces.MultiDiscrete([3, 3])],
    ids=["box", "discrete", "multidiscrete"],
)
@pytest.mark.parametrize("cls", [MLPModel, GaussianEnsemble, MDNModel])
def test_step_shapes_for_each_action_space(cls, action_space):
    buffer = linear_buffer(100, action_space=action_space)
    model = cls(OBS, action_space, **TINY)
    model.fit(buffer, epochs=1)
    data = buffer.transitions()
    pred = model.step(data.obs[:7], data.action[:7], generator=torch.Generator().manual_seed(0))
    assert pred.next_state.shape == (7, 3) and pred.next_state.dtype == torch.float32
    assert pred.reward.shape == (7,) and pred.terminated is None
    assert model.predict_mean(data.obs[:7], data.action[:7]).shape == (
        model.ensemble_size,
        7,
        4,
    )


def test_multidimensional_observations_keep_their_shape():
    obs_space = spaces.Box(-np.inf, np.inf, (1, 3), np.float32)
    buffer = linear_buffer(100, obs_space=obs_space)
    model = MLPModel(obs_space, ACT, **TINY)
    model.fit(buffer, epochs=1)
    data = buffer.transitions()
    assert model.step(data.obs[:4], data.action[:4]).next_state.shape == (4, 1, 3)


def test_step_checks_its_inputs():
    model = MLPModel(OBS, ACT, **TINY)
    with pytest.raises(SpaceMismatchError, match=r"^state:"):
        model.step(torch.zeros(2, 4), torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"^action: batch of 3"):
        model.step(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"^member:"):
        model.step(torch.zeros(2, 3), torch.zeros(2, 2), member=torch.zeros(3, dtype=torch.long))


def test_predicts_the_state_change_added_to_the_state():
    model = MLPModel(OBS, ACT, **TINY)
    with torch.no_grad():
        for layer in model.net.layers:
            layer.weight.zero_()
        model.net.layers[-1].bias[0, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])
        model.target_normalizer.mean.copy_(torch.tensor([0.5, 0.0, 0.0, 1.0]))
        model.target_normalizer.std.fill_(2.0)
    state = torch.tensor([[10.0, 20.0, 30.0]])
    pred = model.step(state, torch.zeros(1, 2))
    # target = normalised output * std + mean = [2.5, 4, 6, 9]
    assert pred.next_state.tolist() == [[12.5, 24.0, 36.0]]
    assert pred.reward.tolist() == [9.0]


def test_learned_termination_head():
    torch.manual_seed(0)
    buffer = linear_buffer(600)  # terminated when s[0] > 1
    model = MLPModel(
        OBS, ACT, learn_termination=True, hidden_sizes=(32,), batch_size=64, learning_rate=1e-2
    )
    model.fit(buffer, epochs=30)
    state = torch.tensor([[2.5, 0.0, 0.0], [-2.5, 0.0, 0.0]])
    prob = model.step(state, torch.zeros(2, 2)).terminated
    assert prob.shape == (2,)
    assert prob[0] > 0.9 and prob[1] < 0.1
    assert model.get_config()["learn_termination"] is True


# ---------------------------------------------------------------------- unrolled loss

NOISY_OBS = spaces.Box(-np.inf, np.inf, (1,), np.float32)
NOISY_ACT = spaces.Box(-1.0, 1.0, (1,), np.float32)


def noisy_trajectories(seed: int, n_envs: int, steps: int = 25) -> ReplayBuffer:
    """``s' = 0.95 s + 0.5 a`` observed through noise of std 0.5: regressing the next
    observation on the current one is biased (errors in variables), and the bias compounds
    when the one-step model is iterated."""
    rng = np.random.default_rng(seed)
    buffer = ReplayBuffer(NOISY_OBS, NOISY_ACT, n_envs * steps, device="cpu", n_envs=n_envs)
    state = rng.normal(size=(n_envs, 1))
    obs = state + rng.normal(0, 0.5, state.shape)
    for t in range(steps):
        action = rng.uniform(-1, 1, (n_envs, 1))
        state = 0.95 * state + 0.5 * action
        next_obs = state + rng.normal(0, 0.5, state.shape)
        buffer.add(
            obs.astype(np.float32),
            action.astype(np.float32),
            np.zeros(n_envs),
            next_obs.astype(np.float32),
            np.zeros(n_envs, bool),
            np.full(n_envs, t == steps - 1),
        )
        obs = next_obs
    return buffer


def open_loop_error(model: NeuralWorldModel, buffer: ReplayBuffer, steps: int) -> float:
    seq = buffer.sample_sequences(1000, steps, generator=torch.Generator().manual_seed(1))
    state = seq.obs[:, 0]
    for t in range(steps):
        state = model.step(state, seq.action[:, t]).next_state
    return float((state - seq.next_obs[:, -1]).square().mean())


def test_unrolled_loss_reduces_three_step_open_loop_error_under_observation_noise():
    train, test = noisy_trajectories(0, 16), noisy_trajectories(1, 64)
    errors = {}
    for steps in (1, 3):
        torch.manual_seed(0)
        model = MLPModel(
            NOISY_OBS,
            NOISY_ACT,
            hidden_sizes=(),
            unroll_steps=steps,
            batch_size=32,
            learning_rate=1e-2,
            device="cpu",
        )
        metrics = model.fit(train, epochs=20)
        assert metrics["epochs"] == 20 and np.isfinite(metrics["holdout_mse"])
        errors[steps] = (open_loop_error(model, test, 3), open_loop_error(model, test, 1))
    # Trained on its own 3-step predictions, the model is better 3 steps ahead (about 16%
    # here) and, as the price, worse one step ahead.
    assert errors[3][0] < 0.95 * errors[1][0]
    assert errors[3][1] > errors[1][1]


def test_unrolled_loss_needs_sequences_in_the_buffer():
    model = GaussianEnsemble(OBS, ACT, ensemble_size=2, num_elites=1, unroll_steps=3, **TINY)
    # Transitions stored by extend() never join into sequences.
    with pytest.raises(ValueError, match=r"^length: no stored sub-trajectory of 3 steps"):
        model.fit(linear_buffer(50))
    metrics = model.fit(trajectory_buffer(4), epochs=1)
    assert metrics["epochs"] == 1 and metrics["transitions"] == 40


@pytest.mark.parametrize("name", ["gaussian-ensemble", "mlp"])
def test_step_blocks_is_step_with_one_member_per_block(name):
    from mbwrap.models.build import resolve_model

    env = gym.make("Pendulum-v1")
    torch.manual_seed(0)
    kwargs = {"hidden_sizes": [16], "ensemble_size": 4, "num_elites": 4, "learn_termination": True}
    model = resolve_model(
        name,
        kwargs,
        env.observation_space,
        env.action_space,
        env_id=None,
        device=torch.device("cpu"),
    )
    state = torch.randn(6, 3)
    action = torch.rand(6, 1) * 4 - 2
    members = torch.tensor([3, 1])  # rows 0-2 follow member 3, rows 3-5 member 1
    blocked = model.step_blocks(state, action, members, generator=torch.Generator().manual_seed(5))
    plain = model.step(
        state,
        action,
        member=torch.tensor([3, 3, 3, 1, 1, 1]),
        generator=torch.Generator().manual_seed(5),
    )
    torch.testing.assert_close(blocked.next_state, plain.next_state)
    torch.testing.assert_close(blocked.reward, plain.reward)
    torch.testing.assert_close(blocked.terminated, plain.terminated)
    with pytest.raises(ValueError, match="members: expected M >= 1 dividing the batch of 6"):
        model.step_blocks(state, action, torch.tensor([0, 1, 2, 3]))
