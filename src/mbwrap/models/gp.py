"""Gaussian-process dynamics: one GP per state dimension on the change of state, with a
squared-exponential ARD kernel and hyperparameters from the marginal likelihood, as PILCO
learns them (Deisenroth & Rasmussen 2011, Section 2.1)."""

from __future__ import annotations

import math
from typing import Any

import torch
from gymnasium import spaces

from mbwrap.models.base import WorldModel
from mbwrap.models.gp_moments import KernelExpansion, expansion_mean, se_kernel
from mbwrap.space_support import SpaceSupport
from mbwrap.types import ModelStep

# A floor on the noise variance keeps K + sigma^2 I well conditioned in float64.
_MIN_NOISE = 1e-6


class GPModel(WorldModel):
    """``s' = s + Delta``, ``Delta_a ~ GP(0, k_a)`` on the input ``(s, a)``, one GP per
    state dimension ``a`` with its own lengthscales, signal and noise variance.

    :meth:`fit` maximises the log marginal likelihood of all GPs (Adam). Past
    ``max_points`` transitions it keeps a sparse subset: the ``max_points`` inputs chosen
    by farthest-point selection over all real data (a subset-of-data approximation in
    place of the paper's inducing-input GP, so that the exact moment matching below still
    applies). :meth:`step` samples the GP's predictive distribution (posterior plus noise);
    :meth:`mean_step` is its mean; :meth:`expansion` gives what moment matching needs
    (:func:`~mbwrap.models.gp_moments.moment_match`). Works in float64.

    :param max_points: the most training inputs kept (PILCO used full GPs up to a few
        hundred points and sparse ones beyond).
    :param fit_iterations: Adam steps (learning rate 0.05) per :meth:`fit`.
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
        self.state_dim = observation_space.shape[0]
        self.input_dim = self.state_dim + action_space.shape[0]
        kw = {"dtype": torch.float64, "device": self.device}
        self.log_lengthscales = torch.nn.Parameter(
            torch.zeros(self.state_dim, self.input_dim, **kw)
        )
        self.log_signal_var = torch.nn.Parameter(torch.zeros(self.state_dim, **kw))
        self.log_noise_var = torch.nn.Parameter(torch.full((self.state_dim,), -4.0, **kw))
        self.register_buffer("inputs", torch.zeros(0, self.input_dim, **kw))
        self.register_buffer("targets", torch.zeros(self.state_dim, 0, **kw))
        self._cache: KernelExpansion | None = None

    # ------------------------------------------------------------------ hyperparameters
    def hyperparameters(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(lengthscales [E, D], signal_var [E], noise_var [E])``."""
        noise = self.log_noise_var.exp() + _MIN_NOISE
        return self.log_lengthscales.exp(), self.log_signal_var.exp(), noise

    def negative_log_likelihood(self) -> torch.Tensor:
        """Minus the summed log marginal likelihood of the ``E`` GPs on the stored data,
        per data point (Rasmussen & Williams 2006, eq. 2.30)."""
        n = self.inputs.shape[0]
        ell, alpha2, noise = self.hyperparameters()
        k = se_kernel(self.inputs, self.inputs, ell, alpha2)
        k = k + noise[:, None, None] * torch.eye(n, dtype=k.dtype, device=k.device)
        chol = torch.linalg.cholesky(k)
        alpha = torch.cholesky_solve(self.targets.unsqueeze(-1), chol)
        fit = 0.5 * (self.targets.unsqueeze(-1) * alpha).sum((-1, -2))
        log_det = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        return (fit + log_det + 0.5 * n * math.log(2 * math.pi)).sum() / n

    # ------------------------------------------------------------------ fitting
    def fit(self, buffer: Any, **kwargs: Any) -> dict[str, Any]:
        """Fit the GPs on every real transition in ``buffer`` (a subset past
        ``max_points``); returns ``nll`` (per point, summed over GPs) and ``points``."""
        if kwargs:
            raise TypeError(f"fit: GPModel takes no options, got {sorted(kwargs)}")
        batch = buffer.transitions()
        obs = batch.obs.to(self.device, torch.float64).reshape(len(batch), -1)
        act = batch.action.to(self.device, torch.float64).reshape(len(batch), -1)
        nxt = batch.next_obs.to(self.device, torch.float64).reshape(len(batch), -1)
        inputs = torch.cat([obs, act], 1)
        keep = farthest_points(inputs, self.max_points)
        self.inputs = inputs[keep]
        self.targets = (nxt - obs)[keep].T.contiguous()
        with torch.no_grad():  # start from the data's scales (PILCO's initialisation)
            spread = self.inputs.std(0).clamp(min=1e-3)
            self.log_lengthscales.copy_(spread.log().expand_as(self.log_lengthscales))
            variance = self.targets.var(1).clamp(min=1e-8)
            self.log_signal_var.copy_(variance.log())
            self.log_noise_var.copy_((variance / 100).log())
        # Adam rather than L-BFGS: its line search can step to hyperparameters whose
        # kernel matrix is not positive definite in float64.
        optimizer = torch.optim.Adam(self.parameters(), lr=0.05)
        for _ in range(self.fit_iterations):
            optimizer.zero_grad()
            self.negative_log_likelihood().backward()
            optimizer.step()
        self._cache = None
        with torch.no_grad():
            nll = float(self.negative_log_likelihood())
        return {"nll": nll, "points": int(self.inputs.shape[0])}

    # ------------------------------------------------------------------ predicting
    def expansion(self) -> KernelExpansion:
        """The fitted GPs as a :class:`~mbwrap.models.gp_moments.KernelExpansion` with
        their inverse kernel matrices (cached until the next fit); the targets are the
        state changes."""
        if self.inputs.shape[0] == 0:
            raise RuntimeError("GPModel: call fit() before predicting")
        if self._cache is None:
            ell, alpha2, noise = (h.detach() for h in self.hyperparameters())
            n = self.inputs.shape[0]
            k = se_kernel(self.inputs, self.inputs, ell, alpha2)
            k = k + noise[:, None, None] * torch.eye(n, dtype=k.dtype, device=k.device)
            inv_k = torch.cholesky_inverse(torch.linalg.cholesky(k))
            beta = torch.einsum("enm,em->en", inv_k, self.targets)
            self._cache = KernelExpansion(self.inputs, beta, ell, alpha2, inv_k)
        return self._cache

    def predict_delta(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictive mean and variance (posterior plus noise) of the state change:
        ``([B, E], [B, E])`` from ``inputs: [B, D + U]``."""
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
        return ModelStep(next_state=(state + delta.to(state.dtype)), reward=None, terminated=None)

    def mean_step(
        self, state: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        inputs = torch.cat([state.reshape(len(state), -1), action.reshape(len(action), -1)], 1)
        gp = self.expansion()
        return state + expansion_mean(gp, inputs.to(torch.float64)).to(state.dtype), None

    # ------------------------------------------------------------------ persistence
    def get_config(self) -> dict[str, Any]:
        return {"max_points": self.max_points, "fit_iterations": self.fit_iterations}

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        # The stored data sets the size of the training set the GPs condition on.
        for name in ("inputs", "targets"):
            if name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[name], device=self.device))
        self._cache = None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


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
