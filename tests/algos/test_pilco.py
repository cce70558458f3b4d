"""PILCO: its controller, the costs it knows, learning the cart-pole swing-up, the SB3
surface (registry, predict, evaluate), exact save/load and resume, and errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.evaluation import evaluate_policy

import mbwrap
from mbwrap.algos.pilco import PILCO
from mbwrap.algos.pilco_config import KNOWN_COSTS
from mbwrap.envs import cartpole_swingup
from mbwrap.envs.cartpole_swingup import COST_WIDTH, cartpole_derivatives, tip_distance
from mbwrap.models.gp_moments import expansion_mean
from mbwrap.networks import RBFController
from mbwrap.testing import assert_load_restores_everything, assert_resume_is_exact

SWING_UP = "mbwrap/CartPoleSwingUp-v0"
TINY = {"horizon": 4, "num_basis": 4, "policy_iterations": 2, "model_kwargs": {"max_points": 20}}


def swing_up(steps: int = 6) -> gym.Env:
    return gym.make(SWING_UP, max_episode_steps=steps)


def test_rbf_controller_squashes_its_network_into_the_bounds():
    box = spaces.Box(np.array([-1.0, 0.0]), np.array([3.0, 2.0]), dtype=np.float32)
    gen = torch.Generator().manual_seed(0)
    controller = RBFController(3, box, 6, torch.zeros(3), torch.ones(3), generator=gen)
    with torch.no_grad():
        controller.weights.mul_(50.0)
    x = torch.randn(200, 3, dtype=torch.float64)
    u = controller(x)
    assert u.shape == (200, 2)
    assert torch.all(u[:, 0] >= -1.0) and torch.all(u[:, 0] <= 3.0) and torch.all(u[:, 1] >= 0)
    expected = torch.tensor([1.0, 1.0]) + torch.tensor([2.0, 1.0]) * torch.sin(
        expansion_mean(controller.expansion(), x)
    )
    assert torch.allclose(u, expected.double())


def test_a_mirrored_controller_is_odd_under_the_reflection():
    # u(R x) - mid = -(u(x) - mid): the same controller on both sides of a symmetric task.
    box = spaces.Box(np.array([0.0]), np.array([2.0]), dtype=np.float32)  # mid 1
    gen = torch.Generator().manual_seed(0)
    signs = torch.tensor([1.0, -1.0, -1.0])
    controller = RBFController(
        3, box, 6, torch.zeros(3), torch.ones(3), generator=gen, mirror=signs
    )
    x = torch.randn(100, 3, dtype=torch.float64)
    u, mirrored = controller(x), controller(x * signs.double())
    assert torch.allclose(mirrored - 1.0, -(u - 1.0))
    assert not torch.allclose(u, torch.ones_like(u))  # not odd by being constant
    # The expansion moment matching sees is the network the controller evaluates.
    expected = 1.0 + torch.sin(expansion_mean(controller.expansion(), x))
    assert torch.allclose(u, expected)
    assert controller.expansion().points.shape == (12, 3)
    plain = RBFController(3, box, 6, torch.zeros(3), torch.ones(3), generator=gen)
    assert not torch.allclose(plain(x * signs.double()) - 1.0, -(plain(x) - 1.0))


def test_pilco_with_a_mirror_acts_oddly_on_pendulum(tmp_path):
    algo = PILCO(gym.make("Pendulum-v1"), seed=0, device="cpu", mirror=[1.0, -1.0, -1.0], **TINY)
    obs = np.array([[0.3, 0.95, 0.7], [-0.9, 0.4, -2.0]], dtype=np.float32)
    flipped = obs * np.array([1.0, -1.0, -1.0], dtype=np.float32)
    action, _ = algo.predict(obs)
    assert np.allclose(algo.predict(flipped)[0], -action, atol=1e-6)
    assert np.abs(action).max() > 0
    algo.save(tmp_path / "pilco.zip")
    loaded = PILCO.load(tmp_path / "pilco.zip", env=gym.make("Pendulum-v1"), device="cpu")
    assert loaded.config.mirror == [1.0, -1.0, -1.0]
    assert np.allclose(loaded.predict(flipped)[0], -action, atol=1e-6)


@pytest.mark.parametrize("mirror", [[1.0, -1.0], [1.0, 0.0, -1.0]])
def test_a_mirror_that_is_not_one_sign_per_dimension_is_refused(mirror):
    box = spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
    with pytest.raises(ValueError, match="mirror: expected 3 signs"):
        RBFController(3, box, 4, torch.zeros(3), torch.ones(3), mirror=torch.tensor(mirror))
    with pytest.raises(ValueError, match="mirror: expected 3 signs"):
        PILCO(gym.make("Pendulum-v1"), mirror=mirror)
    with pytest.raises(TypeError, match="mirror: expected a list"):
        PILCO(gym.make("Pendulum-v1"), mirror="1, -1, -1")


def _cart_pole_energy(z: np.ndarray) -> float:
    """Kinetic plus potential energy of a cart with a uniform rod (centre of mass at half
    its length, inertia m l^2 / 12 about it), theta = 0 hanging down."""
    _, dx, dtheta, theta = z
    m, big_m = cartpole_swingup.POLE_MASS, cartpole_swingup.CART_MASS
    half = cartpole_swingup.POLE_LENGTH / 2
    vx, vy = dx + half * np.cos(theta) * dtheta, half * np.sin(theta) * dtheta
    inertia = m * (2 * half) ** 2 / 12
    kinetic = 0.5 * big_m * dx**2 + 0.5 * m * (vx**2 + vy**2) + 0.5 * inertia * dtheta**2
    return kinetic - m * cartpole_swingup.GRAVITY * half * np.cos(theta)


def test_cart_pole_dynamics_change_the_energy_by_the_power_of_the_forces():
    # dE/dt = (force - friction * x_dot) * x_dot along the derivatives: wrong masses,
    # lengths or signs in the equations of motion break this at random states.
    rng = np.random.default_rng(0)
    for _ in range(20):
        z = rng.normal(size=4) * np.array([1.0, 2.0, 3.0, 2.0])
        force = float(rng.normal() * 5.0)
        derivative = cartpole_derivatives(z, force)
        assert derivative[0] == z[1] and derivative[3] == z[2]
        eps = 1e-6
        gradient = np.array(
            [(_cart_pole_energy(z + eps * e) - _cart_pole_energy(z - eps * e)) / (2 * eps)
             for e in np.eye(4)]
        )
        power = (force - cartpole_swingup.FRICTION * z[1]) * z[1]
        assert gradient @ derivative == pytest.approx(power, rel=1e-6, abs=1e-6)
    # At rest hanging down or upright nothing moves; pushed, the cart accelerates forward.
    np.testing.assert_allclose(cartpole_derivatives(np.zeros(4), 0.0), 0.0)
    upright = np.array([0.0, 0.0, 0.0, np.pi])
    np.testing.assert_allclose(cartpole_derivatives(upright, 0.0), 0.0, atol=1e-12)
    assert cartpole_derivatives(np.zeros(4), 1.0)[1] > 0


def test_the_known_costs_are_the_tip_distance_over_the_width():
    target, weight = (torch.tensor(v, dtype=torch.float64) for v in KNOWN_COSTS[SWING_UP])
    obs = np.array([0.3, 1.0, -2.0, np.sin(2.0), np.cos(2.0)])
    gap = torch.as_tensor(obs) - target
    quad = gap @ weight @ gap
    assert quad.item() == pytest.approx(tip_distance(obs) ** 2 / COST_WIDTH**2)
    upright = np.array([0.0, 0.0, 0.0, 0.0, -1.0])
    assert tip_distance(upright) == pytest.approx(0.0, abs=1e-12)


def test_swing_up_env_passes_the_checkers_and_rewards_the_tip_near_upright():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(SWING_UP)
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=False)
    obs, _ = env.reset(seed=0)
    assert abs(obs[4] - 1.0) < 0.05  # hanging down
    _, reward, terminated, _, info = env.step(np.zeros(1, np.float32))
    assert 0.0 < reward < 0.01 and not terminated and not info["is_success"]


def test_registered_acts_evaluates_and_improves_its_predicted_cost():
    algo = mbwrap.make_algo("pilco", swing_up(), seed=0, device="cpu", **TINY)
    assert isinstance(algo, PILCO)
    algo.learn(12)  # one random episode, then one with the optimised controller
    assert algo.real_episodes == 2 and algo.policy_updates == 1 and len(algo.start_states) == 2
    action, _ = algo.predict(np.zeros(5, np.float32))
    assert action.shape == (1,) and -10.0 <= action[0] <= 10.0
    actions, _ = algo.predict(np.zeros((3, 5), np.float32))
    assert actions.shape == (3, 1)
    mean, _ = evaluate_policy(algo, swing_up(), n_eval_episodes=2, warn=False)
    assert 0.0 <= mean <= 6.0
    before = algo.predicted_costs().sum().item()
    algo.config.policy_iterations = 10
    algo._improve()
    assert algo.predicted_costs().sum().item() < before


def test_cost_scales_average_the_saturating_costs_of_each_width():
    # PILCO's scale mixture: the mean of the costs with W / s^2, each the expected
    # saturating cost at width times s.
    from mbwrap.algos.pilco_moments import expected_saturating_cost

    algo = PILCO(swing_up(), seed=0, device="cpu", cost_scales=[1.0, 2.0, 0.5], **TINY)
    algo.learn(6)  # one random episode: the GPs have data
    algo._refit()
    with torch.no_grad():
        means, covs = algo.predicted_observations()
        m, c = means.flatten(0, 1), covs.flatten(0, 1)
        expected = sum(
            expected_saturating_cost(m, c, algo._target, algo._weight / s**2)
            for s in (1.0, 2.0, 0.5)
        ) / 3
        got = algo.predicted_costs()
    torch.testing.assert_close(got, expected.reshape(means.shape[:2]).mean(1))
    algo.config.cost_scales = [1.0]
    with torch.no_grad():
        single = algo.predicted_costs()
    assert not torch.allclose(single, got)


def test_expected_cost_of_a_point_is_the_mean_saturating_cost_of_its_widths():
    algo = PILCO(
        gym.make("Pendulum-v1"), seed=0, device="cpu", **{**TINY, "cost_scales": [0.5, 1.0]}
    )
    obs = torch.tensor([[0.0, 1.0, 0.5], [1.0, 0.0, 0.0]], dtype=torch.float64)
    gap = obs - algo._target
    quad = (gap @ algo._weight * gap).sum(1)
    want = ((1 - torch.exp(-quad / 0.25 / 2)) + (1 - torch.exp(-quad / 2))) / 2
    got = algo.expected_cost(obs, torch.zeros(2, 3, 3, dtype=torch.float64))
    assert torch.allclose(got, want)
    assert got[1] == 0.0  # upright at rest costs nothing


def test_predicted_costs_per_start_average_to_the_predicted_costs():
    means = [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    env = gym.make("Pendulum-v1", max_episode_steps=6)
    algo = PILCO(env, seed=0, device="cpu", **{**TINY, "start_means": means})
    algo.learn(12)
    per_start = algo.predicted_costs(per_start=True)
    assert per_start.shape == (TINY["horizon"], len(means))
    assert torch.allclose(per_start.mean(1), algo.predicted_costs())
    # The start at rest upright costs least at the first step, the one hanging down most.
    assert per_start[0, 2] < per_start[0, 1] < per_start[0, 0]


def test_particles_give_one_objective_per_optimisation_and_follow_the_gps():
    """With ``propagation="particles"`` the predicted costs are the same on every call of
    one optimisation (fixed noise), change with the next policy update, agree with moment
    matching where the state distribution stays one narrow Gaussian, and carry a
    gradient to the controller."""
    means = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    env = gym.make("Pendulum-v1", max_episode_steps=6)
    settings = {**TINY, "start_means": means, "start_std": 0.01}
    algo = PILCO(env, seed=0, device="cpu", **settings, propagation="particles", particles=400)
    algo.learn(12)
    first = algo.predicted_costs(per_start=True)
    assert first.shape == (TINY["horizon"], len(means))
    assert torch.equal(first, algo.predicted_costs(per_start=True))
    algo.policy_updates += 1
    assert not torch.equal(first, algo.predicted_costs(per_start=True))
    moments = PILCO(env, seed=0, device="cpu", **settings)
    moments.model.load_state_dict(algo.model.state_dict())
    moments.controller.load_state_dict(algo.controller.state_dict())
    assert torch.allclose(first, moments.predicted_costs(per_start=True), atol=0.03)
    first.sum().backward()
    grads = [p.grad for p in algo.controller.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_particle_costs_follow_a_known_linear_drift():
    """Through a stub model whose state changes by exactly +0.1 a step (no variance
    besides a tiny noise), every particle drifts alike: the cost of a start at 0 with
    the identity as cost is 0.1 t at step t, whatever the controller."""
    from mbwrap.algos.pilco_particles import particle_costs

    class Drift:
        def to_observation(self, state):
            return state

        def to_state(self, obs):
            return obs

        def predict_delta(self, inputs):
            n = inputs.shape[0]
            return torch.full((n, 1), 0.1, dtype=inputs.dtype), torch.full(
                (n, 1), 1e-20, dtype=inputs.dtype
            )

    mean = torch.zeros(2, 1, dtype=torch.float64)
    cov = 0.0 * torch.eye(1, dtype=torch.float64).expand(2, 1, 1) + 1e-20
    costs = particle_costs(
        Drift(), lambda obs: obs * 0, lambda obs: obs[:, 0], mean, cov, 4, 3,
        torch.Generator().manual_seed(0),
    )
    expected = 0.1 * torch.arange(1, 5, dtype=torch.float64)
    assert costs.shape == (4, 2)
    assert torch.allclose(costs, expected[:, None].expand(4, 2), atol=1e-8)


def test_propagation_must_be_moments_or_particles():
    with pytest.raises(ValueError, match="propagation"):
        PILCO(swing_up(), seed=0, device="cpu", **{**TINY, "propagation": "sampled"})


@pytest.mark.parametrize("scales", [[], [1.0, 0.0], [-1.0]])
def test_cost_scales_must_be_positive_numbers(scales):
    with pytest.raises(ValueError, match="cost_scales"):
        PILCO(swing_up(), cost_scales=scales, **TINY)


def test_save_load_and_resume_are_exact(tmp_path):
    algo = PILCO(swing_up(), seed=0, device="cpu", **TINY)
    algo.learn(12)
    assert_load_restores_everything(algo, tmp_path, env=swing_up(), device="cpu")
    make = lambda: PILCO(swing_up(), seed=0, device="cpu", **TINY)  # noqa: E731
    assert_resume_is_exact(make, swing_up, 12, 6, tmp_path)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="cost_target, cost_weight"):
        PILCO(gym.make("MountainCarContinuous-v0"))
    with pytest.raises(ValueError, match="cost_target, cost_weight"):
        PILCO(swing_up(), cost_target=[0.0] * 5)
    with pytest.raises(ValueError, match="cost_target, cost_weight"):
        PILCO(swing_up(), cost_target=[0.0] * 3, cost_weight=[[1.0] * 3] * 3)
    with pytest.raises(ValueError, match="angle_pairs"):
        PILCO(swing_up(), angle_pairs=[[3, 3]])
    with pytest.raises(ValueError, match="angle_pairs"):
        PILCO(swing_up(), model_kwargs={"angle_pairs": [[3, 4]]})


def test_pilco_starts_swinging_the_pole_up():
    """Five real episodes (one random): the controller already brings the tip near
    upright for part of the episode, which random forces never do (returns of 0.0-0.1)."""
    env = gym.make(SWING_UP)
    settings = {"policy_iterations": 20, "model_kwargs": {"max_points": 100}}
    algo = PILCO(env, seed=0, device="cpu", **settings)
    algo.learn(150)
    mean, _ = evaluate_policy(algo, gym.make(SWING_UP), n_eval_episodes=5, warn=False)
    assert mean >= 1.0


def test_a_non_finite_optimisation_keeps_the_previous_controller(monkeypatch):
    from mbwrap.errors import NonFiniteModelWarning

    algo = PILCO(swing_up(), seed=0, device="cpu", **TINY)
    algo.learn(12)
    before = {k: v.clone() for k, v in algo.controller.state_dict().items()}
    honest = algo.predicted_costs

    def overflowing() -> torch.Tensor:
        return honest() * torch.tensor(float("nan"), dtype=torch.float64)

    monkeypatch.setattr(algo, "predicted_costs", overflowing)
    with pytest.warns(NonFiniteModelWarning, match="previous controller"):
        algo._improve()
    for key, value in algo.controller.state_dict().items():
        assert torch.equal(value, before[key])


@pytest.mark.parametrize("angles", [[], None])
def test_predicted_trajectory_is_the_propagated_state_distribution(angles):
    """Without angles the state is the observation (5 dimensions); with the env's angle
    (``None``: sin and cos of the pole's angle) it is (x, x_dot, theta_dot, theta)."""
    from mbwrap.algos.pilco_moments import expected_saturating_cost, propagate

    algo = PILCO(swing_up(), seed=0, device="cpu", angle_pairs=angles, **TINY)
    algo.learn(12)
    means, covs = algo.predicted_trajectory()
    dim = 5 if angles == [] else 4
    assert means.shape == (4, 1, dim) and covs.shape == (4, 1, dim, dim)
    mean, cov = algo.start_distribution()
    controller = algo.controller
    mean, cov = propagate(
        algo.model.expansion(),
        algo.model.hyperparameters()[2].detach(),
        controller.expansion(),
        controller.action_half,
        mean,
        cov,
        controller.action_mid,
        algo.model.layout(),
    )
    assert torch.allclose(means[0], mean) and torch.allclose(covs[0], cov)
    obs_mean, obs_cov = algo.model.observation_moments(mean, cov)
    if angles == []:
        assert torch.equal(obs_mean, mean) and torch.equal(obs_cov, cov)
    observed_means, observed_covs = algo.predicted_observations()
    assert torch.allclose(observed_means[0], obs_mean) and torch.allclose(observed_covs[0], obs_cov)
    first = expected_saturating_cost(obs_mean, obs_cov, algo._target, algo._weight)
    assert torch.allclose(algo.predicted_costs()[0], first[0])


def test_an_overflow_mid_optimisation_keeps_the_best_controller_evaluated(monkeypatch):
    """torch's line search cannot bracket a NaN: the optimisation ends at the first
    non-finite evaluation, and the lowest cost evaluated before it is kept."""
    algo = PILCO(swing_up(), seed=0, device="cpu", **{**TINY, "policy_iterations": 10})
    algo.learn(12)
    honest, calls, seen = algo.predicted_costs, [0], []

    def overflowing_late() -> torch.Tensor:
        calls[0] += 1
        costs = honest()
        if calls[0] > 4:
            return costs * torch.tensor(float("nan"), dtype=torch.float64)
        seen.append(
            (float(costs.sum()), {k: v.clone() for k, v in algo.controller.state_dict().items()})
        )
        return costs

    monkeypatch.setattr(algo, "predicted_costs", overflowing_late)
    cost, state = algo._optimise_controller()
    assert calls[0] == 5 and len(seen) == 4
    lowest, kept = min(seen, key=lambda pair: pair[0])
    assert cost == lowest and lowest < seen[0][0]
    for key, value in state.items():
        assert torch.equal(value, kept[key])


def improve_with_fake_costs(monkeypatch, **settings) -> tuple[PILCO, list[dict]]:
    """One ``_improve`` of 3 restarts whose optimisations return the costs 5, 2 and 4
    without moving the controller: ``(algo, the controller each one started from)``."""
    algo = PILCO(swing_up(), seed=0, device="cpu", **{**TINY, "restarts": 3, **settings})
    algo.learn(12)
    costs, states = iter([5.0, 2.0, 4.0]), []

    def fake_optimise() -> tuple[float, dict[str, torch.Tensor]]:
        states.append({k: v.clone() for k, v in algo.controller.state_dict().items()})
        return next(costs), states[-1]

    monkeypatch.setattr(algo, "_optimise_controller", fake_optimise)
    algo._improve()
    return algo, states


def test_restarts_keep_the_lowest_predicted_cost(monkeypatch):
    algo, states = improve_with_fake_costs(monkeypatch)
    assert len(states) == 3
    # A restart starts from fresh weights and lengthscales, not the current controller.
    assert not torch.equal(states[1]["weights"], states[0]["weights"])
    assert torch.equal(
        states[1]["log_lengthscales"], torch.zeros_like(states[1]["log_lengthscales"])
    )
    for key, value in algo.controller.state_dict().items():
        assert torch.equal(value, states[1][key])


def test_spread_restarts_start_near_the_best_controller_so_far(monkeypatch):
    algo, states = improve_with_fake_costs(monkeypatch, restart_spread=0.1)
    assert len(states) == 3
    for key in ("weights", "log_lengthscales", "centers"):
        first, second, third = (state[key] for state in states)
        # Each restart moves every parameter of the best controller so far: the second
        # from the first (cost 5), the third from the second (cost 2), not from the first.
        assert not torch.equal(second, first) and not torch.equal(third, second)
        for before, after in ((first, second), (second, third)):
            scale = before.std() if before.std() > 0 else 1.0
            assert (after - before).abs().max() < 6 * 0.1 * scale
    for key, value in algo.controller.state_dict().items():
        assert torch.equal(value, states[1][key])


def test_restart_spread_must_not_be_negative():
    with pytest.raises(ValueError, match="restart_spread"):
        PILCO(swing_up(), seed=0, device="cpu", **{**TINY, "restart_spread": -0.1})


def test_start_means_are_thestart_distribution_given_by_the_task():
    """Given ``start_means``, PILCO propagates exactly those (as model states, the angle
    from its sine and cosine) with covariance ``start_std^2 I``, not the observed starts."""
    means = [[0.0, 0.0, 0.0, 0.0, 1.0], [0.5, 0.0, 0.0, 1.0, 0.0]]  # hanging, sideways
    algo = PILCO(swing_up(), seed=0, device="cpu", start_means=means, start_std=0.2, **TINY)
    algo.learn(12)
    assert algo.start_states  # observed starts exist, and are not used
    mean, cov = algo.start_distribution()
    state = algo.model.to_state(torch.tensor(means, dtype=torch.float64))
    assert torch.allclose(mean, state) and mean.shape == (2, 4)
    assert torch.allclose(cov, 0.04 * torch.eye(4, dtype=torch.float64).expand(2, 4, 4))
    assert algo.predicted_trajectory()[0].shape == (4, 2, 4)


@pytest.mark.parametrize(
    ("means", "match"),
    [([[0.0, 0.0, 0.0]], r"\[k >= 1, 5\], got shape \[1, 3\]"),
     ([], r"got shape \[0\]"),
     ([[0.0, 0.0, float("nan"), 0.0, 1.0]], "NaN")],
)
def test_start_means_of_the_wrong_shape_are_refused(means, match):
    with pytest.raises(ValueError, match=f"start_means: .*{match}"):
        PILCO(swing_up(), seed=0, device="cpu", start_means=means, **TINY)


def test_the_pendulum_preset_starts_from_eight_angles_around_the_circle():
    """Pendulum-v1 starts at a uniform angle: the preset's start distribution is eight
    Gaussians k pi / 4 apart, at rest, as the model's (angle, velocity) states."""
    from mbwrap.algos.presets import PRESETS

    preset = PRESETS[("pilco", "Pendulum-v1")]
    algo = PILCO(gym.make("Pendulum-v1"), seed=0, device="cpu", **preset)
    mean, cov = algo.start_distribution()
    assert mean.shape == (8, 2) and cov.shape == (8, 2, 2)
    # The state is (velocity, angle); the angles k pi / 4, k = -3..4, velocities 0.
    expected = torch.arange(-3, 5, dtype=torch.float64) * torch.pi / 4
    assert torch.allclose(mean[:, 1], expected) and torch.equal(mean[:, 0], torch.zeros(8).double())
    assert torch.allclose(cov, 0.16 * torch.eye(2, dtype=torch.float64).expand(8, 2, 2))


def test_the_pendulum_preset_charges_a_pole_wobbling_near_the_top():
    """The preset averages PILCO's width 0.5 with width 0.25: a pole 0.3 rad from upright
    costs more than under width 0.5 alone, and upright costs nothing under either."""
    from mbwrap.algos.presets import PRESETS

    preset = PRESETS[("pilco", "Pendulum-v1")]
    costs = []
    for scales in (preset["cost_scales"], [1.0]):
        settings = {**preset, "cost_scales": scales}
        algo = PILCO(gym.make("Pendulum-v1"), seed=0, device="cpu", **settings)
        angles = torch.tensor([0.0, 0.3], dtype=torch.float64)
        mean = torch.stack([angles.cos(), angles.sin(), torch.zeros(2, dtype=torch.float64)], -1)
        costs.append(algo.expected_cost(mean, torch.zeros(2, 3, 3, dtype=torch.float64)))
    preset_costs, plain_costs = costs
    assert preset_costs[0] == 0 and plain_costs[0] == 0
    assert preset_costs[1] > plain_costs[1] > 0


def test_start_centres_are_drawn_from_thestart_distribution():
    """``centres="start"`` draws the controller's first centres from the start
    distribution (a component at random, then its Gaussian over the model's states), as
    PILCO's released code draws them from mu0 and S0; ``"data"`` puts them on real
    states."""
    means = [[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]  # Pendulum upright and hanging, at rest
    algo = PILCO(
        gym.make("Pendulum-v1"), seed=0, device="cpu", start_means=means, start_std=0.1,
        centres="start", **TINY,
    )
    samples = algo.model.to_state(algo._start_samples(4000))  # (velocity, angle)
    angle, velocity = samples[:, 1], samples[:, 0]
    upright = angle.abs() < 1.0
    assert 0.45 < upright.double().mean() < 0.55  # both components, equally often
    assert abs(float(angle[upright].std()) - 0.1) < 0.01
    # Hanging, the angle wraps to +-(pi - |e|), e ~ N(0, 0.1^2): E|angle| = pi - 0.1 sqrt(2/pi).
    assert abs(float(angle[~upright].abs().mean()) - (torch.pi - 0.08)) < 0.01
    assert abs(float(velocity.std()) - 0.1) < 0.01

    pendulum = gym.make("Pendulum-v1", max_episode_steps=20)
    for centres in ("start", "data"):
        algo = PILCO(pendulum, seed=0, device="cpu", start_means=means, start_std=0.1,
                     centres=centres, **TINY)
        algo.learn(20)  # one random episode of real states
        algo._reinitialise_controller(weights=False)
        placed = algo.controller.centers.detach()
        real = algo.buffer.transitions().obs.double()
        on_real = torch.cdist(placed, real).min(1).values < 1e-6
        angle = algo.model.to_state(placed)[:, 1].abs()
        if centres == "start":
            assert not on_real.any() and (angle < 1.0).any() and (angle > 2.0).any()
        else:
            assert on_real.all()
    with pytest.raises(ValueError, match="centres"):
        PILCO(pendulum, seed=0, device="cpu", centres="mu0", **TINY)
