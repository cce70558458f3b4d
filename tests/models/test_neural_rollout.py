"""A neural ensemble's rollout prepared once for all its steps
(mbwrap.models.neural_rollout), against stepping the model H times (WorldModel.rollout)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from mbwrap import ReplayBuffer, TabularModel, WorldModel
from mbwrap.device import force_accelerator_paths
from mbwrap.models import GaussianEnsemble, MDNModel, MLPModel
from mbwrap.models.losses import soft_clamp_logvar
from mbwrap.models.neural_rollout import (
    broken_rows_to_nan,
    folded_first_layer,
    folded_gaussian_draw,
    folded_gaussian_layer,
    folded_output_layer,
    random_deals,
)

OBS = spaces.Box(-3.0, 3.0, (3,), np.float32)
ACT = spaces.Box(-1.0, 1.0, (2,), np.float32)
SMALL = {"ensemble_size": 4, "num_elites": 3, "hidden_sizes": (16, 16), "device": "cpu"}


def _buffer(n: int = 300) -> ReplayBuffer:
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
    action = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    done = rng.random(n) < 0.2
    buffer = ReplayBuffer(OBS, ACT, n, device="cpu")
    nxt = 0.9 * obs + 0.3 * action @ np.ones((2, 3), np.float32)
    buffer.extend(obs, action, obs.sum(1), nxt, done, np.zeros(n, bool))
    return buffer


@pytest.fixture(scope="module")
def fitted() -> GaussianEnsemble:
    torch.manual_seed(0)
    model = GaussianEnsemble(OBS, ACT, learn_termination=True, **SMALL)
    model.fit(_buffer(), epochs=5)
    return model


def _like(model: GaussianEnsemble, **changes) -> GaussianEnsemble:
    other = GaussianEnsemble(OBS, ACT, **{**model.get_config(), **changes, "device": "cpu"})
    other.load_state_dict(model.state_dict())
    other.elite_indices = model.elite_indices.clone()
    return other


def _stepped(model: WorldModel, state, actions, **kwargs):
    return WorldModel.rollout(model, state, actions, **kwargs)


def test_folding_the_normaliser_into_the_first_layer_changes_nothing():
    weight, bias = torch.randn(3, 5, 4), torch.randn(3, 1, 4)
    mean, std = torch.randn(5), torch.rand(5) + 0.5
    x = torch.randn(3, 7, 5)
    w, b = folded_first_layer(weight, bias, mean, std)
    torch.testing.assert_close(
        torch.baddbmm(b, x, w), torch.baddbmm(bias, (x - mean) / std, weight)
    )


def test_folding_the_target_denormaliser_into_the_last_layer_changes_nothing():
    weight, bias = torch.randn(3, 5, 6), torch.randn(3, 1, 6)
    mean, std = torch.randn(4), torch.rand(4) + 0.5
    x = torch.randn(3, 7, 5)
    w, b = folded_output_layer(weight, bias, mean, std)
    plain, folded = torch.baddbmm(bias, x, weight), torch.baddbmm(b, x, w)
    torch.testing.assert_close(folded[..., :4], plain[..., :4] * std + mean)
    torch.testing.assert_close(folded[..., 4:], plain[..., 4:])  # other columns untouched
    assert not torch.equal(w, weight)  # new tensors: the model's own are left as they were


def test_a_folded_gaussian_draw_equals_the_unfolded_one():
    torch.manual_seed(0)
    dim, rows = 4, 9
    weight, bias = torch.randn(1, 5, 2 * dim + 1), torch.randn(1, 1, 2 * dim + 1)
    x = 8.0 * torch.randn(1, rows, 5)  # log-variances far past both bounds as well
    mean, std = torch.randn(dim), torch.rand(dim) + 0.5
    top, bottom = torch.rand(dim) * 0.5, -10.0 + torch.rand(dim)
    eps = torch.randn(rows, dim)
    head = torch.baddbmm(bias, x, weight)[0]
    mu, logvar = head[:, :dim], head[:, dim : 2 * dim]
    expected = (mu + torch.exp(0.5 * soft_clamp_logvar(logvar, top, bottom)) * eps) * std + mean
    w, b = folded_gaussian_layer(weight, bias, mean, std, top, bottom)
    folded = torch.baddbmm(b, x, w)[0]
    torch.testing.assert_close(folded[:, 2 * dim :], head[:, 2 * dim :])  # a logit stays
    draw = folded_gaussian_draw(folded, std * torch.exp(0.5 * bottom) * eps, 0.5 * (top - bottom))
    torch.testing.assert_close(draw, expected, rtol=1e-5, atol=1e-5)
    assert (logvar > 25).any() and (logvar < -25).any()  # softplus's linear side is used


def test_broken_rows_turn_nan_from_the_step_after_the_break():
    states = torch.zeros(4, 3, 2)  # H = 3 steps, 3 rows
    deltas = torch.zeros(3, 3, 3)  # obs 2 + reward
    deltas[1, 1, 0] = float("inf")  # row 1 breaks at step 1
    deltas[0, 2, 2] = float("nan")  # row 2: only its reward at step 0 (states unaffected)
    terminated = torch.full((3, 3), 0.5)
    for forced in (False, True):
        with force_accelerator_paths(forced):
            out = broken_rows_to_nan(states, deltas, 2, terminated)
        assert torch.isnan(out.states[2:, 1]).all() and not torch.isnan(out.states[:2]).any()
        assert not torch.isnan(out.states[:, [0, 2]]).any()
        assert torch.isnan(out.reward[2, 1]) and not torch.isnan(out.reward[:2, 1]).any()
        assert torch.isnan(out.terminated[2, 1]) and not torch.isnan(out.terminated[:2]).any()
        assert torch.isnan(out.reward[0, 2]) and not torch.isnan(out.reward[1:, 2]).any()
    clean = broken_rows_to_nan(states, torch.zeros(3, 3, 3), 2, None)
    assert clean.terminated is None and not torch.isnan(clean.states).any()


@pytest.mark.parametrize("forced", [False, True], ids=["cpu", "accelerator-path"])
def test_random_deals_give_every_row_a_uniform_group_each_step(forced):
    steps, rows, groups = 400, 10, 3
    with force_accelerator_paths(forced):
        dealt, position = random_deals(
            steps, rows, groups, torch.Generator().manual_seed(0), torch.device("cpu")
        )
    assert dealt.shape == (steps, groups, 4) and position.shape == (steps, rows)
    flat = dealt.transpose(1, 2).reshape(steps, -1)  # deal order: position j -> group j % groups
    assert torch.equal(flat.gather(1, position), torch.arange(rows).expand(steps, rows))
    group_of = position % groups  # [steps, rows]
    counts = torch.stack([(group_of == g).float().mean(0) for g in range(groups)])
    # Positions 0..9 fall on groups 0, 1, 2 four, three and three times in ten.
    assert torch.allclose(counts.mean(1), torch.tensor([0.4, 0.3, 0.3]), atol=0.02)
    assert torch.all((counts - counts.mean(1, keepdim=True)).abs() < 0.08)  # uniform over rows
    assert not torch.equal(dealt[0], dealt[1])


def test_mean_propagation_and_fixed_members_equal_stepping(fitted):
    state, actions = torch.rand(7, 3) * 2 - 1, torch.rand(7, 5, 2) * 2 - 1
    for model, kwargs in (
        (_like(fitted, propagation="mean"), {}),
        (
            _like(fitted, propagation="ts-inf", deterministic=True),
            {"member": torch.tensor([0, 1, 2, 3, 0, 1, 2])},
        ),
    ):
        fast = model.rollout(state, actions, generator=torch.Generator(), **kwargs)
        slow = _stepped(model, state, actions, generator=torch.Generator(), **kwargs)
        assert fast.states.shape == (6, 7, 3) and fast.reward.shape == fast.terminated.shape == (
            5,
            7,
        )
        torch.testing.assert_close(fast.states, slow.states, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fast.reward, slow.reward, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fast.terminated, slow.terminated, atol=1e-5, rtol=1e-5)


def test_a_single_member_samples_as_stepping_does():
    # MDNModel keeps the default draw (_sample, then the denormaliser): with one member the
    # rollout samples it as step() does, from the same generator, not its mean.
    torch.manual_seed(0)
    model = MDNModel(OBS, ACT, hidden_sizes=(16,), device="cpu")
    model.fit(_buffer(), epochs=2)
    state, actions = torch.rand(6, 3) * 2 - 1, torch.rand(6, 4, 2) * 2 - 1
    fast = model.rollout(state, actions, generator=torch.Generator().manual_seed(5))
    slow = _stepped(model, state, actions, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(fast.states, slow.states, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast.reward, slow.reward, atol=1e-5, rtol=1e-5)
    other = model.rollout(state, actions, generator=torch.Generator().manual_seed(6))
    assert not torch.allclose(other.states[1:], fast.states[1:])  # a draw, not the mean


def test_ts1_rows_follow_a_random_elite_each_step(fitted):
    model = _like(fitted, deterministic=True)
    state = torch.tensor([[0.2, -0.4, 0.1]]).expand(600, 3)
    actions = torch.zeros(600, 2, 2)
    out = model.rollout(state, actions, generator=torch.Generator().manual_seed(0))
    means = model.predict_mean(state[:1], actions[:1, 0])[:, 0]  # [E, obs + 1]
    member_of = (out.reward[0][:, None] - means[:, 3]).abs().argmin(-1)
    torch.testing.assert_close(out.reward[0], means[member_of, 3])
    torch.testing.assert_close(out.states[1], state + means[member_of, :3])
    counts = torch.bincount(member_of, minlength=4).float() / 600
    elites = model.elite_indices.tolist()
    assert set(member_of.tolist()) == set(elites)  # never the member that is not an elite
    assert torch.all((counts[elites] - 1 / 3).abs() < 0.01)  # dealt evenly
    # The second step draws again: rows that shared a member part ways.
    second = out.states[2] - out.states[1]
    assert len(torch.unique(second.round(decimals=4), dim=0)) > 1


def test_a_sampled_step_has_the_members_mean_and_variance(fitted):
    model = _like(fitted, propagation="ts-inf")
    rows = 20_000
    state = torch.tensor([[0.2, -0.4, 0.1]]).expand(rows, 3)
    actions = torch.full((rows, 1, 2), 0.3)
    member = torch.full((rows,), int(model.elite_indices[0]))
    out = model.rollout(state, actions, generator=torch.Generator().manual_seed(0), member=member)
    mean, logvar = model.predict_distribution(state[:1], actions[:1, 0])
    mean, std = mean[member[0], 0], torch.exp(0.5 * logvar[member[0], 0])
    change = torch.cat([out.states[1] - state, out.reward[0][:, None]], -1)
    assert std.min() > 1e-3  # the draw has noise to measure
    # Means within 5 standard errors, deviations within 3% (20,000 draws).
    assert torch.all((change.mean(0) - mean).abs() < 5 * std / rows**0.5)
    torch.testing.assert_close(change.std(0), std, rtol=0.03, atol=0.0)


def test_states_stay_in_bounds_and_a_broken_model_shows_nan(fitted):
    model = _like(fitted)
    state, actions = torch.zeros(4, 3), torch.ones(4, 30, 2)
    out = model.rollout(state, actions, generator=torch.Generator().manual_seed(1))
    assert torch.all(out.states <= 3.0) and torch.all(out.states >= -3.0)
    with torch.no_grad():
        model.net.layers[-1].bias.fill_(float("inf"))
    out = model.rollout(state, actions, generator=torch.Generator().manual_seed(1))
    assert torch.isnan(out.states[1:]).any(-1).all()


def test_deterministic_mlp_and_errors():
    model = MLPModel(OBS, ACT, ensemble_size=2, hidden_sizes=(8,), device="cpu")
    model.fit(_buffer(), epochs=1)
    state, actions = torch.zeros(3, 3), torch.zeros(3, 4, 2)
    gen = torch.Generator().manual_seed(0)
    out = model.rollout(state, actions, generator=gen)
    assert out.states.shape == (5, 3, 3) and out.terminated is None
    with pytest.raises(ValueError, match="actions: batch of 2"):
        model.rollout(state, actions[:2])
    with pytest.raises(Exception, match="actions"):
        model.rollout(state, torch.zeros(3, 4, 5))


def test_the_default_rollout_steps_the_model():
    model = TabularModel(spaces.Discrete(3), spaces.Discrete(2), mode="most-likely", device="cpu")
    model.update(
        obs=np.array([0, 1, 2]),
        action=np.array([1, 1, 1]),
        reward=np.array([1.0, 2.0, 3.0]),
        next_obs=np.array([1, 2, 0]),
        terminated=np.array([False, False, True]),
    )
    out = model.rollout(torch.tensor([0, 1]), torch.ones(2, 3, dtype=torch.long))
    assert out.states.tolist() == [[0, 1], [1, 2], [2, 0], [0, 1]]
    assert out.reward.tolist() == [[1.0, 2.0], [2.0, 3.0], [3.0, 1.0]]
    assert out.terminated.tolist() == [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
