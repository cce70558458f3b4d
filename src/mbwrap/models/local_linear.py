"""Time-varying linear-Gaussian dynamics ``x_{t+1} ~ N(F_t [x_t; u_t] + f_t, Sigma_t)``,
fitted per time step by conditioning a Gaussian on ``(x, u, x')``, under a Gaussian-mixture
prior fitted to all transitions: the local models of guided policy search under unknown
dynamics (Levine & Abbeel 2014, Section 3 and its appendix)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from gymnasium import spaces

from mbwrap.models.base import WorldModel
from mbwrap.models.gmm import GaussianMixture
from mbwrap.space_support import SpaceSupport
from mbwrap.types import ModelStep

#: Added to the ``(x, u)`` block of every joint covariance before conditioning, so that
#: too few samples still give a solvable regression (the GPS code's ``regularization``,
#: ``experiments/mjc_example/hyperparams.py``).
REGULARISATION = 1e-6
#: The GPS code keeps ``max_samples = 20`` trajectories for its dynamics prior
#: (``DYN_PRIOR_GMM``); its examples run ``T = 100`` steps, hence 2,000 transitions.
PRIOR_TRAJECTORIES = 20


class NormalInverseWishart(NamedTuple):
    """A normal-inverse-Wishart prior on a Gaussian's mean and covariance, one per
    leading index (e.g. ``[M, T]``).

    :ivar mu0: ``[..., D]`` prior mean.
    :ivar phi: ``[..., D, D]`` inverse scale; ``phi / n0`` is the prior covariance.
    :ivar m: prior strength on the mean, in samples: a float or ``[...]``.
    :ivar n0: prior strength on the covariance, in samples: a float or ``[...]``.
    """

    mu0: torch.Tensor
    phi: torch.Tensor
    m: float | torch.Tensor
    n0: float | torch.Tensor


def _per_step(value: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A prior strength as ``[..., 1, 1]`` float64 on ``like``'s device."""
    tensor = torch.as_tensor(value, dtype=torch.float64, device=like.device)
    return tensor.reshape(*tensor.shape, 1, 1)


def fit_linear_gaussian(
    x: torch.Tensor,
    u: torch.Tensor,
    x_next: torch.Tensor,
    prior: NormalInverseWishart | None = None,
    *,
    mask: torch.Tensor | None = None,
    regularisation: float = REGULARISATION,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fit ``x_{t+1} ~ N(F_t [x_t; u_t] + f_t, Sigma_t)`` at every step ``t`` from the
    ``N`` samples of that step, for each of ``M`` conditions, in float64
    (:func:`fit_conditional_gaussian` with inputs ``(x, u)`` and outputs ``x'``).

    :param x: ``[M, N, T, X]``.
    :param u: ``[M, N, T, U]``.
    :param x_next: ``[M, N, T, X]``.
    :param prior: over ``(x, u, x')``, ``D = X + U + X``; ``None`` for the plain fit.
    :param mask: ``[M, N, T]`` bool, the samples that exist; ``None``: all.
    :return: ``(F [M, T, X, X + U], f [M, T, X], Sigma [M, T, X, X])``.
    """
    if not (x.shape[:-1] == u.shape[:-1] == x_next.shape[:-1]) or x.shape != x_next.shape:
        raise ValueError(
            f"x, u, x_next: expected [M, N, T, X], [M, N, T, U], [M, N, T, X], got "
            f"{tuple(x.shape)}, {tuple(u.shape)}, {tuple(x_next.shape)}"
        )
    inputs = torch.cat([x, u], -1)
    return fit_conditional_gaussian(inputs, x_next, prior, mask=mask, regularisation=regularisation)


def fit_conditional_gaussian(
    inputs: torch.Tensor,
    outputs: torch.Tensor,
    prior: NormalInverseWishart | None = None,
    *,
    mask: torch.Tensor | None = None,
    regularisation: float = REGULARISATION,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fit ``y_t ~ N(F_t z_t + f_t, Sigma_t)`` at every step ``t`` from the ``N`` samples
    of that step, for each of ``M`` conditions, in float64: local dynamics (``z = (x, u)``,
    ``y = x'``) or a policy's local linearisation (``z = x``, ``y`` its actions).

    The joint Gaussian of ``(z, y)`` has the empirical mean and the (biased) empirical
    covariance of the samples; with a ``prior``, the covariance is its posterior
    estimate ``(N Sigma_hat + Phi + N m / (N + m) (mu_hat - mu0)(mu_hat - mu0)^T) /
    (N + n0)`` while the mean stays the empirical one, as in the GPS code
    (``gauss_fit_joint_prior``; Levine & Abbeel 2014, Appendix A). Conditioning ``y`` on
    ``z`` gives ``F = Sigma_{y,z} Sigma_{z,z}^{-1}``, ``f = mu_y - F mu_z``,
    ``Sigma = Sigma_{y,y} - F Sigma_{z,y}``.

    :param inputs: ``[M, N, T, I]``.
    :param outputs: ``[M, N, T, O]``.
    :param prior: ``mu0 [M, T, D]``, ``phi [M, T, D, D]`` and strengths (floats or
        ``[M, T]``) over ``(z, y)``, ``D = I + O``; ``None`` for the plain fit.
    :param mask: ``[M, N, T]`` bool, the samples that exist (episodes of unequal length);
        ``None``: all. Every ``(m, t)`` needs at least one.
    :param regularisation: added to the diagonal of the input block.
    :return: ``(F [M, T, O, I], f [M, T, O], Sigma [M, T, O, O])``.
    """
    if inputs.shape[:-1] != outputs.shape[:-1] or inputs.dim() != 4:
        raise ValueError(
            f"inputs, outputs: expected [M, N, T, I] and [M, N, T, O], got "
            f"{tuple(inputs.shape)}, {tuple(outputs.shape)}"
        )
    width = inputs.shape[-1]
    joint = torch.cat([inputs, outputs], -1).to(torch.float64).transpose(-3, -2)  # [M, T, N, D]
    if mask is None:
        keep = torch.ones((*joint.shape[:-1], 1), dtype=joint.dtype, device=joint.device)
    else:
        keep = mask.transpose(-2, -1).to(joint.dtype).unsqueeze(-1)  # [M, T, N, 1]
    count = keep.sum(-2)  # [M, T, 1]
    if bool((count == 0).any()):
        raise ValueError("mask: every condition and time step needs at least one sample")
    mean = (joint * keep).sum(-2) / count  # [M, T, D]
    centred = (joint - mean.unsqueeze(-2)) * keep
    scatter = centred.transpose(-1, -2) @ centred  # [M, T, D, D], N times the covariance
    n = count.unsqueeze(-1)  # [M, T, 1, 1]
    if prior is None:
        sigma = scatter / n
    else:
        m, n0 = _per_step(prior.m, joint), _per_step(prior.n0, joint)
        shift = mean - prior.mu0.to(joint.dtype)
        outer = shift.unsqueeze(-1) * shift.unsqueeze(-2)
        sigma = (scatter + prior.phi.to(joint.dtype) + n * m / (n + m) * outer) / (n + n0)
    sigma = 0.5 * (sigma + sigma.transpose(-1, -2))
    diagonal = torch.zeros(joint.shape[-1], dtype=joint.dtype, device=joint.device)
    diagonal[:width] = regularisation
    sigma = sigma + torch.diag(diagonal)
    sigma_in, sigma_cross = sigma[..., :width, :width], sigma[..., :width, width:]
    gain = torch.linalg.solve(sigma_in, sigma_cross).transpose(-1, -2)  # [M, T, O, I]
    offset = mean[..., width:] - (gain @ mean[..., :width].unsqueeze(-1)).squeeze(-1)
    cov = sigma[..., width:, width:] - gain @ sigma_cross
    return gain, offset, 0.5 * (cov + cov.transpose(-1, -2))


class DynamicsPriorGMM:
    """A Gaussian mixture over ``(x, u, x')`` transitions, read as a normal-inverse-Wishart
    prior for the per-step fits (Levine & Abbeel 2014, Section 3; the GPS code's
    ``DynamicsPriorGMM``).

    :meth:`update` adds transitions (keeping the newest ``max_samples``) and refits the
    mixture with ``max(2, min(max_clusters, S // min_samples_per_cluster))`` clusters for
    ``S`` held transitions. :meth:`eval` gives, per set of points, the mixture's moments
    given those points, counted as ``strength`` samples.

    :param max_clusters: the most clusters (GPS code, ``mjc_example``: 20).
    :param min_samples_per_cluster: transitions per cluster (GPS code, ``mjc_example``: 40).
    :param max_samples: the most transitions held, counted in transitions (the GPS code
        counts 20 trajectories; :data:`PRIOR_TRAJECTORIES` times 100 steps here).
    :param strength: ``m = n0``, the samples the prior counts as (GPS code,
        ``DYN_PRIOR_GMM['strength'] = 1``).
    """

    def __init__(
        self,
        *,
        max_clusters: int = 20,
        min_samples_per_cluster: int = 40,
        max_samples: int = PRIOR_TRAJECTORIES * 100,
        strength: float = 1.0,
    ) -> None:
        for name, value in (
            ("max_clusters", max_clusters),
            ("min_samples_per_cluster", min_samples_per_cluster),
            ("max_samples", max_samples),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if not strength > 0:
            raise ValueError(f"strength: expected a positive number, got {strength!r}")
        self.max_clusters, self.min_samples_per_cluster = max_clusters, min_samples_per_cluster
        self.max_samples, self.strength = max_samples, float(strength)
        #: ``[S, X + U + X]`` float64, the transitions held, oldest first.
        self.data: torch.Tensor | None = None
        self.mixture: GaussianMixture | None = None

    def update(
        self,
        x: torch.Tensor,
        u: torch.Tensor,
        x_next: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> int:
        """Add transitions ``x: [S, X]``, ``u: [S, U]``, ``x_next: [S, X]`` and refit the
        mixture (initialised with ``generator``); returns its number of clusters."""
        new = torch.cat([x, u, x_next], -1).to(torch.float64)
        data = new if self.data is None else torch.cat([self.data.to(new.device), new])
        self.data = data[-self.max_samples :]
        held = self.data.shape[0]
        if held == 0:
            raise ValueError("x: the prior needs at least one transition")
        # The GPS code's max(2, min(max_clusters, S // min)), written so that
        # max_clusters = 1 (one Gaussian) is honoured; at most one cluster per point.
        clusters = min(self.max_clusters, max(2, held // self.min_samples_per_cluster), held)
        self.mixture = GaussianMixture.fit(self.data, clusters, generator=generator)
        return clusters

    def eval(self, points: torch.Tensor, mask: torch.Tensor | None = None) -> NormalInverseWishart:
        """The prior for each set of points: ``mu0``, ``Phi = n0 Sigma`` from the mixture's
        moments given the set (:meth:`GaussianMixture.moments`), ``m = n0 = strength``.

        :param points: ``[M, T, N, D]`` (any leading shape), the ``N`` samples of a step.
        :param mask: ``[M, T, N]`` bool, the samples that exist; ``None``: all.
        :return: ``mu0 [M, T, D]``, ``phi [M, T, D, D]``, ``m``, ``n0`` floats.
        """
        if self.mixture is None:
            raise RuntimeError("DynamicsPriorGMM: call update() before eval()")
        mu0, sigma = self.mixture.moments(points.to(torch.float64), mask)
        return NormalInverseWishart(mu0, self.strength * sigma, self.strength, self.strength)


def episode_steps(
    episode_end: torch.Tensor, *, first_row_starts: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Episode and time index of every step stored as ``[R, E]`` (``R`` steps of ``E``
    streams, oldest first), where ``episode_end[r, e]`` means step ``r + 1`` of stream ``e``
    starts a new episode.

    :param first_row_starts: whether row 0 starts episodes (a buffer that never wrapped);
        otherwise the steps before each stream's first end have unknown time.
    :return: ``(episode [R, E], time [R, E])`` int64, ``-1`` where unknown; episodes are
        numbered ``0 .. n - 1``.
    """
    rows, streams = episode_end.shape
    index = torch.arange(rows, device=episode_end.device).unsqueeze(-1)
    starts = torch.zeros_like(episode_end)
    starts[1:] = episode_end[:-1]
    starts[0] = first_row_starts
    first = torch.cummax(torch.where(starts, index, -1), 0).values  # [R, E]
    known = first >= 0
    time = torch.where(known, index - first, -1)
    key = first * streams + torch.arange(streams, device=episode_end.device)
    episode = torch.full_like(time, -1)
    episode[known] = torch.unique(key[known], return_inverse=True)[1]
    return episode, time


class LocalLinearModel(WorldModel):
    """Time-varying linear-Gaussian dynamics over ``horizon`` steps, the local models of
    guided policy search (Levine & Abbeel 2014, Section 3).

    The state is the observation with the time step appended, ``[B, X + 1]``: step ``t``
    of an episode follows ``x' ~ N(F_t [x; u] + f_t, Sigma_t)``. :meth:`encode` starts at
    ``t = 0``; :meth:`step` samples, :meth:`mean_step` is its differentiable mean; past the
    last step the last step's dynamics apply. Imagined episodes start from stored first
    observations of episodes. Works in float64; there is no reward or termination head.

    :meth:`fit` cuts the buffer's streams into episodes, fits the Gaussian-mixture prior
    (:class:`DynamicsPriorGMM`) on all stored transitions (the newest
    :data:`PRIOR_TRAJECTORIES` ``x horizon``) and then each step ``t < horizon`` on the
    episodes' transitions at ``t`` (:func:`fit_linear_gaussian`).

    :param horizon: ``T``, the steps with their own dynamics (the episode length).
    :param prior: fit under the Gaussian-mixture prior (``False``: plain per-step fits).
    :param max_clusters: the prior's most clusters (GPS code, ``mjc_example``: 20).
    :param min_samples_per_cluster: the prior's transitions per cluster (GPS code,
        ``mjc_example``: 40).
    """

    registry_name = "local-linear"
    space_support = SpaceSupport(
        observations=("Box",),
        actions=("Box",),
        observation_note="flat Box states: one linear-Gaussian map per time step",
        action_note="flat Box actions",
    )

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        env_id: str | None = None,
        device: str | torch.device = "auto",
        horizon: int,
        prior: bool = True,
        max_clusters: int = 20,
        min_samples_per_cluster: int = 40,
    ) -> None:
        super().__init__(observation_space, action_space, env_id=env_id, device=device)
        for name, space in (
            ("observation_space", observation_space),
            ("action_space", action_space),
        ):
            if not isinstance(space, spaces.Box) or len(space.shape) != 1:
                raise ValueError(f"{name}: LocalLinearModel needs a flat Box, got {space!r}")
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon: expected a positive int, got {horizon!r}")
        if not isinstance(prior, bool):
            raise ValueError(f"prior: expected a bool, got {prior!r}")
        self.horizon, self.use_prior = horizon, prior
        self.prior_kwargs = {
            "max_clusters": max_clusters,
            "min_samples_per_cluster": min_samples_per_cluster,
            "max_samples": PRIOR_TRAJECTORIES * horizon,
        }
        DynamicsPriorGMM(**self.prior_kwargs)  # validates them now, not at the first fit
        self.state_dim = observation_space.shape[0]
        self.input_dim = self.state_dim + action_space.shape[0]
        kw = {"dtype": torch.float64, "device": self.device}
        # Empty until fit() (or load) sizes them to [T, ...].
        self.register_buffer("fx", torch.zeros(0, self.state_dim, self.input_dim, **kw))
        self.register_buffer("fc", torch.zeros(0, self.state_dim, **kw))
        self.register_buffer("cov", torch.zeros(0, self.state_dim, self.state_dim, **kw))
        self._noise_scale: torch.Tensor | None = None

    # ------------------------------------------------------------------ data
    @staticmethod
    def _episodes(buffer: Any) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The buffer's ``obs``, ``action`` and ``next_obs`` as ``[R, E, ...]`` (oldest row
        first) with :func:`episode_steps`' ``(episode [R, E], time [R, E])``."""
        stored = buffer.state_dict()
        rows = stored["reward"].shape[0]
        if rows == 0:
            raise ValueError("buffer: empty; collect real episodes before fitting")
        first = stored["pos"] if stored["full"] else 0
        order = (first + torch.arange(rows, device=stored["reward"].device)) % rows
        grid = {key: stored[key][order] for key in ("obs", "action", "next_obs")}
        # The oldest row of a buffer that wrapped lies mid-episode, at an unknown step.
        episode, time = episode_steps(
            stored["episode_end"][order], first_row_starts=not stored["full"]
        )
        return grid, episode, time

    # ------------------------------------------------------------------ fitting
    def fit(self, buffer: Any, *, generator: torch.Generator | None = None) -> dict[str, Any]:
        """Fit the prior and the per-step dynamics on the episodes in ``buffer``.

        :param generator: seeds the prior's k-means++ initialisation (``None``: torch's
            global generator).
        :return: ``episodes`` (the episodes whose steps are fitted), ``clusters`` (0
            without a prior) and ``residual``, the mean squared error of the mean
            prediction on those steps, per dimension.
        :raises ValueError: for an empty buffer, or when some step ``t < horizon`` has no
            stored transition.
        """
        grid, episode, time = self._episodes(buffer)
        obs, act, nxt = (
            grid[k].to(self.device, torch.float64).flatten(2) for k in ("obs", "action", "next_obs")
        )
        episode, time = episode.to(self.device), time.to(self.device)
        used = (time >= 0) & (time < self.horizon)
        if not bool(used.any()):
            raise ValueError(
                "buffer: holds no step of an episode whose start is stored (a full buffer's "
                "oldest row counts as mid-episode); collect whole episodes into a larger buffer"
            )
        count = int(episode.max()) + 1
        where = (episode[used], time[used])
        x = obs.new_zeros(count, self.horizon, self.state_dim)
        u = obs.new_zeros(count, self.horizon, self.input_dim - self.state_dim)
        x_next = torch.zeros_like(x)
        mask = torch.zeros(count, self.horizon, dtype=torch.bool, device=self.device)
        x[where], u[where], x_next[where], mask[where] = obs[used], act[used], nxt[used], True
        missing = torch.nonzero(~mask.any(0)).reshape(-1)
        if missing.numel():
            raise ValueError(
                f"horizon: no stored episode reaches step {int(missing[0])} of "
                f"{self.horizon}; collect episodes of {self.horizon} steps or lower horizon"
            )
        niw, clusters = None, 0
        if self.use_prior:
            prior = DynamicsPriorGMM(**self.prior_kwargs)
            # Episode by episode, oldest first (the steps of no known episode before all),
            # so that the prior keeps whole recent episodes, not the last rows of all.
            order = torch.argsort(episode.flatten(), stable=True)
            clusters = prior.update(
                *(v.flatten(0, 1)[order] for v in (obs, act, nxt)), generator=generator
            )
            points = torch.cat([x, u, x_next], -1).transpose(0, 1)  # [T, N, D]
            niw = prior.eval(points[None], mask.T[None])
        fx, fc, cov = fit_linear_gaussian(x[None], u[None], x_next[None], niw, mask=mask[None])
        self.fx, self.fc, self.cov = fx[0], fc[0], cov[0]
        self._noise_scale = None
        predicted = (self.fx @ torch.cat([x, u], -1).unsqueeze(-1)).squeeze(-1) + self.fc
        residual = (predicted - x_next).pow(2).mean(-1)[mask].mean()
        return {"episodes": count, "clusters": clusters, "residual": float(residual)}

    def dynamics(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The fitted ``(F [T, X, X + U], f [T, X], Sigma [T, X, X])`` float64 (the single
        condition's, ``M = 1`` squeezed)."""
        if self.fx.shape[0] == 0:
            raise RuntimeError("LocalLinearModel: call fit() before predicting")
        return self.fx, self.fc, self.cov

    # ------------------------------------------------------------------ predicting
    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, X + 1]``: the observations ``[B, X]`` at time step 0."""
        tensor = super().encode(obs)
        tensor = tensor if tensor.is_floating_point() else tensor.float()
        return torch.cat([tensor, tensor.new_zeros(tensor.shape[0], 1)], -1)

    def decode(self, state: torch.Tensor) -> torch.Tensor:
        """The observations ``[B, X]`` of states ``[B, X + 1]``."""
        return state[..., :-1]

    def _mean(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(F_t [x; u] + f_t [B, X] float64, t [B] int64)`` for ``state: [B, X + 1]``."""
        fx, fc, _ = self.dynamics()
        t = state[:, -1].detach().round().long().clamp(0, self.horizon - 1)
        inputs = torch.cat(
            [state[:, :-1].to(torch.float64), action.reshape(len(action), -1).to(torch.float64)],
            -1,
        )
        mean = (fx[t] @ inputs.unsqueeze(-1)).squeeze(-1) + fc[t]
        return mean, t

    def _next_state(self, state: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``[B, X + 1]``: ``x`` at step ``t + 1``, held at the last step past it."""
        later = (t + 1).clamp(max=self.horizon - 1).to(state.dtype).unsqueeze(-1)
        return torch.cat([x.to(state.dtype), later], -1)

    def step(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        member: torch.Tensor | None = None,
    ) -> ModelStep:
        mean, t = self._mean(state, action)
        if self._noise_scale is None:
            # The symmetric square root of Sigma_t: a Cholesky factor fails on the
            # singular covariances of noise-free dimensions.
            values, vectors = torch.linalg.eigh(self.cov)
            self._noise_scale = vectors * values.clamp(min=0).sqrt().unsqueeze(-2)
        noise = torch.randn(mean.shape, dtype=mean.dtype, device=mean.device, generator=generator)
        sample = mean + (self._noise_scale[t] @ noise.unsqueeze(-1)).squeeze(-1)
        return ModelStep(
            next_state=self._next_state(state, sample, t), reward=None, terminated=None
        )

    def mean_step(
        self, state: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        mean, t = self._mean(state, action)
        return self._next_state(state, mean, t), None

    # ------------------------------------------------------------------ imagination
    @torch.no_grad()
    def dream_start_states(
        self, buffer: Any, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``[n, X + 1]``: stored first observations of episodes, drawn uniformly, at
        ``t = 0``, the start states the time-varying dynamics were fitted from."""
        grid, _, time = self._episodes(buffer)
        first = grid["obs"][time == 0]
        if first.shape[0] == 0:
            raise ValueError("buffer: holds no first step of an episode to start from")
        device = first.device if generator is None else generator.device
        pick = torch.randint(first.shape[0], (n,), generator=generator, device=device)
        return self.encode(first[pick.to(first.device)].to(self.device))

    # ------------------------------------------------------------------ persistence
    def get_config(self) -> dict[str, Any]:
        return {
            "horizon": self.horizon,
            "prior": self.use_prior,
            "max_clusters": self.prior_kwargs["max_clusters"],
            "min_samples_per_cluster": self.prior_kwargs["min_samples_per_cluster"],
        }

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        # A fitted model holds horizon steps of dynamics, an unfitted one none.
        for name in ("fx", "fc", "cov"):
            if name in state_dict:
                steps = state_dict[name].shape[0]
                if steps not in (0, self.horizon):
                    raise ValueError(
                        f"{name}: holds {steps} steps of dynamics, the model has horizon "
                        f"{self.horizon}"
                    )
                setattr(self, name, torch.empty_like(state_dict[name], device=self.device))
        self._noise_scale = None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
