"""Time-varying linear-Gaussian dynamics: the per-step fit recovers a known system, the
Gaussian-mixture prior makes fits from fewer samples than dimensions work, and the model
learns from episodes in a buffer, steps with the time index, dreams, saves and loads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

import mbwrap
from mbwrap.buffers import ReplayBuffer
from mbwrap.models.local_linear import (
    DynamicsPriorGMM,
    LocalLinearModel,
    NormalInverseWishart,
    episode_steps,
    fit_linear_gaussian,
)

X, U, T = 3, 2, 4
NOISE = 0.05 * torch.tensor([[1.0, 0.0, 0.0], [0.5, 1.0, 0.0], [0.0, -0.3, 0.6]])


#: ``[T + 1, X]``: the states of step ``t`` lie around ``10 t`` in their first coordinate,
#: so that the steps' transitions lie apart, as a mixture prior needs to tell them apart.
CENTRES = torch.zeros(T + 1, X, dtype=torch.float64)
CENTRES[:, 0] = 10 * torch.arange(T + 1)


def system() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A time-varying linear system: ``F [T, X, X + U]``, ``f [T, X]``, ``Sigma [X, X]``,
    carrying states from around ``CENTRES[t]`` to around ``CENTRES[t + 1]``."""
    generator = torch.Generator().manual_seed(0)
    a = (torch.eye(X) + 0.3 * torch.randn(T, X, X, generator=generator)).double()
    b = torch.randn(T, X, U, generator=generator).double()
    c = 0.5 * torch.randn(T, X, generator=generator).double()
    fc = CENTRES[1:] - (a @ CENTRES[:-1].unsqueeze(-1)).squeeze(-1) + c
    return torch.cat([a, b], -1), fc, (NOISE @ NOISE.T).double()


def samples(n: int, seed: int) -> tuple[torch.Tensor, ...]:
    """``n`` transitions per step of :func:`system`: ``x, u, x_next: [n, T, .]``, the
    states of step ``t`` drawn around ``CENTRES[t]``."""
    fx, fc, cov = system()
    generator = torch.Generator().manual_seed(seed)
    x = CENTRES[:-1] + torch.randn(n, T, X, generator=generator, dtype=torch.float64)
    u = torch.randn(n, T, U, generator=generator, dtype=torch.float64)
    noise = torch.randn(n, T, X, generator=generator, dtype=torch.float64)
    mean = (fx @ torch.cat([x, u], -1).unsqueeze(-1)).squeeze(-1) + fc
    x_next = mean + (torch.linalg.cholesky(cov) @ noise.unsqueeze(-1)).squeeze(-1)
    return x, u, x_next


def test_per_step_fit_recovers_a_known_time_varying_system():
    fx, fc, cov = system()
    x, u, x_next = samples(2000, seed=1)
    fit_fx, fit_fc, fit_cov = fit_linear_gaussian(x[None], u[None], x_next[None])
    assert fit_fx.shape == (1, T, X, X + U) and fit_fc.shape == (1, T, X)
    assert fit_cov.shape == (1, T, X, X)
    assert torch.allclose(fit_fx[0], fx, atol=0.01)
    assert torch.allclose(fit_fc[0], fc, atol=0.1)  # extrapolated from states ~ 10 t away
    assert torch.allclose(fit_cov[0], cov.expand(T, X, X), atol=4e-4)  # entries ~ 3e-3
    # From 20 samples per step: least squares with an intercept, up to the regulariser.
    x, u, x_next = (v[:20] for v in (x, u, x_next))
    fit_fx, fit_fc, fit_cov = fit_linear_gaussian(x[None], u[None], x_next[None])
    assert torch.allclose(fit_fx[0], fx, atol=0.05)
    inputs = torch.cat([x, u, torch.ones(20, T, 1, dtype=torch.float64)], -1).transpose(0, 1)
    targets = x_next.transpose(0, 1)
    solution = torch.linalg.lstsq(inputs, targets).solution  # [T, X + U + 1, X]
    residual = targets - inputs @ solution
    assert torch.allclose(fit_fx[0], solution[:, :-1].mT, atol=1e-4)
    assert torch.allclose(fit_cov[0], residual.mT @ residual / 20, atol=1e-5)


def test_conditions_and_masks_fit_independently():
    x, u, x_next = samples(60, seed=2)
    # Two conditions; in the second, the last 30 samples are masked out.
    batch = [torch.stack([v, v]) for v in (x, u, x_next)]
    batch[2][1, 30:] += 100.0  # garbage where masked
    mask = torch.ones(2, 60, T, dtype=torch.bool)
    mask[1, 30:] = False
    fx, fc, cov = fit_linear_gaussian(*batch, mask=mask)
    alone = fit_linear_gaussian(*(v[None, :30] for v in (x, u, x_next)))
    whole = fit_linear_gaussian(x[None], u[None], x_next[None])
    for got, expected in zip((fx, fc, cov), alone, strict=True):
        assert torch.allclose(got[1], expected[0], atol=1e-8)
    for got, expected in zip((fx, fc, cov), whole, strict=True):
        assert torch.allclose(got[0], expected[0], atol=1e-8)


def test_the_posterior_covariance_matches_a_hand_computation():
    # X = U = 1; two samples y = (x, u, x') = +-(1, 0, 1): mean 0, scatter 2 on (x, x').
    x = torch.tensor([1.0, -1.0], dtype=torch.float64).reshape(1, 2, 1, 1)
    u = torch.zeros_like(x)
    eye = torch.eye(3, dtype=torch.float64).reshape(1, 1, 3, 3)
    zero = torch.zeros(1, 1, 3, dtype=torch.float64)
    # Prior at the sample mean: Sigma = (scatter + I) / (2 + 1), F = (2/3) / 1, the
    # residual variance 1 - (2/3)^2 = 5/9.
    fx, fc, cov = fit_linear_gaussian(x, u, x, NormalInverseWishart(zero, eye, 1.0, 1.0))
    assert fx.flatten().tolist() == pytest.approx([2 / 3, 0.0], abs=1e-5)
    assert fc.item() == pytest.approx(0.0) and cov.item() == pytest.approx(5 / 9, abs=1e-5)
    # Prior mean at (1, 0, 1): the shift adds N m / (N + m) = 2/3 of its outer product, so
    # Sigma_xx = Sigma_x'x' = 11/9, Sigma_xx' = 8/9: F = 8/11, residual 19/33.
    shifted = torch.tensor([[[1.0, 0.0, 1.0]]], dtype=torch.float64)
    fx, fc, cov = fit_linear_gaussian(x, u, x, NormalInverseWishart(shifted, eye, 1.0, 1.0))
    assert fx.flatten().tolist() == pytest.approx([8 / 11, 0.0], abs=1e-5)
    assert fc.item() == pytest.approx(0.0) and cov.item() == pytest.approx(19 / 33, abs=1e-5)


def test_the_prior_makes_fewer_samples_than_dimensions_enough():
    fx, _, _ = system()
    prior = DynamicsPriorGMM()  # the GPS defaults: 20 clusters, 40 samples per cluster
    x, u, x_next = samples(200, seed=3)
    clusters = prior.update(
        x.reshape(-1, X),
        u.reshape(-1, U),
        x_next.reshape(-1, X),
        generator=torch.Generator().manual_seed(0),
    )
    assert clusters == 20  # 800 transitions / 40
    # N = 4 samples per step, fewer than the X + U = 5 inputs.
    x, u, x_next = samples(4, seed=4)
    niw = prior.eval(torch.cat([x, u, x_next], -1).transpose(0, 1)[None])
    assert niw.mu0.shape == (1, T, 2 * X + U) and niw.m == niw.n0 == 1.0
    with_prior = fit_linear_gaussian(x[None], u[None], x_next[None], niw)[0][0]
    without = fit_linear_gaussian(x[None], u[None], x_next[None])[0][0]
    assert (with_prior - fx).abs().max() < 0.1
    assert (without - fx).abs().max() > 0.5


# ---------------------------------------------------------------------- the model
OBS = spaces.Box(-50.0, 50.0, (X,), np.float32)
ACT = spaces.Box(-3.0, 3.0, (U,), np.float32)


def buffer_of(episodes: int, seed: int = 0, steps: int = T, rows: int = 2 * T) -> ReplayBuffer:
    """``episodes`` parallel episodes of ``steps`` steps of :func:`system`, in a buffer of
    ``rows`` steps per stream."""
    fx, fc, cov = system()
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(cov.numpy())
    buffer = ReplayBuffer(OBS, ACT, episodes * rows, device="cpu", n_envs=episodes)
    s = CENTRES[0].numpy() + rng.uniform(-1, 1, (episodes, X))
    for t in range(steps):
        a = rng.uniform(-1, 1, (episodes, U))
        k = min(t, T - 1)
        nxt = np.concatenate([s, a], 1) @ fx[k].numpy().T + fc[k].numpy()
        nxt = nxt + rng.standard_normal((episodes, X)) @ chol.T
        last = np.full(episodes, t == steps - 1)
        buffer.add(s, a, np.zeros(episodes), nxt, np.zeros(episodes, bool), last)
        s = nxt
    return buffer


def fitted(episodes: int = 40, **kwargs) -> LocalLinearModel:
    # The prior holds 20 episodes' worth (80 transitions): 8 clusters for the 4 steps.
    kwargs.setdefault("min_samples_per_cluster", 10)
    model = LocalLinearModel(OBS, ACT, device="cpu", horizon=T, **kwargs)
    metrics = model.fit(buffer_of(episodes), generator=torch.Generator().manual_seed(0))
    assert metrics["episodes"] == episodes
    return model


def test_the_model_learns_the_system_from_episodes():
    model = LocalLinearModel(OBS, ACT, device="cpu", horizon=T, min_samples_per_cluster=10)
    metrics = model.fit(buffer_of(40), generator=torch.Generator().manual_seed(0))
    # The prior holds the newest 20 episodes (GPS's max_samples): 80 transitions / 10.
    assert metrics["episodes"] == 40 and metrics["clusters"] == 8
    assert metrics["residual"] < float(system()[2].diagonal().mean())
    fx, fc, _ = system()
    state = model.encode(CENTRES[:T].float() + 0.3)
    state[:, -1] = torch.arange(T)  # one state at each step
    action = torch.tensor([[0.5, -0.5]]).expand(T, U)
    inputs = torch.cat([state[:, :X], action], -1).double()
    truth = (fx @ inputs.unsqueeze(-1)).squeeze(-1) + fc
    predicted, reward = model.mean_step(state, action)
    assert reward is None
    assert torch.allclose(predicted[:, :X].double(), truth, atol=0.03)
    assert predicted[:, -1].tolist() == [1, 2, 3, 3]  # held at the last step
    assert torch.allclose(model.dynamics()[0], fx, atol=0.1)


def test_mean_step_is_differentiable():
    model = fitted()
    state = model.encode(torch.zeros(2, X)).double().requires_grad_()
    action = torch.zeros(2, U, dtype=torch.float64, requires_grad=True)
    model.mean_step(state, action)[0][:, :X].sum().backward()
    fx = model.dynamics()[0][0]
    assert torch.allclose(state.grad[0, :X], fx[:, :X].sum(0))
    assert torch.allclose(action.grad[0], fx[:, X:].sum(0))


def test_samples_have_the_fitted_covariance():
    model = fitted()
    n = 20_000
    state = model.encode(CENTRES[1].float().expand(n, X) + 0.2)
    state[:, -1] = 1
    action = torch.full((n, U), 0.3)
    step = model.step(state, action, generator=torch.Generator().manual_seed(0))
    mean = model.mean_step(state[:1], action[:1])[0][0]
    assert torch.all(step.next_state[:, -1] == 2)
    sample = step.next_state[:, :X].double()
    assert torch.allclose(sample.mean(0), mean[:X].double(), atol=3e-3)
    assert torch.allclose(sample.T.cov(), model.dynamics()[2][1], atol=2e-4)  # ~ 3e-3
    assert torch.allclose(model.dynamics()[2][1], system()[2], atol=2e-3)
    assert step.reward is None and step.terminated is None


def test_episodes_are_cut_at_their_ends():
    ends = torch.tensor([[False, False], [True, False], [False, True], [False, False]])
    episode, time = episode_steps(ends, first_row_starts=True)
    assert time.tolist() == [[0, 0], [1, 1], [0, 2], [1, 0]]
    # Stream 0 holds episodes {rows 0, 1} and {rows 2, 3}; stream 1 {0, 1, 2} and {3}.
    assert episode[0, 0] == episode[1, 0] != episode[2, 0] == episode[3, 0]
    assert episode[0, 1] == episode[1, 1] == episode[2, 1] != episode[3, 1]
    assert sorted(set(episode.reshape(-1).tolist())) == [0, 1, 2, 3]
    # A buffer that wrapped: the steps before the first end are at unknown times.
    episode, time = episode_steps(ends, first_row_starts=False)
    assert time.tolist() == [[-1, -1], [-1, -1], [0, -1], [1, 0]]
    assert episode[0].tolist() == [-1, -1] and len(set(episode[3].tolist())) == 2


def test_dream_env_runs_from_stored_first_observations():
    buffer = buffer_of(10)
    model = LocalLinearModel(OBS, ACT, device="cpu", horizon=T)
    model.fit(buffer, generator=torch.Generator().manual_seed(0))
    env = mbwrap.DreamEnv(
        model, start_states=buffer, horizon=6, reward_fn=lambda o, a, n: -(n**2).sum(-1)
    )
    assert env.observation_space == OBS
    obs, _ = env.reset(seed=0)
    first = buffer.transitions().obs[:10].numpy()  # row 0: every episode's first step
    assert obs.shape == (X,) and np.abs(first - obs).sum(1).min() < 1e-6
    for _ in range(6):
        obs, reward, terminated, truncated, _ = env.step(np.array([0.1, -0.1], np.float32))
        assert obs.shape == (X,) and np.isfinite(reward) and not terminated
    assert truncated


def test_save_and_load_restore_the_fitted_dynamics(tmp_path):
    model = fitted(max_clusters=5, min_samples_per_cluster=20)
    model.save(tmp_path / "local.pt")
    loaded = LocalLinearModel.load(tmp_path / "local.pt", device="cpu")
    assert (
        loaded.get_config()
        == model.get_config()
        == {"horizon": T, "prior": True, "max_clusters": 5, "min_samples_per_cluster": 20}
    )
    for a, b in zip(model.dynamics(), loaded.dynamics(), strict=True):
        assert torch.equal(a, b)
    state, action = model.encode(torch.ones(3, X)), torch.ones(3, U)
    first, second = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(
        model.step(state, action, generator=first).next_state,
        loaded.step(state, action, generator=second).next_state,
    )


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="observation_space"):
        LocalLinearModel(spaces.Discrete(3), ACT, horizon=T)
    with pytest.raises(ValueError, match="action_space"):
        LocalLinearModel(OBS, spaces.Discrete(3), horizon=T)
    for horizon in (0, True, 2.0):
        with pytest.raises(ValueError, match="horizon"):
            LocalLinearModel(OBS, ACT, horizon=horizon)
    with pytest.raises(ValueError, match="max_clusters"):
        LocalLinearModel(OBS, ACT, horizon=T, max_clusters=0)
    model = LocalLinearModel(OBS, ACT, device="cpu", horizon=T + 2)
    with pytest.raises(ValueError, match="horizon: no stored episode reaches step 4"):
        model.fit(buffer_of(5))
    with pytest.raises(RuntimeError, match="fit"):
        model.mean_step(model.encode(torch.zeros(1, X)), torch.zeros(1, U))
    with pytest.raises(ValueError, match="empty"):
        model.fit(ReplayBuffer(OBS, ACT, 10, device="cpu"))
    # Exactly full: its oldest row may have been written mid-episode, so no start is known.
    with pytest.raises(ValueError, match="start is stored"):
        model.fit(buffer_of(5, rows=T))
