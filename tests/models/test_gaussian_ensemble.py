"""Tests of mbwrap.models.GaussianEnsemble (PETS / MBPO): fitting, elites, propagation,
imagination, persistence."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

import mbwrap
from mbwrap import DreamEnv, DreamVecEnv, ReplayBuffer, WorldModel
from mbwrap.models import GaussianEnsemble, gaussian_nll
from mbwrap.models.gaussian_ensemble import MBPO_WEIGHT_DECAY, mbpo_weight_decay

OBS = spaces.Box(-100.0, 100.0, (3,), np.float32)
ACT = spaces.Box(-1.0, 1.0, (2,), np.float32)
A = np.array([[0.9, 0.1, 0.0], [0.0, 0.9, 0.1], [0.1, 0.0, 0.9]], np.float32)
B = np.array([[0.5, 0.0], [0.0, 0.5], [0.2, 0.2]], np.float32)
C = np.array([1.0, -1.0, 0.5], np.float32)
SMALL = {
    "ensemble_size": 4,
    "num_elites": 3,
    "hidden_sizes": (32, 32),
    "batch_size": 64,
    "device": "cpu",
}


def linear_buffer(n: int, seed: int = 0) -> ReplayBuffer:
    """``s' = A s + B a``, ``r = c . s``."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    action = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    buffer = ReplayBuffer(OBS, ACT, n, device="cpu")
    done = np.zeros(n, bool)
    buffer.extend(obs, action, obs @ C, obs @ A.T + action @ B.T, done, done)
    return buffer


@pytest.fixture(scope="module")
def buffer() -> ReplayBuffer:
    return linear_buffer(800)


@pytest.fixture(scope="module")
def fitted(buffer) -> tuple[GaussianEnsemble, dict]:
    torch.manual_seed(0)
    model = GaussianEnsemble(OBS, ACT, **SMALL)
    return model, model.fit(buffer, epochs=30)


def with_config(model: GaussianEnsemble, **changes) -> GaussianEnsemble:
    """The fitted weights under other constructor settings (e.g. another propagation)."""
    other = GaussianEnsemble(OBS, ACT, **{**model.get_config(), **changes, "device": "cpu"})
    other.load_state_dict(model.state_dict())
    return other


def truth(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """True ``[s' - s, r]``: ``[B, 4]``."""
    delta = obs @ torch.from_numpy(A.T - np.eye(3, dtype=np.float32))
    delta = delta + action @ torch.from_numpy(B.T)
    return torch.cat([delta, (obs @ torch.from_numpy(C))[:, None]], -1)


# ---------------------------------------------------------------------- construction


def test_defaults_are_mbpos():
    model = GaussianEnsemble(OBS, ACT, device="cpu")
    config = model.get_config()
    assert config["ensemble_size"] == 7 and config["num_elites"] == 5
    assert config["hidden_sizes"] == [200, 200, 200, 200] and config["activation"] == "silu"
    assert config["weight_decay"] == [2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4]
    assert config["learning_rate"] == 1e-3 and config["batch_size"] == 256
    assert config["holdout_ratio"] == 0.2 and config["max_holdout"] == 5000
    assert config["patience"] == 5 and config["min_improvement"] == 0.01
    assert config["propagation"] == "ts1" and config["bootstrap"] is True
    assert config["logvar_bound_coef"] == 0.01
    assert [tuple(layer.weight.shape) for layer in model.net.layers] == [
        (7, 5, 200),
        (7, 200, 200),
        (7, 200, 200),
        (7, 200, 200),
        (7, 200, 8),  # mean and log-variance of [delta (3), reward (1)]
    ]
    assert model.max_logvar.tolist() == [0.5] * 4 and model.min_logvar.tolist() == [-10.0] * 4
    assert isinstance(model.max_logvar, torch.nn.Parameter)


def test_mbpo_weight_decay_for_other_depths():
    assert mbpo_weight_decay(4) == list(MBPO_WEIGHT_DECAY)
    assert mbpo_weight_decay(2) == [2.5e-5, 5e-5, 1e-4]
    assert mbpo_weight_decay(6) == [2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 7.5e-5, 7.5e-5, 1e-4]
    model = GaussianEnsemble(OBS, ACT, hidden_sizes=(8,), device="cpu")
    assert [layer.weight_decay for layer in model.net.layers] == [2.5e-5, 1e-4]


def test_config_holds_every_constructor_keyword_as_json():
    model = GaussianEnsemble(OBS, ACT, device="cpu")
    keywords = set(inspect.signature(GaussianEnsemble).parameters)
    assert set(model.get_config()) == keywords - {
        "observation_space",
        "action_space",
        "env_id",
        "device",
    }
    json.dumps(model.get_config())


def test_make_model_builds_it_by_name():
    model = mbwrap.make_model("gaussian-ensemble", OBS, ACT, ensemble_size=2, num_elites=1)
    assert isinstance(model, GaussianEnsemble) and model.ensemble_size == 2
    assert GaussianEnsemble.registry_name == "gaussian-ensemble"


# ---------------------------------------------------------------------- loss


def test_loss_is_pets_twice_the_gaussian_nll_and_the_regulariser_by_hand():
    model = GaussianEnsemble(OBS, ACT, weight_decay=0.0, **SMALL)
    head = torch.randn(4, 5, 8, generator=torch.Generator().manual_seed(0))
    target = torch.randn(4, 5, 4, generator=torch.Generator().manual_seed(1))
    mean, logvar = model._gaussian(head)
    torch.testing.assert_close(model._loss(head, target), 2 * gaussian_nll(mean, logvar, target))
    # 0.01 * (sum max - sum min) = 0.01 * (4 * 0.5 + 4 * 10) = 0.42 with no weight decay.
    assert model._regularizer().item() == pytest.approx(0.42)
    decayed = GaussianEnsemble(OBS, ACT, **{**SMALL, "hidden_sizes": (8,)})
    expected = decayed.net.decay_loss() + 0.42
    torch.testing.assert_close(decayed._regularizer(), expected)


def test_log_variance_stays_within_the_learned_bounds():
    model = GaussianEnsemble(OBS, ACT, **SMALL)
    head = torch.cat([torch.zeros(1, 1, 4), torch.tensor([[[1e3, -1e3, 0.0, 0.3]]])], -1)
    _, logvar = model._gaussian(head)
    assert logvar[0, 0, 0].item() == pytest.approx(0.5, abs=1e-3)
    assert logvar[0, 0, 1].item() == pytest.approx(-10.0, abs=1e-3)


# ---------------------------------------------------------------------- fitting


def test_fit_learns_linear_dynamics(fitted):
    model, metrics = fitted
    assert metrics["holdout_mse"] < 1e-2  # normalised units
    obs = torch.randn(256, 3, generator=torch.Generator().manual_seed(5))
    action = torch.rand(256, 2, generator=torch.Generator().manual_seed(6)) * 2 - 1
    mean = model.predict_mean(obs, action)[model.elite_indices].mean(0)
    error = (mean - truth(obs, action)).square().mean(0)
    assert (error < 0.01).all(), error


def test_elites_are_the_members_with_the_lowest_holdout_loss(fitted):
    model, metrics = fitted
    losses = torch.tensor(metrics["holdout_loss"])
    assert metrics["elites"] == torch.argsort(losses)[:3].tolist()
    assert model.elite_indices.tolist() == metrics["elites"]
    worst = int(torch.argmax(losses))
    assert worst not in metrics["elites"]


def test_each_member_trains_on_its_own_bootstrap_sample(buffer):
    seen = []

    def spy(self, batch):
        seen.append(batch.obs[:, :, 0, 0].clone())  # [E, b]: the rows each member gets
        return original(self, batch)

    original = GaussianEnsemble._train_loss
    model = GaussianEnsemble(OBS, ACT, **{**SMALL, "batch_size": 10_000})
    GaussianEnsemble._train_loss = spy
    try:
        model.fit(buffer, epochs=1)
    finally:
        GaussianEnsemble._train_loss = original
    rows = seen[0]  # the whole (bootstrapped) training set of each member in one batch
    assert rows.shape == (4, 640)
    distinct = [len(set(r.tolist())) for r in rows]
    assert all(350 < d < 480 for d in distinct)  # about 63% of 640 rows
    assert len({tuple(sorted(r.tolist())) for r in rows}) == 4


# ---------------------------------------------------------------------- propagation


def test_all_members_are_evaluated_in_one_batched_call(fitted):
    model, _ = fitted
    calls = []
    hook = model.net.register_forward_hook(lambda mod, args, out: calls.append(out.shape))
    try:
        model.step(torch.zeros(9, 3), torch.zeros(9, 2), generator=torch.Generator())
    finally:
        hook.remove()
    # TS1: one call for all members, each on its ceil(B / elites) dealt rows only.
    rows = -(-9 // model.num_elites)
    assert calls == [torch.Size([model.ensemble_size, rows, 8])]


def test_ts1_deal_gives_each_row_an_elite_and_matches_that_members_mean(fitted):
    model = with_config(fitted[0], deterministic=True)
    obs, action = torch.randn(11, 3), torch.randn(11, 2)
    out = model.step(obs, action, generator=torch.Generator().manual_seed(0))
    per_member = model.predict_mean(obs, action)[model.elite_indices]  # [K, B, obs + 1]
    predicted = torch.cat([out.next_state - obs, out.reward[:, None]], -1)
    match = (per_member - predicted).abs().amax(-1) < 1e-5  # [K, B]
    assert match.any(0).all()  # every row equals one elite's mean prediction


def test_mean_propagation_averages_the_elites_without_noise(fitted):
    model = with_config(fitted[0], propagation="mean")
    obs, action = torch.randn(6, 3), torch.zeros(6, 2)
    a = model.step(obs, action, generator=torch.Generator().manual_seed(0))
    b = model.step(obs, action, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a.next_state, b.next_state, rtol=0, atol=0)
    expected = model.predict_mean(obs, action)[model.elite_indices].mean(0)
    torch.testing.assert_close(a.next_state, obs + expected[:, :3])
    torch.testing.assert_close(a.reward, expected[:, 3])
    assert model.sample_members(6) is None


def test_mean_propagation_of_a_single_member_does_not_sample():
    model = GaussianEnsemble(
        OBS, ACT, ensemble_size=1, num_elites=1, propagation="mean", hidden_sizes=(8,)
    )
    obs, action = torch.randn(5, 3), torch.zeros(5, 2)
    a = model.step(obs, action, generator=torch.Generator().manual_seed(0)).next_state
    b = model.step(obs, action, generator=torch.Generator().manual_seed(1)).next_state
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a, obs + model.predict_mean(obs, action)[0, :, :3])


def test_ts1_draws_an_elite_per_row_and_step(fitted):
    model = with_config(fitted[0], deterministic=True)
    obs = torch.tensor([[1.0, -0.5, 0.3]]).expand(300, 3)
    action = torch.zeros(300, 2)
    means = model.predict_mean(obs[:1], action[:1])[:, 0]  # [E, 4]
    gen = torch.Generator().manual_seed(0)
    first = model.step(obs, action, generator=gen).reward
    second = model.step(obs, action, generator=gen).reward
    member_of = (first[:, None] - means[:, 3]).abs().argmin(-1)
    torch.testing.assert_close(first, means[member_of, 3])
    assert set(member_of.tolist()) == set(model.elite_indices.tolist())
    assert not torch.equal(first, second)  # new draws at the next step
    assert model.sample_members(5) is None


def test_ts_inf_follows_the_given_members(fitted):
    model = with_config(fitted[0], propagation="ts-inf", deterministic=True)
    members = model.sample_members(200, torch.Generator().manual_seed(0))
    assert members.shape == (200,) and members.dtype == torch.long
    assert set(members.tolist()) == set(model.elite_indices.tolist())
    obs, action = torch.randn(200, 3), torch.rand(200, 2)
    pred = model.step(obs, action, generator=torch.Generator(), member=members)
    means = model.predict_mean(obs, action)[members, torch.arange(200)]
    torch.testing.assert_close(pred.next_state, obs + means[:, :3])
    # Without members it draws them per call, like TS1.
    free = model.step(obs, action, generator=torch.Generator().manual_seed(1)).reward
    assert not torch.equal(free, pred.reward)


def test_sampling_follows_the_members_gaussian(fitted):
    model = fitted[0]
    obs, action = torch.tensor([[0.5, 0.5, -1.0]]).expand(4000, 3), torch.zeros(4000, 2)
    member = torch.full((4000,), int(model.elite_indices[0]))
    draws = model.step(obs, action, generator=torch.Generator().manual_seed(0), member=member)
    again = model.step(obs, action, generator=torch.Generator().manual_seed(0), member=member)
    torch.testing.assert_close(draws.reward, again.reward, rtol=0, atol=0)
    mean, logvar = model.predict_distribution(obs[:1], action[:1])
    mean, std = mean[member[0], 0], torch.exp(0.5 * logvar[member[0], 0])
    delta = torch.cat([draws.next_state - obs, draws.reward[:, None]], -1)
    torch.testing.assert_close(delta.mean(0), mean, atol=4 * float(std.max()) / 60, rtol=0)
    torch.testing.assert_close(delta.std(0), std, rtol=0.1, atol=0)


def test_predict_distribution_in_environment_units(fitted):
    model = fitted[0]
    obs, action = torch.randn(5, 3), torch.zeros(5, 2)
    mean, logvar = model.predict_distribution(obs, action)
    assert mean.shape == logvar.shape == (4, 5, 4)
    torch.testing.assert_close(mean, model.predict_mean(obs, action))
    # The bounds hold in normalised units: subtract the target scale back out.
    normalised = logvar - 2 * torch.log(model.target_normalizer.std)
    assert (normalised <= model.max_logvar.detach() + 1e-5).all()


# ---------------------------------------------------------------------- imagination


def test_dream_vec_env_keeps_each_episodes_member_under_ts_inf(fitted, buffer):
    model = with_config(fitted[0], propagation="ts-inf", deterministic=True)
    venv = DreamVecEnv(model, num_envs=8, start_states=buffer, horizon=50)
    obs, _ = venv.reset(seed=0)
    members = venv.core.member.clone()
    assert len(set(members.tolist())) > 1
    assert set(members.tolist()) <= set(model.elite_indices.tolist())
    for _ in range(4):
        action = np.zeros((8, 2), np.float32)
        expected = model.predict_mean(torch.as_tensor(obs), torch.as_tensor(action))
        expected = expected[members, torch.arange(8)]
        previous = obs
        obs, reward, terminated, truncated, _ = venv.step(action)
        assert not (terminated.any() or truncated.any())
        assert torch.equal(venv.core.member, members)
        np.testing.assert_allclose(obs, previous + expected[:, :3].numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(reward, expected[:, 3].numpy(), rtol=1e-5, atol=1e-5)


def test_dream_env_over_a_fitted_ensemble_passes_check_env(fitted, buffer):
    env = DreamEnv(fitted[0], start_states=buffer, horizon=5)
    check_env(env, skip_render_check=True)


# ---------------------------------------------------------------------- persistence


@pytest.mark.parametrize("loader", [GaussianEnsemble.load, WorldModel.load], ids=["cls", "base"])
def test_save_load_round_trip_predicts_identically(fitted, tmp_path, loader):
    model = fitted[0]
    path = tmp_path / "ensemble.pt"
    model.save(path)
    loaded = loader(path, device="cpu")
    assert type(loaded) is GaussianEnsemble
    assert loaded.get_config() == model.get_config()
    assert loaded.elite_indices.tolist() == model.elite_indices.tolist()
    obs, action = torch.randn(16, 3), torch.rand(16, 2)
    a = model.step(obs, action, generator=torch.Generator().manual_seed(7))
    b = loaded.step(obs, action, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(a.next_state, b.next_state, rtol=0, atol=0)
    torch.testing.assert_close(a.reward, b.reward, rtol=0, atol=0)
    torch.testing.assert_close(loaded.max_logvar, model.max_logvar, rtol=0, atol=0)
