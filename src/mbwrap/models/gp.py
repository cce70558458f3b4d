"""Gaussian-process dynamics: one GP per state dimension on the change of state, with a
squared-exponential ARD kernel and hyperparameters from the marginal likelihood, as PILCO
learns them (Deisenroth & Rasmussen 2011, Section 2.1)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from gymnasium import spaces

from mbwrap.models.base import WorldModel
from mbwrap.models.gp_moments import KernelExpansion, expansion_mean, se_kernel, trig_augment
from mbwrap.space_support import SpaceSupport
from mbwrap.types import ModelStep

# A floor on the noise variance keeps K + sigma^2 I well conditioned in float64.
_MIN_NOISE = 1e-6
# Added to K_uu's diagonal (relative to the signal variance): inducing inputs may come
# close together while they are optimised.
_JITTER = 1e-6


class GPModel(WorldModel):
    """``s' = s + Delta``, ``Delta_a ~ GP(0, k_a)`` on the input ``(s, a)``, one GP per
    state dimension ``a`` with its own lengthscales, signal and noise variance.

    :meth:`fit` maximises the log marginal likelihood of all GPs (Adam). Past
    ``max_points`` transitions the GPs are sparse: ``max_points`` inducing inputs, started
    on a farthest-point subset of the real data and optimised with the hyperparameters,
    and the FITC approximation (Snelson & Ghahramani 2006) conditioned on all the data, as
    PILCO's code does past a few hundred points. Either way the fitted GPs are a kernel
    expansion over ``n <= max_points`` points with weights ``beta`` and a matrix
    ``inv_k`` (the exact GP's ``(K + sigma^2 I)^-1``; FITC's ``K_uu^-1 - Q^-1``), which is
    what moment matching needs (:meth:`expansion`,
    :func:`~mbwrap.models.gp_moments.moment_match`). :meth:`step` samples the GP's
    predictive distribution (posterior plus noise); :meth:`mean_step` is its mean. Works
    in float64.

    :param max_points: the most points of the exact GPs, and the number of inducing
        inputs beyond (PILCO used full GPs up to a few hundred points and sparse ones
        beyond).
    :param fit_iterations: Adam steps (learning rate 0.05) per :meth:`fit`.
    :param angle_pairs: ``[(sin_dim, cos_dim), ...]``: observation dimensions holding the
        sine and cosine of one angle each. The GPs then model the change of the angle
        itself (one GP per pair, not two) on inputs that keep the sine and cosine, as
        PILCO models angles: the model's *state* (:meth:`to_state`) is the observation
        with each pair replaced by its angle, appended after the other dimensions.
    :param snr_limit: the signal-to-noise ratio (of standard deviations) the likelihood
        is steeply penalised past; :param lengthscale_limit: the factor on each input's
        standard deviation past which (either way) a lengthscale is (both
        :func:`hyperparameter_curb`, 500 and 100 as in PILCO's released code). ``None``
        for neither: the plain marginal likelihood.
    """

    registry_name = "gp"
    space_support = SpaceSupport(
        observations=("Box",),
        actions=("Box",),
        observation_note="flat Box states: one GP per dimension",
        action_note="flat Box actions",
    )

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        env_id: str | None = None,
        device: str | torch.device = "auto",
        max_points: int = 300,
        fit_iterations: int = 200,
        angle_pairs: list[tuple[int, int]] | list[list[int]] = (),  # type: ignore[assignment]
        snr_limit: float | None = 500.0,
        lengthscale_limit: float | None = 100.0,
    ) -> None:
        super().__init__(observation_space, action_space, env_id=env_id, device=device)
        for name, space in (
            ("observation_space", observation_space),
            ("action_space", action_space),
        ):
            if not isinstance(space, spaces.Box) or len(space.shape) != 1:
                raise ValueError(f"{name}: GPModel needs a flat Box, got {space!r}")
        if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 2:
            raise ValueError(f"max_points: expected an int >= 2, got {max_points!r}")
        self.max_points, self.fit_iterations = max_points, int(fit_iterations)
        if (snr_limit is None) != (lengthscale_limit is None):
            raise ValueError("snr_limit, lengthscale_limit: give both or neither")
        for name, limit in (("snr_limit", snr_limit), ("lengthscale_limit", lengthscale_limit)):
            if limit is not None and not limit > 1:
                raise ValueError(f"{name}: expected a number > 1 or None, got {limit!r}")
        self.snr_limit, self.lengthscale_limit = snr_limit, lengthscale_limit
        self.obs_dim = observation_space.shape[0]
        self.angle_pairs = _check_angle_pairs(angle_pairs, self.obs_dim)
        angled = [d for pair in self.angle_pairs for d in pair]
        #: Observation dimensions kept as they are; the state is them, then the angles.
        self.rest_dims = [d for d in range(self.obs_dim) if d not in angled]
        self.state_dim = len(self.rest_dims) + len(self.angle_pairs)
        self.input_dim = self.obs_dim + action_space.shape[0]
        kw = {"dtype": torch.float64, "device": self.device}
        self.log_lengthscales = torch.nn.Parameter(
            torch.zeros(self.state_dim, self.input_dim, **kw)
        )
        self.log_signal_var = torch.nn.Parameter(torch.zeros(self.state_dim, **kw))
        self.log_noise_var = torch.nn.Parameter(torch.full((self.state_dim,), -4.0, **kw))
        #: The expansion's points ``[n, D]`` (training inputs, or inducing inputs past
        #: ``max_points``), its weights ``[E, n]`` and matrices ``[E, n, n]``.
        self.register_buffer("inputs", torch.zeros(0, self.input_dim, **kw))
        self.register_buffer("beta", torch.zeros(self.state_dim, 0, **kw))
        self.register_buffer("inv_k", torch.zeros(self.state_dim, 0, 0, **kw))

    # ------------------------------------------------------------------ states and angles
    def to_state(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, S]`` states (the other dimensions, then each pair's angle ``atan2(sin,
        cos)``) of observations ``[B, D]``."""
        angles = [torch.atan2(obs[:, s], obs[:, c]) for s, c in self.angle_pairs]
        return torch.cat([obs[:, self.rest_dims], *[a.unsqueeze(1) for a in angles]], 1)

    def to_observation(self, state: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` observations of states ``[B, S]`` (the inverse of :meth:`to_state`)."""
        obs = state.new_empty(state.shape[0], self.obs_dim)
        rest = len(self.rest_dims)
        obs[:, self.rest_dims] = state[:, :rest]
        for i, (s, c) in enumerate(self.angle_pairs):
            obs[:, s], obs[:, c] = torch.sin(state[:, rest + i]), torch.cos(state[:, rest + i])
        return obs

    def state_change(self, obs: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """``[B, S]`` the GPs' targets: the change of state, angles wrapped to
        ``(-pi, pi]``."""
        change = self.to_state(next_obs) - self.to_state(obs)
        rest = len(self.rest_dims)
        wrapped = torch.remainder(change[:, rest:] + math.pi, 2 * math.pi) - math.pi
        return torch.cat([change[:, :rest], wrapped], 1)

    def layout(self) -> StateLayout:
        """Where the observation, the angles and the state sit in the vectors that moment
        matching uses (:class:`StateLayout`)."""
        rest, k = len(self.rest_dims), len(self.angle_pairs)
        inputs = [0] * self.obs_dim  # y = (state, sines, cosines)
        for i, d in enumerate(self.rest_dims):
            inputs[d] = i
        for i, (s, c) in enumerate(self.angle_pairs):
            inputs[s], inputs[c] = self.state_dim + i, self.state_dim + k + i
        inputs += list(range(rest, rest + k))  # then the angles themselves
        state_in_inputs = [*self.rest_dims, *range(self.obs_dim, self.obs_dim + k)]
        as_long = lambda v: torch.tensor(v, dtype=torch.long, device=self.device)  # noqa: E731
        return StateLayout(
            as_long(list(range(rest, rest + k))), as_long(inputs), as_long(state_in_inputs)
        )

    def observation_moments(
        self, mean: torch.Tensor, cov: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact mean ``[B, D]`` and covariance ``[B, D, D]`` of the observation for a
        Gaussian state ``N(mean [B, S], cov [B, S, S])``."""
        layout = self.layout()
        y_mean, y_cov = trig_augment(mean, cov, layout.angles)
        obs = layout.inputs[: self.obs_dim]
        return y_mean[:, obs], y_cov[:, obs][:, :, obs]

    # ------------------------------------------------------------------ hyperparameters
    def hyperparameters(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(lengthscales [E, D], signal_var [E], noise_var [E])``."""
        noise = self.log_noise_var.exp() + _MIN_NOISE
        return self.log_lengthscales.exp(), self.log_signal_var.exp(), noise

    def negative_log_likelihood(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Minus the summed log marginal likelihood of the ``E`` exact GPs on ``inputs:
        [N, D]`` and ``targets: [E, N]``, per data point (Rasmussen & Williams 2006,
        eq. 2.30)."""
        n = inputs.shape[0]
        ell, alpha2, noise = self.hyperparameters()
        k = se_kernel(inputs, inputs, ell, alpha2)
        k = k + noise[:, None, None] * torch.eye(n, dtype=k.dtype, device=k.device)
        chol = torch.linalg.cholesky(k)
        alpha = torch.cholesky_solve(targets.unsqueeze(-1), chol)
        fit = 0.5 * (targets.unsqueeze(-1) * alpha).sum((-1, -2))
        log_det = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        return (fit + log_det + 0.5 * n * math.log(2 * math.pi)).sum() / n

    # ------------------------------------------------------------------ fitting
    def fit(self, buffer: Any, **kwargs: Any) -> dict[str, Any]:
        """Fit the GPs on every real transition in ``buffer`` (sparse past
        ``max_points``); returns ``nll`` (per point, summed over GPs; FITC's past
        ``max_points``), ``points`` (of the expansion) and ``data`` (transitions)."""
        if kwargs:
            raise TypeError(f"fit: GPModel takes no options, got {sorted(kwargs)}")
        batch = buffer.transitions()
        obs = batch.obs.to(self.device, torch.float64).reshape(len(batch), -1)
        act = batch.action.to(self.device, torch.float64).reshape(len(batch), -1)
        nxt = batch.next_obs.to(self.device, torch.float64).reshape(len(batch), -1)
        inputs = torch.cat([obs, act], 1)
        targets = self.state_change(obs, nxt).T.contiguous()
        with torch.no_grad():  # start from the data's scales (PILCO's initialisation)
            spread = inputs.std(0).clamp(min=1e-3)
            self.log_lengthscales.copy_(spread.log().expand_as(self.log_lengthscales))
            variance = targets.var(1).clamp(min=1e-8)
            self.log_signal_var.copy_(variance.log())
            self.log_noise_var.copy_((variance / 100).log())
        sparse = len(inputs) > self.max_points
        inducing = torch.nn.Parameter(inputs[farthest_points(inputs, self.max_points)].clone())

        def likelihood() -> torch.Tensor:
            if sparse:
                return fitc_negative_log_likelihood(
                    inducing, inputs, targets, *self.hyperparameters()
                )
            return self.negative_log_likelihood(inputs, targets)

        def loss() -> torch.Tensor:
            if self.snr_limit is None or self.lengthscale_limit is None:
                return likelihood()
            ell, alpha2, noise = self.hyperparameters()
            curb = hyperparameter_curb(
                ell.log(),
                0.5 * alpha2.log(),
                0.5 * noise.log(),
                spread.log(),
                self.snr_limit,
                self.lengthscale_limit,
            )
            return likelihood() + curb / len(inputs)  # the likelihood is per point

        # Adam rather than L-BFGS: its line search can step to hyperparameters whose
        # kernel matrix is not positive definite in float64.
        parameters = [*self.parameters(), *([inducing] if sparse else [])]
        optimizer = torch.optim.Adam(parameters, lr=0.05)
        for _ in range(self.fit_iterations):
            optimizer.zero_grad()
            loss().backward()
            optimizer.step()
        with torch.no_grad():
            nll = float(likelihood())
            ell, alpha2, noise = self.hyperparameters()
            if sparse:
                points = inducing.detach()
                beta, inv_k = fitc_posterior(points, inputs, targets, ell, alpha2, noise)
            else:
                points = inputs
                beta, inv_k = exact_posterior(inputs, targets, ell, alpha2, noise)
        self.inputs, self.beta, self.inv_k = points, beta, inv_k
        return {"nll": nll, "points": int(points.shape[0]), "data": int(inputs.shape[0])}

    # ------------------------------------------------------------------ predicting
    def expansion(self) -> KernelExpansion:
        """The fitted GPs as a :class:`~mbwrap.models.gp_moments.KernelExpansion` of the
        state changes, with their ``inv_k`` (see the class docstring)."""
        if self.inputs.shape[0] == 0:
            raise RuntimeError("GPModel: call fit() before predicting")
        ell, alpha2, _ = (h.detach() for h in self.hyperparameters())
        return KernelExpansion(self.inputs, self.beta, ell, alpha2, self.inv_k)

    def predict_delta(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictive mean and variance (posterior plus noise) of the state change
        (:meth:`state_change`): ``([B, S], [B, S])`` from ``inputs: [B, D + U]``."""
        gp = self.expansion()
        x = inputs.to(torch.float64)
        k = se_kernel(gp.points, x, gp.lengthscales, gp.signal_var)  # [E, n, B]
        variance = gp.signal_var[:, None] - torch.einsum("enb,enm,emb->eb", k, gp.inv_k, k)
        noise = self.hyperparameters()[2].detach()
        return expansion_mean(gp, x), (variance.clamp(min=0.0) + noise[:, None]).T

    def step(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        member: torch.Tensor | None = None,
    ) -> ModelStep:
        inputs = torch.cat([state.reshape(len(state), -1), action.reshape(len(action), -1)], 1)
        mean, variance = self.predict_delta(inputs)
        noise = torch.randn(mean.shape, dtype=mean.dtype, device=mean.device, generator=generator)
        delta = mean + variance.sqrt() * noise
        return ModelStep(next_state=self._next(state, delta), reward=None, terminated=None)

    def mean_step(
        self, state: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        inputs = torch.cat([state.reshape(len(state), -1), action.reshape(len(action), -1)], 1)
        delta = expansion_mean(self.expansion(), inputs.to(torch.float64))
        return self._next(state, delta), None

    def _next(self, obs: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """The observation ``[B, D]`` after the state change ``delta: [B, S]``."""
        if not self.angle_pairs:
            return obs + delta.to(obs.dtype)
        flat = obs.reshape(len(obs), -1).to(torch.float64)
        return self.to_observation(self.to_state(flat) + delta).to(obs.dtype).reshape(obs.shape)

    # ------------------------------------------------------------------ persistence
    def get_config(self) -> dict[str, Any]:
        return {
            "max_points": self.max_points,
            "fit_iterations": self.fit_iterations,
            "angle_pairs": [list(pair) for pair in self.angle_pairs],
            "snr_limit": self.snr_limit,
            "lengthscale_limit": self.lengthscale_limit,
        }

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        # The stored expansion sets the number of points the GPs are expanded over.
        for name in ("inputs", "beta", "inv_k"):
            if name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[name], device=self.device))
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


class StateLayout(NamedTuple):
    """Index maps of a :class:`GPModel` with angles, for moment matching.

    Moment matching carries the state ``z`` (``[S]``: the other observation dimensions,
    then the angles) and augments it to ``y = (z, sin angles, cos angles)``
    (:func:`~mbwrap.models.gp_moments.trig_augment`). The GPs and the controller take the
    *inputs* ``x = y[inputs]``: the observation, then the angles (which they ignore but
    which must covary with their outputs).

    :param angles: ``[k]``, the angles' dimensions in ``z``.
    :param inputs: ``[D + k]``, indices into ``y``.
    :param state_in_inputs: ``[S]``, where each dimension of ``z`` sits in ``x``.
    """

    angles: torch.Tensor
    inputs: torch.Tensor
    state_in_inputs: torch.Tensor


def _check_angle_pairs(pairs: Any, obs_dim: int) -> list[tuple[int, int]]:
    try:
        checked = [(int(s), int(c)) for s, c in pairs]
    except (TypeError, ValueError):
        raise ValueError(
            f"angle_pairs: expected [(sin_dim, cos_dim), ...], got {pairs!r}"
        ) from None
    flat = [d for pair in checked for d in pair]
    if len(set(flat)) != len(flat) or any(not 0 <= d < obs_dim for d in flat):
        raise ValueError(
            f"angle_pairs: expected distinct observation dimensions in [0, {obs_dim}), "
            f"got {pairs!r}"
        )
    return checked


def hyperparameter_curb(
    log_lengthscales: torch.Tensor,
    log_signal_std: torch.Tensor,
    log_noise_std: torch.Tensor,
    log_input_std: torch.Tensor,
    snr_limit: float = 500.0,
    lengthscale_limit: float = 100.0,
    power: int = 30,
) -> torch.Tensor:
    """A penalty, added to the summed negative log marginal likelihood, that is about zero
    while each GP's signal-to-noise ratio ``sigma_f / sigma_n`` stays below
    ``snr_limit`` and each lengthscale within ``lengthscale_limit`` times its input's
    standard deviation, and rises steeply (``power``) past them: ``sum ((log ell -
    log std_x) / log lengthscale_limit)^p + sum ((log sigma_f - log sigma_n) / log
    snr_limit)^p``. On noiseless simulated data the likelihood alone drives the noise to
    the floor, and the GPs become overconfident far from the data; PILCO's released code
    fits its dynamics GPs with this curb.

    :param log_lengthscales: ``[E, D]``; :param log_signal_std: ``[E]``;
    :param log_noise_std: ``[E]``; :param log_input_std: ``[D]``.
    :returns: a scalar.
    """
    lengths = ((log_lengthscales - log_input_std) / math.log(lengthscale_limit)).pow(power)
    snr = ((log_signal_std - log_noise_std) / math.log(snr_limit)).pow(power)
    return lengths.sum() + snr.sum()


def exact_posterior(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    lengthscales: torch.Tensor,
    signal_var: torch.Tensor,
    noise: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact GPs' ``beta = (K + sigma^2 I)^-1 y`` ``[E, n]`` and ``(K + sigma^2
    I)^-1`` ``[E, n, n]`` from ``inputs: [n, D]``, ``targets: [E, n]``."""
    n = inputs.shape[0]
    k = se_kernel(inputs, inputs, lengthscales, signal_var)
    k = k + noise[:, None, None] * torch.eye(n, dtype=k.dtype, device=k.device)
    inv_k = torch.cholesky_inverse(torch.linalg.cholesky(k))
    return torch.einsum("enm,em->en", inv_k, targets), inv_k


def _fitc_parts(
    inducing: torch.Tensor,
    inputs: torch.Tensor,
    lengthscales: torch.Tensor,
    signal_var: torch.Tensor,
    noise: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(chol K_uu [E, m, m], V = L^-1 K_uf [E, m, N], Lambda [E, N], chol A [E, m, m])``
    with ``Lambda = diag(K_ff - Q_ff) + sigma^2`` and ``A = I + V Lambda^-1 V^T``."""
    m = inducing.shape[0]
    eye = torch.eye(m, dtype=inducing.dtype, device=inducing.device)
    k_uu = (
        se_kernel(inducing, inducing, lengthscales, signal_var)
        + _JITTER * signal_var[:, None, None] * eye
    )
    chol_uu = torch.linalg.cholesky(k_uu)
    v = torch.linalg.solve_triangular(
        chol_uu, se_kernel(inducing, inputs, lengthscales, signal_var), upper=False
    )
    lam = (signal_var[:, None] - v.square().sum(1)).clamp(min=0.0) + noise[:, None]
    chol_a = torch.linalg.cholesky(eye + (v / lam.unsqueeze(1)) @ v.transpose(1, 2))
    return chol_uu, v, lam, chol_a


def fitc_negative_log_likelihood(
    inducing: torch.Tensor,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    lengthscales: torch.Tensor,
    signal_var: torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:
    """Minus the summed FITC log marginal likelihood of ``E`` GPs, ``y_a ~ N(0, Q_ff +
    Lambda)``, per data point (Snelson & Ghahramani 2006, eq. 8), in ``O(N m^2)``.

    :param inducing: ``[m, D]``; :param inputs: ``[N, D]``; :param targets: ``[E, N]``.
    """
    n = inputs.shape[0]
    _, v, lam, chol_a = _fitc_parts(inducing, inputs, lengthscales, signal_var, noise)
    # Woodbury: y^T (Q + Lambda)^-1 y = y^T Lambda^-1 y - c^T c, c = L_A^-1 V Lambda^-1 y.
    c = torch.linalg.solve_triangular(
        chol_a, (v @ (targets / lam).unsqueeze(-1)), upper=False
    ).squeeze(-1)
    quad = (targets.square() / lam).sum(-1) - c.square().sum(-1)
    log_det = lam.log().sum(-1) + 2 * torch.log(torch.diagonal(chol_a, dim1=-2, dim2=-1)).sum(-1)
    return (0.5 * (quad + log_det) + 0.5 * n * math.log(2 * math.pi)).sum() / n


def fitc_posterior(
    inducing: torch.Tensor,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    lengthscales: torch.Tensor,
    signal_var: torch.Tensor,
    noise: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """FITC's predictive GPs as an expansion over the inducing inputs: ``beta = Q^-1 K_uf
    Lambda^-1 y`` ``[E, m]`` and ``K_uu^-1 - Q^-1`` ``[E, m, m]``, ``Q = K_uu + K_uf
    Lambda^-1 K_fu``, so that the predictive mean is ``k_*u beta`` and the variance
    ``k_** - k_*u (K_uu^-1 - Q^-1) k_u*`` (Snelson & Ghahramani 2006, eqs. 9-10)."""
    chol_uu, v, lam, chol_a = _fitc_parts(inducing, inputs, lengthscales, signal_var, noise)
    # Q = L A L^T, so Q^-1 = L^-T A^-1 L^-1 and Q^-1 K_uf = L^-T A^-1 V.
    inv_a = torch.cholesky_inverse(chol_a)
    inv_l = torch.linalg.solve_triangular(
        chol_uu,
        torch.eye(chol_uu.shape[-1], dtype=chol_uu.dtype, device=chol_uu.device),
        upper=False,
    )
    inv_q = inv_l.transpose(1, 2) @ inv_a @ inv_l
    beta = (inv_l.transpose(1, 2) @ inv_a @ (v @ (targets / lam).unsqueeze(-1))).squeeze(-1)
    inv_kuu = inv_l.transpose(1, 2) @ inv_l
    return beta, inv_kuu - inv_q


def farthest_points(points: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of ``count`` rows of ``points: [N, D]`` chosen greedily, each the farthest
    (in standardised units) from those already chosen, starting from the newest row; all
    rows when ``N <= count``. Covers the visited region evenly, as inducing inputs do."""
    n = points.shape[0]
    if n <= count:
        return torch.arange(n, device=points.device)
    scaled = (points - points.mean(0)) / points.std(0).clamp(min=1e-8)
    chosen = torch.empty(count, dtype=torch.long, device=points.device)
    chosen[0] = n - 1
    distance = (scaled - scaled[n - 1]).pow(2).sum(1)
    for i in range(1, count):
        chosen[i] = torch.argmax(distance)
        distance = torch.minimum(distance, (scaled - scaled[chosen[i]]).pow(2).sum(1))
    return chosen
