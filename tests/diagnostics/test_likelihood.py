"""One-step negative log-likelihood: Gaussian, ensemble and mixture densities worked out by
hand, models without a likelihood, batching, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

import mbwrap
from mbwrap.diagnostics import GaussianEnsembleModel, MixtureDensityModel, one_step_nll
from mbwrap.errors import SpaceMismatchError

SIGMA = 0.5
BIAS = (0.1, -0.2, 0.3)
#: NLL of a residual of zero in each of the 4 target features ``[s' - s (3), r]``.
EXACT_NLL = 4 * (math.log(SIGMA) + 0.5 * math.log(2 * math.pi))


@pytest.fixture
def make_gaussian_drift(make_drift_model):
    """The drift model with a density: member ``e`` predicts ``[s' - s, r] ~
    N([a + bias_e, s[0]], SIGMA^2 I)``; ``elites`` become its ``elite_indices``."""

    class GaussianDrift(make_drift_model):
        def __init__(self, *args, elites=None, **kwargs):
            super().__init__(*args, **kwargs)
            if elites is not None:
                self.register_buffer("elite_indices", torch.as_tensor(elites))

        def predict_distribution(self, state, action):
            delta = action.float() + self.biases[:, None, :]  # [E, B, 3]
            reward = state[:, 0].expand(delta.shape[0], -1)[..., None]
            mean = torch.cat([delta, reward], -1)
            return mean, torch.full_like(mean, 2 * math.log(SIGMA))

    return GaussianDrift


@pytest.fixture
def make_mixture_drift(make_drift_model):
    """The drift model as a two-component mixture: weight ``w`` on the exact mean, the
    rest on one 100 too high in every feature, both with standard deviation SIGMA."""

    class MixtureDrift(make_drift_model):
        def __init__(self, w: float) -> None:
            super().__init__()
            self.w = w

        def predict_mixture(self, state, action):
            exact = torch.cat([action.float(), state[:, :1]], -1)  # [B, 4]
            means = torch.stack([exact, exact + 100.0], 1)
            logits = torch.log(torch.tensor([self.w, 1 - self.w])).expand(len(state), 2)
            return logits, means, torch.full_like(means, 2 * math.log(SIGMA))

    return MixtureDrift


def test_gaussian_nll_matches_the_formula(make_gaussian_drift, make_drift_buffer):
    # Residual -bias in each state feature, 0 in the reward: the NLL per transition is
    # sum_d b_d^2 / (2 s^2) plus log(s) + log(2 pi) / 2 for each of the 4 features.
    buffer = make_drift_buffer([[25, 15], [40]])
    model = make_gaussian_drift(BIAS)
    assert isinstance(model, GaussianEnsembleModel)
    expected = EXACT_NLL + 0.14 / (2 * SIGMA**2)
    assert one_step_nll(model, buffer) == pytest.approx(expected, rel=1e-5)
    assert one_step_nll(make_gaussian_drift(), buffer) == pytest.approx(EXACT_NLL, rel=1e-5)


def test_ensemble_density_is_the_mixture_of_its_elites(make_gaussian_drift, make_drift_buffer):
    buffer = make_drift_buffer([[30]])
    far = [[0.0, 0.0, 0.0], [50.0, 50.0, 50.0]]
    # The far member adds nothing at the data, so the equal mixture halves the density.
    both = one_step_nll(make_gaussian_drift(member_biases=far), buffer)
    assert both == pytest.approx(EXACT_NLL + math.log(2), rel=1e-5)
    elite = one_step_nll(make_gaussian_drift(member_biases=far, elites=[0]), buffer)
    assert elite == pytest.approx(EXACT_NLL, rel=1e-5)


def test_mixture_density_uses_its_weights(make_mixture_drift, make_drift_buffer):
    buffer = make_drift_buffer([[30]])
    model = make_mixture_drift(0.25)
    assert isinstance(model, MixtureDensityModel)
    assert one_step_nll(model, buffer) == pytest.approx(EXACT_NLL + math.log(4), rel=1e-5)


def test_batches_give_the_same_mean(make_gaussian_drift, make_drift_buffer):
    buffer = make_drift_buffer([[33]])
    model = make_gaussian_drift(BIAS)
    whole = one_step_nll(model, buffer)
    assert one_step_nll(model, buffer, batch_size=7) == pytest.approx(whole, rel=1e-9)
    assert one_step_nll(model, buffer.transitions()) == pytest.approx(whole, rel=1e-9)


def test_models_without_a_likelihood_give_none(make_drift_model, make_drift_buffer):
    model = make_drift_model()
    assert not isinstance(model, (GaussianEnsembleModel, MixtureDensityModel))
    assert one_step_nll(model, make_drift_buffer([[10]])) is None


def test_bad_input(make_gaussian_drift, make_drift_buffer):
    model = make_gaussian_drift()
    empty = mbwrap.ReplayBuffer(model.observation_space, model.action_space, 10, device="cpu")
    with pytest.raises(ValueError, match=r"^data: holds no transitions"):
        one_step_nll(model, empty)
    with pytest.raises(ValueError, match=r"^batch_size: expected an int >= 1"):
        one_step_nll(model, make_drift_buffer([[10]]), batch_size=0)
    with pytest.raises(TypeError, match=r"^data: expected a ReplayBuffer or a Transition"):
        one_step_nll(model, [1, 2, 3])
    wide = mbwrap.ReplayBuffer(
        spaces.Box(-1e4, 1e4, (4,), np.float32), model.action_space, 10, device="cpu"
    )
    with pytest.raises(SpaceMismatchError, match=r"^data.observation_space"):
        one_step_nll(model, wide)
    model.predict_distribution = lambda state, action: (torch.zeros(1, 10, 3),) * 2
    with pytest.raises(SpaceMismatchError, match=r"for 10 transitions with 4 target features"):
        one_step_nll(model, make_drift_buffer([[10]]))


# ---------------------------------------------------------------------- built-in models

TINY = {"hidden_sizes": (16,), "weight_decay": 0.0, "device": "cpu"}


def test_builtin_gaussian_ensemble_density_is_the_mixture_of_its_elites(make_drift_buffer):
    buffer = make_drift_buffer([[40, 40]])
    model = mbwrap.make_model(
        "gaussian-ensemble",
        buffer.observation_space,
        buffer.action_space,
        ensemble_size=3,
        num_elites=2,
        **TINY,
    )
    torch.manual_seed(0)
    model.fit(buffer, epochs=1)
    data = buffer.transitions()
    mean, logvar = model.predict_distribution(data.obs, data.action)
    elites = model.elite_indices
    target = torch.cat([data.next_obs - data.obs, data.reward[:, None]], -1)
    normal = torch.distributions.Normal(mean[elites], torch.exp(0.5 * logvar[elites]))
    log_p = torch.logsumexp(normal.log_prob(target).sum(-1), 0) - math.log(2)
    assert one_step_nll(model, buffer) == pytest.approx(float(-log_p.mean()), rel=1e-4)


def test_builtin_mdn_density(make_drift_buffer):
    buffer = make_drift_buffer([[40, 40]])
    model = mbwrap.make_model(
        "mdn", buffer.observation_space, buffer.action_space, num_components=3, **TINY
    )
    torch.manual_seed(0)
    model.fit(buffer, epochs=1)
    data = buffer.transitions()
    logits, means, logvars = model.predict_mixture(data.obs, data.action)
    density = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=logits),
        torch.distributions.Independent(
            torch.distributions.Normal(means, torch.exp(0.5 * logvars)), 1
        ),
    )
    target = torch.cat([data.next_obs - data.obs, data.reward[:, None]], -1)
    expected = float(-density.log_prob(target).mean())
    assert one_step_nll(model, buffer) == pytest.approx(expected, rel=1e-4)


def test_builtin_deterministic_models_have_no_likelihood(make_drift_buffer):
    buffer = make_drift_buffer([[20]])
    for name, kwargs in (("mlp", TINY), ("linear", {"device": "cpu"})):
        model = mbwrap.make_model(name, buffer.observation_space, buffer.action_space, **kwargs)
        assert one_step_nll(model, buffer) is None
